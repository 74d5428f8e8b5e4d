//! Backups and restores of managed databases: `pg_dump` and `pg_restore` of the database's own
//! image, in a short-lived container that shares the database's network namespace (so it
//! reaches it on 127.0.0.1 whatever networks it joins). A backup is written under a temporary
//! name, verified with `pg_restore --list`, then renamed; only then are the oldest pruned, so a
//! failed backup never costs an old one. A restore runs in one transaction: a failure leaves the
//! database as it was.

use std::path::PathBuf;
use std::time::Duration;

use super::database::{database_name, user_name};
use crate::engine::job::{job_labels, Job, JobOutput};
use crate::engine::{labels, Engine, EngineError, Mount, SecretEnv, State};
use crate::manifest::database::{BackupTarget, DatabaseSpec};
use crate::manifest::{Kind, Object, ObjectKey};
use crate::store::{BackupRecord, DatabaseSecret};

/// Where a backup's files live inside its job container.
const MOUNT: &str = "/backup";

/// How long a backup or restore may run.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("database {name} is not running")]
    NotRunning { name: String },
    #[error("database {name} has no password yet (it was never created)")]
    NoSecret { name: String },
    #[error("backups of a swarm service's database are not supported yet")]
    Swarm,
    #[error("database {name}: {why}; nothing was read or written")]
    Refused { name: String, why: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{what} of database {name} failed: {why}")]
    Failed {
        what: &'static str,
        name: String,
        why: String,
    },
}

/// Where a backup goes: the manifest's target, or a file on this machine (`db backup -o`).
#[derive(Clone, Debug)]
pub enum Destination {
    Target(BackupTarget),
    Local(PathBuf),
}

/// Where a restore reads from: the newest backup in the manifest's target, the manifest's
/// `restoreFrom` file, or a file the operator named (`db restore --from`).
#[derive(Clone, Debug)]
pub enum Source {
    Latest(BackupTarget),
    RestoreFrom(PathBuf),
    Local(PathBuf),
}

/// The host policy a database's own paths (`backup.to.path`, `restoreFrom`) are checked
/// against before any job reads or writes them.
#[derive(Clone, Copy, Debug)]
pub struct Host<'a> {
    pub policy: &'a crate::policy::HostPolicy,
    pub manifests: Option<&'a std::path::Path>,
}

impl<'a> From<&'a crate::policy::RecordedPolicy> for Host<'a> {
    fn from(r: &'a crate::policy::RecordedPolicy) -> Host<'a> {
        Host {
            policy: &r.policy,
            manifests: r.manifests.as_deref(),
        }
    }
}

/// Everything a job needs to know about its database.
pub struct Subject<'a> {
    pub instance: &'a str,
    pub object: &'a Object,
    pub spec: &'a DatabaseSpec,
    pub secret: Option<&'a DatabaseSecret>,
    pub host: Host<'a>,
}

/// The database's running container, what it was made from, and its password: what a job
/// joins and runs (the server's own client tools, whatever the manifest says now).
pub(super) struct Serving {
    pub id: String,
    pub image: String,
    pub password: String,
}

