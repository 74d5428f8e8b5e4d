//! An in-memory engine behind the `Engine` trait, for tests and measurements of everything
//! above it (planner, store, controller) without Docker. Not a substitute for the engine tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;

use super::{
    ContainerSpec, Engine, EngineError, EngineEvent, NetworkConfig, NetworkInfo, Observed, State,
};
use crate::engine::labels;
use crate::manifest::fields::PullPolicy;

#[derive(Clone, Debug)]
struct Container {
    name: String,
    labels: HashMap<String, String>,
    state: State,
}

#[derive(Default)]
struct Inner {
    containers: BTreeMap<String, Container>,
    volumes: BTreeMap<String, HashMap<String, String>>,
    /// Network name → its labels.
    networks: BTreeMap<String, HashMap<String, String>>,
    next_id: u64,
    /// Network name → the subnet it was created with, when it named one.
    subnets: BTreeMap<String, String>,
    /// Whether asking a registry never answers (a registry that accepts and hangs).
    registry_hangs: bool,
}

impl Inner {
    /// A container id never used before.
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("fake{:06}", self.next_id)
    }
}

/// Containers live in a map and run once started.
#[derive(Clone)]
pub struct FakeEngine {
    inner: Arc<Mutex<Inner>>,
    events: Arc<Mutex<broadcast::Sender<EngineEvent>>>,
    /// How long `settled` takes, as the Docker engine's unmount after an exit does.
    settle: Arc<Mutex<Duration>>,
}

impl Default for FakeEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeEngine {
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            events: Arc::new(Mutex::new(broadcast::channel(1024).0)),
            settle: Arc::default(),
        }
    }

    /// Makes `settled` take `d`.
    pub fn settle_after(&self, d: Duration) {
        *self
            .settle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = d;
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

    /// Puts a container on the fake engine as someone else would (any labels), running.
    pub fn insert(&self, name: &str, container_labels: HashMap<String, String>) -> String {
        let mut inner = self.lock();
        let id = inner.new_id();
        let c = Container {
            name: name.to_owned(),
            labels: container_labels,
            state: State::Running,
        };
        inner.containers.insert(id.clone(), c);
        id
    }

    /// Makes every registry question hang, as a registry that accepts and never answers.
    pub fn registry_hangs(&self) {
        self.lock().registry_hangs = true;
    }

    /// The subnets of the fake engine's networks that named one.
    pub fn network_subnets(&self) -> Vec<String> {
        self.lock().subnets.values().cloned().collect()
    }

    /// The named volumes on the fake engine.
    pub fn volumes(&self) -> Vec<String> {
        self.lock().volumes.keys().cloned().collect()
    }

    /// Ends a container's process with `code`, as a crash would.
    pub fn exit(&self, id: &str, code: i64) {
        let c = {
            let mut inner = self.lock();
            let Some(c) = inner.containers.get_mut(id) else {
                return;
            };
            c.state = State::Exited { code: Some(code) };
            c.clone()
        };
        self.emit(id, "die", &c);
    }

    /// Every container on the fake engine, whoever owns it: `(id, name, state)`, by id.
    pub fn containers(&self) -> Vec<(String, String, State)> {
        self.lock()
            .containers
            .iter()
            .map(|(id, c)| (id.clone(), c.name.clone(), c.state.clone()))
            .collect()
    }

    fn missing(id: &str) -> EngineError {
        EngineError::Engine {
            op: "find container",
            target: id.to_owned(),
            message: "no such container".into(),
        }
    }
}

impl Engine for FakeEngine {
    async fn registry_digest(&self, image: &str) -> Result<String, EngineError> {
        if self.lock().registry_hangs {
            std::future::pending::<()>().await;
        }
        Err(unsupported("ask the registry about", image))
    }

    async fn list(&self, instance: &str) -> Result<Vec<Observed>, EngineError> {
        let inner = self.lock();
        Ok(inner
            .containers
            .iter()
            .filter(|(_, c)| labels::is_ours(&c.labels, instance))
            .map(|(id, c)| {
                Observed::from_labels(id.clone(), c.name.clone(), c.state.clone(), &c.labels)
            })
            .collect())
    }

    async fn ensure_image(&self, _image: &str, _policy: PullPolicy) -> Result<(), EngineError> {
        Ok(())
    }

    async fn ensure_built(&self, _spec: &super::BuildSpec) -> Result<(), EngineError> {
        Ok(())
    }

    async fn ensure_volume(
        &self,
        name: &str,
        volume_labels: &HashMap<String, String>,
    ) -> Result<(), EngineError> {
        let mut inner = self.lock();
        match inner.volumes.get(name) {
            Some(l) if l.get(labels::INSTANCE) != volume_labels.get(labels::INSTANCE) => {
                Err(EngineError::VolumeConflict {
                    name: name.to_owned(),
                })
            }
            Some(_) => Ok(()),
            None => {
                inner.volumes.insert(name.to_owned(), volume_labels.clone());
                Ok(())
            }
        }
    }

