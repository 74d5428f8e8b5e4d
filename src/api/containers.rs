//! People's access to an object's container: logs, exec and attach.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::engine::{serving_container, Attach, Engine, Output};
use crate::manifest::{Kind, ObjectKey};

use super::{kind_param, name_param, reconciler, require, Api, ApiError, ApiResult};

/// The engine and the id of the container serving a server or database the store holds.
pub(super) async fn container<'a, R: Engine>(
    api: &'a Api<R>,
    kind: &str,
    name: &str,
) -> ApiResult<(&'a R, String)> {
    let key = ObjectKey::new(kind_param(kind)?, name_param(name)?);
    if !matches!(key.kind, Kind::Server | Kind::Database) {
        return Err(ApiError::bad(format!(
            "{key} has no container: expected a server or a database"
        )));
    }
    require(api, &key).await?;
    let rt = reconciler(api)?.engine();
    serving_container(rt, &api.instance, &key)
        .await?
        .map(|c| (rt, c.id))
        .ok_or_else(|| ApiError::NotFound(format!("{key} has no container yet")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<u64>,
    /// Only output from this time on: seconds since the epoch.
    since: Option<i64>,
}

/// A container's output as plain text (stdout and stderr interleaved, as `kubectl logs`).
pub(super) async fn logs<R: Engine + Attach>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let (rt, id) = container(&api, &kind, &name).await?;
    let place = if q.follow {
        Some(super::follower()?)
    } else {
        None
    };
    let body = rt.logs(&id, q.follow, q.tail, q.since).map(move |chunk| {
        let _held = &place;
        Ok::<_, std::convert::Infallible>(match chunk {
            Ok(Output::Stdout(b) | Output::Stderr(b)) => Bytes::from(b),
            Err(e) => Bytes::from(format!("\ndockhand: {e}\n")),
        })
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecRequest {
    command: Vec<String>,
    /// Standard input for the command, base64-encoded; without it the command reads nothing.
    stdin: Option<String>,
}

/// Runs a command in a container and streams its output as JSON lines: `{"stdout": B64}`,
/// `{"stderr": B64}`, then `{"exitCode": N}` (or `{"error": TEXT}`).
pub(super) async fn exec<R: Engine + Attach + Clone>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let req: ExecRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "invalid body: {e}: expected {{\"command\": [PROGRAM, ARG...], \"stdin\": BASE64}}"
        ))
    })?;
    if req.command.is_empty() {
        return Err(ApiError::bad(
            "command: expected a program and its arguments",
        ));
    }
    let stdin = req
        .stdin
        .map(|s| b64.decode(s))
        .transpose()
        .map_err(|e| ApiError::bad(format!("stdin: not base64: {e}")))?;
    let (rt, id) = container(&api, &kind, &name).await?;
    let rt = rt.clone();
    let session = rt.exec(&id, req.command, false, stdin.is_some()).await?;
    if let Some(input) = stdin {
        let mut sink = session.input;
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = sink.write_all(&input).await;
            let _ = sink.shutdown().await;
        });
    }
    let line = |v: serde_json::Value| Bytes::from(format!("{v}\n"));
    let frames = session.output.map(move |chunk| match chunk {
        Ok(Output::Stdout(b)) => line(json!({"stdout": b64.encode(b)})),
        Ok(Output::Stderr(b)) => line(json!({"stderr": b64.encode(b)})),
        Err(e) => line(json!({"error": e.to_string()})),
    });
    let id = session.id;
    let last = futures_util::stream::once(async move {
        line(match rt.exec_exit_code(&id).await {
            Ok(code) => json!({"exitCode": code.unwrap_or(0)}),
            Err(e) => json!({"error": e.to_string()}),
        })
    });
    let body = frames.chain(last).map(Ok::<_, std::convert::Infallible>);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AttachQuery {
    #[serde(default = "default_detach_keys")]
    detach_keys: String,
    #[serde(default = "yes")]
    stdin: bool,
}

fn default_detach_keys() -> String {
    "ctrl-p,ctrl-q".into()
}

fn yes() -> bool {
    true
}

/// Attaches to a container's main process over an HTTP upgrade (`Connection: Upgrade`,
/// `Upgrade: tcp`): after `101 Switching Protocols` the connection carries the process's
/// terminal both ways, raw, until it exits or the detach keys arrive.
pub(super) async fn attach<R: Engine + Attach + Clone>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
    query: Result<Query<AttachQuery>, axum::extract::rejection::QueryRejection>,
    mut req: axum::extract::Request,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !wants_upgrade {
        return Err(ApiError::bad(
            "attach is an HTTP upgrade: send Connection: Upgrade and Upgrade: tcp",
        ));
    }
    let (rt, id) = container(&api, &kind, &name).await?;
    let place = super::follower()?;
    let session = rt.attach(&id, q.stdin, &q.detach_keys).await?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let _held = place;
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let (mut from_client, mut to_client) =
            tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
        let mut input = session.input;
        let pump_in = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_client, &mut input).await;
        });
        let mut output = session.output;
        use tokio::io::AsyncWriteExt;
        while let Some(Ok(Output::Stdout(b) | Output::Stderr(b))) = output.next().await {
            if to_client.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = to_client.shutdown().await;
        pump_in.abort();
    });
    Response::builder()
        .status(axum::http::StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "tcp")
        .body(axum::body::Body::empty())
        .map_err(|e| ApiError::bad(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResizeQuery {
    w: u16,
    h: u16,
}

/// Tells the engine the size of an attached client's terminal.
pub(super) async fn resize<R: Engine + Attach + Clone>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
    query: Result<Query<ResizeQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let (rt, id) = container(&api, &kind, &name).await?;
    rt.resize(&id, q.w, q.h).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