impl Subject<'_> {
    fn name(&self) -> &str {
        &self.object.name
    }

    /// The one gate before a job touches a path the manifest named: every caller (the pass's
    /// seeding, the scheduler, the `db` verbs) comes through `backup` or `restore`, which ask
    /// it first. A database the host policy refuses has nothing read or written for it.
    fn admit(&self) -> Result<(), BackupError> {
        match self.host.policy.refusal(self.object, self.host.manifests) {
            None => Ok(()),
            Some(why) => Err(BackupError::Refused {
                name: self.name().to_owned(),
                why,
            }),
        }
    }

    /// The running container to join, its image, and the password.
    pub(super) async fn serving<E: Engine>(&self, engine: &E) -> Result<Serving, BackupError> {
        if engine.is_swarm() {
            return Err(BackupError::Swarm);
        }
        let secret = self.secret.ok_or_else(|| BackupError::NoSecret {
            name: self.name().to_owned(),
        })?;
        let key = ObjectKey::new(Kind::Database, self.name());
        let container = crate::engine::serving_container(engine, self.instance, &key)
            .await?
            .filter(|c| c.state == State::Running)
            .ok_or_else(|| BackupError::NotRunning {
                name: self.name().to_owned(),
            })?;
        Ok(Serving {
            image: container.image.unwrap_or_else(|| self.spec.image()),
            id: container.id,
            password: secret.password.clone(),
        })
    }

    /// A job in `serving`'s network namespace, of its image, logged in as the database's user.
    pub(super) fn job(&self, verb: &str, script: String, serving: &Serving) -> Job {
        Job {
            name: format!("dh_{}_job_{}-{verb}", self.instance, self.name()),
            image: serving.image.clone(),
            script,
            env: vec![
                "PGHOST=127.0.0.1".into(),
                format!("PGPORT={}", super::database::CONTAINER_PORT),
                format!("PGUSER={}", user_name(self.object, self.spec)),
                format!("PGDATABASE={}", database_name(self.object, self.spec)),
            ],
            secret_env: vec![SecretEnv {
                var: "PGPASSWORD".into(),
                value: serving.password.clone(),
            }],
            mounts: Vec::new(),
            network_of: Some(serving.id.clone()),
            labels: job_labels(self.instance, &format!("{verb}/{}", self.name())),
            upload: None,
            download: None,
            timeout: JOB_TIMEOUT,
        }
    }
}

/// The mount of a backup target, and how records name a file in it.
fn target_mount(instance: &str, to: &BackupTarget) -> (Mount, String) {
    match (&to.volume, &to.path) {
        (Some(v), _) => {
            let name = labels::volume_name(instance, &v.0);
            let shown = format!("volume:{name}");
            (
                Mount {
                    volume: true,
                    source: name,
                    target: MOUNT.into(),
                    read_only: false,
                    relabel: None,
                },
                shown,
            )
        }
        (None, path) => {
            let path = path.clone().unwrap_or_default();
            (
                Mount {
                    volume: false,
                    source: path.clone(),
                    target: MOUNT.into(),
                    read_only: false,
                    relabel: None,
                },
                path,
            )
        }
    }
}

/// `orders-20261205T030000Z.dump`: sorts by time, and names its database.
pub fn file_name(name: &str, at_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(at_ms.max(0) as u64);
    let stamp: String = humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{name}-{stamp}.dump")
}

/// The shell pattern (for `grep -E`) of a database's backup files.
fn file_pattern(name: &str) -> String {
    format!("^{name}-[0-9]{{8}}T[0-9]{{6}}Z\\.dump$")
}

/// Dumps, verifies and keeps `keep` (pruning the oldest), printing `size N` and `pruned F`.
fn backup_script(dir: &str, file: &str, keep: Option<u32>, name: &str) -> String {
    let prune = keep.map_or_else(String::new, |keep| {
        format!(
            "ls -1 {dir} | grep -E '{pattern}' | sort -r | tail -n +{next} | while read -r old; do rm -f \"{dir}/$old\" && echo \"pruned $old\"; done\n",
            pattern = file_pattern(name),
            next = keep + 1
        )
    });
    // A job killed mid-dump (SIGKILL skips the trap) left its `.partial`: one backup of this
    // database runs at a time (jobs are named by it), so any such file is stale.
    format!(
        "set -eu\numask 077\nf='{dir}/{file}'\n\
         for stale in '{dir}/{name}-'*.dump.partial; do [ -e \"$stale\" ] && rm -f \"$stale\" && echo \"removed stale $stale\"; done; true\n\
         trap 'rm -f \"$f.partial\"' EXIT\n\
         pg_dump -Fc -f \"$f.partial\"\n\
         pg_restore --list \"$f.partial\" >/dev/null\n\
         mv \"$f.partial\" \"$f\"\n\
         echo \"size $(wc -c < \"$f\")\"\n{prune}"
    )
}

