//! What the engine is, from one `GET /_ping`: its API version, its swarm role and whether it is
//! Podman, all in headers the engine sends without doing any work (well under a millisecond),
//! where `/version` and `/info` take 7-15 ms each, and every CLI verb waited for them before
//! its first real call. Engines too old to send a header are asked the old way.

use std::path::Path;
use std::time::Duration;

use bollard::ClientVersion;
use hyper::HeaderMap;

/// What one ping told.
#[derive(Debug, PartialEq)]
pub(super) struct Ping {
    pub api_version: ClientVersion,
    /// Whether the engine manages a swarm; `None` when its ping did not say (Docker before
    /// 23), which `ping` then answers from `GET /swarm`.
    pub manager: Option<bool>,
    /// Podman's Docker API names its own API version beside Docker's.
    pub podman: bool,
}

/// Pings the engine on its socket; `None` when it does not answer or says too little. An
/// engine whose ping does not name its swarm state (Docker before 23) is asked `GET /swarm`,
/// which only an active manager answers with 200 (the `ControlAvailable` of `/info`).
pub(super) async fn ping(socket: &Path, deadline: Duration) -> Option<Ping> {
    let asked = async {
        tokio::join!(
            super::tolerant::request(socket, "/_ping"),
            super::tolerant::request(socket, "/swarm")
        )
    };
    let (ping, swarm) = tokio::time::timeout(deadline, asked).await.ok()?;
    let (status, headers, _) = ping.ok()?;
    let mut p = parse(&headers).filter(|_| status.is_success())?;
    if p.manager.is_none() {
        p.manager = Some(swarm.ok()?.0 == hyper::StatusCode::OK);
    }
    Some(p)
}

fn parse(headers: &HeaderMap) -> Option<Ping> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (major, minor) = header("api-version")?.trim().split_once('.')?;
    let api_version = ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    };
    // "inactive", "pending", "active/worker", "active/manager", "locked", "error".
    let manager = header("swarm").map(|s| s.trim() == "active/manager");
    Some(Ping {
        api_version,
        manager,
        podman: header("libpod-api-version").is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, hyper::header::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_docker_managers_ping_says_its_version_and_role() {
        let p = parse(&headers(&[
            ("Api-Version", "1.41"),
            ("Swarm", "active/manager"),
        ]));
        assert_eq!(
            p,
            Some(Ping {
                api_version: ClientVersion {
                    major_version: 1,
                    minor_version: 41
                },
                manager: Some(true),
                podman: false,
            })
        );
        let worker = parse(&headers(&[
            ("Api-Version", "1.41"),
            ("Swarm", "active/worker"),
        ]));
        assert_eq!(worker.and_then(|p| p.manager), Some(false));
    }

    #[test]
    fn podman_is_known_by_its_libpod_header_and_old_engines_by_their_silence() {
        let p = parse(&headers(&[
            ("Api-Version", "1.41"),
            ("Libpod-Api-Version", "4.3.1"),
        ]))
        .expect("parses");
        assert!(p.podman);
        assert_eq!(p.manager, None);
        assert_eq!(parse(&headers(&[("Swarm", "inactive")])), None);
        assert_eq!(parse(&headers(&[("Api-Version", "x")])), None);
    }

    /// The engine on this machine answers a ping with what `connect` needs.
    #[tokio::test]
    async fn the_real_engine_says_its_api_version_in_a_ping() {
        let Some(socket) = super::super::tolerant::socket().filter(|s| s.exists()) else {
            assert!(std::env::var_os("CI").is_none(), "no engine socket in CI");
            eprintln!("skipping: no engine socket");
            return;
        };
        let p = ping(&socket, Duration::from_secs(10)).await.expect("pings");
        assert_eq!(p.api_version.major_version, 1);
        assert!(!p.podman);
        // The engine's own answer, the slow way.
        let info = bollard::Docker::connect_with_defaults()
            .expect("connects")
            .negotiate_version()
            .await
            .expect("negotiates")
            .info()
            .await
            .expect("info");
        let manager = info.swarm.and_then(|s| s.control_available) == Some(true);
        assert_eq!(p.manager, Some(manager));
    }
}
