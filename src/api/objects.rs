//! Objects: list with selectors, get, apply (PUT), delete, and the report PATCH.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::engine::Engine;
use crate::manifest::{Kind, ManifestError, ObjectKey};
use crate::source::applied::{self as apply};
use crate::store::MAX_REPORT_BYTES;
use crate::view::{self, Selector};

use super::{kind_param, name_param, require, text, Api, ApiError, ApiResult};

pub(super) async fn list<R: Engine>(
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

pub(super) async fn read<R: Engine>(
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

pub(super) async fn put<R: Engine>(
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

pub(super) async fn delete<R: Engine>(
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

pub(super) async fn patch_report<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let key = ObjectKey::new(Kind::Server, name_param(&name)?);
    if body.len() > MAX_REPORT_BYTES {
        return Err(ApiError::TooLarge(format!(
            "a report body holds at most {MAX_REPORT_BYTES} bytes"
        )));
    }
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PruneBody {
    selector: String,
    #[serde(default)]
    keep: Vec<String>,
}

/// `POST /api/v1/prune` with `{"selector": "app=shop", "keep": ["server/web"]}`: deletes the
/// applied objects the selector matches that `keep` lacks (`apply --prune -l`).
pub(super) async fn prune<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let PruneBody { selector, keep } = serde_json::from_str(text(&body)?).map_err(|e| {
        ApiError::bad(format!(
            "invalid body: {e} (expected {{\"selector\": \"app=shop\", \"keep\": [\"server/web\"]}})"
        ))
    })?;
    let selector = Selector::parse(&selector).map_err(|e| ApiError::bad(e.to_string()))?;
    if selector.0.is_empty() {
        return Err(ApiError::bad(
            "an empty selector would prune every applied object; name the ones this input owns",
        ));
    }
    let mut keys = std::collections::BTreeSet::new();
    for k in &keep {
        let (kind, name) = k
            .split_once('/')
            .ok_or_else(|| ApiError::bad(format!("invalid object {k:?}: expected KIND/NAME")))?;
        keys.insert(ObjectKey::new(kind_param(kind)?, name_param(name)?));
    }
    let pruned = apply::prune(&api.sources, &selector, &keys).await?;
    api.signals.reload();
    let pruned: Vec<String> = pruned.iter().map(ToString::to_string).collect();
    Ok(Json(json!({ "pruned": pruned })))
}
