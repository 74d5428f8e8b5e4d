//! `kubectl apply` for dockhand: objects given through the API or `dockhand apply` become the
//! API source, one stored document per object, after exactly the checks a file gets plus the
//! cross-source ones. An object that a file or the manifests table defines is theirs: applying
//! or deleting it here is refused with the place to change it instead.

use std::collections::HashMap;
use std::path::Path;

use crate::manifest::{parse_str, ManifestError, Object, ObjectKey, API_VERSION};
use crate::source::{api_label, describe_source, Origin, Sources};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", summary(errors))]
    Invalid { errors: Vec<ManifestError> },
    #[error("{key} is defined by {by}; change it there")]
    Conflict { key: ObjectKey, by: String },
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn summary(errors: &[ManifestError]) -> String {
    match errors {
        [one] => one.to_string(),
        [first, ..] => format!("{first} (and {} more)", errors.len() - 1),
        [] => "invalid".into(),
    }
}

/// What applying one object did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
}

/// Parses a body or file of manifests, labelling errors with `label`.
pub fn parse(text: &str, label: &str, base_dir: Option<&Path>) -> Result<Vec<Object>, ApplyError> {
    let objects =
        parse_str(text, label, base_dir).map_err(|errors| ApplyError::Invalid { errors })?;
    if objects.is_empty() {
        return Err(ApplyError::Invalid {
            errors: vec![ManifestError {
                file: label.to_owned(),
                line: 0,
                column: 0,
                field: String::new(),
                message: "no objects: expected at least one document with apiVersion, kind, metadata and spec".into(),
            }],
        });
    }
    Ok(objects)
}

/// The stored text of an applied object: a JSON document (JSON is YAML), read back like a file.
pub fn document(o: &Object) -> String {
    let doc = serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": o.spec.kind().as_str(),
        "metadata": {"name": o.name, "labels": o.labels},
        "spec": o.spec,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Which source defines each object now, as the sources and the store say (a broken file's
/// objects are only in the store); the API's own objects are left out.
async fn owners(sources: &Sources) -> Result<HashMap<ObjectKey, String>, StoreError> {
    let mut owners: HashMap<ObjectKey, String> = sources
        .store
        .objects(&sources.instance)
        .await?
        .into_iter()
        .map(|s| (s.object.key(), s.object.source))
        .collect();
    for o in sources.load().await?.objects {
        owners.insert(o.key(), o.source);
    }
    owners.retain(|_, source| Origin::of(source) != Origin::Api);
    Ok(owners)
}

/// Validates `objects` together with everything the sources define, then stores them.
pub async fn apply(
    sources: &Sources,
    objects: Vec<Object>,
) -> Result<Vec<(ObjectKey, Change)>, ApplyError> {
    let owners = owners(sources).await?;
    let mut candidates = Vec::with_capacity(objects.len());
    for mut o in objects {
        let key = o.key();
        if let Some(by) = owners.get(&key) {
            return Err(ApplyError::Conflict {
                key,
                by: describe_source(by),
            });
        }
        // Errors keep the caller's labels (file, line); the stored copy is labelled as the API's.
        candidates.push((o.source.clone(), o.line, key.clone(), {
            o.source = api_label(&key);
            o
        }));
    }
    let extra: Vec<Object> = candidates.iter().map(|c| c.3.clone()).collect();
    let snapshot = sources.load_with(extra).await?;
    let errors: Vec<ManifestError> = snapshot
        .errors
        .iter()
        .filter_map(|e| {
            let c = candidates.iter().find(|c| api_label(&c.2) == e.file)?;
            Some(ManifestError {
                file: c.0.clone(),
                line: if e.line == 0 { 0 } else { c.1 },
                column: 0,
                ..e.clone()
            })
        })
        .collect();
    if !errors.is_empty() {
        return Err(ApplyError::Invalid { errors });
    }
    let existing = sources.store.applied_rows(&sources.instance).await?;
    let mut out = Vec::with_capacity(candidates.len());
    for (_, _, key, o) in candidates {
        let text = document(&o);
        let old = existing
            .iter()
            .find(|(k, n, _)| *k == key.kind.label() && *n == key.name);
        let change = match old {
            None => Change::Created,
            Some((_, _, t)) if *t == text => Change::Unchanged,
            Some(_) => Change::Configured,
        };
        if change != Change::Unchanged {
            sources
                .store
                .put_applied(&sources.instance, &key, &text)
                .await?;
        }
        out.push((key, change));
    }
    Ok(out)
}

/// Deletes an object applied through the API. Objects of files or the table are refused.
pub async fn delete(sources: &Sources, key: &ObjectKey) -> Result<(), ApplyError> {
    if sources.store.delete_applied(&sources.instance, key).await? {
        return Ok(());
    }
    match owners(sources).await?.get(key) {
        Some(by) => Err(ApplyError::Conflict {
            key: key.clone(),
            by: describe_source(by),
        }),
        None => Err(ApplyError::NotFound { key: key.clone() }),
    }
}

/// `apply --prune -l`: deletes the applied objects that `selector` matches and `keep` lacks,
/// and returns them. Objects of files and the table are never touched.
pub async fn prune(
    sources: &Sources,
    selector: &crate::view::Selector,
    keep: &std::collections::BTreeSet<ObjectKey>,
) -> Result<Vec<ObjectKey>, ApplyError> {
    let mut pruned = Vec::new();
    for (_, _, text) in sources.store.applied_rows(&sources.instance).await? {
        let Ok(objects) = parse(&text, "<applied>", None) else {
            continue;
        };
        for o in objects {
            let key = o.key();
            if keep.contains(&key) || !selector.matches(&o.labels, None) {
                continue;
            }
            delete(sources, &key).await?;
            pruned.push(key);
        }
    }
    Ok(pruned)
}
