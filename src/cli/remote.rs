//! The CLI's client for a remote controller's API (`--server URL --token-file FILE`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

/// Talk to a controller's API instead of the local state file.
#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// A controller's API, like http://10.0.0.5:7700; without it the local state file is used.
    #[arg(long, env = "DOCKHAND_SERVER")]
    pub server: Option<String>,
    /// A file holding the API's bearer token.
    #[arg(long, env = "DOCKHAND_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

impl RemoteArgs {
    pub fn client(&self) -> anyhow::Result<Option<Remote>> {
        let Some(server) = &self.server else {
            return Ok(None);
        };
        let token = self
            .token_file
            .as_deref()
            .map(super::up::read_token)
            .transpose()?;
        Ok(Some(Remote {
            base: server.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }))
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

    pub async fn json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .send(reqwest::Method::GET, path, None)
            .await?
            .json()
            .await?)
    }
}

/// Whether an error is the API's 404.
pub fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<RemoteError>()
        .is_some_and(|r| r.status == 404)
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
