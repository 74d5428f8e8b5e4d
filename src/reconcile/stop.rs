//! Stopping with no controller running: `down` and `stop` on a host where no `up` holds the
//! state file remove the stopped objects' containers themselves, as a pass would (dependents
//! first, only this state file's containers), and record them `Stopped`. The intents are
//! written first, so whatever this leaves undone the next pass finishes.

use std::collections::HashMap;

use super::execute::execute;
use super::observe::claim;
use super::ReconcileError;
use crate::clock::now_millis;
use crate::engine::Engine;
use crate::lifecycle::BackoffPolicy;
use crate::manifest::server::RestartPolicy;
use crate::plan::{plan, Desired, PlanOptions};
use crate::store::{NewEvent, Status, Store};

/// How many rounds of removal (each waits for the dependents of the next) are tried.
const MAX_ROUNDS: usize = 16;

/// Removes the containers of every stopped object of `instance` and records them `Stopped`;
/// the first removal that fails ends it with its error (each is in the event log).
pub async fn stop_now<R: Engine>(
    engine: &R,
    store: &Store,
    instance: &str,
    parallel: usize,
) -> Result<(), ReconcileError> {
    for _ in 0..MAX_ROUNDS {
        let stored = store.objects(instance).await?;
        let intents = store.intents(instance).await?;
        let statuses = store.statuses_by_key(instance).await?;
        let desired: Vec<Desired> = stored
            .iter()
            .filter_map(|s| {
                let why = crate::kinds::stopped_because(&s.object, &intents)?;
                let key = s.object.key();
                Some(Desired {
                    lifecycle: statuses
                        .get(&key)
                        .map(|s| s.lifecycle.clone())
                        .unwrap_or_default(),
                    key,
                    spec_hash: s.spec_hash.clone(),
                    restart: RestartPolicy::Never,
                    max_restarts: None,
                    restart_unhealthy: false,
                    readiness: None,
                    start_first: false,
                    deps: Vec::new(),
                    hold: None,
                    stopped: Some(why),
                    revision: s.spec_hash.clone(),
                    rollback_after: None,
                    rolled_back: None,
                })
            })
            .collect();
        let (ours, _foreign) = claim(engine.list(instance).await?, store.identity(), false);
        let observed: Vec<_> = ours
            .into_iter()
            .filter(|o| {
                o.key
                    .as_ref()
                    .is_some_and(|k| desired.iter().any(|d| &d.key == k))
            })
            .collect();
        let p = plan(
            &desired,
            &observed,
            PlanOptions {
                allow_empty: false,
                backoff: BackoffPolicy::default(),
                now: now_millis(),
            },
        );
        if p.actions.is_empty() {
            let generations: HashMap<_, _> = stored
                .iter()
                .map(|s| (s.object.key(), s.generation))
                .collect();
            let list: Vec<Status> = p
                .verdicts
                .iter()
                .map(|(key, v)| Status {
                    key: Some(key.clone()),
                    phase: v.phase,
                    container_id: None,
                    observed_generation: generations.get(key).copied().unwrap_or(1),
                    message: v.message.clone(),
                    ports: Vec::new(),
                    updated_at: String::new(),
                    tasks: Vec::new(),
                    lifecycle: v.lifecycle.clone(),
                })
                .collect();
            store.record_status(instance, &statuses, &list).await?;
            return Ok(());
        }
        let outcomes = execute(
            engine,
            p.actions,
            &HashMap::new(),
            &HashMap::new(),
            parallel,
        )
        .await;
        let events: Vec<NewEvent> = outcomes
            .iter()
            .map(|o| NewEvent {
                key: o.action.key().cloned(),
                reason: if o.result.is_ok() {
                    "removed"
                } else {
                    "failed"
                },
                message: match &o.result {
                    Ok(_) => o.action.describe(),
                    Err(e) => format!("{} failed: {e}", o.action.describe()),
                },
            })
            .collect();
        store.append_events(instance, &events).await?;
        if let Some(Err(e)) = outcomes.into_iter().map(|o| o.result).find(Result::is_err) {
            return Err(e.into());
        }
    }
    Ok(())
}

/// The named volumes an object's containers mount: a database's data volume, a server's
/// `type: volume` mounts.
fn volumes_of(
    instance: &str,
    o: &crate::manifest::Object,
    secrets: &[(String, crate::store::DatabaseSecret)],
) -> Vec<String> {
    use crate::manifest::server::VolumeType;
    use crate::manifest::Spec;
    match &o.spec {
        Spec::Database(_) => {
            let secret = secrets
                .iter()
                .find(|(i, s)| i == instance && s.name == o.name)
                .map(|(_, s)| s);
            vec![crate::kinds::database::data_volume(
                instance, &o.name, secret,
            )]
        }
        Spec::Server(s) => s
            .volumes
            .iter()
            .filter(|v| v.kind == VolumeType::Volume)
            .map(|v| crate::engine::labels::volume_name(instance, &v.source))
            .collect(),
        _ => Vec::new(),
    }
}

/// Removes the named volumes of the stopped objects `keys` (`down --volumes`): only volumes
/// this instance labelled as its own, and none that an object still running mounts. Returns
/// the volumes removed.
pub async fn remove_stopped_volumes<R: Engine>(
    engine: &R,
    store: &Store,
    instance: &str,
    keys: &[crate::manifest::ObjectKey],
) -> Result<Vec<String>, ReconcileError> {
    let stored = store.objects(instance).await?;
    let intents = store.intents(instance).await?;
    let secrets = store.database_secrets().await?;
    let running: std::collections::BTreeSet<String> = stored
        .iter()
        .filter(|s| crate::kinds::stopped_because(&s.object, &intents).is_none())
        .flat_map(|s| volumes_of(instance, &s.object, &secrets))
        .collect();
    let wanted: std::collections::BTreeSet<String> = stored
        .iter()
        .filter(|s| keys.contains(&s.object.key()))
        .filter(|s| crate::kinds::stopped_because(&s.object, &intents).is_some())
        .flat_map(|s| volumes_of(instance, &s.object, &secrets))
        .filter(|v| !running.contains(v))
        .collect();
    let mut removed = Vec::new();
    for v in wanted {
        let ours = engine
            .volume_labels(&v)
            .await?
            .is_some_and(|l| crate::engine::labels::is_ours(&l, instance));
        if ours {
            engine.remove_volume(&v).await?;
            removed.push(v);
        }
    }
    // A database whose data is gone starts afresh: its password goes with the data.
    for s in &stored {
        let key = s.object.key();
        if key.kind == crate::manifest::Kind::Database
            && keys.contains(&key)
            && volumes_of(instance, &s.object, &secrets)
                .iter()
                .any(|v| removed.contains(v))
        {
            store.delete_database_secret(instance, &key.name).await?;
        }
    }
    if !removed.is_empty() {
        store
            .append_events(
                instance,
                &[NewEvent {
                    key: None,
                    reason: "volumes-removed",
                    message: format!("removed volumes {}", removed.join(", ")),
                }],
            )
            .await?;
    }
    Ok(removed)
}
