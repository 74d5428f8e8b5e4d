//! Runtime per-client routes (Potassium's Peel): one client address to a server's port.

use std::collections::BTreeMap;

use super::{query, Store, StoreError};

impl Store {
    /// Engine per-client routes of `instance`: route name → (client, target).
    pub async fn route_clients(
        &self,
        instance: &str,
    ) -> Result<BTreeMap<String, Vec<ClientRoute>>, StoreError> {
        let rows: Vec<(String, String, String, i64, String)> = sqlx::query_as(
            "SELECT route, client, server, port, updated_at FROM route_clients WHERE instance = ? ORDER BY route, client",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await
        .map_err(query("route clients"))?;
        let mut out: BTreeMap<String, Vec<ClientRoute>> = BTreeMap::new();
        for (route, client, server, port, updated_at) in rows {
            let Ok(client) = client.parse() else { continue };
            out.entry(route).or_default().push(ClientRoute {
                client,
                server,
                port: port as u16,
                updated_at,
            });
        }
        Ok(out)
    }

    pub async fn set_route_client(
        &self,
        instance: &str,
        route: &str,
        client: &ClientRoute,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO route_clients (instance, route, client, server, port) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (instance, route, client) DO UPDATE SET server = excluded.server,
               port = excluded.port, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(instance)
        .bind(route)
        .bind(client.client.to_string())
        .bind(&client.server)
        .bind(i64::from(client.port))
        .execute(&self.pool)
        .await
        .map_err(query("set route client"))?;
        Ok(())
    }

    /// Removes a per-client route; returns whether there was one.
    pub async fn delete_route_client(
        &self,
        instance: &str,
        route: &str,
        client: std::net::Ipv4Addr,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "DELETE FROM route_clients WHERE instance = ? AND route = ? AND client = ?",
        )
        .bind(instance)
        .bind(route)
        .bind(client.to_string())
        .execute(&self.pool)
        .await
        .map_err(query("delete route client"))?;
        Ok(r.rows_affected() > 0)
    }
}

/// A runtime per-client route: this client address goes to a server's port.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRoute {
    pub client: std::net::Ipv4Addr,
    pub server: String,
    pub port: u16,
    pub updated_at: String,
}

impl ClientRoute {
    /// A route for `client` to `server`'s `port`, stamped now; the API and the CLI check their
    /// input here alike.
    pub fn new(client: &str, server: &str, port: u16) -> Result<Self, String> {
        let client = Self::parse_client(client)?;
        crate::manifest::check_dns_label(server).map_err(|e| format!("server: {e}"))?;
        if port == 0 {
            return Err("port: expected 1-65535".into());
        }
        Ok(Self {
            client,
            server: server.to_owned(),
            port,
            updated_at: crate::clock::rfc3339(crate::clock::now_millis()),
        })
    }

    pub fn parse_client(client: &str) -> Result<std::net::Ipv4Addr, String> {
        client.parse().map_err(|_| {
            format!("invalid client address {client:?}: expected an IPv4 address like 192.168.1.50")
        })
    }
}
