//! dockhand: desired state in YAML, a pure planner, and an executor that makes the Docker engine match.
//!
//! The tree mirrors the data flow of one reconcile pass: `source` reads manifests into `manifest`
//! objects, `store` keeps them (and the last good spec of a broken file) in SQLite, `runtime`
//! observes the engine, `reconcile` plans and executes, and `controller` keeps doing that.

pub mod api;
pub mod apply;
pub mod cli;
pub mod controller;
pub mod database;
pub mod labels;
pub mod lifecycle;
pub mod manifest;
pub mod metrics;
pub mod network;
pub mod reconcile;
pub mod route;
pub mod runtime;
pub mod server;
pub mod source;
pub mod store;
pub mod view;
