//! Orphans: this instance's containers that no desired object claims any more.

use std::collections::BTreeSet;

use super::types::{Action, Desired, Plan, PlanOptions, RemoveReason};
use crate::engine::{Observed, State};
use crate::manifest::ObjectKey;

/// Removes orphans dependents first (an orphan that another orphan still depends on waits for
/// the next pass, when its dependent is gone), and none at all when the sources yielded no
/// objects and `--allow-empty` was not given.
pub(super) fn prune(desired: &[Desired], orphans: &[&Observed], opts: &PlanOptions, p: &mut Plan) {
    let needed: BTreeSet<&ObjectKey> = orphans.iter().flat_map(|o| o.depends_on.iter()).collect();
    for o in orphans.iter().copied() {
        if o.state == State::Removing {
            continue;
        }
        if desired.is_empty() && !opts.allow_empty {
            p.prune_refused.push(o.name.clone());
            continue;
        }
        if o.key.as_ref().is_some_and(|k| needed.contains(k)) {
            continue;
        }
        p.actions.push(Action::Remove {
            id: o.id.clone(),
            name: o.name.clone(),
            key: o.key.clone(),
            reason: RemoveReason::Orphan,
            volume: o.delete_volume.clone(),
        });
    }
}
