//! The operator's verbs, shared by the CLI and the API: stop and start (desired state kept
//! beside the manifests, so a reload never undoes them), restart (a rollout of the same spec)
//! and scale (the API source's objects only; a file stays the truth for its own objects).
//!
//! Each writes intents to the state file and nothing else: the reconcile loop stays the one
//! writer of the engine, and a crash between the write and the pass loses nothing.

use std::collections::BTreeSet;

use crate::manifest::replicas::{parse_object_ref, replica_of, whole};
use crate::manifest::{Kind, ObjectKey, Spec};
use crate::source::applied::{self, ApplyError, Change};
use crate::source::Sources;
use crate::store::{Store, StoreError, StoredObject};
use crate::view::Selector;

#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error("no object matches selector {selector:?}")]
    NoMatch { selector: String },
    #[error("{key} runs no container: only servers and databases can be {verb}")]
    NoContainer { key: ObjectKey, verb: &'static str },
    #[error("{key} is defined by {by}; set spec.replicas to {replicas} there")]
    NotApplied {
        key: ObjectKey,
        by: String,
        replicas: u32,
    },
    #[error("{key} has no revision {}", revision.map_or_else(|| "before the current one".to_owned(), |r| r.to_string()))]
    NoRevision {
        key: ObjectKey,
        revision: Option<i64>,
    },
    #[error("only servers have replicas, not {key}")]
    NotScalable { key: ObjectKey },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OperateError {
    /// Whether the request was refused (the operator can act on the reason), rather than the
    /// state file failing.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, OperateError::Store(_))
    }
}

/// Which objects a verb acts on: named ones (`server/web` stands for all its replicas,
/// `server/web.2` for one), those a selector matches, or with neither every object that runs
/// a container.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct Selection {
    #[serde(default)]
    pub objects: Vec<String>,
    #[serde(default)]
    pub selector: Option<String>,
}

/// What a verb did: the keys it was given for (marks are kept on these) and every object
/// they stand for (a server's replicas), whose status shows the result.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub targets: Vec<String>,
    pub objects: Vec<String>,
    /// The targets whose mark this call changed (for stop/start; all of them for restart).
    pub changed: Vec<String>,
}

/// Whether `object` is `target` or one of its replicas.
pub fn covers(target: &ObjectKey, object: &ObjectKey) -> bool {
    target == object
        || (target.kind == Kind::Server
            && object.kind == Kind::Server
            && replica_of(&object.name) == target.name)
}

/// The targets of a selection among the stored objects, and the objects they stand for.
pub fn resolve(
    stored: &[StoredObject],
    selection: &Selection,
    reports: &std::collections::HashMap<ObjectKey, serde_json::Value>,
    verb: &'static str,
) -> Result<(Vec<ObjectKey>, Vec<ObjectKey>), OperateError> {
    let runs = |k: &ObjectKey| matches!(k.kind, Kind::Server | Kind::Database);
    let keys: Vec<ObjectKey> = stored.iter().map(|s| s.object.key()).collect();
    let mut targets: Vec<ObjectKey> = Vec::new();
    for name in &selection.objects {
        let key = parse_ref(name)?;
        if !keys.iter().any(|k| covers(&key, k)) {
            return Err(OperateError::NotFound { key });
        }
        if !runs(&key) {
            return Err(OperateError::NoContainer { key, verb });
        }
        targets.push(key);
    }
    if let Some(text) = &selection.selector {
        let selector =
            Selector::parse(text).map_err(|e| invalid_request("selector", e.to_string()))?;
        let matched: Vec<ObjectKey> = stored
            .iter()
            .filter(|s| runs(&s.object.key()))
            .filter(|s| selector.matches(&s.object.labels, reports.get(&s.object.key())))
            .map(|s| whole(&s.object.key()))
            .collect();
        if matched.is_empty() {
            return Err(OperateError::NoMatch {
                selector: text.clone(),
            });
        }
        targets.extend(matched);
    }
    if selection.objects.is_empty() && selection.selector.is_none() {
        targets = keys.iter().filter(|k| runs(k)).map(whole).collect();
    }
    let targets: Vec<ObjectKey> = targets
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let objects = keys
        .into_iter()
        .filter(|k| targets.iter().any(|t| covers(t, k)))
        .collect();
    Ok((targets, objects))
}

