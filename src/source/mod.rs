//! Where desired state comes from, and the rule that makes a broken source harmless.
//!
//! The sources feed one snapshot: a directory of files, git repositories (read like directories
//! at their last good commit), the `manifests` table any program may write, and objects applied
//! through the API or `dockhand apply`. Each yields a `Part` (the
//! objects of its valid files, or rows, and the errors of the others); `assemble` runs the checks
//! that span them, so the same object in two sources is an error on both, like two files. `merge`
//! then keeps, from the store, the last good objects of every broken file, so an invalid or
//! unreadable file can never be read as "these objects were deleted".

pub mod applied;
pub mod directory;
pub mod git;
pub mod table;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;

use crate::manifest::{ManifestError, Object, ObjectKey};
use crate::store::{Store, StoreError, StoredObject};

/// Labels of objects from the `manifests` table start with this, then the row's name.
pub const TABLE_PREFIX: &str = "table:";
/// Labels of objects applied through the API start with this, then `kind/name`.
pub const API_PREFIX: &str = "api:";

/// Which source defined an object, told by its source label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Directory,
    Table,
    Api,
    Git,
}

impl Origin {
    pub fn of(label: &str) -> Origin {
        if label.starts_with(TABLE_PREFIX) {
            Origin::Table
        } else if label.starts_with(API_PREFIX) {
            Origin::Api
        } else if label.starts_with(git::GIT_PREFIX) {
            Origin::Git
        } else {
            Origin::Directory
        }
    }
}

/// The source label of an object applied through the API.
pub fn api_label(key: &ObjectKey) -> String {
    format!("{API_PREFIX}{}/{}", key.kind.label(), key.name)
}

/// One source's contents before the checks that span sources.
#[derive(Clone, Debug, Default)]
pub struct Part {
    /// Objects of each valid file (or row), by its label.
    pub files: BTreeMap<String, Vec<Object>>,
    pub errors: Vec<ManifestError>,
    /// False when the source could not be read completely: then none of its objects may go.
    pub complete: bool,
    /// Set when the source itself does not exist.
    pub missing: bool,
    /// Files that parsed but define no objects (empty, only comments, cut off mid-write).
    pub emptied: BTreeSet<String>,
    /// Keys of compose files accepted although they change nothing at runtime.
    pub warnings: Vec<ManifestError>,
}

impl Part {
    /// Adds one file's parse result. A file is applied all or nothing.
    pub fn add(&mut self, label: String, parsed: Result<Vec<Object>, Vec<ManifestError>>) {
        match parsed {
            Ok(objs) => {
                let missing = crate::manifest::parse::missing_bind_sources(&objs);
                if missing.is_empty() {
                    self.files.insert(label, objs);
                } else {
                    self.errors.extend(missing);
                }
            }
            Err(errs) => self.errors.extend(errs),
        }
    }
}

/// The objects the sources define right now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Objects of the files that parsed and validated.
    pub objects: Vec<Object>,
    /// One entry per problem; every file named here contributes no objects.
    pub errors: Vec<ManifestError>,
    /// Sources that could not be read completely (or vanished): none of their objects may go.
    pub held: BTreeSet<Origin>,
    /// Set when the manifests directory does not exist.
    pub missing: bool,
    /// Files that parsed but define no objects: if they defined some before, those are held.
    pub emptied: BTreeSet<String>,
    /// Keys of compose files accepted although they change nothing at runtime.
    pub warnings: Vec<ManifestError>,
}

/// Runs the checks that span files and sources: the same object twice, dependency cycles,
/// host ports published twice. Every file involved becomes invalid, like any other error.
pub fn assemble(parts: Vec<(Origin, Part)>) -> Snapshot {
    let mut snap = Snapshot::default();
    let mut files: BTreeMap<String, Vec<Object>> = BTreeMap::new();
    for (origin, part) in parts {
        if !part.complete {
            snap.held.insert(origin);
        }
        snap.missing |= part.missing && origin == Origin::Directory;
        snap.emptied.extend(part.emptied);
        snap.errors.extend(part.errors);
        snap.warnings.extend(part.warnings);
        files.extend(part.files);
    }
    // The same object in two files is an error on both: neither copy is applied anew.
    let mut seen: BTreeMap<ObjectKey, (String, u64)> = BTreeMap::new();
    let mut dup_errors = Vec::new();
    for (file, objs) in &files {
        for o in objs {
            if let Some((other, other_line)) = seen.get(&o.key()) {
                dup_errors.push(ManifestError {
                    file: file.clone(),
                    line: o.line,
                    column: 0,
                    field: "metadata.name".into(),
                    message: format!("{} is also defined in {other}:{other_line}", o.key()),
                });
                dup_errors.push(ManifestError {
                    file: other.clone(),
                    line: *other_line,
                    column: 0,
                    field: "metadata.name".into(),
                    message: format!("{} is also defined in {file}:{}", o.key(), o.line),
                });
            } else {
                seen.insert(o.key(), (file.clone(), o.line));
            }
        }
    }
    for e in &dup_errors {
        files.remove(&e.file);
    }
    snap.errors.extend(dup_errors);
    let all: Vec<_> = files.values().flatten().cloned().collect();
    let graph_errors = crate::manifest::graph::check(&all);
    for e in &graph_errors {
        files.remove(&e.file);
    }
    snap.errors.extend(graph_errors);
    snap.objects = crate::manifest::replicas::expand(files.into_values().flatten().collect());
    snap
}