    async fn volume_labels(
        &self,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, EngineError> {
        Ok(self.lock().volumes.get(name).cloned())
    }

    async fn remove_volume(&self, name: &str) -> Result<(), EngineError> {
        self.lock().volumes.remove(name);
        Ok(())
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, EngineError> {
        let mut inner = self.lock();
        if inner.containers.values().any(|c| c.name == spec.name) {
            return Err(EngineError::NameConflict {
                name: spec.name.clone(),
            });
        }
        let id = inner.new_id();
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

    async fn start(&self, id: &str) -> Result<(), EngineError> {
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

    async fn restart(&self, id: &str) -> Result<(), EngineError> {
        self.start(id).await
    }

    async fn remove(&self, id: &str) -> Result<(), EngineError> {
        let removed = self.lock().containers.remove(id);
        if let Some(c) = removed {
            self.emit(id, "destroy", &c);
        }
        Ok(())
    }

    async fn list_networks(&self, instance: &str) -> Result<Vec<NetworkInfo>, EngineError> {
        Ok(self
            .lock()
            .networks
            .iter()
            .filter(|(_, l)| labels::is_ours(l, instance))
            .map(|(name, l)| NetworkInfo {
                id: name.clone(),
                name: name.clone(),
                spec_hash: l.get(labels::SPEC_HASH).cloned(),
                created: String::new(),
            })
            .collect())
    }

    async fn network_exists(&self, name: &str) -> Result<bool, EngineError> {
        Ok(self.lock().networks.contains_key(name))
    }

    async fn create_network(&self, config: &NetworkConfig) -> Result<(), EngineError> {
        let mut inner = self.lock();
        if let Some(subnet) = &config.subnet {
            if inner.subnets.values().any(|s| s == subnet) {
                return Err(EngineError::Engine {
                    op: "create network",
                    target: config.name.clone(),
                    message: "Pool overlaps with other one on this address space".into(),
                });
            }
            inner.subnets.insert(config.name.clone(), subnet.clone());
        }
        inner
            .networks
            .insert(config.name.clone(), config.labels.clone());
        Ok(())
    }

    async fn remove_network(&self, name: &str) -> Result<(), EngineError> {
        let mut inner = self.lock();
        inner.networks.remove(name);
        inner.subnets.remove(name);
        Ok(())
    }

    async fn network_containers(&self, _name: &str) -> Result<Vec<String>, EngineError> {
        Ok(Vec::new())
    }

    async fn connect_network(
        &self,
        _container: &str,
        _endpoint: &crate::engine::Endpoint,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    async fn disconnect_network(&self, _name: &str, _container: &str) -> Result<(), EngineError> {
        Ok(())
    }

    async fn settled(&self, _id: &str) {
        let d = *self
            .settle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokio::time::sleep(d).await;
    }

    fn events(&self, _instance: &str) -> BoxStream<'static, Result<EngineEvent, EngineError>> {
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
impl super::Attach for FakeEngine {
    fn logs(
        &self,
        container: &str,
        _follow: bool,
        _tail: Option<u64>,
        _since: Option<i64>,
    ) -> BoxStream<'static, Result<super::Output, EngineError>> {
        stream::once(std::future::ready(Err(unsupported("logs of", container)))).boxed()
    }

    async fn exec(
        &self,
        container: &str,
        _cmd: Vec<String>,
        _tty: bool,
        _stdin: bool,
    ) -> Result<super::ExecSession, EngineError> {
        Err(unsupported("exec in", container))
    }

    async fn attach(
        &self,
        container: &str,
        _stdin: bool,
        _detach_keys: &str,
    ) -> Result<super::ExecSession, EngineError> {
        Err(unsupported("attach to", container))
    }

    async fn resize(&self, container: &str, _w: u16, _h: u16) -> Result<(), EngineError> {
        Err(unsupported("resize", container))
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>, EngineError> {
        Err(unsupported("inspect exec", exec_id))
    }
}

fn unsupported(op: &'static str, target: &str) -> EngineError {
    EngineError::Engine {
        op,
        target: target.to_owned(),
        message: "the fake runtime runs no processes".into(),
    }
}

/// The fake engine runs no jobs: backups and restores are tested against the real one.
impl super::Jobs for FakeEngine {
    async fn run_job(&self, job: &super::Job) -> Result<super::JobOutput, EngineError> {
        Err(EngineError::Engine {
            op: "run job",
            target: job.name.clone(),
            message: "the fake engine runs no jobs".into(),
        })
    }
}
