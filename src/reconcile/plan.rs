//! The pure planner: desired objects and one engine listing in, actions out.
//!
//! No I/O happens here, so every decision (what is recreated, what is left alone, what the
//! empty-source guard holds back) is unit- and property-tested without an engine.

use std::collections::{BTreeMap, BTreeSet};

use crate::manifest::server::RestartPolicy;
use crate::manifest::ObjectKey;
use crate::runtime::{Observed, State};

/// What the planner needs to know of a desired object.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub key: ObjectKey,
    pub spec_hash: String,
    pub restart: RestartPolicy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoveReason {
    /// Its object is no longer desired.
    Orphan,
    /// Another container already serves the same object.
    Duplicate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// No container exists for the object.
    Create { key: ObjectKey },
    /// The container's spec hash differs from the object's (or it is dead): replace it.
    Recreate { key: ObjectKey, old: String },
    /// The container stopped and its restart policy wants it running.
    Start { key: ObjectKey, id: String },
    /// A container of this instance that no desired object claims.
    Remove {
        id: String,
        name: String,
        key: Option<ObjectKey>,
        reason: RemoveReason,
    },
}

impl Action {
    /// The object the action is for, if any.
    pub fn key(&self) -> Option<&ObjectKey> {
        match self {
            Action::Create { key } | Action::Recreate { key, .. } | Action::Start { key, .. } => {
                Some(key)
            }
            Action::Remove { key, .. } => key.as_ref(),
        }
    }

