//! Objects as users see them: spec, status, run history, report and connection, with the
//! selectors that filter them. One shape for `get -o json`, the HTTP API and the remote CLI.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::rfc3339;
use crate::manifest::{Kind, Object, Spec};
use crate::store::{DatabaseSecret, Status, Store, StoreError};

/// What a sync would do: `dockhand diff` prints it, `GET /api/v1/plan` returns it.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    /// Manifest errors; the objects they touch keep their last good spec.
    pub errors: Vec<crate::manifest::ManifestError>,
    /// Networks that would be created, recreated or removed.
    pub networks: Vec<String>,
    /// Container actions, in the order they would run.
    pub actions: Vec<String>,
    /// Containers a prune would remove but the empty-source guard keeps.
    pub prune_refused: Vec<String>,
}

impl PlanView {
    pub fn new(report: &crate::reconcile::PassReport) -> Self {
        Self {
            errors: report.errors.clone(),
            networks: report.network_actions.clone(),
            actions: report.plan.actions.iter().map(|a| a.describe()).collect(),
            prune_refused: report.plan.prune_refused.clone(),
        }
    }

    /// Whether a sync would change nothing on the engine.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.actions.is_empty()
    }
}

/// One object as `get` and the API show it: this shape is part of the CLI and API contract.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub kind: Kind,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub source: String,
    /// Line of `metadata.name` in the source.
    pub line: u64,
    /// The git commit its file was read at (git sources only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub generation: i64,
    pub spec_hash: String,
    pub last_error: Option<String>,
    pub spec: Spec,
    pub status: StatusView,
    /// What the workload reported about itself (`PATCH .../report`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionView>,
    /// A database's data volume, and the one it was on before its last major version upgrade
    /// (kept until `db upgrade --finish`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_volume: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_data_volume: Option<String>,
    /// A database's backups: the last attempt and the last verified one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups: Option<BackupsView>,
}

/// What `describe` and the API say of a database's backups.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<BackupView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<BackupView>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    pub at: String,
    pub file: String,
    pub size_bytes: i64,
    pub duration_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<crate::store::BackupRecord> for BackupView {
    fn from(r: crate::store::BackupRecord) -> Self {
        BackupView {
            at: rfc3339(r.started_at),
            file: r.file,
            size_bytes: r.size_bytes,
            duration_ms: r.duration_ms,
            error: r.error,
        }
    }
}

/// How to reach a database from this host. The password only when secrets are asked for.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionView {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Status as users see it: the recorded status plus the run history they care about.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    #[serde(flatten)]
    pub status: Status,
    pub restart_count: u32,
    pub last_exit_code: Option<i64>,
    pub next_retry_at: Option<String>,
    /// `starting`, `healthy` or `unhealthy`; absent without a health check.
    pub health: Option<String>,
    /// When the current run started.
    pub started_at: Option<String>,
}

impl From<Status> for StatusView {
    fn from(status: Status) -> Self {
        let l = &status.lifecycle;
        StatusView {
            started_at: l.started_at.map(rfc3339),
            restart_count: l.restart_count,
            last_exit_code: l.last_exit_code,
            next_retry_at: l.next_retry_at.map(rfc3339),
            health: l.health.clone(),
            status,
        }
    }
}

/// The connection of a database object, if it has a secret yet: (connection, url, password).
pub fn connection(
    object: &Object,
    secrets: &[(String, DatabaseSecret)],
    instance: &str,
    show_secrets: bool,
) -> Option<(crate::kinds::database::Connection, String, Option<String>)> {
    let Spec::Database(d) = &object.spec else {
        return None;
    };
    let (_, secret) = secrets
        .iter()
        .find(|(i, s)| i == instance && s.name == object.name)?;
    let conn = crate::kinds::database::Connection::from_host(object, d, secret);
    let password = show_secrets.then(|| secret.password.clone());
    let url = conn.url(password.as_deref());
    Some((conn, url, password))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    #[error("invalid selector term {term:?}: {reason}")]
    Term { term: String, reason: &'static str },
}

/// One term of a selector: `key=value`, `key==value`, `key!=value`, `key` or `!key`.
/// Keys starting with `report.` address the object's report (a dotted path into its JSON, where
/// `*` stands for any key or index: `report.matches.*.ready=true` asks for any ready match).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    Absent(String),
}

