//! The HTTP API that `dockhand up` serves: objects, reports, events, per-client routes, health
//! and metrics, as JSON (Prometheus text for metrics).
//!
//! It reads the state file and writes only the API's own tables (applied objects, reports,
//! client routes), then wakes the controller: the reconcile loop stays the one writer of the
//! engine, so the API can never race a pass.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::controller::Signals;
use crate::engine::{Attach, Engine, EngineError, Output};
use crate::manifest::replicas::check_object_name;
use crate::manifest::{Kind, ManifestError, ObjectKey};
use crate::reconcile::Reconciler;
use crate::source::applied::{self as apply, kind_of, ApplyError};
use crate::source::Sources;
use crate::store::{ClientRoute, Store, StoreError};
use crate::view::{self, Selector};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        details: Vec<ManifestError>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Invalid { errors } => ApiError::BadRequest {
                message: ApplyError::Invalid {
                    errors: errors.clone(),
                }
                .to_string(),
                details: errors,
            },
            ApplyError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            ApplyError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            ApplyError::Store(s) => ApiError::Store(s),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Engine(e) if e.is_unavailable() => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            ApiError::Engine(_) => (StatusCode::BAD_GATEWAY, "engine"),
        };
        let details = match &self {
            ApiError::BadRequest { details, .. } => json!(details),
            _ => json!([]),
        };
        let body = Json(json!({"error": error, "message": self.to_string(), "details": details}));
        let mut resp = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Container stats requests in flight during one scrape.
const STATS_AT_ONCE: usize = 256;

/// What the handlers share.
pub struct Api<R> {
    pub store: Store,
    pub sources: Sources,
    pub instance: String,
    pub signals: Signals,
    /// Set once the engine is reachable: metrics, logs, exec and the plan go through it.
    pub reconciler: Arc<OnceLock<Arc<Reconciler<R>>>>,
    /// Every endpoint but `/healthz` requires `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
}

/// The API's routes.
pub fn router<R: Engine + Attach + Clone>(api: Arc<Api<R>>) -> Router {
    Router::new()
        .route("/readyz", get(readyz::<R>))
        .route("/metrics", get(metrics::<R>))
        .route("/api/v1/events", get(events::<R>))
        .route("/api/v1/plan", get(plan::<R>))
        .route("/api/v1/{kind}/{name}/logs", get(logs::<R>))
        .route("/api/v1/{kind}/{name}/exec", axum::routing::post(exec::<R>))
        .route(
            "/api/v1/servers/{name}/report",
            axum::routing::patch(patch_report::<R>),
        )
        .route("/api/v1/routes/{name}/clients", get(list_clients::<R>))
        .route(
            "/api/v1/routes/{name}/clients/{ip}",
            get(get_client::<R>)
                .put(put_client::<R>)
                .delete(delete_client::<R>),
        )
        .route("/api/v1/{kind}", get(list::<R>))
        .route(
            "/api/v1/{kind}/{name}",
            get(read::<R>).put(put::<R>).delete(delete::<R>),
        )
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), auth::<R>))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(api)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve<R: Engine + Attach + Clone>(
    listener: tokio::net::TcpListener,
    api: Arc<Api<R>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether an address may be served without a token: loopback only.
pub fn needs_token(addr: &SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

async fn auth<R: Engine>(State(api): State<Arc<Api<R>>>, req: Request, next: Next) -> Response {
    if let Some(token) = &api.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// Compares without an early exit, so timing does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn readyz<R: Engine>(State(api): State<Arc<Api<R>>>) -> ApiResult<Json<serde_json::Value>> {
    if api.signals.is_ready() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable(
            "not ready: the engine is unreachable or the first pass has not finished".into(),
        ))
    }
}

