//! Notifications (`up --notify URL`): one JSON message when an object starts failing, one when
//! it recovers, one per automatic rollback; never one per pass.
//!
//! An object is *alerting* from the pass that first sees it Failed, CrashLoopBackOff or
//! Unhealthy until the pass that sees it Ready or Completed: a crash loop that flips between
//! CrashLoopBackOff and Running is one message, not one per restart. Alerting objects are seeded
//! from the stored statuses, so a restarted controller does not announce them again. Delivery
//! runs beside the passes (a slow receiver never holds one up), retries with backoff, and is
//! recorded as an event; a URL is shown by its scheme and host only (webhook URLs carry tokens).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::manifest::{ObjectKey, Phase};
use crate::plan::RollbackPlan;
use crate::store::{NewEvent, Status, Store};

/// Attempts per message and URL, and the pause before the first retry (doubled each time).
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// How long one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting for delivery; beyond it, new ones are dropped (and logged).
const QUEUE: usize = 1024;

/// One message, as receivers get it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// The object it is about (none for a source's, such as a git fetch failure).
    #[serde(skip)]
    pub key: Option<ObjectKey>,
    /// `failing`, `recovered`, `rolled-back`, `git-fetch-failed`, `image-check-failed` or
    /// `backup-failed`.
    pub event: &'static str,
    pub instance: String,
    /// `server/web`.
    pub object: String,
    pub phase: String,
    /// What the status (or the rollback) says.
    pub message: String,
}

fn failing(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Failed | Phase::CrashLoopBackOff | Phase::Unhealthy
    )
}

/// What a pass has to say, given the objects alerting before it (updated in place).
pub fn transitions(
    instance: &str,
    alerting: &mut HashSet<ObjectKey>,
    statuses: &[Status],
    rollbacks: &[RollbackPlan],
) -> Vec<Notification> {
    let mut out = Vec::new();
    let note = |event, key: &ObjectKey, phase: Phase, message: String| Notification {
        key: Some(key.clone()),
        event,
        instance: instance.to_owned(),
        object: key.to_string(),
        phase: phase.as_str().to_owned(),
        message,
    };
    let mut present = HashSet::new();
    for s in statuses {
        let Some(key) = &s.key else {
            continue;
        };
        present.insert(key.clone());
        let message = s.message.clone().unwrap_or_default();
        if failing(s.phase) && alerting.insert(key.clone()) {
            out.push(note("failing", key, s.phase, message));
        } else if matches!(s.phase, Phase::Ready | Phase::Completed) && alerting.remove(key) {
            out.push(note("recovered", key, s.phase, message));
        }
    }
    // A deleted object recovers from nothing: it is forgotten.
    alerting.retain(|k| present.contains(k));
    for r in rollbacks {
        let message = format!("rolled back to revision {}: {}", r.to, r.reason);
        out.push(note("rolled-back", &r.key, Phase::Failed, message));
    }
    out
}

/// `scheme://host[:port]` of a URL: what logs and events may show of it.
pub fn redacted(url: &reqwest::Url) -> String {
    match url.port() {
        Some(p) => format!("{}://{}:{p}", url.scheme(), url.host_str().unwrap_or("")),
        None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or("")),
    }
}

/// The notifier a controller's passes (and its git fetches) feed.
#[derive(Clone)]
pub struct Notifier {
    instance: String,
    /// `None` until the first pass seeds it from the stored statuses.
    alerting: std::sync::Arc<std::sync::Mutex<Option<HashSet<ObjectKey>>>>,
    queue: mpsc::Sender<Notification>,
}

impl Notifier {
    /// Starts delivering to `urls` (each message to each URL) and records deliveries in `store`.
    pub fn start(instance: &str, urls: Vec<reqwest::Url>, store: Store) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(instance.to_owned(), urls, store, rx));
        Self {
            instance: instance.to_owned(),
            alerting: std::sync::Arc::new(std::sync::Mutex::new(None)),
            queue,
        }
    }

    /// Queues a message about a source (`event`, e.g. `git-fetch-failed`), not an object.
    pub fn source_event(&self, event: &'static str, source: &str, message: &str) {
        let n = Notification {
            key: None,
            event,
            instance: self.instance.clone(),
            object: source.to_owned(),
            phase: String::new(),
            message: message.to_owned(),
        };
        if let Err(e) = self.queue.try_send(n) {
            tracing::warn!("notification dropped: {e}");
        }
    }

    /// Queues a message about an object that is not a change of its phase (a failed backup).
    pub fn object_event(&self, key: &ObjectKey, event: &'static str, message: &str) {
        let n = Notification {
            key: Some(key.clone()),
            event,
            instance: self.instance.clone(),
            object: key.to_string(),
            phase: String::new(),
            message: message.to_owned(),
        };
        if let Err(e) = self.queue.try_send(n) {
            tracing::warn!("notification dropped: {e}");
        }
    }

    /// Queues what this pass has to say; `previous` are the statuses before it.
    pub fn observe(
        &self,
        previous: &HashMap<ObjectKey, Status>,
        statuses: &[Status],
        rollbacks: &[RollbackPlan],
    ) {
        let Ok(mut alerting) = self.alerting.lock() else {
            return;
        };
        let alerting = alerting.get_or_insert_with(|| {
            previous
                .iter()
                .filter(|(_, s)| failing(s.phase))
                .map(|(k, _)| k.clone())
                .collect()
        });
        for n in transitions(&self.instance, alerting, statuses, rollbacks) {
            if let Err(e) = self.queue.try_send(n) {
                tracing::warn!("notification dropped: {e}");
            }
        }
    }
}

