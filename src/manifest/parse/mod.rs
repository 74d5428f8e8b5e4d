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

/// The most bytes YAML aliases of one file may copy as they expand (a billion-laughs file is
/// refused here; real files' anchors copy a few kilobytes).
pub const ALIAS_BUDGET_BYTES: usize = 16 * 1024 * 1024;

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
            doc.spec
                .check()
                .and_then(|()| doc.spec.check_named(&doc.metadata.name.value.0))
                .map_err(at_name(file, &doc.metadata.name))?;
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
        Kind::Secret => {
            let doc: Document<super::secret::SecretSpec> = deserialize(text, file)?;
            let mut spec = doc.spec;
            spec.check()
                .and_then(|()| resolve_secret_file(&mut spec, base_dir))
                .map_err(at_name(file, &doc.metadata.name))?;
            (doc.metadata, Spec::Secret(spec))
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
        commit: None,
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

/// `path` made absolute, relative to the manifest's directory.
fn absolute(
    path: &mut String,
    field: String,
    what: &str,
    base_dir: Option<&Path>,
) -> Result<(), (String, String)> {
    if Path::new(path.as_str()).is_absolute() {
        return Ok(());
    }
    match base_dir {
        Some(dir) => {
            *path = lexical(&dir.join(path.as_str()))
                .to_string_lossy()
                .into_owned();
            Ok(())
        }
        None => Err((
            field,
            format!("{what} {path:?} must be an absolute path in a source without a directory"),
        )),
    }
}

/// Makes a Secret's file absolute, relative to the manifest's directory.
fn resolve_secret_file(
    spec: &mut super::secret::SecretSpec,
    base_dir: Option<&Path>,
) -> Result<(), (String, String)> {
    match spec.file.as_mut() {
        Some(f) => absolute(f, "spec.file".into(), "secret file", base_dir),
        None => Ok(()),
    }
}

/// Makes bind sources, env files and build contexts absolute, relative to the manifest's directory.
fn resolve_binds(spec: &mut ServerSpec, base_dir: Option<&Path>) -> Result<(), (String, String)> {
    let absolute =
        |path: &mut String, field: String, what: &str| absolute(path, field, what, base_dir);
    for (i, v) in spec.volumes.iter_mut().enumerate() {
        if v.kind == VolumeType::Bind {
            absolute(
                &mut v.source,
                format!("spec.volumes[{i}].source"),
                "bind source",
            )?;
        }
    }
    if let Some(b) = spec.build.as_mut() {
        absolute(&mut b.context, "spec.build.context".into(), "build context")?;
    }
    for (i, f) in spec.env_file.0.iter_mut().enumerate() {
        absolute(&mut f.0, format!("spec.envFile[{i}]"), "env file")?;
    }
    Ok(())
}

/// Bind sources that do not exist on this host: the engine would refuse them at create time,
/// without saying which manifest asked for them.
pub fn missing_bind_sources(objects: &[Object]) -> Vec<ManifestError> {
    let mut errors = Vec::new();
    for o in objects {
        let crate::manifest::Spec::Server(s) = &o.spec else {
            continue;
        };
        for (i, v) in s.volumes.iter().enumerate() {
            if v.kind == crate::manifest::server::VolumeType::Bind && !Path::new(&v.source).exists()
            {
                errors.push(ManifestError {
                    file: o.source.clone(),
                    line: o.line,
                    column: 0,
                    field: format!("spec.volumes[{i}].source"),
                    message: format!(
                        "bind source {} does not exist on this host: create it first (mkdir -p {})",
                        v.source, v.source
                    ),
                });
            }
        }
    }
    errors
}

/// Reads a manifest file, but never more than a manifest may hold.
pub fn read_bounded(path: &Path) -> std::io::Result<String> {
    // Opened without blocking and read only if regular: a FIFO under a manifest's name is an
    // error, never a pass waiting for a writer.
    let bytes =
        crate::hostfs::read(path, None, MAX_MANIFEST_BYTES as u64).map_err(|e| match e {
            crate::hostfs::HostFsError::Io { source, .. } => source,
            crate::hostfs::HostFsError::TooLarge { .. } => std::io::Error::other(format!(
                "too large: more than {MAX_MANIFEST_BYTES} bytes in one manifest"
            )),
            other => std::io::Error::other(other.why()),
        })?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// `read_bounded` for a file that must lie below one of `roots` (links resolved), opened
/// through no link swapped in after that check.
pub fn read_confined(path: &Path, roots: &[std::path::PathBuf]) -> Result<String, String> {
    let bytes = crate::hostfs::read(path, Some(roots), MAX_MANIFEST_BYTES as u64)
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))
}