/// A kubectl-style equality selector: every term must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(pub Vec<Term>);

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let bad = |reason| SelectorError::Term {
                term: raw.to_owned(),
                reason,
            };
            let term = if let Some((k, v)) = raw.split_once("!=") {
                Term::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                Term::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some(k) = raw.strip_prefix('!') {
                Term::Absent(k.trim().to_owned())
            } else {
                Term::Exists(raw.to_owned())
            };
            let key = match &term {
                Term::Equals(k, _) | Term::NotEquals(k, _) | Term::Exists(k) | Term::Absent(k) => k,
            };
            if key.is_empty() {
                return Err(bad("expected key=value, key!=value, key or !key"));
            }
            if key.contains(char::is_whitespace) {
                return Err(bad("a key cannot contain spaces"));
            }
            terms.push(term);
        }
        Ok(Selector(terms))
    }

    /// Adds `key=value` terms (the API's `?report.mode=skywars`).
    pub fn and_equals(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        self.0
            .extend(pairs.into_iter().map(|(k, v)| Term::Equals(k, v)));
        self
    }

    pub fn matches(
        &self,
        labels: &BTreeMap<String, String>,
        report: Option<&serde_json::Value>,
    ) -> bool {
        self.0.iter().all(|t| {
            // Every value the key names: at most one for a label, any number through `*`.
            let values = |k: &str| -> Vec<String> {
                match k.strip_prefix("report.") {
                    Some(path) => report.map_or_else(Vec::new, |r| {
                        let parts: Vec<&str> = path.split('.').collect();
                        let mut found = Vec::new();
                        report_fields(r, &parts, &mut found);
                        found
                    }),
                    None => labels.get(k).cloned().into_iter().collect(),
                }
            };
            match t {
                Term::Equals(k, v) => values(k).contains(v),
                Term::NotEquals(k, v) => !values(k).contains(v),
                Term::Exists(k) => !values(k).is_empty(),
                Term::Absent(k) => values(k).is_empty(),
            }
        })
    }
}

/// The report's fields at a dotted path (`*` matches every key or index), as text: strings
/// bare, other values as JSON, nulls left out.
fn report_fields(v: &serde_json::Value, path: &[&str], found: &mut Vec<String>) {
    use serde_json::Value;
    let Some((part, rest)) = path.split_first() else {
        match v {
            Value::Null => {}
            Value::String(s) => found.push(s.clone()),
            other => found.push(other.to_string()),
        }
        return;
    };
    match (v, *part) {
        (Value::Object(m), "*") => m.values().for_each(|c| report_fields(c, rest, found)),
        (Value::Array(a), "*") => a.iter().for_each(|c| report_fields(c, rest, found)),
        (Value::Object(m), key) => {
            if let Some(c) = m.get(key) {
                report_fields(c, rest, found);
            }
        }
        (Value::Array(a), index) => {
            if let Some(c) = index.parse::<usize>().ok().and_then(|i| a.get(i)) {
                report_fields(c, rest, found);
            }
        }
        _ => {}
    }
}

/// Which objects to show.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub kind: Option<Kind>,
    pub name: Option<String>,
    pub selector: Selector,
    pub phase: Option<String>,
    pub show_secrets: bool,
}

