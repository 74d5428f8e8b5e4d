//! Image updates: servers that follow a tag (`update.image: Poll`, or `pullPolicy: Always`)
//! run it pinned to a registry digest, `image:tag@sha256:…`.
//!
//! The pin is part of the spec a pass stores, so a moved tag is a new generation and revision
//! like any edit: rolled out in the server's update order, rolled back by `failureAction:
//! Rollback` to the old digest (which the engine still has, whatever the tag says now), shown in
//! `get`, `describe` and `rollout history`. A digest that was rolled back is not tried again
//! until the tag moves once more. The registry is asked by a poller beside the passes (`up`,
//! every `--image-interval`; `sync` once), never by a pass; a digest is recorded only once its
//! image was pulled, so an image that cannot be pulled never replaces what runs.

use std::collections::HashMap;

use crate::engine::{Engine, EngineError};
use crate::manifest::replicas::replica_of;
use crate::manifest::{Object, Spec};
use crate::store::{NewEvent, Store, StoreError};

/// The image a desired object follows, and the server name its pin is kept under.
pub fn polled(o: &Object) -> Option<(&str, &str)> {
    match &o.spec {
        Spec::Server(s) => Some((replica_of(&o.name), s.polled_image()?)),
        _ => None,
    }
}

/// `image` pinned to `digest`; the engine runs it whatever its tag points at later.
pub fn pinned(image: &str, digest: &str) -> String {
    format!("{image}@{digest}")
}

/// Pins each polling server of `desired` to its recorded digest; returns the (server, image)
/// pairs that have none yet.
pub fn pin(
    desired: &mut [Object],
    digests: &HashMap<String, (String, String)>,
) -> Vec<(String, String)> {
    let mut missing = Vec::new();
    for o in desired.iter_mut() {
        let Some((name, image)) = polled(o) else {
            continue;
        };
        let found = digests
            .get(name)
            .filter(|(for_image, _)| for_image == image)
            .map(|(_, digest)| pinned(image, digest));
        match found {
            Some(reference) => {
                if let Spec::Server(s) = &mut o.spec {
                    s.image = Some(crate::manifest::fields::Image(reference));
                }
            }
            None => {
                let pair = (name.to_owned(), image.to_owned());
                if !missing.contains(&pair) {
                    missing.push(pair);
                }
            }
        }
    }
    missing
}

/// The longest a registry is waited on for a server's first digest, beside the passes (the
/// engine's copy's digest is asked first, inside the pass: it is local).
pub const REGISTRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// What one round of polling found for one server.
#[derive(Debug, PartialEq)]
pub enum Polled {
    Unchanged,
    /// The tag moved and the new image was pulled: recorded, to be rolled out.
    Updated {
        from: String,
        to: String,
    },
    /// The registry could not be asked, or the new image not pulled: what runs stays.
    Failed(String),
}

/// Asks the registry about every pinned server the store still holds; pulls and records the
/// digests that moved. Returns each server's outcome.
pub async fn poll_once<R: Engine>(
    engine: &R,
    store: &Store,
    instance: &str,
) -> Result<Vec<(String, String, Polled)>, StoreError> {
    let digests = store.image_digests(instance).await?;
    if digests.is_empty() {
        // Nothing follows a tag: the objects need not be read (every `sync` starts here).
        return Ok(Vec::new());
    }
    let objects = store.objects(instance).await?;
    let mut out = Vec::new();
    for (name, (image, digest)) in digests {
        // Only servers that still follow this image (a changed manifest re-pins at its pass).
        let followed = objects
            .iter()
            .any(|s| polled_stored(&s.object).is_some_and(|(n, i)| n == name && i == image));
        if !followed {
            continue;
        }
        let outcome = match engine.registry_digest(&image).await {
            Err(e) => Polled::Failed(format!("{e}; keeping {digest}")),
            Ok(now) if now == digest => Polled::Unchanged,
            Ok(now) => match pull(engine, &image, &now).await {
                Ok(()) => {
                    store
                        .set_image_digest(instance, &name, &image, &now)
                        .await?;
                    Polled::Updated {
                        from: digest.clone(),
                        to: now,
                    }
                }
                Err(e) => Polled::Failed(format!(
                    "{image} moved to {now} but cannot be pulled; keeping {digest}: {e}"
                )),
            },
        };
        out.push((name, image, outcome));
    }
    Ok(out)
}

async fn pull<R: Engine>(engine: &R, image: &str, digest: &str) -> Result<(), EngineError> {
    engine.pull_image(&pinned(image, digest)).await
}

/// The server name and followed image of a stored object (whose image is pinned already).
fn polled_stored(o: &Object) -> Option<(&str, &str)> {
    let Spec::Server(s) = &o.spec else {
        return None;
    };
    let image = s.image.as_ref()?.0.as_str();
    let (tagged, _) = image.split_once("@sha256:")?;
    (s.follows_tag() && !tagged.contains('@')).then(|| (replica_of(&o.name), tagged))
}

