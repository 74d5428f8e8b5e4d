//! An in-memory engine behind the `Runtime` trait, for tests and measurements of everything
//! above it (planner, store, controller) without Docker. Not a substitute for the engine tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;

use super::{
    ContainerSpec, EngineEvent, NetworkConfig, NetworkInfo, Observed, Runtime, RuntimeError, State,
};
use crate::engine::labels;
use crate::manifest::server::PullPolicy;

#[derive(Clone, Debug)]
struct Container {
    name: String,
    labels: HashMap<String, String>,
    state: State,
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, Container>,
    next_id: u64,
}

/// Containers live in a map and run once started.
#[derive(Clone)]
pub struct FakeRuntime {
    inner: Arc<Mutex<Inner>>,
    events: Arc<Mutex<broadcast::Sender<EngineEvent>>>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            events: Arc::new(Mutex::new(broadcast::channel(1024).0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends every open event stream, as an engine that restarts does.
    pub fn drop_event_streams(&self) {
        let mut events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *events = broadcast::channel(1024).0;
    }

    fn emit(&self, id: &str, action: &str, c: &Container) {
        let events = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = events.send(EngineEvent {
            id: id.to_owned(),
            action: action.to_owned(),
            key: labels::object_key(&c.labels),
        });
    }

    fn missing(id: &str) -> RuntimeError {
        RuntimeError::Engine {
            op: "find container",
            target: id.to_owned(),
            message: "no such container".into(),
        }
    }
}

impl Runtime for FakeRuntime {
    async fn list(&self, instance: &str) -> Result<Vec<Observed>, RuntimeError> {
        let inner = self.lock();
        Ok(inner
            .containers
            .iter()
            .filter(|(_, c)| c.labels.get(labels::INSTANCE).map(String::as_str) == Some(instance))
            .map(|(id, c)| Observed {
                id: id.clone(),
                name: c.name.clone(),
                key: labels::object_key(&c.labels),
                spec_hash: c.labels.get(labels::SPEC_HASH).cloned(),
                state: c.state.clone(),
                ports: Vec::new(),
                health: None,
                depends_on: labels::depends_on(&c.labels),
                delete_volume: c.labels.get(labels::DELETE_VOLUME).cloned(),
                ip: None,
            })
            .collect())
    }

    async fn ensure_image(&self, _image: &str, _policy: PullPolicy) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn ensure_volume(
        &self,
        _name: &str,
        _labels: &HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn remove_volume(&self, _name: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut inner = self.lock();
        if inner.containers.values().any(|c| c.name == spec.name) {
            return Err(RuntimeError::NameConflict {
                name: spec.name.clone(),
            });
        }
        inner.next_id += 1;
        let id = format!("fake{:06}", inner.next_id);
        inner.containers.insert(
            id.clone(),
            Container {
                name: spec.name.clone(),
                labels: spec.labels.clone(),
                state: State::Created,
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let c = {
            let mut inner = self.lock();
            let c = inner
                .containers
                .get_mut(id)
                .ok_or_else(|| Self::missing(id))?;
            c.state = State::Running;
            c.clone()
        };
        self.emit(id, "start", &c);
        Ok(())
    }

    async fn restart(&self, id: &str) -> Result<(), RuntimeError> {
        self.start(id).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let removed = self.lock().containers.remove(id);
        if let Some(c) = removed {
            self.emit(id, "destroy", &c);
        }
        Ok(())
    }

    async fn list_networks(&self, _instance: &str) -> Result<Vec<NetworkInfo>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn network_exists(&self, _name: &str) -> Result<bool, RuntimeError> {
        Ok(false)
    }

    async fn create_network(&self, _config: &NetworkConfig) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn remove_network(&self, _name: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn network_containers(&self, _name: &str) -> Result<Vec<String>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn connect_network(
        &self,
        _name: &str,
        _container: &str,
        _ip: Option<std::net::Ipv4Addr>,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn disconnect_network(&self, _name: &str, _container: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn events(&self, _instance: &str) -> BoxStream<'static, Result<EngineEvent, RuntimeError>> {
        let rx = self
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .subscribe();
        stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((Ok(e), rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }
}

/// Fake containers produce no output and run no commands.
impl super::Attach for FakeRuntime {
    fn logs(
        &self,
        container: &str,
        _follow: bool,
        _tail: Option<u64>,
    ) -> BoxStream<'static, Result<super::Output, RuntimeError>> {
        stream::once(std::future::ready(Err(unsupported("logs of", container)))).boxed()
    }

    async fn exec(
        &self,
        container: &str,
        _cmd: Vec<String>,
        _tty: bool,
        _stdin: bool,
    ) -> Result<super::ExecSession, RuntimeError> {
        Err(unsupported("exec in", container))
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, RuntimeError> {
        Err(unsupported("inspect exec", exec_id))
    }
}

fn unsupported(op: &'static str, target: &str) -> RuntimeError {
    RuntimeError::Engine {
        op,
        target: target.to_owned(),
        message: "the fake runtime runs no processes".into(),
    }
}
