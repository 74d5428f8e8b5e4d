//! Carrying out a plan against the engine, independent actions in parallel.
//!
//! Images are made available (pulled, or built) before anything is removed, so a recreate whose
//! new image cannot be had leaves the old container running.

use std::collections::{BTreeMap, HashMap};

use futures_util::stream::{self, StreamExt};

use crate::engine::{BuildSpec, ContainerSpec, Engine, EngineError};
use crate::manifest::fields::PullPolicy;
use crate::manifest::ObjectKey;
use crate::plan::Action;

/// How long a container that never became ready gets between its stop signal and the kill.
const ABANDON_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// What happened to one action.
#[derive(Debug)]
pub struct Outcome {
    pub action: Action,
    /// The id of the container that now serves the object, for creates and recreates.
    pub result: Result<Option<String>, EngineError>,
}

/// Runs `actions` with at most `parallel` engine operations at a time.
pub async fn execute<R: Engine>(
    runtime: &R,
    actions: Vec<Action>,
    specs: &HashMap<ObjectKey, ContainerSpec>,
    volume_labels: &HashMap<String, String>,
    parallel: usize,
) -> Vec<Outcome> {
    let parallel = parallel.max(1);
    // One availability check (or build) per image, shared by every action that needs it.
    let mut images: BTreeMap<String, (PullPolicy, Option<BuildSpec>)> = BTreeMap::new();
    for a in &actions {
        if let Action::Create { key } | Action::Recreate { key, .. } = a {
            if let Some(s) = specs.get(key) {
                images.insert(s.image.clone(), (s.pull_policy, s.build.clone()));
            }
        }
    }
    let image_results: HashMap<String, Result<(), String>> = stream::iter(images)
        .map(|(image, (policy, build))| async move {
            let r = match build {
                Some(b) => runtime.ensure_built(&b).await,
                None => runtime.ensure_image(&image, policy).await,
            };
            (image, r.map_err(|e| e.to_string()))
        })
        .buffer_unordered(parallel)
        .collect()
        .await;

    stream::iter(actions)
        .map(|action| {
            let image_results = &image_results;
            async move {
                let result = run(runtime, &action, specs, volume_labels, image_results).await;
                Outcome { action, result }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

async fn run<R: Engine>(
    runtime: &R,
    action: &Action,
    specs: &HashMap<ObjectKey, ContainerSpec>,
    volume_labels: &HashMap<String, String>,
    images: &HashMap<String, Result<(), String>>,
) -> Result<Option<String>, EngineError> {
    match action {
        Action::Start { id, .. } => runtime.start(id).await.map(|()| None),
        Action::Restart { id, .. } => runtime.restart(id).await.map(|()| None),
        Action::Abandon { id, volume, .. } => {
            runtime.remove_within(id, ABANDON_GRACE).await?;
            if let Some(v) = volume {
                runtime.remove_volume(v).await?;
            }
            Ok(None)
        }
        Action::Remove { id, volume, .. } => {
            runtime.remove(id).await?;
            if let Some(v) = volume {
                runtime.remove_volume(v).await?;
            }
            Ok(None)
        }
        Action::Create { key } | Action::Recreate { key, .. } => {
            let spec = specs.get(key).ok_or_else(|| EngineError::Engine {
                op: "create container",
                target: key.to_string(),
                message: "no spec for object".into(),
            })?;
            if let Some(Err(e)) = images.get(&spec.image) {
                // The message already says which image and why; keep the old container.
                return Err(EngineError::Engine {
                    op: "prepare image",
                    target: spec.image.clone(),
                    message: e.clone(),
                });
            }
            // The volumes a first creation makes: if the container cannot be made (a name a
            // stranger holds, say), they go again, so a failed object leaves nothing behind.
            let mut made = Vec::new();
            for m in spec.mounts.iter().filter(|m| m.volume) {
                let first = matches!(action, Action::Create { .. })
                    && runtime.volume_labels(&m.source).await?.is_none();
                runtime.ensure_volume(&m.source, volume_labels).await?;
                if first {
                    made.push(m.source.as_str());
                }
            }
            if let Action::Recreate { old, .. } = action {
                return runtime.replace(old, spec).await.map(Some);
            }
            let id = match runtime.create(spec).await {
                Ok(id) => id,
                Err(e) => {
                    for v in made {
                        if let Err(gone) = runtime.remove_volume(v).await {
                            tracing::warn!("volume {v} made for a failed creation stays: {gone}");
                        }
                    }
                    return Err(e);
                }
            };
            runtime.start(&id).await?;
            Ok(Some(id))
        }
    }
}