async fn metrics<R: Engine>(State(api): State<Arc<Api<R>>>) -> Response {
    let mut containers = Vec::new();
    let routes = api
        .reconciler
        .get()
        .and_then(|r| r.proxy())
        .map(|p| p.states())
        .unwrap_or_default();
    if let Some(rt) = api.reconciler.get().map(|r| r.engine()) {
        if let Ok(list) = rt.list(&api.instance).await {
            let running = list
                .into_iter()
                .filter(|c| c.state == crate::engine::State::Running)
                .filter_map(|c| Some((c.key?, c.id)));
            containers = futures_util::stream::iter(running)
                .map(|(key, id)| async move {
                    let stats = rt.stats(&id).await.ok().flatten()?;
                    Some((key.kind.label().to_owned(), key.name, stats))
                })
                // The engine samples every container once a second and answers every request
                // waiting for a sample at that tick: asking all at once keeps a scrape ~1 s.
                .buffer_unordered(STATS_AT_ONCE)
                .filter_map(|x| async move { x })
                .collect()
                .await;
            containers.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.signals.metrics.render(&containers, &routes),
    )
        .into_response()
}

fn kind_param(s: &str) -> ApiResult<Kind> {
    kind_of(s).ok_or_else(|| {
        ApiError::NotFound(format!(
            "unknown kind {s:?}: expected servers, databases, networks or routes"
        ))
    })
}

/// An object's name, or a replica's (`web.2`).
fn name_param(s: &str) -> ApiResult<String> {
    check_object_name(s).map_err(ApiError::bad)?;
    Ok(s.to_owned())
}

async fn list<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path(kind): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<view::Item>>> {
    let kind = kind_param(&kind)?;
    let mut selector = match params.get("labelSelector") {
        Some(s) => Selector::parse(s).map_err(|e| ApiError::bad(e.to_string()))?,
        None => Selector::default(),
    };
    selector = selector.and_equals(
        params
            .iter()
            .filter(|(k, _)| k.starts_with("report."))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for k in params.keys() {
        if !(k == "labelSelector" || k == "phase" || k.starts_with("report.")) {
            return Err(ApiError::bad(format!(
                "unknown query parameter {k:?}: expected labelSelector, phase or report.FIELD"
            )));
        }
    }
    let q = view::Query {
        kind: Some(kind),
        selector,
        phase: params.get("phase").cloned(),
        ..view::Query::default()
    };
    Ok(Json(view::items(&api.store, &api.instance, &q).await?))
}

async fn read<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Json<view::Item>> {
    let key = ObjectKey::new(kind_param(&kind)?, name_param(&name)?);
    let q = view::Query {
        kind: Some(key.kind),
        name: Some(key.name.clone()),
        ..view::Query::default()
    };
    view::items(&api.store, &api.instance, &q)
        .await?
        .into_iter()
        .next()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("{key} not found")))
}

fn text(body: &Bytes) -> ApiResult<&str> {
    std::str::from_utf8(body).map_err(|e| ApiError::bad(format!("the body is not UTF-8: {e}")))
}

async fn put<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let key = ObjectKey::new(kind_param(&kind)?, name_param(&name)?);
    let objects = apply::parse(text(&body)?, "body", None)?;
    let [object] = <[_; 1]>::try_from(objects).map_err(|v: Vec<_>| {
        ApiError::bad(format!(
            "the body holds {} objects: expected exactly {key}",
            v.len()
        ))
    })?;
    if object.key() != key {
        return Err(ApiError::BadRequest {
            message: format!(
                "the body defines {}, but the path names {key}",
                object.key()
            ),
            details: vec![ManifestError {
                file: "body".into(),
                line: object.line,
                column: 0,
                field: "metadata.name".into(),
                message: format!("expected {key}"),
            }],
        });
    }
    let changes = apply::apply(&api.sources, vec![object]).await?;
    let change = changes
        .into_iter()
        .next()
        .map_or(apply::Change::Unchanged, |c| c.1);
    if change != apply::Change::Unchanged {
        api.signals.reload();
    }
    let status = if change == apply::Change::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({"kind": key.kind, "name": key.name, "result": change})),
    )
        .into_response())
}

async fn delete<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let key = ObjectKey::new(kind_param(&kind)?, name_param(&name)?);
    apply::delete(&api.sources, &key).await?;
    api.signals.reload();
    Ok(Json(
        json!({"kind": key.kind, "name": key.name, "result": "deleted"}),
    ))
}

