//! The `manifests` table (any program may write it) and the objects applied through the API,
//! both kept in the state file, and the cheap watch that notices their changes.
//!
//! The watch asks SQLite's `PRAGMA data_version` on a connection of its own: it moves whenever
//! another connection commits, without reading a page. Only then does it read the version that
//! the tables' triggers bump, so the controller's own status writes never look like a change.

use std::path::Path;
use std::time::Duration;

use super::{api_label, Part, API_PREFIX, TABLE_PREFIX};
use crate::manifest::{parse_str, Kind, ManifestError, ObjectKey};
use crate::store::{Store, StoreError};

/// The `manifests` table's rows of `instance`, each validated like a file named `table:<row>`.
pub async fn read_rows(store: &Store, instance: &str) -> Result<Part, StoreError> {
    let mut part = Part {
        complete: true,
        ..Part::default()
    };
    for (name, yaml) in store.manifest_rows(instance).await? {
        let label = format!("{TABLE_PREFIX}{name}");
        let parsed = match yaml {
            Ok(yaml) => parse_str(&yaml, &label, None),
            Err(what) => Err(vec![ManifestError {
                file: label.clone(),
                line: 0,
                column: 0,
                field: "yaml".into(),
                message: what,
            }]),
        };
        part.add(label, parsed);
    }
    Ok(part)
}

/// Objects applied through the API: one per row, labelled `api:<kind>/<name>`.
pub async fn read_applied(store: &Store, instance: &str) -> Result<Part, StoreError> {
    let mut part = Part {
        complete: true,
        ..Part::default()
    };
    for (kind, name, yaml) in store.applied_rows(instance).await? {
        let label = match Kind::parse(&kind) {
            Some(k) => api_label(&ObjectKey::new(k, name.clone())),
            None => format!("{API_PREFIX}{kind}/{name}"),
        };
        let parsed = parse_str(&yaml, &label, None).and_then(|objs| match objs.as_slice() {
            [o] if o.key().kind.label() == kind && o.name == name => Ok(objs),
            _ => Err(vec![ManifestError {
                file: label.clone(),
                line: 1,
                column: 1,
                field: String::new(),
                message: format!("an applied row must hold exactly the object {kind}/{name}"),
            }]),
        });
        part.add(label, parsed);
    }
    Ok(part)
}

/// Calls `changed` within about `every` of any commit to the source tables, by any process.
/// Runs until the returned task is aborted. Errors (a busy or vanished file) are retried.
pub fn watch(
    state: &Path,
    every: Duration,
    changed: impl Fn() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let state = state.to_owned();
    tokio::spawn(async move {
        let mut watcher: Option<crate::store::VersionWatch> = None;
        let mut last: Option<(i64, i64)> = None;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if watcher.is_none() {
                watcher = crate::store::VersionWatch::open(&state).await.ok();
            }
            let Some(w) = watcher.as_mut() else { continue };
            let data = match w.data_version().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!("source table watch: {e}");
                    watcher = None;
                    continue;
                }
            };
            if last.is_some_and(|(d, _)| d == data) {
                continue;
            }
            let version = match w.source_version().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!("source table watch: {e}");
                    watcher = None;
                    continue;
                }
            };
            if last.is_some_and(|(_, v)| v != version) {
                changed();
            }
            last = Some((data, version));
        }
    })
}