/// The events a round's outcomes make; `failing` keeps the last failure per server, so one
/// stays one event (and one notification) until it changes or clears.
pub fn events(
    outcomes: &[(String, String, Polled)],
    failing: &mut HashMap<String, String>,
) -> Vec<NewEvent> {
    let mut out = Vec::new();
    for (name, image, outcome) in outcomes {
        let key = Some(crate::manifest::ObjectKey::new(
            crate::manifest::Kind::Server,
            name.clone(),
        ));
        match outcome {
            Polled::Unchanged => {
                failing.remove(name);
            }
            Polled::Updated { from, to } => {
                failing.remove(name);
                out.push(NewEvent {
                    key,
                    reason: "image-updated",
                    message: format!("{image} moved from {from} to {to}: pulled, rolling out"),
                });
            }
            Polled::Failed(why) => {
                if failing.get(name) != Some(why) {
                    failing.insert(name.clone(), why.clone());
                    out.push(NewEvent {
                        key,
                        reason: "image-check-failed",
                        message: why.clone(),
                    });
                }
            }
        }
    }
    out
}

/// `up`'s poller: a round every `every`; an update wakes a pass (`changed`), a failure is one
/// event and one notification until it changes.
pub async fn keep_polling<R: Engine>(
    engine: std::sync::Arc<crate::reconcile::Reconciler<R>>,
    store: Store,
    instance: String,
    every: std::time::Duration,
    changed: impl Fn() + Send + Sync + 'static,
    notifier: Option<crate::notify::Notifier>,
) {
    let mut failing = HashMap::new();
    loop {
        match poll_once(engine.engine(), &store, &instance).await {
            Ok(outcomes) => {
                if outcomes
                    .iter()
                    .any(|(_, _, o)| matches!(o, Polled::Updated { .. }))
                {
                    changed();
                }
                let events = events(&outcomes, &mut failing);
                for e in &events {
                    if e.reason == "image-check-failed" {
                        tracing::warn!("{}", e.message);
                        if let (Some(n), Some(key)) = (&notifier, &e.key) {
                            n.source_event("image-check-failed", &key.to_string(), &e.message);
                        }
                    } else {
                        tracing::info!("{}", e.message);
                    }
                }
                if let Err(e) = store.append_events(&instance, &events).await {
                    tracing::warn!("cannot record image updates: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot poll images: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_str;

    fn objects(extra: &str) -> Vec<Object> {
        parse_str(
            &format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: web}}\nspec:\n  image: reg/app:live\n{extra}"),
            "w.yaml",
            None,
        )
        .expect("parses")
    }

    fn image(o: &Object) -> &str {
        match &o.spec {
            Spec::Server(s) => &s.image.as_ref().expect("an image").0,
            _ => "",
        }
    }

    #[test]
    fn a_polling_server_is_pinned_to_its_recorded_digest_and_others_are_left_alone() {
        let mut polled = objects("  update: {image: Poll}\n");
        let mut always = objects("  pullPolicy: Always\n");
        let mut opted_out = objects("  pullPolicy: Always\n  update: {image: Never}\n");
        let mut plain = objects("");
        let none = HashMap::new();
        assert_eq!(
            pin(&mut polled, &none),
            vec![("web".to_owned(), "reg/app:live".to_owned())]
        );
        assert_eq!(pin(&mut always, &none).len(), 1);
        assert!(pin(&mut opted_out, &none).is_empty());
        assert!(pin(&mut plain, &none).is_empty());
        let digests = HashMap::from([(
            "web".to_owned(),
            ("reg/app:live".to_owned(), "sha256:abc".to_owned()),
        )]);
        assert!(pin(&mut polled, &digests).is_empty());
        assert_eq!(image(&polled[0]), "reg/app:live@sha256:abc");
        // What a pass stored is followed by the poller, under its tag.
        assert_eq!(polled_stored(&polled[0]), Some(("web", "reg/app:live")));
        // A digest recorded for another image (the manifest changed it) is not used.
        let mut moved = objects("  update: {image: Poll}\n");
        moved[0].spec = match &moved[0].spec {
            Spec::Server(s) => {
                let mut s = s.clone();
                s.image = Some(crate::manifest::fields::Image("reg/app:v2".into()));
                Spec::Server(s)
            }
            other => other.clone(),
        };
        assert_eq!(pin(&mut moved, &digests).len(), 1);
        assert_eq!(image(&moved[0]), "reg/app:v2");
    }

    #[test]
    fn polling_says_an_update_once_and_a_failure_once_until_it_changes() {
        let mut failing = HashMap::new();
        let round = |o: Polled| vec![("web".to_owned(), "reg/app:live".to_owned(), o)];
        let e = events(&round(Polled::Failed("down".into())), &mut failing);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].reason, "image-check-failed");
        assert!(events(&round(Polled::Failed("down".into())), &mut failing).is_empty());
        assert!(events(&round(Polled::Unchanged), &mut failing).is_empty());
        assert_eq!(
            events(&round(Polled::Failed("down".into())), &mut failing).len(),
            1
        );
        let e = events(
            &round(Polled::Updated {
                from: "sha256:a".into(),
                to: "sha256:b".into(),
            }),
            &mut failing,
        );
        assert_eq!(e[0].reason, "image-updated");
        assert!(failing.is_empty());
    }

    #[test]
    fn poll_on_a_built_or_pinned_image_is_refused_with_the_reason() {
        let e = parse_str(
            "apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec:\n  image: reg/app@sha256:abc\n  update: {image: Poll}\n",
            "w.yaml",
            None,
        )
        .expect_err("refused");
        assert_eq!(e[0].field, "spec.update.image");
        assert!(e[0].message.contains("pinned by digest"), "{}", e[0]);
    }
}
