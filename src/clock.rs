//! dockhand's one notion of time: epoch milliseconds from a clock that never steps back, so
//! backoff and timeouts are pure arithmetic given `now`.

use std::time::Duration;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The time as the reconciler sees it: wall-clock time at the first call, advanced by tokio's
/// monotonic clock since. Backoff is immune to the wall clock being stepped, and tests that
/// pause tokio's clock (`tokio::time::pause`) move dockhand's time with it.
pub fn now_millis() -> Millis {
    static ANCHOR: std::sync::OnceLock<(Millis, std::time::Instant)> = std::sync::OnceLock::new();
    let (wall, mono) = *ANCHOR.get_or_init(|| {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        (wall, std::time::Instant::now())
    });
    let elapsed = tokio::time::Instant::now()
        .into_std()
        .saturating_duration_since(mono);
    wall + elapsed.as_millis() as Millis
}

/// Formats epoch milliseconds as RFC 3339 (UTC), for status and messages.
pub fn rfc3339(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