/// Finds the file (the newest backup when `latest`), checks it, and restores it in one
/// transaction over what the database holds.
fn restore_script(file: Option<&str>, name: &str) -> String {
    let pick = match file {
        Some(f) => format!("f='{f}'\n"),
        None => format!(
            "f=$(ls -1 {MOUNT} | grep -E '{}' | sort | tail -n 1)\n\
             [ -n \"$f\" ] || {{ echo \"no backup of {name} in the target\" >&2; exit 3; }}\n\
             f=\"{MOUNT}/$f\"\n",
            file_pattern(name)
        ),
    };
    format!(
        "set -eu\n{pick}\
         pg_restore --list \"$f\" >/dev/null\n\
         pg_restore --clean --if-exists --no-owner --no-privileges --single-transaction -d \"$PGDATABASE\" \"$f\"\n\
         echo \"restored $(basename \"$f\")\"\n"
    )
}

fn now_ms() -> i64 {
    crate::clock::now_millis()
}

/// Takes one backup to `dest` and says how it went (never an `Err`: a failure is a record).
pub async fn backup<E: Engine>(
    engine: &E,
    subject: &Subject<'_>,
    dest: &Destination,
) -> BackupRecord {
    let started = now_ms();
    let clock = std::time::Instant::now();
    let name = subject.name().to_owned();
    let file = file_name(&name, started);
    let result = run_backup(engine, subject, dest, &file).await;
    let duration_ms = clock.elapsed().as_millis() as i64;
    let shown = match dest {
        Destination::Target(to) => format!("{}/{file}", target_mount(subject.instance, to).1),
        Destination::Local(path) => path.display().to_string(),
    };
    match result {
        Ok(out) => BackupRecord {
            name,
            started_at: started,
            duration_ms,
            file: shown,
            size_bytes: out
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("size ")?.trim().parse().ok())
                .unwrap_or(0),
            error: None,
        },
        Err(e) => BackupRecord {
            name,
            started_at: started,
            duration_ms,
            file: shown,
            size_bytes: 0,
            error: Some(e.to_string()),
        },
    }
}

/// Takes a backup and records it, with an event (`backed-up` or `backup-failed`).
pub async fn take<E: Engine>(
    engine: &E,
    store: &crate::store::Store,
    subject: &Subject<'_>,
    dest: &Destination,
) -> Result<BackupRecord, crate::store::StoreError> {
    let r = backup(engine, subject, dest).await;
    store.add_backup(subject.instance, &r).await?;
    let key = Some(ObjectKey::new(Kind::Database, subject.name()));
    let event = match &r.error {
        None => crate::store::NewEvent {
            key,
            reason: "backed-up",
            message: format!(
                "backup {} verified ({} bytes in {})",
                r.file,
                r.size_bytes,
                humantime::format_duration(Duration::from_millis(r.duration_ms as u64))
            ),
        },
        Some(e) => crate::store::NewEvent {
            key,
            reason: "backup-failed",
            message: e.clone(),
        },
    };
    store.append_events(subject.instance, &[event]).await?;
    Ok(r)
}

/// When a database's next scheduled backup is due: the schedule's first time after its last
/// attempt, or after `since` (the controller's start) when it has none or an older one. A
/// controller that was down at a scheduled time takes that backup once when it is back.
pub fn next_due(
    schedule: &crate::manifest::cron::Cron,
    last: Option<i64>,
    since: i64,
) -> Option<i64> {
    let base = last.unwrap_or(since);
    schedule.next_after(base)
}

