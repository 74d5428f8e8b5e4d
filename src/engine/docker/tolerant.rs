//! A container listing that survives states bollard's model does not know.
//!
//! Docker-compatible engines report states of their own (Podman's transient `stopped`,
//! `configured`, `initialized`), and one unknown value makes bollard reject the whole listing,
//! so a pass could not see any container. When the typed listing fails to decode, the same
//! request is made again on the engine's socket and its states are mapped onto Docker's
//! before decoding: `stopped` is `exited`, `configured` and `initialized` are `created`, and
//! anything else unknown is read as `created` too (the next listing will say more).
//!
//! The plain requests on the socket it makes (`get`, `request`) also serve the calls bollard
//! has no form for: the connect's ping and a service's raw inspection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::ContainerSummary;
use serde_json::Value;

/// The states bollard's model knows.
const KNOWN: &[&str] = &[
    "",
    "created",
    "running",
    "paused",
    "restarting",
    "exited",
    "removing",
    "dead",
    "stopping",
];

/// What `DOCKER_HOST` says: `None` when it is unset, `Some(None)` when it names something other
/// than a Unix socket (tcp, ssh), else the socket's path.
pub fn docker_host_socket() -> Option<Option<PathBuf>> {
    std::env::var("DOCKER_HOST")
        .ok()
        .map(|host| host.strip_prefix("unix://").map(PathBuf::from))
}

/// The Unix socket the engine listens on, as `DOCKER_HOST` (or the default) names it.
pub(super) fn socket() -> Option<PathBuf> {
    docker_host_socket().unwrap_or_else(|| Some(PathBuf::from("/var/run/docker.sock")))
}

/// Rewrites each container's unknown `State` to a known one.
pub(super) fn normalise(list: &mut Value) {
    let Some(items) = list.as_array_mut() else {
        return;
    };
    for c in items {
        let Some(state) = c.get_mut("State") else {
            continue;
        };
        let known = state.as_str().is_some_and(|s| KNOWN.contains(&s));
        if !known {
            let mapped = match state.as_str() {
                Some("stopped") => "exited",
                _ => "created",
            };
            *state = Value::String(mapped.into());
        }
    }
}

/// `GET /containers/json?all=true&filters=…` on the socket, decoded after `normalise`.
pub(super) async fn list(
    socket: &Path,
    api_version: &str,
    labels: &[String],
    deadline: Duration,
) -> Result<Vec<ContainerSummary>, String> {
    let filters = serde_json::json!({ "label": labels }).to_string();
    let path = format!(
        "/v{api_version}/containers/json?all=true&filters={}",
        percent_encode(&filters)
    );
    let body = tokio::time::timeout(deadline, get(socket, &path))
        .await
        .map_err(|_| format!("no answer within {}s", deadline.as_secs()))??;
    let mut value: Value =
        serde_json::from_slice(&body).map_err(|e| format!("the listing is not JSON: {e}"))?;
    normalise(&mut value);
    serde_json::from_value(value).map_err(|e| format!("the listing does not decode: {e}"))
}

pub(super) async fn get(socket: &Path, path: &str) -> Result<Vec<u8>, String> {
    let (status, _, body) = request(socket, path).await?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    Ok(body)
}

/// `GET path` on the socket: the answer's status, headers and body, whatever the status.
pub(super) async fn request(
    socket: &Path,
    path: &str,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Vec<u8>), String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, "docker")
        .body(axum::body::Body::empty())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = axum::body::to_bytes(axum::body::Body::new(resp.into_body()), 64 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok((status, headers, bytes.to_vec()))
}

/// Percent-encodes a query value: RFC 3986's unreserved characters stay, every other byte is
/// `%XX` (for the engine's API here, and the controller's API in the CLI).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_own_states_decode_as_dockers() {
        let mut list = serde_json::json!([
            {"Id": "a", "Names": ["/dh_t_server_a"], "State": "stopped", "Labels": {}},
            {"Id": "b", "Names": ["/dh_t_server_b"], "State": "configured", "Labels": {}},
            {"Id": "c", "Names": ["/dh_t_server_c"], "State": "running", "Labels": {}},
            {"Id": "d", "Names": ["/dh_t_server_d"], "State": "some-new-state", "Labels": {}},
        ]);
        assert!(serde_json::from_value::<Vec<ContainerSummary>>(list.clone()).is_err());
        normalise(&mut list);
        let decoded: Vec<ContainerSummary> = serde_json::from_value(list).expect("decodes");
        let states: Vec<String> = decoded
            .iter()
            .map(|c| c.state.map(|s| s.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(states, ["exited", "created", "running", "created"]);
    }

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(percent_encode("{\"a\":[1]}"), "%7B%22a%22%3A%5B1%5D%7D");
    }

    /// The request beside bollard reaches the real engine and decodes its answer.
    #[tokio::test]
    async fn the_tolerant_listing_reads_the_real_engine() {
        let Some(socket) = socket().filter(|s| s.exists()) else {
            assert!(std::env::var_os("CI").is_none(), "no engine socket in CI");
            eprintln!("skipping: no engine socket");
            return;
        };
        let labels = ["dockhand.managed=true".to_owned()];
        let list = list(&socket, "1.41", &labels, Duration::from_secs(10))
            .await
            .expect("lists");
        assert!(list.iter().all(|c| c
            .labels
            .as_ref()
            .is_some_and(|l| l.get("dockhand.managed").map(String::as_str) == Some("true"))));
    }
}