    /// A one-line human description (`create server/web`).
    pub fn describe(&self) -> String {
        match self {
            Action::Create { key } => format!("create {key}"),
            Action::Recreate { key, .. } => format!("recreate {key} (spec changed)"),
            Action::Start { key, .. } => format!("start {key} (stopped)"),
            Action::Remove { name, reason, .. } => match reason {
                RemoveReason::Orphan => format!("remove {name} (orphan: its object is gone)"),
                RemoveReason::Duplicate => format!("remove {name} (duplicate)"),
            },
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Containers that would be pruned but were kept because the sources yielded no objects
    /// and `--allow-empty` was not given.
    pub prune_refused: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Plans the actions that make `observed` match `desired`.
///
/// Containers whose spec hash matches and that run (or rightly stay stopped) get no action,
/// so a no-op pass touches nothing.
pub fn plan(desired: &[Desired], observed: &[Observed], allow_empty: bool) -> Plan {
    let mut by_key: BTreeMap<&ObjectKey, Vec<&Observed>> = BTreeMap::new();
    let mut orphans: Vec<&Observed> = Vec::new();
    let wanted: BTreeSet<&ObjectKey> = desired.iter().map(|d| &d.key).collect();
    for o in observed {
        match &o.key {
            Some(k) if wanted.contains(k) => by_key.entry(k).or_default().push(o),
            _ => orphans.push(o),
        }
    }

    let mut actions = Vec::new();
    for d in desired {
        let Some(mut candidates) = by_key.remove(&d.key) else {
            actions.push(Action::Create { key: d.key.clone() });
            continue;
        };
        // Keep the best container: matching spec first, then running, then the name order.
        candidates.sort_by_key(|o| {
            (
                o.spec_hash.as_deref() != Some(d.spec_hash.as_str()),
                o.state != State::Running,
                o.name.clone(),
            )
        });
        let (keep, extra) = candidates.split_at(1);
        for o in extra {
            actions.push(Action::Remove {
                id: o.id.clone(),
                name: o.name.clone(),
                key: Some(d.key.clone()),
                reason: RemoveReason::Duplicate,
            });
        }
        let keep = keep[0];
        if keep.spec_hash.as_deref() != Some(d.spec_hash.as_str()) || keep.state == State::Dead {
            actions.push(Action::Recreate {
                key: d.key.clone(),
                old: keep.id.clone(),
            });
            continue;
        }
        let start = match &keep.state {
            State::Created => true,
            State::Exited { code } => d.restart.restarts_after(*code),
            State::Running | State::Paused | State::Restarting | State::Removing | State::Dead => {
                false
            }
        };
        if start {
            actions.push(Action::Start {
                key: d.key.clone(),
                id: keep.id.clone(),
            });
        }
    }

    let mut prune_refused = Vec::new();
    for o in orphans {
        if o.state == State::Removing {
            continue;
        }
        if desired.is_empty() && !allow_empty {
            prune_refused.push(o.name.clone());
            continue;
        }
        actions.push(Action::Remove {
            id: o.id.clone(),
            name: o.name.clone(),
            key: o.key.clone(),
            reason: RemoveReason::Orphan,
        });
    }
    Plan {
        actions,
        prune_refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Kind;
    use proptest::prelude::*;

    fn key(n: &str) -> ObjectKey {
        ObjectKey::new(Kind::Server, n)
    }

    fn want(n: &str, hash: &str) -> Desired {
        Desired {
            key: key(n),
            spec_hash: hash.into(),
            restart: RestartPolicy::Always,
        }
    }

    fn seen(id: &str, n: &str, hash: &str, state: State) -> Observed {
        Observed {
            id: id.into(),
            name: format!("dh_t_server_{n}"),
            key: Some(key(n)),
            spec_hash: Some(hash.into()),
            state,
            ports: vec![],
        }
    }

    #[test]
    fn missing_container_is_created() {
        let p = plan(&[want("web", "h1")], &[], false);
        assert_eq!(p.actions, [Action::Create { key: key("web") }]);
    }

    #[test]
    fn unchanged_running_container_gets_no_action() {
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Running)],
            false,
        );
        assert!(p.is_empty());
    }

    #[test]
    fn changed_spec_recreates_only_that_object() {
        let p = plan(
            &[want("web", "h2"), want("api", "a1")],
            &[
                seen("c1", "web", "h1", State::Running),
                seen("c2", "api", "a1", State::Running),
            ],
            false,
        );
        assert_eq!(
            p.actions,
            [Action::Recreate {
                key: key("web"),
                old: "c1".into()
            }]
        );
    }

    #[test]
    fn exited_container_is_started_per_restart_policy() {
        let exited = |code| seen("c1", "web", "h1", State::Exited { code: Some(code) });
        let with = |restart| Desired {
            restart,
            ..want("web", "h1")
        };
        let start = [Action::Start {
            key: key("web"),
            id: "c1".into(),
        }];
        assert_eq!(
            plan(&[with(RestartPolicy::Always)], &[exited(0)], false).actions,
            start
        );
        assert_eq!(
            plan(&[with(RestartPolicy::OnFailure)], &[exited(1)], false).actions,
            start
        );
        assert!(plan(&[with(RestartPolicy::OnFailure)], &[exited(0)], false).is_empty());
        assert!(plan(&[with(RestartPolicy::Never)], &[exited(1)], false).is_empty());
    }

    #[test]
    fn created_but_never_started_container_is_started() {
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Created)],
            false,
        );
        assert_eq!(
            p.actions,
            [Action::Start {
                key: key("web"),
                id: "c1".into()
            }]
        );
    }

    #[test]
    fn dead_container_is_recreated() {
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Dead)],
            false,
        );
        assert_eq!(
            p.actions,
            [Action::Recreate {
                key: key("web"),
                old: "c1".into()
            }]
        );
    }

    #[test]
    fn orphan_is_removed() {
        let p = plan(
            &[want("web", "h1")],
            &[
                seen("c1", "web", "h1", State::Running),
                seen("c2", "old", "h", State::Running),
            ],
            false,
        );
        assert!(
            matches!(&p.actions[..], [Action::Remove { id, reason: RemoveReason::Orphan, .. }] if id == "c2")
        );
    }

    #[test]
    fn container_with_incomplete_labels_is_an_orphan() {
        let mut o = seen("c9", "x", "h", State::Running);
        o.key = None;
        let p = plan(
            &[want("web", "h1")],
            &[seen("c1", "web", "h1", State::Running), o],
            false,
        );
        assert!(matches!(&p.actions[..], [Action::Remove { id, .. }] if id == "c9"));
    }

    #[test]
    fn duplicates_keep_the_matching_running_one() {
        let p = plan(
            &[want("web", "h1")],
            &[
                seen("old", "web", "h0", State::Running),
                seen("good", "web", "h1", State::Running),
            ],
            false,
        );
        assert!(
            matches!(&p.actions[..], [Action::Remove { id, reason: RemoveReason::Duplicate, .. }] if id == "old")
        );
    }

    #[test]
    fn empty_desired_state_prunes_nothing_without_allow_empty() {
        let obs = [seen("c1", "web", "h1", State::Running)];
        let p = plan(&[], &obs, false);
        assert!(p.is_empty());
        assert_eq!(p.prune_refused, ["dh_t_server_web"]);
        let p = plan(&[], &obs, true);
        assert_eq!(p.actions.len(), 1);
        assert!(p.prune_refused.is_empty());
    }

    /// Applies a plan the way a perfect engine would.
    fn apply(observed: &[Observed], plan: &Plan, desired: &[Desired]) -> Vec<Observed> {
        let mut out: Vec<Observed> = observed.to_vec();
        let hash_of = |k: &ObjectKey| {
            desired
                .iter()
                .find(|d| &d.key == k)
                .map(|d| d.spec_hash.clone())
        };
        let mut next = 0;
        for a in &plan.actions {
            match a {
                Action::Create { key } | Action::Recreate { key, .. } => {
                    if let Action::Recreate { old, .. } = a {
                        out.retain(|o| &o.id != old);
                    }
                    next += 1;
                    let hash = hash_of(key).unwrap_or_default();
                    out.push(seen(
                        &format!("new{next}"),
                        &key.name,
                        &hash,
                        State::Running,
                    ));
                }
                Action::Start { id, .. } => {
                    for o in out.iter_mut().filter(|o| &o.id == id) {
                        o.state = State::Running;
                    }
                }
                Action::Remove { id, .. } => out.retain(|o| &o.id != id),
            }
        }
        out
    }

    fn arb_state() -> impl Strategy<Value = State> {
        prop_oneof![
            Just(State::Running),
            Just(State::Created),
            Just(State::Dead),
            Just(State::Paused),
            (0i64..3).prop_map(|c| State::Exited { code: Some(c) }),
        ]
    }

    fn arb_policy() -> impl Strategy<Value = RestartPolicy> {
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never)
        ]
    }

    proptest! {
        #[test]
        fn applying_the_plan_yields_exactly_the_desired_set(
            names in proptest::collection::btree_map("[a-e]", (0u8..3, arb_policy()), 0..5),
            obs in proptest::collection::vec(("[a-g]", 0u8..3, arb_state()), 0..8),
            allow_empty in any::<bool>(),
        ) {
            let desired: Vec<Desired> = names.iter().map(|(n, (h, r))| Desired {
                key: key(n), spec_hash: format!("h{h}"), restart: *r,
            }).collect();
            let observed: Vec<Observed> = obs.iter().enumerate()
                .map(|(i, (n, h, s))| seen(&format!("c{i}"), n, &format!("h{h}"), s.clone()))
                .collect();
            let p = plan(&desired, &observed, allow_empty);
            let after = apply(&observed, &p, &desired);

            if desired.is_empty() && !allow_empty {
                // The guard: nothing removed at all.
                prop_assert_eq!(after.len(), observed.len());
                return Ok(());
            }
            let keys: BTreeSet<_> = after.iter().filter_map(|o| o.key.clone()).collect();
            let want: BTreeSet<_> = desired.iter().map(|d| d.key.clone()).collect();
            prop_assert_eq!(&keys, &want);
            prop_assert_eq!(after.len(), desired.len(), "one container per object");
            for d in &desired {
                let o = after.iter().find(|o| o.key.as_ref() == Some(&d.key)).expect("present");
                prop_assert_eq!(o.spec_hash.as_deref(), Some(d.spec_hash.as_str()));
                if let State::Exited { code } = o.state {
                    prop_assert!(!d.restart.restarts_after(code), "left exited against its policy");
                }
            }
            // Converged in one step: planning again finds nothing to do.
            prop_assert!(plan(&desired, &after, allow_empty).is_empty());
        }
    }
}
