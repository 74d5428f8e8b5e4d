//! Turning YAML text into objects, with errors that name file, line, column and field.
//!
//! A stream is split into documents first, so that the `kind` of each document can choose the
//! spec type before the spec is read; each document is parsed from its own slice of the text and
//! its positions are moved by the lines before it, so errors name positions in the file and the
//! work stays linear in the input. Size and document count are capped before anything is parsed.

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

/// The most bytes one manifest (a file, a table row, an API body) may hold.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The most `---` documents one manifest may hold.
pub const MAX_DOCUMENTS: usize = 1000;

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
    let whole = |message: String| {
        vec![ManifestError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            field: String::new(),
            message,
        }]
    };
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(whole(format!(
            "too large: {} bytes, at most {MAX_MANIFEST_BYTES} in one manifest",
            text.len()
        )));
    }
    // Windows (`\r\n`) and old Mac (`\r`) line ends read as `\n`, so markers and lines are seen.
    let normalized;
    let text = if text.contains('\r') {
        normalized = text.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        text
    };
    let documents = split_documents(text);
    if documents.len() > MAX_DOCUMENTS {
        return Err(whole(format!(
            "too many documents: {}, at most {MAX_DOCUMENTS} in one manifest",
            documents.len()
        )));
    }
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (offset, doc) in documents {
        match parse_document(doc, file, base_dir) {
            Ok(Some(mut o)) => {
                o.line += offset;
                objects.push(o);
            }
            Ok(None) => {}
            Err(mut e) => {
                if e.line > 0 {
                    e.line += offset;
                }
                errors.push(e);
            }
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
        let message = shorten_quotes(&message);
        ManifestError {
            file: file.to_owned(),
            line,
            column,
            // `Spanned` fields add a `.value` step that is not in the user's document. A path
            // is made of the file's keys: only a glimpse of it is kept, like quotes.
            field: match field.as_str() {
                "." => String::new(),
                f => shorten_quotes(&format!("\"{}\"", f.strip_suffix(".value").unwrap_or(f)))
                    .trim_matches('"')
                    .to_owned(),
            },
            message,
        }
    })
}

/// The longest excerpt of a manifest an error quotes.
const MAX_QUOTE: usize = 32;

/// Cuts every quoted excerpt of the input in a message to `MAX_QUOTE` characters and escapes
/// control characters, so an error never carries more than a glimpse of a file's content.
fn shorten_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(512));
    let mut quoted: Option<usize> = None;
    let mut quote = '"';
    for c in message.chars() {
        match (c, quoted) {
            ('"' | '`', None) => {
                quoted = Some(0);
                quote = c;
                out.push(c);
            }
            (_, Some(_)) if c == quote => {
                quoted = None;
                out.push(c);
            }
            (_, Some(n)) if n == MAX_QUOTE => {
                out.push('…');
                quoted = Some(n + 1);
            }
            (_, Some(n)) if n > MAX_QUOTE => {}
            (_, Some(n)) => {
                push_escaped(&mut out, c);
                quoted = Some(n + 1);
            }
            (_, None) => push_escaped(&mut out, c),
        }
    }
    out
}

/// Pushes `c`, or its escape if it is a control character (a terminal sequence, say).
fn push_escaped(out: &mut String, c: char) {
    if c.is_control() {
        out.extend(c.escape_default());
    } else {
        out.push(c);
    }
}

/// Whether a document holds nothing but blank lines, comments and markers.
fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Splits a YAML stream at `---` lines into slices of the text, each with the number of lines
/// before it, so that positions in errors can be made positions in the file. Linear in the text.
fn split_documents(text: &str) -> Vec<(u64, &str)> {
    let mut docs = Vec::new();
    let (mut start, mut start_line, mut line, mut at) = (0usize, 0u64, 0u64, 0usize);
    for l in text.split_inclusive('\n') {
        let is_marker = l.starts_with("---")
            && l[3..]
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if is_marker && at > 0 {
            docs.push((start_line, &text[start..at]));
            (start, start_line) = (at, line);
        }
        at += l.len();
        line += 1;
    }
    docs.push((start_line, &text[start..]));
    docs
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

    #[test]
    fn a_manifest_of_only_markers_is_refused_without_exhausting_memory() {
        // 128 KiB of `---` lines used to copy the file once per document and abort the process.
        let text = "---\n".repeat(32 * 1024);
        let errs = errors(&text);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.contains("too many documents"),
            "{}",
            errs[0]
        );
        assert!(errs[0].to_string().starts_with("m.yaml: "), "{}", errs[0]);
    }

    #[test]
    fn a_manifest_over_the_size_cap_is_refused() {
        let text = format!("{WEB}#{}\n", "x".repeat(MAX_MANIFEST_BYTES));
        let errs = errors(&text);
        assert!(errs[0].message.contains("too large"), "{}", errs[0]);
    }

    #[test]
    fn the_last_of_many_documents_reports_its_own_line() {
        let docs: Vec<String> = (0..MAX_DOCUMENTS)
            .map(|i| WEB.replace("name: web", &format!("name: web{i}")))
            .collect();
        let mut text = docs.join("---\n");
        let objects = parse_str(&text, "m.yaml", None).expect("parses");
        assert_eq!(objects.len(), MAX_DOCUMENTS);
        assert_eq!(
            objects[MAX_DOCUMENTS - 1].line,
            7 * (MAX_DOCUMENTS as u64 - 1) + 4
        );
        text.push_str("---\napiVersion: dockhand/v1\nkind: Server\nmetadata: {name: x}\nspec: {image: a, prots: []}\n");
        let errs = errors(&text);
        assert!(
            errs[0].message.contains("too many documents"),
            "{}",
            errs[0]
        );
        let one_too_many = docs[..MAX_DOCUMENTS - 1].join("---\n")
            + "---\napiVersion: dockhand/v1\nkind: Server\nmetadata: {name: x}\nspec: {image: a, prots: []}\n";
        let errs = errors(&one_too_many);
        assert_eq!(
            errs[0].line,
            7 * (MAX_DOCUMENTS as u64 - 1) + 4,
            "{}",
            errs[0]
        );
    }

    #[test]
    fn an_alias_bomb_is_an_error_not_an_explosion() {
        let mut text = String::from("apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec:\n  image: busybox\n  command: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("  x{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        assert!(parse_str(&text, "m.yaml", None).is_err());
    }

    #[test]
    fn carriage_return_line_ends_parse_like_newlines() {
        let two = format!("{WEB}---\n{}", WEB.replace("web", "api"));
        for text in [two.replace('\n', "\r\n"), two.replace('\n', "\r")] {
            let objs = parse_str(&text, "m.yaml", None).expect("parses");
            assert_eq!(objs.len(), 2);
            assert_eq!(objs[1].line, 11);
        }
    }

    #[test]
    fn errors_quote_no_more_than_a_glimpse_of_the_file() {
        let secret = format!("root:${}:19000:0:99999:7:::", "x".repeat(80));
        let errs = errors(&format!("{secret}\n"));
        let text = errs[0].to_string();
        assert!(!text.contains(&"x".repeat(40)), "{text}");
        let errs = errors(&format!(
            "{WEB}  user: [\"a\u{1b}[31m{}\"]\n",
            "y".repeat(60)
        ));
        let text = errs[0].to_string();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(!text.contains(&"y".repeat(40)), "{text}");
    }
}