/// Errors for the files that define nothing now although they defined objects before (a file
/// being rewritten in place, emptied, cut off): they are held like invalid files, so a file is
/// never read as "these objects were deleted" while it is being written. Deleting the file
/// removes its objects.
pub fn emptied_errors(snapshot: &Snapshot, stored: &[StoredObject]) -> Vec<ManifestError> {
    snapshot
        .emptied
        .iter()
        .filter_map(|file| {
            let had: Vec<String> = stored
                .iter()
                .filter(|s| &s.object.source == file)
                .map(|s| s.object.key().to_string())
                .collect();
            (!had.is_empty()).then(|| ManifestError {
                file: file.clone(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!(
                    "defines no objects now (empty, cut off, or not a regular file) but defined {} before; they are kept (delete the file to remove them)",
                    had.join(", ")
                ),
            })
        })
        .collect()
}

/// Desired objects: the snapshot's, plus the stored last good version of every object whose
/// file is broken now or defines nothing now (see `emptied_errors`), or of every object of a
/// source that could not be read completely.
pub fn merge(snapshot: &Snapshot, stored: &[StoredObject]) -> Vec<Object> {
    let broken: BTreeSet<&str> = snapshot.errors.iter().map(|e| e.file.as_str()).collect();
    let defined: HashSet<_> = snapshot.objects.iter().map(Object::key).collect();
    let mut out = snapshot.objects.clone();
    out.extend(
        stored
            .iter()
            .filter(|s| {
                snapshot.held.contains(&Origin::of(&s.object.source))
                    || broken.contains(s.object.source.as_str())
                    || snapshot.emptied.contains(&s.object.source)
            })
            .filter(|s| !defined.contains(&s.object.key()))
            .map(|s| s.object.clone()),
    );
    out.sort_by_key(Object::key);
    out
}

/// Every source of one instance's desired state.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The manifests directory; `None` reads no directory.
    pub dir: Option<PathBuf>,
    pub store: Store,
    pub instance: String,
    /// A vanished directory's objects are removed too (otherwise they are held).
    pub allow_empty: bool,
    /// Compose files named on the command line, and how compose files are read.
    pub compose: directory::ComposeFiles,
    /// Repositories read at their last good commit (`--git`).
    pub git: Vec<git::GitSource>,
}

impl Sources {
    /// Reads every source; `extra` replaces or adds API objects (to validate them before
    /// they are stored).
    pub async fn load_with(&self, extra: Vec<Object>) -> Result<Snapshot, StoreError> {
        let mut parts = Vec::with_capacity(3);
        if let Some(dir) = self.dir.clone() {
            let allow_empty = self.allow_empty;
            let compose = self.compose.clone();
            let mut part =
                tokio::task::spawn_blocking(move || directory::read_with(&dir, &compose))
                    .await
                    .unwrap_or_default();
            // A directory that vanished (an unmounted volume, a failed checkout) is not a
            // deletion of everything it held.
            if part.missing && !allow_empty {
                part.complete = false;
            }
            parts.push((Origin::Directory, part));
        } else {
            // Without the directory at hand (`apply` from another process), its objects as the
            // controller last stored them stand in, so cross-source checks still see them.
            let mut part = Part {
                complete: true,
                ..Part::default()
            };
            for s in self.store.objects(&self.instance).await? {
                if Origin::of(&s.object.source) == Origin::Directory {
                    part.files
                        .entry(s.object.source.clone())
                        .or_default()
                        .push(s.object);
                }
            }
            parts.push((Origin::Directory, part));
        }
        for source in &self.git {
            let source = source.clone();
            let compose = directory::ComposeFiles {
                files: Vec::new(),
                options: self.compose.options.clone(),
            };
            let mut part = tokio::task::spawn_blocking(move || source.read(&compose))
                .await
                .unwrap_or_default();
            // Never fetched, or the folder is not in the commit: held, like a vanished directory.
            if part.missing && !self.allow_empty {
                part.complete = false;
            }
            parts.push((Origin::Git, part));
        }
        parts.push((
            Origin::Table,
            table::read_rows(&self.store, &self.instance).await?,
        ));
        let mut api = table::read_applied(&self.store, &self.instance).await?;
        for object in extra {
            api.files.insert(object.source.clone(), vec![object]);
        }
        parts.push((Origin::Api, api));
        Ok(assemble(parts))
    }

