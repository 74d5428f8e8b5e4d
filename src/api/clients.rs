//! Runtime per-client routes of a Route (Potassium's Peel).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::engine::Engine;
use crate::manifest::{Kind, ObjectKey};
use crate::store::{Client, ClientRoute};

use super::{name_param, require, Api, ApiError, ApiResult};

/// A route that exists, or 404.
pub(super) async fn route_exists<R: Engine>(api: &Api<R>, name: &str) -> ApiResult<()> {
    require(api, &ObjectKey::new(Kind::Route, name_param(name)?)).await
}

/// A client address or network from the path (`10.1.0.0%2F16` for a network).
pub(super) fn client_param(ip: &str) -> ApiResult<Client> {
    ClientRoute::parse_client(ip).map_err(ApiError::bad)
}

pub(super) async fn list_clients<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ClientRoute>>> {
    route_exists(&api, &name).await?;
    let mut all = api.store.route_clients(&api.instance).await?;
    Ok(Json(all.remove(&name).unwrap_or_default()))
}

pub(super) async fn get_client<R: Engine>(
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
pub(super) struct ClientTarget {
    /// A server of this instance, or an IPv4 address.
    #[serde(alias = "address")]
    server: String,
    port: u16,
}

pub(super) async fn put_client<R: Engine>(
    State(api): State<Arc<Api<R>>>,
    Path((name, ip)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<ClientRoute>> {
    route_exists(&api, &name).await?;
    let target: ClientTarget = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad(format!(
            "invalid body: {e}: expected {{\"server\": NAME, \"port\": PORT}} or {{\"address\": IP, \"port\": PORT}}"
        ))
    })?;
    let route = ClientRoute::new(&ip, &target.server, target.port).map_err(ApiError::bad)?;
    let server = ObjectKey::new(Kind::Server, route.server.clone());
    if route.address().is_none() && !api.store.has_object(&api.instance, &server).await? {
        return Err(ApiError::bad(format!(
            "{server} not found: a client route targets a server of this instance"
        )));
    }
    api.store
        .set_route_client(&api.instance, &name, &route)
        .await?;
    api.signals.poke();
    Ok(Json(route))
}

pub(super) async fn delete_client<R: Engine>(
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