async fn patch_report<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let key = ObjectKey::new(Kind::Server, name_param(&name)?);
    let patch: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad(
            "the report must be a JSON object, like {\"players\": 4}",
        ));
    }
    require(&api, &key).await?;
    let report = api.store.patch_report(&api.instance, &key, &patch).await?;
    Ok(Json(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    follow: bool,
    kind: Option<String>,
    name: Option<String>,
    /// Only events after this id.
    after: Option<i64>,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn events<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let key = match (&q.kind, &q.name) {
        (Some(k), Some(n)) => Some(ObjectKey::new(kind_param(k)?, name_param(n)?)),
        (None, None) => None,
        _ => return Err(ApiError::bad("kind and name go together")),
    };
    let backlog = api
        .store
        .events(
            &api.instance,
            key.as_ref(),
            q.after,
            q.limit.clamp(0, 10_000),
        )
        .await?;
    if !q.follow {
        return Ok(Json(backlog).into_response());
    }
    let mut last = backlog.last().map_or(q.after.unwrap_or(0), |e| e.id);
    if backlog.is_empty() && q.after.is_none() {
        // Start at the end of the log: only new events.
        last = api
            .store
            .events(&api.instance, key.as_ref(), None, 1)
            .await?
            .last()
            .map_or(0, |e| e.id);
    }
    let stream = async_stream(api.clone(), key, last, backlog);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The backlog, then every new event as it is appended.
fn async_stream<R: Engine>(
    api: Arc<Api<R>>,
    key: Option<ObjectKey>,
    last: i64,
    backlog: Vec<crate::store::Event>,
) -> impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    let to_sse = |e: &crate::store::Event| {
        SseEvent::default()
            .id(e.id.to_string())
            .event("event")
            .json_data(e)
            .unwrap_or_default()
    };
    let first = futures_util::stream::iter(backlog.iter().map(to_sse).map(Ok).collect::<Vec<_>>());
    let rest =
        futures_util::stream::unfold((api, key, last), move |(api, key, mut last)| async move {
            loop {
                // Appends in this process wake us at once; others are seen within the timeout.
                api.store.events_appended(Duration::from_secs(1)).await;
                let Ok(new) = api
                    .store
                    .events(&api.instance, key.as_ref(), Some(last), 1000)
                    .await
                else {
                    continue;
                };
                if let Some(e) = new.last() {
                    last = e.id;
                    let items: Vec<_> = new.iter().map(to_sse).map(Ok).collect();
                    return Some((futures_util::stream::iter(items), (api, key, last)));
                }
            }
        })
        .flatten();
    first.chain(rest)
}

/// The reconciler, once the engine is reachable.
fn reconciler<R: Engine>(api: &Api<R>) -> ApiResult<&Reconciler<R>> {
    api.reconciler
        .get()
        .map(|r| r.as_ref())
        .ok_or_else(|| ApiError::Unavailable("the engine is not reachable yet".into()))
}

/// What a sync would do now: the controller's own dry run against the engine.
async fn plan<R: Engine>(State(api): State<Arc<Api<R>>>) -> ApiResult<Json<view::PlanView>> {
    let rec = reconciler(&api)?;
    let snapshot = api.sources.load().await?;
    let report = rec.dry_run(&snapshot).await.map_err(|e| match e {
        crate::reconcile::ReconcileError::Store(e) => ApiError::Store(e),
        crate::reconcile::ReconcileError::Engine(e) => ApiError::Engine(e),
    })?;
    Ok(Json(view::PlanView::new(&report)))
}

/// The engine and the id of the container serving a server or database the store holds.
async fn container<'a, R: Engine>(
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
    let canonical = crate::engine::labels::container_name(&api.instance, key.kind, &key.name);
    let mine: Vec<_> = rt
        .list(&api.instance)
        .await?
        .into_iter()
        .filter(|c| c.key.as_ref() == Some(&key))
        .collect();
    // During a start-first update two containers serve the object: prefer the named one.
    mine.iter()
        .find(|c| c.name == canonical)
        .or(mine.first())
        .map(|c| (rt, c.id.clone()))
        .ok_or_else(|| ApiError::NotFound(format!("{key} has no container yet")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    #[serde(default)]
    follow: bool,
    tail: Option<u64>,
}

/// A container's output as plain text (stdout and stderr interleaved, as `kubectl logs`).
async fn logs<R: Engine + Attach>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::bad(e.body_text()))?;
    let (rt, id) = container(&api, &kind, &name).await?;
    let body = rt.logs(&id, q.follow, q.tail).map(|chunk| {
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
struct ExecRequest {
    command: Vec<String>,
    /// Standard input for the command, base64-encoded; without it the command reads nothing.
    stdin: Option<String>,
}

/// Runs a command in a container and streams its output as JSON lines: `{"stdout": B64}`,
/// `{"stderr": B64}`, then `{"exitCode": N}` (or `{"error": TEXT}`).
async fn exec<R: Engine + Attach + Clone>(
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

/// An object the store holds, or 404.
async fn require<R: Engine>(api: &Api<R>, key: &ObjectKey) -> ApiResult<()> {
    if api.store.has_object(&api.instance, key).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("{key} not found")))
    }
}

/// A route that exists, or 404.
async fn route_exists<R: Engine>(api: &Api<R>, name: &str) -> ApiResult<()> {
    require(api, &ObjectKey::new(Kind::Route, name_param(name)?)).await
}

fn client_param(ip: &str) -> ApiResult<Ipv4Addr> {
    ClientRoute::parse_client(ip).map_err(ApiError::bad)
}

async fn list_clients<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ClientRoute>>> {
    route_exists(&api, &name).await?;
    let mut all = api.store.route_clients(&api.instance).await?;
    Ok(Json(all.remove(&name).unwrap_or_default()))
}

async fn get_client<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((name, ip)): Path<(String, String)>,
) -> ApiResult<Json<ClientRoute>> {
    route_exists(&api, &name).await?;
    let client = client_param(&ip)?;
    api.store
        .route_clients(&api.instance)
        .await?
        .remove(&name)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.client == client)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("route/{name} has no route for client {client}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientTarget {
    server: String,
    port: u16,
}

