//! The pure planner: desired objects, one engine listing and the clock in; actions, phases and
//! lifecycle records out.
//!
//! No I/O happens here, so every decision (what is recreated, what is left alone, when a
//! crashing container may restart, what the empty-source guard holds back) is unit- and
//! property-tested without an engine and without sleeping. A plan is made in four stages, one
//! file each: every object on its own (`object`), rolling updates across replicas (`rollout`),
//! dependency gates (`deps`), and the removal of orphans (`orphans`).

mod deps;
mod object;
mod orphans;
mod rollback;
mod rollout;
mod types;

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::Observed;
use crate::manifest::ObjectKey;
pub use crate::manifest::Phase;
pub use types::{
    Action, Dep, Desired, Plan, PlanOptions, Readiness, RemoveReason, RollbackPlan, Transition,
    Verdict,
};

/// Plans the actions that make `observed` match `desired`.
///
/// Containers whose spec hash matches and that run (or rightly stay stopped) get no action,
/// so a no-op pass touches nothing.
pub fn plan(desired: &[Desired], observed: &[Observed], opts: PlanOptions) -> Plan {
    let mut by_key: BTreeMap<&ObjectKey, Vec<&Observed>> = BTreeMap::new();
    let mut orphans: Vec<&Observed> = Vec::new();
    let wanted: BTreeSet<&ObjectKey> = desired.iter().map(|d| &d.key).collect();
    for o in observed {
        match &o.key {
            Some(k) if wanted.contains(k) => by_key.entry(k).or_default().push(o),
            _ => orphans.push(o),
        }
    }

    let mut p = Plan::default();
    let (mut actions, updates) = object::plan_objects(desired, by_key, &opts, &mut p);
    rollout::roll(desired, &updates, &mut actions, &mut p, &opts);
    deps::gate(desired, actions, &mut p);
    rollback::watch(desired, &opts, &mut p);
    orphans::prune(desired, &orphans, &opts, &mut p);
    p
}

#[cfg(test)]
mod tests;
