//! The CLI's client for a remote controller's API (`--server URL --token-file FILE`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde_json::Value;

/// Talk to a controller's API instead of the local state file.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// A controller's API, like http://10.0.0.5:7700; without it the local state file is used.
    #[arg(long, env = "DOCKHAND_SERVER", global = true)]
    pub server: Option<String>,
    /// A file holding the API's bearer token. Without it, a controller on this host is asked
    /// with the token its `up` generated next to the state file (`<state>.token`), if readable.
    #[arg(long, env = "DOCKHAND_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

impl RemoteArgs {
    /// A client for `--server`, or `None` to work on the local state file `state` (beside
    /// which `up` keeps its generated token).
    pub fn client(&self, state: &Path) -> anyhow::Result<Option<Remote>> {
        let Some(server) = &self.server else {
            return Ok(None);
        };
        let token = match &self.token_file {
            Some(path) => Some(super::read_token(path)?),
            // The local token is never sent to another host.
            None if is_loopback(server) => {
                let path = super::default_token_path(state);
                path.exists()
                    .then(|| super::read_token(&path))
                    .transpose()?
            }
            None => None,
        };
        Ok(Some(Remote {
            base: server.trim_end_matches('/').to_owned(),
            token,
            http: crate::tls::client_builder().build()?,
        }))
    }
}

/// Whether a server URL names this host (loopback).
fn is_loopback(server: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(server) else {
        return false;
    };
    match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// An API error as the server gave it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub status: u16,
    pub message: String,
    pub details: Vec<crate::manifest::ManifestError>,
}

#[derive(Clone)]
pub struct Remote {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        req
    }

    /// Sends a request; a non-2xx answer becomes a `RemoteError` (downcast it to see details).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let err: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(RemoteError {
            status,
            message: err["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}: {text}"), str::to_owned),
            details: serde_json::from_value(err["details"].clone()).unwrap_or_default(),
        }
        .into())
    }

    /// Asks for an HTTP upgrade (`Upgrade: tcp`) and returns the raw connection once granted.
    pub async fn upgrade(&self, path: &str) -> anyhow::Result<reqwest::Upgraded> {
        let resp = self
            .request(reqwest::Method::POST, path)
            .header("connection", "upgrade")
            .header("upgrade", "tcp")
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let err: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            anyhow::bail!(
                "{}",
                err["message"]
                    .as_str()
                    .map_or_else(|| format!("HTTP {status}: {text}"), str::to_owned)
            );
        }
        Ok(resp.upgrade().await?)
    }

    /// Writes a streamed answer's body to standard output as it arrives.
    pub async fn copy_to_stdout(&self, mut resp: reqwest::Response) -> anyhow::Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout();
        while let Some(chunk) = resp
            .chunk()
            .await
            .with_context(|| format!("the connection to {} broke", self.base))?
        {
            out.write_all(&chunk)?;
            out.flush()?;
        }
        Ok(())
    }

    /// Reads a streamed answer of JSON lines, calling `each` on every line as it arrives.
    pub async fn json_lines(
        &self,
        mut resp: reqwest::Response,
        mut each: impl FnMut(Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut buf = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .with_context(|| format!("the connection to {} broke", self.base))?
        {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                each(serde_json::from_slice(&line).context("a malformed line from the API")?)?;
            }
        }
        Ok(())
    }

    pub async fn json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .send(reqwest::Method::GET, path, None)
            .await?
            .json()
            .await?)
    }
}

/// The API path of a kind's collection: `/api/v1/servers`.
pub fn kind_path(kind: crate::manifest::Kind) -> String {
    format!("/api/v1/{}s", kind.label())
}

/// The API path of one object: `/api/v1/servers/web`.
pub fn object_path(key: &crate::manifest::ObjectKey) -> String {
    format!("{}/{}", kind_path(key.kind), key.name)
}

/// Whether an error is the API's 404.
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<RemoteError>()
        .is_some_and(|r| r.status == 404)
}

/// Percent-encodes a query value.
pub use crate::engine::docker::percent_encode as encode;

/// A controller's refusal (a 4xx answer) as the verbs report it: its message on stderr and
/// exit 1. Anything else stays an error (exit 2).
pub fn refused(e: anyhow::Error) -> anyhow::Result<std::process::ExitCode> {
    match e.downcast_ref::<RemoteError>() {
        Some(r) if (400..500).contains(&r.status) => {
            eprintln!("error: {}", r.message);
            Ok(std::process::ExitCode::from(1))
        }
        _ => Err(e),
    }
}
