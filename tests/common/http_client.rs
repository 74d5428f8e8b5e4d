//! A small HTTP client for the API tests, and reading server-sent events.

use std::sync::OnceLock;
use std::time::Duration;

/// A response of the API: status, and the body as JSON (or as a JSON string when it is not).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
}

pub fn http_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A token file's content, trimmed; waits briefly for `up` to have written it.
pub fn read_token(path: &std::path::Path) -> String {
    super::eventually(Duration::from_secs(20), "the api token file", || {
        let t = std::fs::read_to_string(path).ok()?;
        let t = t.trim().to_owned();
        (!t.is_empty()).then_some(t)
    })
}

/// One HTTP request to the API, over a real connection.
pub fn http(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> Reply {
    http_runtime().block_on(async {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = client.request(method, url).timeout(Duration::from_secs(20));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        Reply { status, body, text }
    })
}

/// Reads a server-sent event stream until `want` appears in it (or `within` passes); returns
/// what was read.
pub fn read_sse_until(
    url: &str,
    token: &str,
    within: Duration,
    start: impl FnOnce(),
    want: &str,
) -> String {
    http_runtime().block_on(async {
        let mut resp = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("stream request");
        assert_eq!(resp.status().as_u16(), 200);
        start();
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + within;
        while !seen.contains(want) {
            match tokio::time::timeout_at(deadline, resp.chunk()).await {
                Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                _ => break,
            }
        }
        seen
    })
}

/// A local HTTP receiver of notifications: keeps each request's JSON body; answers the first
/// request 500 (so a retry must follow) and every later one 200.
pub fn receiver() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
    let port = listener.local_addr().expect("its address").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().expect("clone the connection"));
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = if n == 0 {
                "500 Internal Server Error"
            } else {
                kept.lock()
                    .expect("the list")
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                "200 OK"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, got)
}