/// `server/web`, `database/orders`, or a bare name meaning a server.
fn parse_ref(s: &str) -> Result<ObjectKey, OperateError> {
    parse_object_ref(s).map_err(|m| invalid_request("objects", m))
}

async fn selected(
    store: &Store,
    instance: &str,
    selection: &Selection,
    verb: &'static str,
) -> Result<(Vec<ObjectKey>, Vec<ObjectKey>), OperateError> {
    let stored = store.objects(instance).await?;
    let reports = if selection.selector.is_some() {
        store.reports(instance).await?
    } else {
        Default::default()
    };
    resolve(&stored, selection, &reports, verb)
}

/// One event per object an operator's verb changed: `server/web stopped by an operator`.
async fn record(
    store: &Store,
    instance: &str,
    keys: &[ObjectKey],
    reason: &'static str,
    what: &str,
) -> Result<(), StoreError> {
    let events: Vec<crate::store::NewEvent> = keys
        .iter()
        .map(|k| crate::store::NewEvent {
            key: Some(k.clone()),
            reason,
            message: format!("{k} {what} by an operator"),
        })
        .collect();
    store.append_events(instance, &events).await
}

fn names(keys: &[ObjectKey]) -> Vec<String> {
    keys.iter().map(ToString::to_string).collect()
}

/// Marks the selection stopped (`true`) or running again (`false`).
pub async fn set_stopped(
    store: &Store,
    instance: &str,
    selection: &Selection,
    stopped: bool,
) -> Result<Outcome, OperateError> {
    let verb = if stopped { "stopped" } else { "started" };
    let (mut targets, objects) = selected(store, instance, selection, verb).await?;
    if !stopped {
        // Starting a server starts every replica, whichever key each was stopped by.
        let intents = store.intents(instance).await?;
        let extra: Vec<ObjectKey> = intents
            .iter()
            .filter(|(k, i)| i.stopped_at.is_some() && objects.iter().any(|o| covers(k, o)))
            .map(|(k, _)| k.clone())
            .collect();
        targets.extend(extra);
        targets.sort();
        targets.dedup();
    }
    let changed = store.set_stopped(instance, &targets, stopped).await?;
    let reason = if stopped { "stop" } else { "start" };
    record(store, instance, &changed, reason, verb).await?;
    Ok(Outcome {
        targets: names(&targets),
        objects: names(&objects),
        changed: names(&changed),
    })
}

/// Asks for the selection's containers to be replaced with the same spec.
pub async fn restart(
    store: &Store,
    instance: &str,
    selection: &Selection,
) -> Result<Outcome, OperateError> {
    let (targets, objects) = selected(store, instance, selection, "restarted").await?;
    store.request_restart(instance, &targets).await?;
    record(
        store,
        instance,
        &targets,
        "restart-requested",
        "restart requested",
    )
    .await?;
    Ok(Outcome {
        targets: names(&targets),
        objects: names(&objects),
        changed: names(&targets),
    })
}

/// Sets an API-source server's replica count; other sources' objects are edited where they
/// are defined, and the answer says where.
pub async fn scale(sources: &Sources, name: &str, replicas: u32) -> Result<Change, OperateError> {
    let key = ObjectKey::new(Kind::Server, replica_of(name));
    let rows = sources.store.applied_rows(&sources.instance).await?;
    let applied = rows
        .iter()
        .find(|(kind, n, _)| *kind == key.kind.label() && *n == key.name);
    let Some((_, _, text)) = applied else {
        // Not the API's: say where it is defined, if anywhere.
        let stored = sources.store.objects(&sources.instance).await?;
        return Err(match stored.iter().find(|s| s.object.key() == key) {
            Some(s) => OperateError::NotApplied {
                by: crate::source::describe_source(&s.object.source),
                key,
                replicas,
            },
            None => OperateError::NotFound { key },
        });
    };
    let label = crate::source::api_label(&key);
    let mut object = applied::parse(text, &label, None)?
        .into_iter()
        .find(|o| o.key() == key)
        .ok_or_else(|| OperateError::NotFound { key: key.clone() })?;
    if let Spec::Server(spec) = &mut object.spec {
        spec.replicas = Some(replicas);
    }
    let out = applied::apply(sources, vec![object]).await?;
    Ok(out.into_iter().next().map_or(Change::Unchanged, |(_, c)| c))
}

