//! The event log as JSON, or followed as server-sent events.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;
use serde::Deserialize;

use crate::engine::Engine;
use crate::manifest::ObjectKey;

use super::{kind_param, name_param, Api, ApiError, ApiResult};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    #[serde(default)]
    follow: bool,
    kind: Option<String>,
    name: Option<String>,
    /// Only events after this id.
    after: Option<i64>,
    #[serde(default = "default_limit")]
    limit: i64,
}

pub(super) fn default_limit() -> i64 {
    100
}

pub(super) async fn events<R: Engine>(
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
    let place = super::follower()?;
    let stream = async_stream(api.clone(), key, last, backlog).map(move |e| {
        let _held = &place;
        e
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The backlog, then every new event as it is appended.
pub(super) fn async_stream<R: Engine>(
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
