//! `dockhand sync`: reconcile until converged, then exit with a report.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::{parse_duration, print_manifest_errors, reconciler, ReconcileArgs};
use crate::controller::Backoff;
use crate::store::lock_state;

#[derive(Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    pub common: ReconcileArgs,
    /// Give up when not converged after this long.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// An action that failed this many passes in a row is not retried by `sync`.
const GIVE_UP_AFTER: u32 = 3;

pub async fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    super::common::warn_of_argv_credentials();
    let c = &args.common;
    let _lock = lock_state(&c.state.state)?;
    let (rec, sources) = reconciler(c).await?;
    crate::source::git::fetch_once(&sources.git).await;
    poll_images_once(&rec, &c.state.instance).await;
    let started = Instant::now();
    let deadline = started + args.timeout;
    const LAST_PASS_GRACE: Duration = Duration::from_secs(5);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
    let mut failures: HashMap<String, (u32, String)> = HashMap::new();
    let mut progress = Progress::new();

    loop {
        // The engine is listed while the manifests are read.
        let (snapshot, listed) = tokio::join!(sources.load(), rec.list_ahead());
        let snapshot = snapshot?;
        listed?;
        // A pass that the engine keeps waiting (calls have deadlines, but several add up) ends
        // with --timeout all the same.
        // The pass that starts at (or just before) the deadline still gets a few seconds, so
        // that a sync that merely ran out of time reports what is pending, not a silent engine.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(LAST_PASS_GRACE);
        let Ok(report) = tokio::time::timeout(left, rec.pass(&snapshot)).await else {
            anyhow::bail!(
                "not converged after {}: the engine did not answer in time",
                humantime::format_duration(args.timeout)
            );
        };
        let report = report?;
        // The bar stays up unless something is printed (redrawn, not recreated, every pass).
        let done_now = report.settled();
        if done_now || !report.outcomes.is_empty() || !report.network_actions.is_empty() {
            progress.clear();
        }
        for a in &report.network_actions {
            println!("{a}");
        }
        for o in &report.outcomes {
            match &o.result {
                Ok(_) => println!("{}: done", o.action.describe()),
                Err(e) => println!("{}: failed: {e}", o.action.describe()),
            }
        }
        let mut failed_now: HashMap<String, (u32, String)> = HashMap::new();
        for (a, e) in report.failures() {
            let id = a.describe();
            let n = failures.get(&id).map_or(0, |f| f.0) + 1;
            failed_now.insert(id, (n, e.to_string()));
        }
        failures = failed_now;

        let stuck = !failures.is_empty() && failures.values().all(|(n, _)| *n >= GIVE_UP_AFTER);
        let done = report.settled() || stuck || Instant::now() >= deadline;
        if !done {
            progress.show(&report);
        }
        if done {
            progress.clear();
            if report.missing_source {
                eprintln!(
                    "warning: manifests directory {} does not exist",
                    c.manifests.display()
                );
            }
            if !report.held.is_empty() {
                let held: Vec<String> = report.held.iter().map(ToString::to_string).collect();
                eprintln!(
                    "refused to prune {} object(s) whose source vanished or could not be read: {} (pass --allow-empty to remove them)",
                    held.len(),
                    held.join(", ")
                );
            }
            print_manifest_errors(&report.errors);
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if !report.foreign.is_empty() {
                eprintln!(
                    "left alone {} container(s) that another dockhand controller of this instance created (a different state file): {} (pass --take-over to replace them)",
                    report.foreign.len(),
                    report.foreign.join(", ")
                );
            }
            if !report.plan.prune_refused.is_empty() {
                eprintln!(
                    "refused to prune {} container(s) because the sources define no objects: {} (pass --allow-empty to remove them)",
                    report.plan.prune_refused.len(),
                    report.plan.prune_refused.join(", ")
                );
            }
            let took = humantime::format_duration(Duration::from_millis(
                started.elapsed().as_millis() as u64,
            ));
            // Held up objects are named whether or not the pass settled; at a deadline, so is
            // every object still on its way (a swarm update in progress, a health check
            // starting), so that "still pending" never ends in an empty list.
            let unsettled: Vec<&crate::store::Status> = report
                .statuses
                .iter()
                .filter(|st| st.phase.is_held_up() || !st.phase.is_settled())
                .collect();
            // A git source never fetched defines nothing yet: not a success.
            let unfetched: Vec<String> = sources
                .git
                .iter()
                .filter(|g| g.current().is_none())
                .map(crate::source::git::GitSource::describe)
                .collect();
            let ok = report.settled()
                && unfetched.is_empty()
                && !unsettled.iter().any(|st| st.phase.is_held_up())
                && report.plan.rolled_back.is_empty()
                && report.errors.is_empty()
                && report.plan.prune_refused.is_empty()
                && report.held.is_empty();
            // "converged" is said only with exit 0; otherwise every reason is listed.
            if ok {
                println!("converged: {} object(s) in {took}", report.desired.len());
            } else if report.settled() {
                eprintln!("not converged after {took}:");
            } else {
                eprintln!("not converged after {took}; still pending:");
                for a in &report.plan.actions {
                    let why = failures
                        .get(&a.describe())
                        .map(|f| f.1.as_str())
                        .unwrap_or("not done yet");
                    eprintln!("  {}: {why}", a.describe());
                }
            }
            for st in &unsettled {
                let key = st.key.as_ref().map(ToString::to_string).unwrap_or_default();
                eprintln!(
                    "  {key} is {}: {}",
                    st.phase,
                    st.message.as_deref().unwrap_or("")
                );
            }
            for (key, until) in &report.plan.monitoring {
                eprintln!(
                    "  {key} is to stay Ready until {} (update.monitor)",
                    crate::clock::rfc3339(*until)
                );
            }
            for (key, _) in &report.pending_prunes {
                eprintln!("  {key} is to be removed once --prune-delay ends");
            }
            for (key, why) in &report.plan.rolled_back {
                eprintln!("  {key} failed to roll out: {why}");
            }
            for g in &unfetched {
                eprintln!("  git source {g} has no commit yet (its fetch failed, above)");
            }
            if !report.errors.is_empty() {
                eprintln!(
                    "  {} manifest error(s) (above): their objects keep their last good spec",
                    report.errors.len()
                );
            }
            if !report.plan.prune_refused.is_empty() || !report.held.is_empty() {
                eprintln!("  a prune was refused (above)");
            }
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        if !failures.is_empty() {
            tokio::time::sleep(backoff.next_delay()).await;
        } else if report.converged() {
            // Nothing to do but wait: for a backoff to end, or for something the engine reports
            // (a dependency turning healthy or completing). Poll gently until then.
            let wait = match report.wake_at() {
                Some(at) => (at - crate::clock::now_millis()).clamp(0, 250),
                None => 250,
            };
            let wait = Duration::from_millis(wait as u64);
            tokio::time::sleep(wait.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

/// Progress while `sync` waits: a bar redrawn in place on a terminal (indicatif, which cuts the
/// line to the terminal's width so a redraw never leaves wrapped lines), otherwise a plain
/// line whenever the count changes.
struct Progress {
    tty: bool,
    bar: Option<indicatif::ProgressBar>,
    last: Option<(usize, usize)>,
}

impl Progress {
    fn new() -> Self {
        use std::io::IsTerminal;
        Progress {
            tty: std::io::stderr().is_terminal(),
            bar: None,
            last: None,
        }
    }

    fn show(&mut self, report: &crate::reconcile::PassReport) {
        let total = report.plan.verdicts.len();
        let settled = report
            .plan
            .verdicts
            .values()
            .filter(|v| v.phase.is_settled())
            .count();
        let waiting: Vec<String> = report
            .plan
            .verdicts
            .iter()
            .filter(|(_, v)| !v.phase.is_settled())
            .take(3)
            .map(|(k, v)| format!("{k} {}", v.phase.as_str()))
            .collect();
        // Every object settled, but removals (of what no manifest names any more) remain.
        let waiting: Vec<String> = if waiting.is_empty() {
            report
                .plan
                .actions
                .iter()
                .take(3)
                .map(|a| a.describe())
                .collect()
        } else {
            waiting
        };
        // And rollouts inside their monitor window.
        let waiting: Vec<String> = if waiting.is_empty() {
            report
                .plan
                .monitoring
                .iter()
                .take(3)
                .map(|(k, at)| {
                    format!(
                        "{k} to stay Ready until {} (update.monitor)",
                        crate::clock::rfc3339(*at)
                    )
                })
                .collect()
        } else {
            waiting
        };
        // And removals that wait out --prune-delay.
        let waiting = if waiting.is_empty() {
            report
                .pending_prunes
                .iter()
                .take(3)
                .map(|(k, _)| format!("removal of {k} (--prune-delay)"))
                .collect()
        } else {
            waiting
        };
        if self.tty {
            let bar = self.bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::with_draw_target(
                    Some(total as u64),
                    indicatif::ProgressDrawTarget::stderr(),
                );
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "[{bar:24}] {pos}/{len} settled  {wide_msg}",
                ) {
                    bar.set_style(style.progress_chars("#-"));
                }
                bar
            });
            bar.set_length(total as u64);
            bar.set_position(settled as u64);
            bar.set_message(waiting.join(", "));
        } else if self.last != Some((settled, total)) {
            // Nothing named to wait for (a removal held by --prune-delay): no empty list.
            if waiting.is_empty() {
                eprintln!("progress: {settled}/{total} settled");
            } else {
                eprintln!(
                    "progress: {settled}/{total} settled; waiting for {}",
                    waiting.join(", ")
                );
            }
        }
        self.last = Some((settled, total));
    }

    /// Erases the bar before other output.
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Asks the registry once about the images servers follow, as `up` does at its interval; says
/// what moved and what could not be checked.
async fn poll_images_once<R: crate::engine::Engine>(
    rec: &crate::reconcile::Reconciler<R>,
    instance: &str,
) {
    use crate::kinds::image::{events, poll_once};
    match poll_once(rec.engine(), rec.store(), instance).await {
        Ok(outcomes) => {
            let events = events(&outcomes, &mut HashMap::new());
            for e in &events {
                eprintln!("image: {}", e.message);
            }
            if let Err(e) = rec.store().append_events(instance, &events).await {
                eprintln!("warning: cannot record image updates: {e}");
            }
        }
        Err(e) => eprintln!("warning: cannot poll images: {e}"),
    }
}
