//! Failed rollouts: a new revision that does not become Ready within `update.monitor` goes
//! back to the last revision that was Ready (`update.failureAction: Rollback`), once per
//! failed revision. Decided here, after dependencies had their say, from the final phases.

use super::types::{Desired, Plan, PlanOptions, RollbackPlan, Transition};
use crate::clock::Millis;
use crate::manifest::Phase;

pub(super) fn watch(desired: &[Desired], opts: &PlanOptions, p: &mut Plan) {
    for d in desired {
        let Some(v) = p.verdicts.get_mut(&d.key) else {
            continue;
        };
        if let Some(why) = &d.rolled_back {
            p.rolled_back.push((d.key.clone(), why.clone()));
            if v.message.is_none() {
                v.message = Some(why.clone());
            }
        }
        let ready = matches!(v.phase, Phase::Ready | Phase::Completed);
        let lc = &mut v.lifecycle;
        // Not the revision's doing: nothing to judge it by.
        if matches!(v.phase, Phase::Stopped | Phase::Blocked | Phase::Invalid) {
            continue;
        }
        let judged = d.rollback_after.filter(|_| d.rolled_back.is_none());
        let Some(monitor) = judged else {
            if ready {
                lc.ready_revision = Some(d.revision.clone());
                lc.rollout = None;
            }
            continue;
        };
        match lc.ready_revision.as_deref() {
            Some(r) if r == d.revision => {
                lc.rollout = None;
                continue;
            }
            // A first rollout has nothing to go back to.
            None => {
                if ready {
                    lc.ready_revision = Some(d.revision.clone());
                }
                continue;
            }
            Some(_) => {}
        }
        let since = match &lc.rollout {
            Some((rev, since)) if *rev == d.revision => *since,
            _ => {
                lc.rollout = Some((d.revision.clone(), opts.now));
                opts.now
            }
        };
        let due = since + monitor.as_millis() as Millis;
        // A failure within the window fails the rollout at once (as Swarm's monitor does); a
        // revision that is Ready when the window ends, with no exit on the way, is accepted.
        // The run history counts only once it is the new revision's container's.
        let current = v
            .container
            .as_ref()
            .is_some_and(|c| c.spec_hash.as_deref() == Some(d.spec_hash.as_str()));
        let failed = matches!(
            v.phase,
            Phase::CrashLoopBackOff | Phase::Failed | Phase::Unhealthy
        ) || current
            && (lc.restart_count > 0 || lc.last_exit_code.is_some_and(|c| c != 0));
        if !failed && opts.now < due {
            p.recheck_at = Some(p.recheck_at.map_or(due, |t| t.min(due)));
            p.monitoring.push((d.key.clone(), due));
            continue;
        }
        if !failed && ready && current {
            lc.ready_revision = Some(d.revision.clone());
            lc.rollout = None;
            continue;
        }
        let how = match (&v.message, lc.last_exit_code.filter(|c| current && *c != 0)) {
            (_, Some(code)) => format!("exited with code {code}"),
            (Some(m), None) => format!("{}: {m}", v.phase),
            (None, None) => v.phase.to_string(),
        };
        let reason = if failed {
            format!(
                "failing within its {} monitor ({how})",
                humantime::format_duration(monitor)
            )
        } else {
            format!(
                "not Ready within {} ({how})",
                humantime::format_duration(monitor)
            )
        };
        let Some(good) = lc.ready_revision.clone() else {
            continue;
        };
        p.transitions.push(Transition {
            key: d.key.clone(),
            reason: "rollback",
            message: format!("{} rolled back: its new spec was {reason}", d.key),
        });
        p.rollbacks.push(RollbackPlan {
            key: d.key.clone(),
            from: d.revision.clone(),
            to: good,
            reason,
        });
    }
}