async fn deliver(
    instance: String,
    urls: Vec<reqwest::Url>,
    store: Store,
    mut rx: mpsc::Receiver<Notification>,
) {
    let client = match crate::tls::client_builder().timeout(POST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("notifications are off: {e}");
            return;
        }
    };
    while let Some(n) = rx.recv().await {
        for url in &urls {
            let outcome = post(&client, url, &n).await;
            let shown = redacted(url);
            let event = match outcome {
                Ok(()) => NewEvent {
                    key: n.key.clone(),
                    reason: "notified",
                    message: format!("{} of {} sent to {shown}", n.event, n.object),
                },
                Err(e) => {
                    tracing::warn!("notification to {shown} failed: {e}");
                    NewEvent {
                        key: n.key.clone(),
                        reason: "notify-failed",
                        message: format!(
                            "{} of {} not delivered to {shown} after {ATTEMPTS} attempts: {e}",
                            n.event, n.object
                        ),
                    }
                }
            };
            if let Err(e) = store.append_events(&instance, &[event]).await {
                tracing::warn!("cannot record a notification: {e}");
            }
        }
    }
}

/// An error with what caused it (`error sending request: … certificate …`), for events.
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let said = cause.to_string();
        if !out.contains(&said) {
            out.push_str(": ");
            out.push_str(&said);
        }
        next = cause.source();
    }
    out
}

/// POSTs `n` as JSON, retrying a failure (no answer, or not 2xx) with backoff.
async fn post(
    client: &reqwest::Client,
    url: &reqwest::Url,
    n: &Notification,
) -> Result<(), String> {
    let mut pause = FIRST_RETRY;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match client.post(url.clone()).json(n).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("answered {}", r.status()),
            // Without the URL: reqwest's error names it whole.
            Err(e) => last = causes(&e.without_url()),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;

    fn status(name: &str, phase: Phase) -> Status {
        let mut s = Status::pending(ObjectKey::new(Kind::Server, name));
        s.phase = phase;
        s.message = Some(format!("{name} is {}", phase.as_str()));
        s
    }

    #[test]
    fn a_crash_loop_is_one_message_and_its_recovery_another() {
        let mut alerting = HashSet::new();
        let mut said = Vec::new();
        for phase in [
            Phase::Running,
            Phase::CrashLoopBackOff,
            Phase::Running,
            Phase::CrashLoopBackOff,
            Phase::Failed,
            Phase::Ready,
            Phase::Ready,
        ] {
            let notes = transitions("t", &mut alerting, &[status("web", phase)], &[]);
            said.extend(notes.into_iter().map(|n| (n.event, n.phase)));
        }
        assert_eq!(
            said,
            [
                ("failing", "CrashLoopBackOff".to_owned()),
                ("recovered", "Ready".to_owned())
            ]
        );
    }

    #[test]
    fn a_deleted_object_is_forgotten_and_a_rollback_is_said() {
        let mut alerting = HashSet::from([ObjectKey::new(Kind::Server, "gone")]);
        let rollback = RollbackPlan {
            key: ObjectKey::new(Kind::Server, "web"),
            from: "2".into(),
            to: "1".into(),
            reason: "revision 2 exited with code 3".into(),
        };
        let notes = transitions("t", &mut alerting, &[], &[rollback]);
        assert!(alerting.is_empty());
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].event, "rolled-back");
        assert_eq!(notes[0].object, "server/web");
        assert!(notes[0].message.contains("revision 2 exited"), "{notes:?}");
    }

    #[test]
    fn a_url_is_shown_without_its_path_or_query() {
        let url: reqwest::Url = "https://hooks.example/services/T0/B1/secret?token=x"
            .parse()
            .expect("a url");
        assert_eq!(redacted(&url), "https://hooks.example");
        let url: reqwest::Url = "http://127.0.0.1:9000/hook".parse().expect("a url");
        assert_eq!(redacted(&url), "http://127.0.0.1:9000");
    }
}