/// Takes each database's scheduled backups while the controller runs, one at a time (a dump
/// loads the host), and notifies each failure.
pub async fn keep_backing_up<E: Engine>(
    reconciler: std::sync::Arc<crate::reconcile::Reconciler<E>>,
    store: crate::store::Store,
    instance: String,
    notifier: Option<crate::notify::Notifier>,
    recorded: crate::policy::RecordedPolicy,
) {
    let since = now_ms();
    let host = Host::from(&recorded);
    loop {
        if let Err(e) = backup_due(
            reconciler.engine(),
            &store,
            &instance,
            since,
            notifier.as_ref(),
            host,
        )
        .await
        {
            tracing::warn!("cannot run scheduled backups: {e}");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

async fn backup_due<E: Engine>(
    engine: &E,
    store: &crate::store::Store,
    instance: &str,
    since: i64,
    notifier: Option<&crate::notify::Notifier>,
    host: Host<'_>,
) -> Result<(), crate::store::StoreError> {
    // Every tick reads the databases only, not every object of the instance.
    let objects = store.objects_of_kind(instance, Kind::Database).await?;
    let scheduled: Vec<(&Object, &DatabaseSpec, &crate::manifest::database::Backup)> = objects
        .iter()
        .filter_map(|s| match &s.object.spec {
            crate::manifest::Spec::Database(d) => Some((&s.object, d, d.backup.as_ref()?)),
            _ => None,
        })
        .collect();
    if scheduled.is_empty() {
        return Ok(());
    }
    let last: std::collections::HashMap<String, i64> = store
        .last_backups(instance)
        .await?
        .into_iter()
        .map(|(last, _)| (last.name, last.started_at))
        .collect();
    let secrets = store.database_secrets().await?;
    for (object, spec, b) in scheduled {
        let due = next_due(&b.schedule, last.get(&object.name).copied(), since);
        if due.is_none_or(|at| at > now_ms()) {
            continue;
        }
        let secret = secrets
            .iter()
            .find(|(i, s)| i == instance && s.name == object.name)
            .map(|(_, s)| s);
        let subject = Subject {
            instance,
            object,
            spec,
            secret,
            host,
        };
        let r = take(engine, store, &subject, &Destination::Target(b.to.clone())).await?;
        match (&r.error, notifier) {
            (Some(e), Some(n)) => {
                tracing::warn!("{e}");
                n.object_event(
                    &ObjectKey::new(Kind::Database, &object.name),
                    "backup-failed",
                    e,
                );
            }
            (Some(e), None) => tracing::warn!("{e}"),
            (None, _) => tracing::info!("database/{}: backup {} verified", object.name, r.file),
        }
    }
    Ok(())
}

async fn run_backup<E: Engine>(
    engine: &E,
    subject: &Subject<'_>,
    dest: &Destination,
    file: &str,
) -> Result<JobOutput, BackupError> {
    if matches!(dest, Destination::Target(to) if to.path.is_some()) {
        subject.admit()?;
    }
    let serving = subject.serving(engine).await?;
    let name = subject.name();
    let job = match dest {
        Destination::Target(to) => {
            let (mount, _) = target_mount(subject.instance, to);
            if mount.volume {
                engine
                    .ensure_volume(&mount.source, &labels::owner_labels(subject.instance))
                    .await?;
            }
            let keep = subject.spec.backup.as_ref().map_or(7, |b| b.keep);
            let script = backup_script(MOUNT, file, Some(keep), name);
            let mut job = subject.job("backup", script, &serving);
            job.mounts.push(mount);
            job
        }
        Destination::Local(path) => {
            let script = backup_script("/tmp", file, None, name);
            let mut job = subject.job("backup", script, &serving);
            job.download = Some((format!("/tmp/{file}"), path.clone()));
            job
        }
    };
    finished("backup", name, engine.run_job(&job).await?)
}

/// Restores `source` into the database; returns the file restored.
pub async fn restore<E: Engine>(
    engine: &E,
    subject: &Subject<'_>,
    source: &Source,
) -> Result<String, BackupError> {
    match source {
        Source::Latest(to) if to.path.is_some() => subject.admit()?,
        Source::RestoreFrom(_) => subject.admit()?,
        _ => {}
    }
    if let Source::Latest(to) = source {
        // Mounting a volume that does not exist makes the engine create it, unlabelled, and
        // every later backup then refuses it as someone else's: it is created as ours first.
        let (mount, _) = target_mount(subject.instance, to);
        if mount.volume {
            engine
                .ensure_volume(&mount.source, &labels::owner_labels(subject.instance))
                .await?;
        }
    }
    let serving = subject.serving(engine).await?;
    let name = subject.name();
    let job = match source {
        Source::Latest(to) => {
            let (mut mount, _) = target_mount(subject.instance, to);
            mount.read_only = true;
            let mut job = subject.job("restore", restore_script(None, name), &serving);
            job.mounts.push(mount);
            job
        }
        Source::RestoreFrom(path) | Source::Local(path) => {
            let base = path.file_name().map_or_else(
                || "restore.dump".to_owned(),
                |n| n.to_string_lossy().into_owned(),
            );
            let inside = format!("/tmp/{base}");
            let mut job = subject.job("restore", restore_script(Some(&inside), name), &serving);
            job.upload = Some((path.clone(), "/tmp".into()));
            job
        }
    };
    let out = finished("restore", name, engine.run_job(&job).await?)?;
    Ok(out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("restored ").map(str::to_owned))
        .unwrap_or_default())
}

fn finished(what: &'static str, name: &str, out: JobOutput) -> Result<JobOutput, BackupError> {
    if out.succeeded() {
        Ok(out)
    } else {
        Err(BackupError::Failed {
            what,
            name: name.to_owned(),
            why: out.last_words(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_files_sort_by_time_and_name_their_database() {
        let f = file_name("orders", 1_796_439_600_000);
        assert_eq!(f, "orders-20261205T030000Z.dump");
        assert!(file_name("orders", 1_796_439_600_000) < file_name("orders", 1_796_526_000_000));
    }

    #[test]
    fn a_backup_is_verified_before_it_replaces_anything_and_pruning_comes_last() {
        let s = backup_script("/backup", "o-1.dump", Some(3), "o");
        let dump = s.find("pg_dump").expect("dump");
        let verify = s.find("pg_restore --list").expect("verify");
        let rename = s.find("mv ").expect("rename");
        let prune = s.find("rm -f \"/backup/$old\"").expect("prune");
        assert!(dump < verify && verify < rename && rename < prune, "{s}");
        assert!(s.contains("tail -n +4"), "{s}");
        // A `.partial` a killed job left is removed before the new dump starts.
        let stale = s
            .find("'/backup/o-'*.dump.partial")
            .expect("stale partials removed");
        assert!(stale < dump, "{s}");
        assert!(!backup_script("/tmp", "o-1.dump", None, "o").contains("$old"));
    }

    #[tokio::test]
    async fn a_scheduled_backup_to_a_path_the_policy_refuses_never_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(&dir.path().join("state.db"))
            .await
            .expect("store");
        let objects = crate::manifest::parse_str(
            "apiVersion: dockhand/v1\nkind: Database\nmetadata: {name: evil}\nspec:\n  backup: {schedule: '* * * * *', to: {path: /srv/rootonly}}\n",
            "db.yaml",
            Some(dir.path()),
        )
        .expect("parses");
        store
            .apply_desired("i", &[], &objects, &[], true)
            .await
            .expect("store");
        let policy = crate::policy::HostPolicy::default();
        let host = Host {
            policy: &policy,
            manifests: Some(dir.path()),
        };
        backup_due(
            &crate::engine::fake::FakeEngine::new(),
            &store,
            "i",
            0,
            None,
            host,
        )
        .await
        .expect("tick");
        let last = store.last_backups("i").await.expect("read");
        let (record, _) = last.first().expect("an attempt is recorded");
        let error = record.error.as_deref().expect("refused");
        assert!(error.contains("refused by the host policy"), "{error}");
        assert!(error.contains("nothing was read or written"), "{error}");
    }
}