/// Lexically removes `.` and `..`, so that equal paths hash equally (and the host policy
/// compares where a path really leads).
pub(crate) fn lexical(p: &Path) -> std::path::PathBuf {
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
    out
}

pub(crate) fn deserialize<'de, T: Deserialize<'de>>(
    text: &'de str,
    file: &str,
) -> Result<T, ManifestError> {
    let mut field = String::new();
    let result = super::scalar::with_source(text, || {
        // `.inf` and `.nan` reach the scalars' visitors (which keep their text) instead of
        // failing the whole document.
        let mut options = serde_saphyr::Options::default();
        options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
        // Real compose files use a few anchors many times (a healthcheck, an environment, a
        // logging block): what is bounded is what aliases expand to, not how often they are
        // used (the default refuses more than ten aliases per anchor).
        let mut budget = serde_saphyr::Budget::default();
        budget.enforce_alias_anchor_ratio = false;
        budget.max_recorded_anchor_bytes = ALIAS_BUDGET_BYTES;
        options.budget = Some(budget);
        serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                field = e.path().to_string();
                e.into_inner()
            })
        })
    });
    result.map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let raw = e.without_snippet().to_string();
        let raw = if raw.contains("budget breached") {
            format!(
                "YAML aliases expand past what one file may hold (at most {ALIAS_BUDGET_BYTES} bytes copied and {} events): far more than real files use ({})",
                serde_saphyr::Budget::default().max_events,
                raw.split_once("budget breached").map_or("", |(_, r)| r.trim_start_matches([':', ' ']))
                    .chars()
                    .take_while(|c| *c != '{' && *c != '(')
                    .collect::<String>()
                    .trim()
            )
        } else {
            raw
        };
        let message = match raw.rfind(" at line ") {
            Some(i) if line > 0 => raw[..i].to_owned(),
            _ => raw,
        };
        let message = shorten_quotes(&message);
        ManifestError {
            file: file.to_owned(),
            line,
            column,
            // `Spanned` fields add a `.value` step that is not in the user's document (at the
            // end, or before the fields of a mapping form read through one). A path
            // is made of the file's keys: only a glimpse of it is kept, like quotes.
            field: match field.as_str() {
                "." => String::new(),
                f => {
                    let f = f.replace(".value.", ".");
                    path_glimpse(f.strip_suffix(".value").unwrap_or(&f))
                }
            },
            message,
        }
    })
}

/// The longest excerpt of a manifest an error quotes.
const MAX_QUOTE: usize = 32;

/// Cuts every quoted excerpt of the input in a message (`"..."` or `` `...` ``) to a glimpse,
/// so an error never carries more than a glimpse of a file's content.
fn shorten_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(512));
    let mut quoted: Option<(char, String)> = None;
    for c in message.chars() {
        match &mut quoted {
            None if c == '"' || c == '`' => {
                out.push(c);
                quoted = Some((c, String::new()));
            }
            None => push_escaped(&mut out, c),
            Some((q, _)) if c == *q => {
                if let Some((_, inner)) = quoted.take() {
                    out.push_str(&glimpse(&inner));
                }
                out.push(c);
            }
            Some((_, inner)) => inner.push(c),
        }
    }
    if let Some((_, inner)) = quoted {
        out.push_str(&glimpse(&inner));
    }
    out
}

/// A field path whole (a path is never cut short: `deploy.resources.reservations`), each key
/// of it a glimpse at most, like a quote.
fn path_glimpse(path: &str) -> String {
    path.split('.').map(glimpse).collect::<Vec<_>>().join(".")
}

/// At most `MAX_QUOTE` characters of `text` (then `…`), control characters escaped.
fn glimpse(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTE {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
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
mod tests;