async fn put_client<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((name, ip)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ClientRoute>> {
    route_exists(&api, &name).await?;
    let target: ClientTarget = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "invalid body: {e}: expected {{\"server\": NAME, \"port\": PORT}}"
        ))
    })?;
    let route = ClientRoute::new(&ip, &target.server, target.port).map_err(ApiError::bad)?;
    api.store
        .set_route_client(&api.instance, &name, &route)
        .await?;
    api.signals.poke();
    Ok(Json(route))
}

async fn delete_client<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((name, ip)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    route_exists(&api, &name).await?;
    let client = client_param(&ip)?;
    if !api
        .store
        .delete_route_client(&api.instance, &name, client)
        .await?
    {
        return Err(ApiError::NotFound(format!(
            "route/{name} has no route for client {client}"
        )));
    }
    api.signals.poke();
    Ok(Json(
        json!({"route": name, "client": client, "result": "deleted"}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_served_without_a_token() {
        for (addr, needs) in [
            ("127.0.0.1:7700", false),
            ("[::1]:7700", false),
            ("0.0.0.0:7700", true),
            ("10.1.2.3:7700", true),
        ] {
            let a: SocketAddr = addr.parse().expect("addr");
            assert_eq!(needs_token(&a), needs, "{addr}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn errors_carry_their_status_and_details() {
        let e = ApiError::from(ApplyError::Invalid {
            errors: vec![ManifestError {
                file: "body".into(),
                line: 3,
                column: 5,
                field: "spec.image".into(),
                message: "missing".into(),
            }],
        });
        assert_eq!(e.to_string(), "body:3:5: spec.image: missing");
        assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
        let e = ApiError::from(ApplyError::Conflict {
            key: ObjectKey::new(Kind::Server, "web"),
            by: "file web.yaml".into(),
        });
        assert_eq!(e.into_response().status(), StatusCode::CONFLICT);
        assert_eq!(
            ApiError::Unauthorized.into_response().status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
