//! The controller's own health, metrics and dry run.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde_json::json;

use crate::engine::Engine;
use crate::view::{self};

use super::{reconciler, Api, ApiError, ApiResult};

/// Container stats requests in flight during one scrape.
pub(super) const STATS_AT_ONCE: usize = 256;

pub(super) async fn readyz<R: Engine>(
    State(api): State<Arc<Api<R>>>,
) -> ApiResult<Json<serde_json::Value>> {
    if api.signals.is_ready() {
        Ok(Json(json!({"status": "ready"})))
    } else {
        Err(ApiError::Unavailable(
            "not ready: the engine is unreachable or the first pass has not finished".into(),
        ))
    }
}

pub(super) async fn metrics<R: Engine>(State(api): State<Arc<Api<R>>>) -> Response {
    let mut containers = Vec::new();
    let mut services = Vec::new();
    let routes = api
        .reconciler
        .get()
        .and_then(|r| r.proxy())
        .map(|p| p.states())
        .unwrap_or_default();
    if let Some(rt) = api.reconciler.get().map(|r| r.engine()) {
        if let Ok(list) = rt.list(&api.instance).await {
            services = list
                .iter()
                .filter_map(|o| {
                    let (key, t) = (o.key.as_ref()?, o.tasks.as_ref()?);
                    Some((
                        key.kind.label().to_owned(),
                        key.name.clone(),
                        t.running,
                        t.desired,
                    ))
                })
                .collect();
            services.sort();
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
    let databases = database_stats(&api).await;
    let mut text = api.signals.metrics.render(&containers, &routes, &services);
    crate::controller::metrics::render_databases(&mut text, &databases);
    match api.store.last_backups(&api.instance).await {
        Ok(backups) => crate::controller::metrics::render_backups(&mut text, &backups),
        Err(e) => tracing::warn!("cannot read backups for /metrics: {e}"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Each Ready database's stats (`None` when it would not answer), asked at once, at scrape time.
async fn database_stats<R: Engine>(
    api: &Api<R>,
) -> Vec<(String, Option<crate::kinds::database::Stats>)> {
    use crate::kinds::database::{stats, Connection};
    let (Ok(objects), Ok(statuses), Ok(secrets)) = (
        api.store.objects(&api.instance).await,
        api.store.statuses_by_key(&api.instance).await,
        api.store.database_secrets().await,
    ) else {
        return Vec::new();
    };
    let asks = objects.iter().filter_map(|s| {
        let crate::manifest::Spec::Database(d) = &s.object.spec else {
            return None;
        };
        let ready = statuses
            .get(&s.object.key())
            .is_some_and(|st| st.phase == crate::manifest::Phase::Ready);
        let secret = secrets
            .iter()
            .find(|(i, x)| *i == api.instance && x.name == s.object.name)
            .map(|(_, x)| x)?;
        ready.then_some(async move {
            let conn = Connection::from_host(&s.object, d, secret);
            (
                s.object.name.clone(),
                stats(&conn, &secret.password).await.ok(),
            )
        })
    });
    let mut out = futures_util::future::join_all(asks).await;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What a sync would do now: the controller's own dry run against the engine.
pub(super) async fn plan<R: Engine>(
    State(api): State<Arc<Api<R>>>,
) -> ApiResult<Json<view::PlanView>> {
    let rec = reconciler(&api)?;
    let snapshot = api.sources.load().await?;
    let report = rec.dry_run(&snapshot).await.map_err(|e| match e {
        crate::reconcile::ReconcileError::Store(e) => ApiError::Store(e),
        crate::reconcile::ReconcileError::Engine(e) => ApiError::Engine(e),
    })?;
    Ok(Json(view::PlanView::new(&report)))
}

/// `POST /api/v1/plan` with manifests as the body: the controller's dry run with them applied
/// (under its own host policy and sources); nothing is stored.
pub(super) async fn plan_with<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    body: axum::body::Bytes,
) -> ApiResult<Json<view::PlanView>> {
    let rec = reconciler(&api)?;
    let text = super::text(&body)?;
    let mut objects = crate::source::applied::parse(text, "body", None)?;
    for o in &mut objects {
        o.source = crate::source::api_label(&o.key());
    }
    let snapshot = api.sources.load_with(objects).await?;
    let report = rec.dry_run(&snapshot).await.map_err(|e| match e {
        crate::reconcile::ReconcileError::Store(e) => ApiError::Store(e),
        crate::reconcile::ReconcileError::Engine(e) => ApiError::Engine(e),
    })?;
    Ok(Json(view::PlanView::new(&report)))
}

/// `GET /api/v1/nodes`: the machines the engine spans (a swarm's nodes, or the host).
pub(super) async fn nodes<R: Engine>(
    State(api): State<Arc<Api<R>>>,
) -> ApiResult<Json<Vec<crate::engine::Node>>> {
    Ok(Json(reconciler(&api)?.engine().nodes().await?))
}
