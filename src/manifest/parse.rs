//! Turning YAML text into objects, with errors that name file, line, column and field.
//!
//! A stream is split into documents first, so that the `kind` of each document can choose the
//! spec type before the spec is read; every document is parsed from a copy of the text in which
//! the other documents are blanked, so line numbers stay those of the file.

use std::fmt;
use std::path::Path;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Kind, LabelKey, Name, Object, ScalarString, ServerSpec, Spec, API_VERSION};
use crate::manifest::server::VolumeType;

/// A problem with one place in one manifest file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ManifestError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Dotted path of the offending field (`spec.ports[0].host`), empty for the document itself.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ManifestError {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Header {
    api_version: Spanned<String>,
    kind: Spanned<String>,
    #[allow(dead_code)]
    metadata: IgnoredAny,
    #[allow(dead_code)]
    spec: IgnoredAny,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Document<S> {
    #[allow(dead_code)]
    api_version: IgnoredAny,
    #[allow(dead_code)]
    kind: IgnoredAny,
    metadata: Metadata,
    spec: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: Spanned<Name>,
    #[serde(default)]
    labels: std::collections::BTreeMap<LabelKey, ScalarString>,
}

/// Parses every document of one file. Any error makes the whole file invalid: a file is applied
/// all or nothing, so a half-valid file can never delete the objects its broken half defined.
///
/// `base_dir` resolves relative bind sources; `None` (a source with no directory) requires them
/// to be absolute.
pub fn parse_str(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<Vec<Object>, Vec<ManifestError>> {
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for doc in split_documents(text) {
        match parse_document(&doc, file, base_dir) {
            Ok(Some(o)) => objects.push(o),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

fn parse_document(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<Option<Object>, ManifestError> {
    if is_blank_document(text) {
        return Ok(None);
    }
    let header: Header = deserialize(text, file)?;
    let err_at = |s: &Spanned<String>, field: &str, message: String| ManifestError {
        file: file.to_owned(),
        line: s.referenced.line(),
        column: s.referenced.column(),
        field: field.to_owned(),
        message,
    };
    if header.api_version.value != API_VERSION {
        return Err(err_at(
            &header.api_version,
            "apiVersion",
            format!(
                "unsupported apiVersion {:?}: expected {API_VERSION}",
                header.api_version.value
            ),
        ));
    }
    let kind = match Kind::from_manifest(&header.kind.value) {
        Ok(k) => k,
        Err(e) => return Err(err_at(&header.kind, "kind", e.to_string())),
    };
    let (metadata, spec) = match kind {
        Kind::Server => {
            let doc: Document<ServerSpec> = deserialize(text, file)?;
            let mut spec = doc.spec;
            spec.check()
                .and_then(|()| resolve_binds(&mut spec, base_dir))
                .map_err(at_name(file, &doc.metadata.name))?;
            (doc.metadata, Spec::Server(spec))
        }
        Kind::Database => {
            let doc: Document<super::DatabaseSpec> = deserialize(text, file)?;
            (doc.metadata, Spec::Database(doc.spec))
        }
        Kind::Network => {
            let doc: Document<super::network::NetworkSpec> = deserialize(text, file)?;
            doc.spec
                .check()
                .map_err(at_name(file, &doc.metadata.name))?;
            (doc.metadata, Spec::Network(doc.spec))
        }
        Kind::Route => {
            let doc: Document<super::network::RouteSpec> = deserialize(text, file)?;
            doc.spec
                .check()
                .map_err(at_name(file, &doc.metadata.name))?;
            (doc.metadata, Spec::Route(doc.spec))
        }
    };
    Ok(Some(Object {
        name: metadata.name.value.0.clone(),
        labels: metadata
            .labels
            .into_iter()
            .map(|(k, v)| (k.0, v.0))
            .collect(),
        spec,
        source: file.to_owned(),
        line: metadata.name.referenced.line(),
    }))
}

/// Turns a spec check's `(field, message)` into an error at the object's name.
fn at_name<'a>(
    file: &'a str,
    name: &'a Spanned<Name>,
) -> impl Fn((String, String)) -> ManifestError + 'a {
    move |(field, message)| ManifestError {
        file: file.to_owned(),
        line: name.referenced.line(),
        column: name.referenced.column(),
        field,
        message,
    }
}

/// Makes bind sources absolute, relative to the manifest's directory.
fn resolve_binds(spec: &mut ServerSpec, base_dir: Option<&Path>) -> Result<(), (String, String)> {
    for (i, v) in spec.volumes.iter_mut().enumerate() {
        if v.kind != VolumeType::Bind || Path::new(&v.source).is_absolute() {
            continue;
        }
        match base_dir {
            Some(dir) => {
                let joined = dir.join(&v.source);
                v.source = normalize(&joined);
            }
            None => {
                return Err((
                    format!("spec.volumes[{i}].source"),
                    format!(
                        "bind source {:?} must be an absolute path in a source without a directory",
                        v.source
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Lexically removes `.` and `..` so that equal paths hash equally.
fn normalize(p: &Path) -> String {
    let mut out = std::path::PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out.to_string_lossy().into_owned()
}

fn deserialize<'de, T: Deserialize<'de>>(text: &'de str, file: &str) -> Result<T, ManifestError> {
    let mut field = String::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            field = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let raw = e.without_snippet().to_string();
        let message = match raw.rfind(" at line ") {
            Some(i) if line > 0 => raw[..i].to_owned(),
            _ => raw,
        };
        ManifestError {
            file: file.to_owned(),
            line,
            column,
            // `Spanned` fields add a `.value` step that is not in the user's document.
            field: match field.as_str() {
                "." => String::new(),
                f => f.strip_suffix(".value").unwrap_or(f).to_owned(),
            },
            message,
        }
    })
}

/// Whether a document holds nothing but blank lines, comments and markers.
fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Splits a YAML stream at `---` lines. Each piece keeps the whole file's line count (other
/// documents' lines are blank), so positions in errors are positions in the file.
fn split_documents(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut starts = vec![0];
    for (i, l) in lines.iter().enumerate() {
        let is_marker = l.starts_with("---")
            && l[3..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == '\t' || c == '\r');
        if is_marker && i > 0 {
            starts.push(i);
        }
    }
    starts.push(lines.len());
    starts
        .windows(2)
        .map(|w| {
            let mut doc = String::with_capacity(text.len());
            for (i, l) in lines.iter().enumerate() {
                if i >= w[0] && i < w[1] {
                    doc.push_str(l);
                }
                doc.push('\n');
            }
            doc
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str =
        "apiVersion: dockhand/v1\nkind: Server\nmetadata:\n  name: web\nspec:\n  image: busybox\n";

    fn errors(text: &str) -> Vec<ManifestError> {
        parse_str(text, "m.yaml", None).expect_err("should fail")
    }

    #[test]
    fn a_minimal_server_parses() {
        let objs = parse_str(WEB, "m.yaml", None).expect("parses");
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].name, "web");
        assert_eq!(objs[0].line, 4);
    }

    #[test]
    fn several_documents_keep_their_own_lines() {
        let text = format!("# leading comment\n{WEB}---\n{}", WEB.replace("web", "api"));
        let objs = parse_str(&text, "m.yaml", None).expect("parses");
        assert_eq!(
            objs.iter()
                .map(|o| (o.name.as_str(), o.line))
                .collect::<Vec<_>>(),
            [("web", 5), ("api", 12)]
        );
    }

    #[test]
    fn unknown_field_names_line_column_field_and_allowed_fields() {
        let text = format!("{WEB}  ports:\n    - {{container: 80, hots: 1}}\n");
        let e = &errors(&text)[0];
        assert_eq!((e.line, e.column), (8, 23));
        assert_eq!(e.field, "spec.ports[0].hots");
        assert!(
            e.message.contains("expected one of container, host"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_kind_lists_the_allowed_kinds() {
        let e = &errors("apiVersion: dockhand/v1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n")[0];
        assert_eq!((e.line, e.column, e.field.as_str()), (2, 7, "kind"));
        assert!(
            e.message.contains("expected one of Server"),
            "{}",
            e.message
        );
    }

    #[test]
    fn wrong_api_version_is_rejected() {
        let e = &errors("apiVersion: v2\nkind: Server\nmetadata: {name: a}\nspec: {}\n")[0];
        assert_eq!((e.line, e.field.as_str()), (1, "apiVersion"));
    }

    #[test]
    fn bad_values_are_reported_where_they_stand() {
        let cases = [
            (
                "  ports:\n    - container: 99999\n",
                8,
                "spec.ports[0].container",
                "1 to 65535",
            ),
            (
                "  resources: {memory: lots}\n",
                7,
                "spec.resources.memory",
                "256m",
            ),
            (
                "  restartPolicy: Sometimes\n",
                7,
                "spec.restartPolicy",
                "Always",
            ),
            (
                "  volumes:\n    - {type: volume, source: /etc, target: /x}\n",
                8,
                "spec.volumes[0]",
                "volume name",
            ),
            ("  workingDir: srv\n", 7, "spec.workingDir", "absolute"),
        ];
        for (extra, line, field, hint) in cases {
            let e = &errors(&format!("{WEB}{extra}"))[0];
            assert_eq!((e.line, e.field.as_str()), (line, field), "{e}");
            assert!(e.message.contains(hint), "{e}");
        }
    }

    #[test]
    fn bad_name_is_reported_on_its_line() {
        let e = &errors(&WEB.replace("name: web", "name: Web_1"))[0];
        assert_eq!(
            (e.line, e.column, e.field.as_str()),
            (4, 9, "metadata.name")
        );
        assert!(e.message.contains("DNS label"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = &errors("apiVersion: dockhand/v1\nkind: Server\nmetadata:\n  name: [web\n")[0];
        assert!(e.line >= 4, "{e}");
    }

    #[test]
    fn one_bad_document_makes_the_file_invalid() {
        let text = format!("{WEB}---\n{}", WEB.replace("busybox", "a b"));
        let errs = errors(&text);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 13);
    }

    #[test]
    fn relative_bind_sources_resolve_against_the_manifest_directory() {
        let text =
            format!("{WEB}  volumes:\n    - {{type: bind, source: ./www/../site, target: /www}}\n");
        let objs = parse_str(&text, "m.yaml", Some(Path::new("/srv/manifests"))).expect("parses");
        let Spec::Server(s) = &objs[0].spec else {
            panic!("a server")
        };
        assert_eq!(s.volumes[0].source, "/srv/manifests/site");
        assert!(parse_str(&text, "m.yaml", None).is_err());
    }

    #[test]
    fn databases_and_from_database_values_parse_and_are_checked() {
        let text = "apiVersion: dockhand/v1\nkind: Database\nmetadata: {name: orders}\nspec: {deletionPolicy: Delete, readyTimeout: 5s}\n---\napiVersion: dockhand/v1\nkind: Server\nmetadata: {name: api}\nspec:\n  image: x\n  env: {URL: {fromDatabase: orders}, PORT: {fromDatabase: orders, key: port}, MODE: 1}\n";
        let objs = parse_str(text, "m.yaml", None).expect("parses");
        let Spec::Database(d) = &objs[0].spec else {
            panic!("a database")
        };
        assert_eq!(d.image(), "postgres:16");
        assert_eq!(
            d.deletion_policy,
            crate::manifest::database::DeletionPolicy::Delete
        );
        let Spec::Server(s) = &objs[1].spec else {
            panic!("a server")
        };
        assert_eq!(s.env.values().filter_map(|v| v.database()).count(), 2);

        let bad = |spec: &str| {
            parse_str(&format!("apiVersion: dockhand/v1\nkind: Database\nmetadata: {{name: db}}\nspec: {spec}\n"), "m.yaml", None).expect_err("invalid")[0].clone()
        };
        let e = bad("{user: '1st'}");
        assert_eq!(e.field, "spec.user");
        let e = bad("{deletionPolicy: Never}");
        assert!(e.message.contains("Retain"), "{e}");
        let e = bad("{engine: mysql}");
        assert!(e.message.contains("postgres"), "{e}");
        let e = &parse_str("apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: a}\nspec: {image: x, env: {U: {fromDatabase: db, key: secret}}}\n", "m.yaml", None).expect_err("bad key")[0];
        assert!(e.message.contains("url"), "{e}");
    }

    #[test]
    fn empty_documents_and_comments_are_skipped() {
        assert!(parse_str("# nothing\n---\n---\n", "m.yaml", None)
            .expect("parses")
            .is_empty());
    }

    #[test]
    fn reserved_label_prefix_is_rejected() {
        let e = &errors(&WEB.replace("name: web", "name: web\n  labels: {dockhand.kind: x}"))[0];
        assert!(e.message.contains("reserved"), "{e}");
    }

    #[test]
    fn spec_hash_ignores_source_but_not_labels() {
        let a = &parse_str(WEB, "a.yaml", None).expect("parses")[0];
        let mut b = a.clone();
        b.source = "b.yaml".into();
        assert_eq!(a.spec_hash(), b.spec_hash());
        b.labels.insert("tier".into(), "x".into());
        assert_ne!(a.spec_hash(), b.spec_hash());
    }

    #[test]
    fn stored_json_round_trips_to_the_same_hash() {
        let text = format!("{WEB}  resources: {{memory: 64m, cpus: 500m}}\n  ports: [{{container: 80}}]\n  env: {{A: 1}}\n  stopGracePeriod: 2s\n");
        let a = &parse_str(&text, "a.yaml", None).expect("parses")[0];
        let json = serde_json::to_string(a).expect("serializes");
        let b: Object = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(a, &b);
        assert_eq!(a.spec_hash(), b.spec_hash());
    }
}
