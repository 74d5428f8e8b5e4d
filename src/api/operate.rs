//! The operator's verbs: `POST /api/v1/stop|start|restart` with `{"objects": [...],
//! "selector": "..."}` (neither: every object), and `POST /api/v1/servers/{name}/scale` with
//! `{"replicas": N}`. They store intents and wake the controller, which carries them out.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::json;

use crate::engine::Engine;
use crate::operate::{self, OperateError, Outcome, Selection};

use super::{kind_param, name_param, require, text, Api, ApiError, ApiResult};
use crate::manifest::ObjectKey;
use crate::store::Revision;

impl From<OperateError> for ApiError {
    fn from(e: OperateError) -> Self {
        match e {
            OperateError::NotFound { .. }
            | OperateError::NoMatch { .. }
            | OperateError::NoRevision { .. } => ApiError::NotFound(e.to_string()),
            OperateError::NotApplied { .. } => ApiError::Conflict(e.to_string()),
            OperateError::NoContainer { .. } | OperateError::NotScalable { .. } => {
                ApiError::bad(e.to_string())
            }
            OperateError::Apply(a) => a.into(),
            OperateError::Store(s) => ApiError::Store(s),
        }
    }
}

fn selection(body: &Bytes) -> ApiResult<Selection> {
    let body = text(body)?;
    if body.trim().is_empty() {
        return Ok(Selection::default());
    }
    serde_json::from_str(body).map_err(|e| {
        ApiError::bad(format!(
            "invalid body: {e} (expected {{\"objects\": [\"server/web\"], \"selector\": \"tier=front\"}})"
        ))
    })
}

pub(super) async fn stop<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    body: Bytes,
) -> ApiResult<Json<Outcome>> {
    let out = operate::set_stopped(&api.store, &api.instance, &selection(&body)?, true).await?;
    api.signals.reload();
    Ok(Json(out))
}

pub(super) async fn start<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    body: Bytes,
) -> ApiResult<Json<Outcome>> {
    let out = operate::set_stopped(&api.store, &api.instance, &selection(&body)?, false).await?;
    api.signals.reload();
    Ok(Json(out))
}

pub(super) async fn restart<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    body: Bytes,
) -> ApiResult<Json<Outcome>> {
    let out = operate::restart(&api.store, &api.instance, &selection(&body)?).await?;
    api.signals.reload();
    Ok(Json(out))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scale {
    replicas: u32,
}

pub(super) async fn scale<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let name = name_param(&name)?;
    let Scale { replicas } = serde_json::from_str(text(&body)?)
        .map_err(|e| ApiError::bad(format!("invalid body: {e} (expected {{\"replicas\": 3}})")))?;
    let change = operate::scale(&api.sources, &name, replicas).await?;
    api.signals.reload();
    Ok(Json(
        json!({"server": name, "replicas": replicas, "change": change}),
    ))
}

/// `GET /api/v1/{kind}/{name}/revisions`: every spec the object has had, oldest first.
pub(super) async fn revisions<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Json<Vec<Revision>>> {
    let key = ObjectKey::new(kind_param(&kind)?, name_param(&name)?);
    require(&api, &key).await?;
    Ok(Json(api.store.revisions(&api.instance, &key).await?))
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UndoBody {
    to_revision: Option<i64>,
}

/// `POST /api/v1/{kind}/{name}/undo` with `{"toRevision": N}` (optional).
pub(super) async fn undo<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((kind, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<operate::Undo>> {
    let key = ObjectKey::new(kind_param(&kind)?, name_param(&name)?);
    let body = text(&body)?;
    let UndoBody { to_revision } = if body.trim().is_empty() {
        UndoBody::default()
    } else {
        serde_json::from_str(body).map_err(|e| {
            ApiError::bad(format!(
                "invalid body: {e} (expected {{\"toRevision\": 2}})"
            ))
        })?
    };
    let out = operate::undo(&api.sources, &key, to_revision).await?;
    api.signals.reload();
    Ok(Json(out))
}