    pub async fn load(&self) -> Result<Snapshot, StoreError> {
        self.load_with(Vec::new()).await
    }
}

/// Where a stored object came from, for messages: its file, table row or API.
pub fn describe_source(label: &str) -> String {
    match Origin::of(label) {
        Origin::Directory | Origin::Git => format!("file {label}"),
        Origin::Table => format!(
            "row {:?} of the manifests table",
            &label[TABLE_PREFIX.len()..]
        ),
        Origin::Api => "the API".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_str, Kind};

    fn obj(name: &str, file: &str, image: &str) -> Object {
        let text = format!("apiVersion: dockhand/v1\nkind: Server\nmetadata: {{name: {name}}}\nspec: {{image: {image}}}\n");
        parse_str(&text, file, None).expect("parses").remove(0)
    }

    fn stored(o: Object) -> StoredObject {
        StoredObject {
            spec_hash: o.spec_hash(),
            object: o,
            generation: 1,
            last_error: None,
        }
    }

    fn error(file: &str) -> ManifestError {
        ManifestError {
            file: file.into(),
            line: 1,
            column: 1,
            field: String::new(),
            message: "bad".into(),
        }
    }

    #[test]
    fn broken_file_keeps_its_last_good_objects() {
        let snap = Snapshot {
            objects: vec![obj("api", "b.yaml", "api:2")],
            errors: vec![error("a.yaml")],
            ..Snapshot::default()
        };
        let st = [
            stored(obj("web", "a.yaml", "web:1")),
            stored(obj("api", "b.yaml", "api:1")),
        ];
        let merged = merge(&snap, &st);
        let names: Vec<_> = merged
            .iter()
            .map(|o| (o.name.as_str(), o.spec.clone()))
            .collect();
        assert_eq!(names.len(), 2);
        assert_eq!(merged[0].name, "api");
        assert_eq!(merged[0], obj("api", "b.yaml", "api:2"), "valid files win");
        assert_eq!(
            merged[1],
            obj("web", "a.yaml", "web:1"),
            "broken file keeps its last good spec"
        );
    }

    #[test]
    fn the_same_object_in_a_file_and_a_row_is_an_error_on_both() {
        let mut dir = Part {
            complete: true,
            ..Part::default()
        };
        dir.files
            .insert("a.yaml".into(), vec![obj("web", "a.yaml", "x")]);
        dir.files
            .insert("b.yaml".into(), vec![obj("api", "b.yaml", "x")]);
        let mut table = Part {
            complete: true,
            ..Part::default()
        };
        table
            .files
            .insert("table:w".into(), vec![obj("web", "table:w", "y")]);
        let snap = assemble(vec![(Origin::Directory, dir), (Origin::Table, table)]);
        let names: Vec<_> = snap.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["api"],
            "only the untouched file's object is applied"
        );
        let files: BTreeSet<_> = snap.errors.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(files, BTreeSet::from(["a.yaml", "table:w"]));
    }

    #[test]
    fn origins_are_told_by_their_labels() {
        assert_eq!(Origin::of("web.yaml"), Origin::Directory);
        assert_eq!(Origin::of("table:web"), Origin::Table);
        let key = ObjectKey::new(Kind::Route, "game");
        assert_eq!(Origin::of(&api_label(&key)), Origin::Api);
    }

    #[test]
    fn deleted_file_drops_its_objects() {
        let snap = Snapshot::default();
        assert!(merge(&snap, &[stored(obj("web", "a.yaml", "x"))]).is_empty());
    }

    #[test]
    fn incomplete_source_keeps_everything_it_defined() {
        let snap = Snapshot {
            held: [Origin::Directory].into(),
            ..Snapshot::default()
        };
        let st = [
            stored(obj("web", "a.yaml", "x")),
            stored(obj("api", "table:api", "x")),
        ];
        let merged = merge(&snap, &st);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].name, "web", "only the held source's objects stay");
    }
}
