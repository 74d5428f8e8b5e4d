//! The HTTP API that `dockhand up` serves: objects, reports, events, per-client routes, health
//! and metrics, as JSON (Prometheus text for metrics).
//!
//! It reads the state file and writes only the API's own tables (applied objects, reports,
//! client routes), then wakes the controller: the reconcile loop stays the one writer of the
//! engine, so the API can never race a pass.

mod clients;
mod containers;
mod events;
mod objects;
mod operate;
mod status;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::controller::Signals;
use crate::engine::{Attach, Engine, EngineError};
use crate::manifest::parse::MAX_MANIFEST_BYTES;
use crate::manifest::replicas::check_object_name;
use crate::manifest::{Kind, ManifestError, ObjectKey};
use crate::reconcile::Reconciler;
use crate::source::applied::ApplyError;
use crate::source::Sources;
use crate::store::{Store, StoreError};

use clients::{delete_client, get_client, list_clients, put_client};
use containers::{attach, exec, logs, resize};
use events::events;
use objects::{delete, list, patch_report, put, read};
use status::{metrics, plan, readyz};

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
    #[error("missing or wrong webhook signature")]
    BadSignature,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    TooLarge(String),
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
            ApiError::BadSignature => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Store(StoreError::ReportTooLarge { .. }) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
            }
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

/// What the handlers share.
pub struct Api<R> {
    pub store: Store,
    pub sources: Sources,
    pub instance: String,
    pub signals: Signals,
    /// Set once the engine is reachable: metrics, logs, exec and the plan go through it.
    pub reconciler: Arc<OnceLock<Arc<Reconciler<R>>>>,
    /// Every endpoint but `/healthz` and the git webhook requires `Authorization: Bearer
    /// <token>` when set.
    pub token: Option<String>,
    /// The git webhook (`up --git … --git-webhook-secret-file`), verified by its signature.
    pub git_hook: Option<crate::source::git::Webhook>,
}

/// The API's routes.
pub fn router<R: Engine + Attach + Clone>(api: Arc<Api<R>>) -> Router {
    Router::new()
        .route("/readyz", get(readyz::<R>))
        .route("/metrics", get(metrics::<R>))
        .route("/api/v1/events", get(events::<R>))
        .route("/api/v1/plan", get(plan::<R>).post(status::plan_with::<R>))
        .route("/api/v1/{kind}/{name}/logs", get(logs::<R>))
        .route("/api/v1/{kind}/{name}/exec", axum::routing::post(exec::<R>))
        .route(
            "/api/v1/{kind}/{name}/attach",
            axum::routing::post(attach::<R>),
        )
        .route(
            "/api/v1/{kind}/{name}/attach/resize",
            axum::routing::post(resize::<R>),
        )
        .route(
            "/api/v1/servers/{name}/report",
            axum::routing::patch(patch_report::<R>),
        )
        .route(
            "/api/v1/{kind}/{name}/revisions",
            get(operate::revisions::<R>),
        )
        .route(
            "/api/v1/{kind}/{name}/undo",
            axum::routing::post(operate::undo::<R>),
        )
        .route("/api/v1/nodes", get(status::nodes::<R>))
        .route("/api/v1/prune", axum::routing::post(objects::prune::<R>))
        .route("/api/v1/stop", axum::routing::post(operate::stop::<R>))
        .route("/api/v1/start", axum::routing::post(operate::start::<R>))
        .route(
            "/api/v1/restart",
            axum::routing::post(operate::restart::<R>),
        )
        .route(
            "/api/v1/servers/{name}/scale",
            axum::routing::post(operate::scale::<R>),
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
        // Layers run last-added first: the token is checked before any body is read.
        .route_layer(axum::middleware::from_fn(read_body_in_time))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), auth::<R>))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        // Signed by the git host, which cannot send the bearer token.
        .route(
            "/api/v1/hooks/git",
            axum::routing::post(git_hook::<R>).layer(axum::middleware::from_fn(read_body_in_time)),
        )
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MANIFEST_BYTES))
        .with_state(api)
}

/// The most streams (`follow` of events or logs) served at once; each holds a connection.
pub const MAX_FOLLOWERS: usize = 16;

static FOLLOWERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_FOLLOWERS);

/// A place among the followers, held as long as the stream runs; refused when all are taken.
fn follower() -> ApiResult<tokio::sync::SemaphorePermit<'static>> {
    FOLLOWERS.try_acquire().map_err(|_| {
        ApiError::Unavailable(format!(
            "{MAX_FOLLOWERS} streams are followed already; try again later"
        ))
    })
}

/// The most connections the API serves at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client may take to send a request's headers (also the idle time allowed between
/// requests on a kept-alive connection).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves the API on `listener` until `shutdown` resolves. Bounded so that clients can never
/// starve the controller of descriptors or time: at most `MAX_CONNECTIONS` at once, headers
/// within `HEADER_TIMEOUT`, bodies of at most one manifest's size.
pub async fn serve<R: Engine + Attach + Clone>(
    listener: tokio::net::TcpListener,
    api: Arc<Api<R>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(api);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => return Ok(()),
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait a little instead of spinning.
                    tracing::warn!("api: cannot accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(64 * 1024);
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = http.serve_connection(io, service).with_upgrades().await;
        });
    }
}

/// A push announced by the git host: verified, then the fetch loop runs at once.
async fn git_hook<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let Some(hook) = &api.git_hook else {
        return Err(ApiError::NotFound(
            "no git webhook: start up with --git and --git-webhook-secret-file".into(),
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if !crate::source::git::verified(&hook.secret, header, &body) {
        return Err(ApiError::BadSignature);
    }
    if !hook.first_time(header, &body) {
        return Ok((StatusCode::OK, Json(json!({"status": "already seen"}))).into_response());
    }
    hook.kick.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "fetching"}))).into_response())
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
        if !given.is_some_and(|g| crate::store::constant_time_eq(g.as_bytes(), token.as_bytes())) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(req).await
}

/// How long a client may take to send a request's body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the whole body (at most one manifest's size) within `BODY_TIMEOUT`, so a client that
/// drips its body cannot hold a connection and a handler for long.
async fn read_body_in_time(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, MAX_MANIFEST_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, bytes.into())).await,
        Ok(Err(_)) => ApiError::TooLarge(format!(
            "a request body holds at most {MAX_MANIFEST_BYTES} bytes"
        ))
        .into_response(),
        Err(_) => ApiError::bad(format!(
            "the request body did not arrive within {}s",
            BODY_TIMEOUT.as_secs()
        ))
        .into_response(),
    }
}

fn kind_param(s: &str) -> ApiResult<Kind> {
    Kind::parse_or_err(s).map_err(|e| ApiError::NotFound(e.to_string()))
}

/// An object's name, or a replica's (`web.2`).
fn name_param(s: &str) -> ApiResult<String> {
    check_object_name(s).map_err(ApiError::bad)?;
    Ok(s.to_owned())
}

fn text(body: &Bytes) -> ApiResult<&str> {
    std::str::from_utf8(body).map_err(|e| ApiError::bad(format!("the body is not UTF-8: {e}")))
}

/// The reconciler, once the engine is reachable.
fn reconciler<R: Engine>(api: &Api<R>) -> ApiResult<&Reconciler<R>> {
    api.reconciler
        .get()
        .map(|r| r.as_ref())
        .ok_or_else(|| ApiError::Unavailable("the engine is not reachable yet".into()))
}

/// An object the store holds, or 404.
async fn require<R: Engine>(api: &Api<R>, key: &ObjectKey) -> ApiResult<()> {
    if api.store.has_object(&api.instance, key).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("{key} not found")))
    }
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
