//! Rolling updates of replicated servers: at most one serving replica is replaced at a time.

use std::collections::BTreeMap;

use super::types::{Action, Desired, Plan, PlanOptions, RECHECK_MILLIS};
use crate::engine::{Health, Observed, State};
use crate::manifest::replicas::{replica_index, replica_of};
use crate::manifest::{Kind, ObjectKey, Phase};

/// Whether a container is doing its job: running, and healthy if it has a health check.
pub(super) fn serving(o: &Observed) -> bool {
    o.state == State::Running && matches!(o.health, None | Some(Health::Healthy))
}

/// Rolling updates: a replicated server's spec change replaces one serving replica at a time,
/// the next only once no other replica is on its way up, so the server never loses more than
/// one replica to an update. Replicas that do not serve anyway are replaced at once, and a new
/// spec that never gets Ready halts the rollout with the rest still on the old one.
pub(super) fn roll(
    desired: &[Desired],
    updates: &BTreeMap<ObjectKey, Option<Observed>>,
    actions: &mut BTreeMap<ObjectKey, Option<Action>>,
    p: &mut Plan,
    opts: &PlanOptions,
) {
    if updates.is_empty() {
        return;
    }
    let mut groups: BTreeMap<&str, Vec<&ObjectKey>> = BTreeMap::new();
    for d in desired.iter().filter(|d| d.key.kind == Kind::Server) {
        groups
            .entry(replica_of(&d.key.name))
            .or_default()
            .push(&d.key);
    }
    for members in groups.values().filter(|m| m.len() > 1) {
        let mut members = members.clone();
        members.sort_by_key(|k| replica_index(&k.name));
        // A replica on its way up (created, starting, or new and not Ready yet) comes first.
        let coming_up = members.iter().find(|k| {
            !updates.contains_key(**k)
                && p.verdicts
                    .get(**k)
                    .is_some_and(|v| !matches!(v.phase, Phase::Ready | Phase::Completed))
        });
        let mut next: Option<&ObjectKey> = coming_up.copied();
        for k in &members {
            let Some(Some(old)) = updates.get(*k) else {
                continue;
            };
            let Some(first) = next else {
                next = Some(k);
                continue;
            };
            actions.insert((*k).clone(), None);
            if let Some(v) = p.verdicts.get_mut(*k) {
                v.phase = Phase::Running;
                v.container = Some(old.clone());
                v.message = Some(format!(
                    "rolling update: on the old spec until {first} is Ready"
                ));
            }
            let at = opts.now + RECHECK_MILLIS;
            p.recheck_at = Some(p.recheck_at.map_or(at, |r| r.min(at)));
        }
    }
}
