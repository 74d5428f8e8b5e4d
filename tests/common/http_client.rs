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
        dockhand::tls::install_provider();
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
        dockhand::tls::install_provider();
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

/// What notification receivers kept: each request's JSON body.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// A local HTTP receiver of notifications: keeps each request's JSON body; answers the first
/// request 500 (so a retry must follow) and every later one 200.
pub fn receiver() -> (u16, Received) {
    serve_notifications(|conn| Some(Box::new(conn) as Box<dyn ReadWrite>))
}

/// The same over HTTPS (rustls on ring, as dockhand's client), with a certificate for
/// 127.0.0.1 made in `dir` by the openssl CLI; returns the port, what it received, and the CA
/// certificate to trust (`SSL_CERT_FILE`).
#[allow(deprecated)]
pub fn tls_receiver(dir: &std::path::Path) -> (u16, Received, std::path::PathBuf) {
    use rustls::pki_types::pem::PemObject;
    let ca = dir.join("receiver-ca.pem");
    let cert = dir.join("receiver-cert.pem");
    let key = dir.join("receiver-key.pem");
    let ext = dir.join("receiver-ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write the extensions");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A CA the test trusts, and a certificate for 127.0.0.1 it signs.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=dockhand test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        "receiver-ca.key",
        "-out",
        "receiver-ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "receiver-key.pem",
        "-out",
        "receiver.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "receiver.csr",
        "-CA",
        "receiver-ca.pem",
        "-CAkey",
        "receiver-ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "receiver-ext.cnf",
        "-out",
        "receiver-cert.pem",
    ]);
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(&cert)
        .expect("read the certificate")
        .collect::<Result<_, _>>()
        .expect("a certificate");
    let private = rustls::pki_types::PrivateKeyDer::from_pem_file(&key).expect("the key");
    let config = std::sync::Arc::new(
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .expect("a server configuration"),
    );
    let (port, got) = serve_notifications(move |tcp| {
        let conn = rustls::ServerConnection::new(config.clone()).ok()?;
        Some(Box::new(rustls::StreamOwned::new(conn, tcp)) as Box<dyn ReadWrite>)
    });
    (port, got, ca)
}

/// A connection to read a request from and answer on.
pub trait ReadWrite: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> ReadWrite for T {}

fn serve_notifications(
    wrap: impl Fn(std::net::TcpStream) -> Option<Box<dyn ReadWrite>> + Send + 'static,
) -> (u16, Received) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
    let port = listener.local_addr().expect("its address").port();
    let got = Received::default();
    let kept = got.clone();
    std::thread::spawn(move || {
        let mut answered = 0;
        for conn in listener.incoming() {
            let Some(conn) = conn.ok().and_then(&wrap) else {
                continue;
            };
            let mut reader = BufReader::new(conn);
            let mut length = 0usize;
            let mut read_any = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                read_any = true;
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if !read_any || reader.read_exact(&mut body).is_err() {
                continue;
            }
            let status = if answered == 0 {
                "500 Internal Server Error"
            } else {
                kept.lock()
                    .expect("the list")
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                "200 OK"
            };
            answered += 1;
            let mut conn = reader.into_inner();
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = conn.flush();
        }
    });
    (port, got)
}