/// A request that names no object the verb could take.
fn invalid_request(field: &str, message: String) -> OperateError {
    OperateError::Apply(ApplyError::Invalid {
        errors: vec![crate::manifest::ManifestError {
            file: "<request>".into(),
            line: 0,
            column: 0,
            field: field.into(),
            message,
        }],
    })
}

/// What `rollout undo` did, or what it asks the operator to do.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Undo {
    /// An API-source object: the revision's spec was applied again (as a new revision).
    Applied { revision: i64, change: Change },
    /// An object of a file or the table: the change to make there, as a line diff of the spec.
    EditSource {
        revision: i64,
        source: String,
        diff: String,
    },
}

/// Goes back to revision `to` (by default the one before the current), keeping the current
/// replica count, as `kubectl rollout undo` does.
pub async fn undo(
    sources: &Sources,
    key: &ObjectKey,
    to: Option<i64>,
) -> Result<Undo, OperateError> {
    let store = &sources.store;
    let stored = store.objects(&sources.instance).await?;
    let Some(current) = stored.iter().find(|s| s.object.key() == *key) else {
        return Err(OperateError::NotFound { key: key.clone() });
    };
    let revisions = store.revisions(&sources.instance, key).await?;
    let target = match to {
        Some(n) => revisions.iter().find(|r| r.revision == n),
        None => revisions
            .iter()
            .rev()
            .find(|r| r.revision < current.generation),
    };
    let Some(target) = target else {
        return Err(OperateError::NoRevision {
            key: key.clone(),
            revision: to,
        });
    };
    let mut object = target.object.clone();
    if let (Spec::Server(now), Spec::Server(then)) = (&current.object.spec, &mut object.spec) {
        then.replicas = now.replicas;
    }
    if crate::source::Origin::of(&current.object.source) == crate::source::Origin::Api {
        let out = applied::apply(sources, vec![object]).await?;
        let change = out.into_iter().next().map_or(Change::Unchanged, |(_, c)| c);
        return Ok(Undo::Applied {
            revision: target.revision,
            change,
        });
    }
    Ok(Undo::EditSource {
        revision: target.revision,
        source: crate::source::describe_source(&current.object.source),
        diff: line_diff(&yaml_of(&current.object), &yaml_of(&object)),
    })
}

fn yaml_of(o: &crate::manifest::Object) -> String {
    let doc = serde_json::json!({
        "metadata": {"name": o.name, "labels": o.labels},
        "spec": o.spec,
    });
    serde_saphyr::to_string(&doc).unwrap_or_default()
}

/// A unified-style line diff (`-` now, `+` wanted, context lines indented), by longest
/// common subsequence: specs are a few dozen lines.
pub fn line_diff(from: &str, to: &str) -> String {
    let a: Vec<&str> = from.lines().collect();
    let b: Vec<&str> = to.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_diff_marks_removed_and_added_lines() {
        let d = line_diff("a\nb\nc\n", "a\nx\nc\n");
        assert_eq!(d, "  a\n- b\n+ x\n  c\n");
        assert_eq!(line_diff("same\n", "same\n"), "  same\n");
    }

    #[test]
    fn a_server_covers_its_replicas_only() {
        let web = ObjectKey::new(Kind::Server, "web");
        assert!(covers(&web, &ObjectKey::new(Kind::Server, "web.2")));
        assert!(!covers(&web, &ObjectKey::new(Kind::Server, "webby")));
        assert!(!covers(&web, &ObjectKey::new(Kind::Database, "web")));
        let one = ObjectKey::new(Kind::Server, "web.1");
        assert!(!covers(&one, &web));
    }
}
