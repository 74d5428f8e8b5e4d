//! Where desired state comes from, and the rule that makes a broken source harmless.
//!
//! A source yields a `Snapshot`: the objects of its valid files and the errors of the others.
//! `merge` then keeps, from the store, the last good objects of every broken file, so an
//! invalid or unreadable file can never be read as "these objects were deleted".

pub mod directory;

use std::collections::{BTreeSet, HashSet};

use crate::manifest::{ManifestError, Object};
use crate::store::StoredObject;

/// The objects a source defines right now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Objects of the files that parsed and validated.
    pub objects: Vec<Object>,
    /// One entry per problem; every file named here contributes no objects.
    pub errors: Vec<ManifestError>,
    /// False when the source could not be listed completely: then nothing may be pruned.
    pub complete: bool,
    /// Set when the source itself does not exist.
    pub missing: bool,
}

/// Desired objects: the snapshot's, plus the stored last good version of every object whose
/// file is broken now (or of every object, when the source could not be read completely).
pub fn merge(snapshot: &Snapshot, stored: &[StoredObject]) -> Vec<Object> {
    let broken: BTreeSet<&str> = snapshot.errors.iter().map(|e| e.file.as_str()).collect();
    let defined: HashSet<_> = snapshot.objects.iter().map(Object::key).collect();
    let mut out = snapshot.objects.clone();
    out.extend(
        stored
            .iter()
            .filter(|s| !snapshot.complete || broken.contains(s.object.source.as_str()))
            .filter(|s| !defined.contains(&s.object.key()))
            .map(|s| s.object.clone()),
    );
    out.sort_by_key(Object::key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_str;

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
            complete: true,
            missing: false,
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
    fn deleted_file_drops_its_objects() {
        let snap = Snapshot {
            complete: true,
            ..Snapshot::default()
        };
        assert!(merge(&snap, &[stored(obj("web", "a.yaml", "x"))]).is_empty());
    }

    #[test]
    fn incomplete_listing_keeps_everything() {
        let snap = Snapshot::default();
        assert_eq!(merge(&snap, &[stored(obj("web", "a.yaml", "x"))]).len(), 1);
    }
}
