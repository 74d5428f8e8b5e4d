//! Major version upgrades of managed databases. PostgreSQL's data directory is tied to its major
//! version, so a new major cannot start on the old volume: the old server's database is made
//! read-only and dumped, a new volume is initialised by the new image and the dump restored into
//! it (in one transaction) and counted, and only then does the database switch volumes; the old
//! volume is kept until `db upgrade NAME --finish`. Any failure leaves the old server running on
//! its untouched data (made writable again) and holds the new spec until the manifest changes.

use std::time::Duration;

use super::backup::{BackupError, Subject};
use crate::engine::labels;
use crate::engine::{Engine, Mount, SecretEnv};
use crate::manifest::fields::PullPolicy;

/// The major version in `PostgreSQL 15.18` or `postgres (PostgreSQL) 17.6 (Debian …)`.
pub fn major_of(text: &str) -> Option<u32> {
    let rest = &text[text.find("PostgreSQL")? + "PostgreSQL".len()..];
    let rest = rest.trim_start_matches([')', ' ']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Where the dump between the two versions lives: `dh_<instance>_<name>-upgrade`.
pub fn dump_volume(instance: &str, name: &str) -> String {
    labels::volume_name(instance, &format!("{name}-upgrade"))
}

/// The volume a database's data moves to for `major`: `dh_<instance>_<name>-data-pg<major>`.
pub fn new_volume(instance: &str, name: &str, major: u32) -> String {
    labels::volume_name(instance, &format!("{name}-data-pg{major}"))
}

/// The major version of the server in `image` (asked of the image itself).
pub async fn image_major<E: Engine>(
    engine: &E,
    instance: &str,
    image: &str,
) -> Result<u32, BackupError> {
    engine.ensure_image(image, PullPolicy::IfNotPresent).await?;
    let job = crate::engine::Job {
        name: format!(
            "dh_{instance}_job_version-{}",
            crate::manifest::short_hash(image.as_bytes())
        ),
        image: image.to_owned(),
        script: "postgres --version".into(),
        env: Vec::new(),
        secret_env: Vec::new(),
        mounts: Vec::new(),
        network_of: None,
        labels: crate::engine::job::job_labels(instance, "version"),
        upload: None,
        download: None,
        timeout: Duration::from_secs(120),
    };
    let out = engine.run_job(&job).await?;
    major_of(&out.stdout).ok_or_else(|| BackupError::Failed {
        what: "reading the version",
        name: image.to_owned(),
        why: format!("`postgres --version` said {:?}", out.last_words()),
    })
}

const TABLES: &str = "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace \
                      where c.relkind in ('r', 'p') and n.nspname not in ('pg_catalog', 'information_schema') \
                      and n.nspname not like 'pg_toast%'";

/// Makes the old database read-only (ending other sessions), dumps and verifies it, and
/// counts its tables (printed as `tables N`).
fn dump_script() -> String {
    format!(
        "set -eu\numask 077\n\
         psql -v ON_ERROR_STOP=1 -qAt -c \"ALTER DATABASE \\\"$PGDATABASE\\\" SET default_transaction_read_only = on\" \
         -c \"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()\" >/dev/null\n\
         rm -f /upgrade/dump /upgrade/dump.partial\n\
         pg_dump -Fc -f /upgrade/dump.partial\n\
         pg_restore --list /upgrade/dump.partial >/dev/null\n\
         mv /upgrade/dump.partial /upgrade/dump\n\
         echo \"tables $(psql -qAt -c \"{TABLES}\")\"\n"
    )
}

/// Makes the old database writable again (after a failed upgrade).
fn writable_script() -> String {
    "psql -v ON_ERROR_STOP=1 -qAt -c 'SET default_transaction_read_only = off' -c \"ALTER DATABASE \\\"$PGDATABASE\\\" RESET default_transaction_read_only\"\n".into()
}

/// Initialises the new volume with the new image (its own entrypoint, as the database's
/// container will run it), restores the dump in one transaction, counts the tables, and stops
/// the server cleanly.
fn restore_script() -> String {
    format!(
        "set -eu\n\
         docker-entrypoint.sh postgres >/tmp/server.log 2>&1 &\n\
         pid=$!\n\
         i=0\n\
         until pg_isready -q -h 127.0.0.1; do\n\
           i=$((i+1))\n\
           if [ $i -gt 240 ] || ! kill -0 $pid 2>/dev/null; then echo \"the new server did not start: $(tail -n 1 /tmp/server.log)\" >&2; exit 4; fi\n\
           sleep 0.5\n\
         done\n\
         pg_restore --exit-on-error --no-owner --no-privileges --single-transaction -d \"$PGDATABASE\" /upgrade/dump\n\
         echo \"tables $(psql -qAt -c \"{TABLES}\")\"\n\
         echo \"version $(psql -qAt -c 'select version()')\"\n\
         kill -INT $pid\n\
         wait $pid || true\n"
    )
}

fn tables(stdout: &str) -> Option<i64> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tables ")?.trim().parse().ok())
}

/// What an upgrade did: the volume the data is on now, and the tables it holds.
#[derive(Debug)]
pub struct Upgraded {
    pub volume: String,
    pub tables: i64,
}

/// Moves `subject`'s data (served now by its running container, major `from`) to a new volume
/// initialised by `image` (major `to`). On failure the old server runs on, writable again, and
/// the new volume is gone.
pub async fn upgrade<E: Engine>(
    engine: &E,
    subject: &Subject<'_>,
    current_volume: &str,
    image: &str,
    to: u32,
) -> Result<Upgraded, BackupError> {
    let instance = subject.instance;
    let name = &subject.object.name;
    let serving = subject.serving(engine).await?;
    let dump = Mount {
        volume: true,
        source: dump_volume(instance, name),
        target: "/upgrade".into(),
        read_only: false,
        relabel: None,
    };
    engine
        .ensure_volume(&dump.source, &labels::owner_labels(instance))
        .await?;
    let mut job = subject.job("upgrade-dump", dump_script(), &serving);
    job.mounts.push(dump.clone());
    let out = engine.run_job(&job).await?;
    let old_tables = tables(&out.stdout);
    let result = async {
        if !out.succeeded() {
            return Err(format!("dumping the old cluster: {}", out.last_words()));
        }
        let volume = new_volume(instance, name, to);
        if volume == current_volume {
            return Err(format!("the data is on {volume} already"));
        }
        // What an earlier attempt left is ours to replace.
        if engine
            .volume_labels(&volume)
            .await
            .map_err(|e| e.to_string())?
            .is_some_and(|l| labels::is_ours(&l, instance))
        {
            engine
                .remove_volume(&volume)
                .await
                .map_err(|e| e.to_string())?;
        }
        engine
            .ensure_volume(&volume, &labels::owner_labels(instance))
            .await
            .map_err(|e| e.to_string())?;
        let mut job = subject.job("upgrade-restore", restore_script(), &serving);
        job.image = image.to_owned();
        job.network_of = None;
        job.env.extend([
            format!(
                "POSTGRES_USER={}",
                super::database::user_name(subject.object, subject.spec)
            ),
            format!(
                "POSTGRES_DB={}",
                super::database::database_name(subject.object, subject.spec)
            ),
        ]);
        job.secret_env.push(SecretEnv {
            var: "POSTGRES_PASSWORD".into(),
            value: serving.password.clone(),
        });
        job.mounts.push(Mount {
            read_only: true,
            relabel: None,
            ..dump.clone()
        });
        job.mounts.push(Mount {
            volume: true,
            source: volume.clone(),
            target: super::database::DATA_DIR.into(),
            read_only: false,
            relabel: None,
        });
        let out = engine.run_job(&job).await.map_err(|e| e.to_string())?;
        if !out.succeeded() {
            let _ = engine.remove_volume(&volume).await;
            return Err(format!(
                "restoring into PostgreSQL {to}: {}",
                out.last_words()
            ));
        }
        let new_tables = tables(&out.stdout);
        if new_tables != old_tables || new_tables.is_none() {
            let _ = engine.remove_volume(&volume).await;
            return Err(format!(
                "the new cluster holds {} tables where the old one held {}",
                new_tables.map_or("?".into(), |n| n.to_string()),
                old_tables.map_or("?".into(), |n| n.to_string())
            ));
        }
        Ok(Upgraded {
            volume,
            tables: new_tables.unwrap_or(0),
        })
    }
    .await;
    match result {
        Ok(u) => Ok(u),
        Err(why) => {
            // The old server serves on, writable again.
            let job = subject.job("upgrade-undo", writable_script(), &serving);
            let undo = engine.run_job(&job).await;
            let undone = match undo {
                Ok(o) if o.succeeded() => String::new(),
                Ok(o) => format!(" (and making it writable again failed: {})", o.last_words()),
                Err(e) => format!(" (and making it writable again failed: {e})"),
            };
            Err(BackupError::Failed {
                what: "the major version upgrade",
                name: name.clone(),
                why: format!("{why}{undone}"),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_are_read_from_both_ways_postgres_says_its_version() {
        assert_eq!(major_of("PostgreSQL 15.18"), Some(15));
        assert_eq!(
            major_of("postgres (PostgreSQL) 17.6 (Debian 17.6-0+deb13u1)"),
            Some(17)
        );
        assert_eq!(major_of("PostgreSQL 9.6.24"), Some(9));
        assert_eq!(major_of("mysql 8"), None);
    }

    #[test]
    fn the_old_database_is_read_only_before_it_is_dumped() {
        let s = dump_script();
        assert!(s.find("read_only = on") < s.find("pg_dump"), "{s}");
        assert!(s.find("pg_restore --list") < s.find("mv "), "{s}");
    }
}
