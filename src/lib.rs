//! dockhand: desired state in YAML, a pure planner, and an executor that makes the Docker engine
//! match.
//!
//! # Layout
//!
//! The modules are listed in the order data flows through one reconcile pass; each depends only
//! on the ones listed after it.
//!
//! - `cli`: one file per verb; `main.rs` only wires.
//! - `api`: the HTTP face of `up`, one file per resource.
//! - `view`: objects as users see them (get, describe, the API) and selectors.
//! - `operate`: the operator's verbs (stop, start, restart, scale) as intents in the state
//!   file, for the CLI and the API alike.
//! - `controller`: keeps a host converged (watchers, triggers, backoff, metrics).
//! - `reconcile`: one pass: observe → plan → execute → record; the only place that sequences I/O.
//! - `kinds`: what each kind means to the engine (containers, networks, probes, statuses, and
//!   the host files a spec takes in: env files, config files, build contexts).
//! - `policy`: what a manifest may take from the host (paths, the engine socket, its network,
//!   privileges, devices, capabilities), checked before any effect on the host.
//! - `plan`: the pure planner `plan(desired, observed) -> actions`; no I/O, no async.
//! - `source`: where desired state comes from (directory, git, manifests table, the API's
//!   objects).
//! - `compose`: compose files read as they are and translated into manifests (for the
//!   directory source and `convert`).
//! - `store`: the SQLite state file, one file per table family, and the locks beside it.
//! - `engine`: a narrow trait over the container engine (and `Attach` for logs, exec, attach), its
//!   Docker and in-memory implementations, and the label schema that marks what dockhand owns.
//! - `notify`: notifications of failing, recovered and rolled-back objects (`up --notify`).
//! - `proxy`: the Routes' data plane (TCP splice, UDP sessions).
//! - `manifest`: the contract: kinds, specs, status and phases, validated while parsing.
//! - `hostfs`: host files read for a manifest, opened once by descriptor (confined, non-blocking,
//!   bounded), so what the host policy checked is what is read.
//! - `lifecycle`: the run history of an object (restarts, crash-loop backoff, completion).
//! - `clock`: epoch milliseconds from a clock that never steps back.

pub mod cli;

pub mod age;
pub mod api;
pub mod view;

pub mod operate;

pub mod controller;
pub mod reconcile;

pub mod kinds;
pub mod plan;
pub mod policy;

pub mod compose;
pub mod source;
pub mod store;

pub mod engine;
pub mod notify;
pub mod proxy;
pub mod tls;

pub mod manifest;

pub mod hostfs;

pub mod lifecycle;

pub mod clock;
