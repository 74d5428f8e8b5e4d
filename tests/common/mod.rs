//! Test harness: a private instance, manifests directory and state file per test, against the
//! real Docker engine, observed independently of dockhand through the `docker` CLI.
#![allow(dead_code)]

mod controller;
mod docker_cli;
mod env;
mod flaky_engine;
mod http_client;
mod manifests;
pub mod postgres;
mod private_engine;

// Each test binary uses a different part of the harness.
#[allow(unused_imports)]
pub use {
    controller::*, docker_cli::*, env::*, flaky_engine::*, http_client::*, manifests::*,
    private_engine::*,
};