/// The objects of `instance` that match `q`, sorted by kind and name.
pub async fn items(store: &Store, instance: &str, q: &Query) -> Result<Vec<Item>, StoreError> {
    let statuses = store.statuses_by_key(instance).await?;
    let secrets = store.database_secrets().await?;
    let mut reports = store.reports(instance).await?;
    let mut backups: std::collections::HashMap<String, _> = store
        .last_backups(instance)
        .await?
        .into_iter()
        .map(|(last, ok)| (last.name.clone(), (last, ok)))
        .collect();
    let mut items: Vec<Item> = store
        .objects(instance)
        .await?
        .into_iter()
        .filter(|s| q.kind.is_none_or(|k| s.object.spec.kind() == k))
        .filter(|s| q.name.as_deref().is_none_or(|n| s.object.name == n))
        .filter_map(|s| {
            let key = s.object.key();
            let report = reports.remove(&key);
            if !q.selector.matches(&s.object.labels, report.as_ref()) {
                return None;
            }
            let status = statuses
                .get(&key)
                .cloned()
                .unwrap_or_else(|| Status::pending(key));
            if q.phase
                .as_deref()
                .is_some_and(|p| p != status.phase.as_str())
            {
                return None;
            }
            let connection = connection(&s.object, &secrets, instance, q.show_secrets).map(
                |(c, url, password)| ConnectionView {
                    host: c.host,
                    port: c.port,
                    database: c.database,
                    user: c.user,
                    url,
                    password,
                },
            );
            let backups = match &s.object.spec {
                Spec::Database(d) => {
                    let (last, ok) = backups
                        .remove(&s.object.name)
                        .map_or((None, None), |(l, o)| (Some(l), o));
                    (d.backup.is_some() || last.is_some()).then(|| BackupsView {
                        schedule: d.backup.as_ref().map(|b| b.schedule.as_str().to_owned()),
                        last: last.map(Into::into),
                        last_success: ok.map(Into::into),
                    })
                }
                _ => None,
            };
            let secret = secrets
                .iter()
                .find(|(i, x)| i == instance && x.name == s.object.name)
                .map(|(_, x)| x);
            let (data_volume, previous_data_volume) = match &s.object.spec {
                Spec::Database(_) => (
                    Some(crate::kinds::database::data_volume(
                        instance,
                        &s.object.name,
                        secret,
                    )),
                    secret.and_then(|x| x.old_volume.clone()),
                ),
                _ => (None, None),
            };
            Some(Item {
                connection,
                backups,
                data_volume,
                previous_data_volume,
                report,
                kind: s.object.spec.kind(),
                name: s.object.name.clone(),
                labels: s.object.labels.clone(),
                source: s.object.source.clone(),
                line: s.object.line,
                commit: s.object.commit.clone(),
                generation: s.generation,
                spec_hash: s.spec_hash,
                last_error: s.last_error,
                spec: s.object.spec,
                status: status.into(),
            })
        })
        .collect();
    items.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_terms_all_must_hold() {
        let s = Selector::parse("mode=skywars, tier!=test,region,!canary").expect("parses");
        assert_eq!(s.0.len(), 4);
        let l = labels(&[("mode", "skywars"), ("region", "eu")]);
        assert!(s.matches(&l, None));
        let test = labels(&[("mode", "skywars"), ("region", "eu"), ("tier", "test")]);
        assert!(!s.matches(&test, None));
        let canary = labels(&[("mode", "skywars"), ("region", "eu"), ("canary", "1")]);
        assert!(!s.matches(&canary, None));
        assert!(!s.matches(&labels(&[("mode", "skywars")]), None));
    }

    #[test]
    fn report_terms_read_the_report() {
        let r =
            serde_json::json!({"mode": "skywars", "players": 4, "matches": {"a": {"ready": true}}});
        let s = Selector::parse("report.mode=skywars,report.players=4,report.matches.a.ready=true")
            .expect("parses");
        assert!(s.matches(&BTreeMap::new(), Some(&r)));
        assert!(!s.matches(&BTreeMap::new(), None));
        let s = Selector::default().and_equals([("report.players".into(), "5".into())]);
        assert!(!s.matches(&BTreeMap::new(), Some(&r)));
    }

    #[test]
    fn a_wildcard_in_a_report_path_matches_any_key_or_index() {
        // Potassium's HasReadyMatch: any match that is ready.
        let r = serde_json::json!({
            "matches": {"a": {"ready": false}, "b": {"ready": true}},
            "teams": [{"size": 2}, {"size": 4}],
            "empty": {}
        });
        let none = BTreeMap::new();
        let sel = |s: &str| Selector::parse(s).expect("parses");
        assert!(sel("report.matches.*.ready=true").matches(&none, Some(&r)));
        assert!(sel("report.matches.*.ready=false").matches(&none, Some(&r)));
        assert!(!sel("report.matches.*.ready!=true").matches(&none, Some(&r)));
        assert!(sel("report.teams.*.size=4").matches(&none, Some(&r)));
        assert!(!sel("report.teams.*.size=3").matches(&none, Some(&r)));
        assert!(sel("report.teams.1.size=4").matches(&none, Some(&r)));
        assert!(sel("!report.empty.*").matches(&none, Some(&r)));
        assert!(sel("report.matches.*").matches(&none, Some(&r)));
        let idle = serde_json::json!({"matches": {"a": {"ready": false}}});
        assert!(!sel("report.matches.*.ready=true").matches(&none, Some(&idle)));
        assert!(sel("report.matches.*.ready!=true").matches(&none, Some(&idle)));
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in ["=x", "!=x", "a b=c"] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Selector::parse("").expect("empty"), Selector::default());
    }
}
