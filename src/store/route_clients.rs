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
            let Ok(client) = Client::parse(&client) else {
                continue;
            };
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
        client: Client,
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

/// The clients a per-client route is for: one address (`192.168.1.50`) or a network
/// (`10.1.0.0/16`). The most specific of a route's rules and client routes wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Client(pub crate::manifest::network::Cidr);

impl Client {
    pub fn parse(s: &str) -> Result<Client, String> {
        crate::manifest::network::Cidr::parse(s)
            .map(Client)
            .map_err(|_| {
                format!(
                    "invalid client address {s:?}: expected an IPv4 address like 192.168.1.50 or a network like 10.1.0.0/16"
                )
            })
    }
}

impl std::fmt::Display for Client {
    /// A single address bare, a network in CIDR form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.prefix == 32 {
            write!(f, "{}", self.0.addr)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl serde::Serialize for Client {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Client {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Client::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A runtime per-client route: these clients go to a server's port, or to a raw address
/// (Potassium's Peel takes those too).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientRoute {
    pub client: Client,
    /// A server of this instance, or an IPv4 address.
    pub server: String,
    pub port: u16,
    pub updated_at: String,
}

impl ClientRoute {
    /// A route for `client` to `server`'s `port`, stamped now; the API and the CLI check their
    /// input here alike.
    pub fn new(client: &str, server: &str, port: u16) -> Result<Self, String> {
        let client = Self::parse_client(client)?;
        match server.parse::<std::net::Ipv4Addr>() {
            Ok(ip)
                if ip.is_loopback()
                    || ip.is_unspecified()
                    || ip.is_multicast()
                    || ip.is_broadcast() =>
            {
                return Err(format!(
                    "address {ip} cannot be a target: loopback, unspecified, multicast and broadcast addresses are refused (use the host's own address to reach it)"
                ));
            }
            Ok(_) => {}
            Err(_) => crate::manifest::check_dns_label(server)
                .map_err(|e| format!("server: {e}; or an IPv4 address like 10.0.0.5"))?,
        }
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

    pub fn parse_client(client: &str) -> Result<Client, String> {
        Client::parse(client)
    }

    /// The raw address this route targets, when it targets one rather than a server.
    pub fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.server.parse().ok()
    }
}
