//! `dockhand clients`: a route's runtime per-client routes (Potassium's Peel: set, delete,
//! list), on the state file or through a controller's API. A running `up` applies a change
//! within a second either way, without restarting the route's listener.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::remote::{object_path, Remote, RemoteArgs, RemoteError};
use super::{open_store, StateArgs};
use crate::manifest::{check_dns_label, Kind, ObjectKey};
use crate::store::{ClientRoute, Store};

#[derive(Args, Debug)]
pub struct ClientsArgs {
    #[command(subcommand)]
    pub verb: Verb,
    #[arg(skip)]
    pub state: StateArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// List the route's per-client routes.
    List { route: String },
    /// Send CLIENT's traffic to SERVER:PORT, ahead of the route's own rules.
    Set {
        route: String,
        client: String,
        /// The target: `SERVER:PORT` (a server of this instance and its container port), or
        /// `IP:PORT` (any address but loopback, multicast and broadcast). CLIENT is an address
        /// or a network (`10.1.0.0/16`).
        target: String,
    },
    /// Remove CLIENT's route: it follows the route's own rules again.
    Delete { route: String, client: String },
}

pub async fn run(args: ClientsArgs) -> anyhow::Result<ExitCode> {
    let route = match &args.verb {
        Verb::List { route } | Verb::Set { route, .. } | Verb::Delete { route, .. } => route,
    };
    check_dns_label(route).map_err(|e| anyhow::anyhow!(e))?;
    let key = ObjectKey::new(Kind::Route, route.as_str());
    let result = match args.remote.client(&args.state.state)? {
        Some(remote) => remotely(&remote, &key, &args.verb).await,
        None => {
            let store = open_store(&args.state.state).await?;
            locally(&store, &args.state.instance, &key, &args.verb).await
        }
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => match e.downcast_ref::<RemoteError>() {
            Some(r) if (400..500).contains(&r.status) => {
                eprintln!("error: {}", r.message);
                Ok(ExitCode::from(1))
            }
            Some(_) => Err(e),
            None if e.is::<Refused>() => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(1))
            }
            None => Err(e),
        },
    }
}

/// The input or the state says no (exit 1, like the API's 4xx).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

fn target(client: &str, target: &str) -> Result<ClientRoute, Refused> {
    let (server, port) = target
        .rsplit_once(':')
        .and_then(|(s, p)| Some((s, p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            Refused(format!(
                "invalid target {target:?}: expected SERVER:PORT or IP:PORT"
            ))
        })?;
    ClientRoute::new(client, server, port).map_err(Refused)
}

fn print(routes: &[ClientRoute]) {
    if routes.is_empty() {
        println!("no client routes");
        return;
    }
    println!("{:<18} {:<24} UPDATED", "CLIENT", "TARGET");
    for r in routes {
        let to = format!("{}:{}", r.server, r.port);
        println!("{:<18} {to:<24} {}", r.client.to_string(), r.updated_at);
    }
}

async fn locally(
    store: &Store,
    instance: &str,
    key: &ObjectKey,
    verb: &Verb,
) -> anyhow::Result<()> {
    if !store.has_object(instance, key).await? {
        return Err(Refused(format!("{key} not found")).into());
    }
    match verb {
        Verb::List { .. } => {
            let mut all = store.route_clients(instance).await?;
            print(&all.remove(&key.name).unwrap_or_default());
        }
        Verb::Set {
            client, target: t, ..
        } => {
            let r = target(client, t)?;
            let server = ObjectKey::new(crate::manifest::Kind::Server, r.server.clone());
            if r.address().is_none() && !store.has_object(instance, &server).await? {
                return Err(Refused(format!(
                    "{server} not found: a client route targets a server of this instance"
                ))
                .into());
            }
            store.set_route_client(instance, &key.name, &r).await?;
            println!("{key}: {} -> {}:{}", r.client, r.server, r.port);
        }
        Verb::Delete { client, .. } => {
            let ip = ClientRoute::parse_client(client).map_err(Refused)?;
            if !store.delete_route_client(instance, &key.name, ip).await? {
                return Err(Refused(format!("{key} has no route for client {ip}")).into());
            }
            println!("{key}: {ip} deleted");
        }
    }
    Ok(())
}

async fn remotely(remote: &Remote, key: &ObjectKey, verb: &Verb) -> anyhow::Result<()> {
    let base = format!("{}/clients", object_path(key));
    match verb {
        Verb::List { .. } => {
            let routes: Vec<ClientRoute> = serde_json::from_value(remote.json(&base).await?)?;
            print(&routes);
        }
        Verb::Set {
            client, target: t, ..
        } => {
            let r = target(client, t)?;
            let body = serde_json::json!({"server": r.server, "port": r.port}).to_string();
            let path = format!("{base}/{}", super::remote::encode(&r.client.to_string()));
            remote.send(reqwest::Method::PUT, &path, Some(body)).await?;
            println!("{key}: {} -> {}:{}", r.client, r.server, r.port);
        }
        Verb::Delete { client, .. } => {
            let ip = ClientRoute::parse_client(client).map_err(Refused)?;
            let path = format!("{base}/{}", super::remote::encode(&ip.to_string()));
            remote.send(reqwest::Method::DELETE, &path, None).await?;
            println!("{key}: {ip} deleted");
        }
    }
    Ok(())
}
