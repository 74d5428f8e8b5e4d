//! Compose files as a source of desired state, and `dockhand convert`: one translation from a
//! Compose project to dockhand manifests serves both.
//!
//! A file is read in four steps, each naming file, line and key when it fails: its keys are
//! sorted (`keys`: refused, warned, `x-`, typos), its values are read into a model that keeps
//! every form Compose allows (`model`, interpolating `${VAR}` as it goes), `extends` are merged,
//! and the project is translated (`translate`) into manifest documents that the manifest parser
//! reads like any other. A file is applied all or nothing, like a manifest file.

pub mod extends;
pub mod forms;
pub mod interpolate;
pub mod keys;
pub mod model;
pub mod translate;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::manifest::{parse_str, ManifestError, Object};
pub use translate::{Doc, PROJECT_LABEL, SERVICE_LABEL};

/// File names read as compose files in the manifests directory, in Compose's order of preference.
pub const FILE_NAMES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Override files, which Compose merges over the main file; dockhand refuses them rather than
/// ignoring them.
const OVERRIDE_NAMES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// Whether a file of the manifests directory is a compose file (by its name).
pub fn is_compose_name(name: &str) -> bool {
    FILE_NAMES.contains(&name) || OVERRIDE_NAMES.contains(&name)
}

/// What a project is read with besides its file.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--profile`: services with these profiles are active too (`COMPOSE_PROFILES` adds more).
    pub profiles: Vec<String>,
    /// The process variables `${VAR}` may read besides `.env`'s: `None` for every one (`convert`
    /// and `validate`, run by a user in their own shell), or the operator's allow-list for a
    /// controller (names, or prefixes ending in `*`), whose environment is not the manifest
    /// writer's to read.
    pub allowed_env: Option<Vec<String>>,
    /// Where the files a compose file makes dockhand read (`.env`, `extends.file`) must lie,
    /// links resolved: `None` anywhere (the CLI's own user), or below one of these (a
    /// controller: its manifests directory and the allowed host paths).
    pub confine: Option<Vec<PathBuf>>,
    /// Bind sources that do not exist are warnings, not errors (`convert`: the manifests it
    /// writes are run later, maybe elsewhere; every missing path is listed at once).
    pub missing_binds_warn: bool,
}

impl Options {
    /// Whether `${name}` may read the process's variable `name`.
    fn reads_env(&self, name: &str) -> bool {
        self.allowed_env
            .as_ref()
            .is_none_or(|allowed| crate::manifest::secret::env_allowed(allowed, name))
    }

    /// Reads a file the project names: regular, bounded, and (for a controller) below its roots.
    fn read(&self, path: &Path) -> Result<String, String> {
        match &self.confine {
            Some(roots) => crate::manifest::parse::read_confined(path, roots),
            None => read(path).map_err(|e| e.to_string()),
        }
    }
}

/// The longest chain of services extending one another (Compose files in the wild use two or
/// three; a deeper one is a mistake, or an attack on the stack).
pub const MAX_EXTENDS_DEPTH: usize = 32;

/// A project, translated.
#[derive(Clone, Debug)]
pub struct Project {
    pub name: String,
    pub docs: Vec<Doc>,
    pub objects: Vec<Object>,
    /// Keys accepted that change nothing at runtime, each once.
    pub warnings: Vec<ManifestError>,
}

use crate::manifest::parse::read_bounded as read;

fn whole(file: &str, message: String) -> ManifestError {
    ManifestError {
        file: file.to_owned(),
        line: 0,
        column: 0,
        field: String::new(),
        message,
    }
}

/// The environment interpolation sees: the process's, then the project's `.env`.
fn environment(
    dir: &Path,
    label_dir: &str,
    compose_label: &str,
    options: &Options,
) -> Result<BTreeMap<String, String>, ManifestError> {
    let path = dir.join(".env");
    let mut vars = BTreeMap::new();
    if std::fs::symlink_metadata(&path).is_ok() {
        let label = if label_dir.is_empty() {
            ".env".to_owned()
        } else {
            format!("{label_dir}/.env")
        };
        let text = options
            .read(&path)
            .map_err(|e| whole(compose_label, format!("cannot read {label}: {e}")))?;
        // Named as the compose file's error, so that its objects keep their last good spec.
        let pairs = crate::manifest::env_text::parse(&text).map_err(|(line, message)| {
            whole(compose_label, format!("{label}:{line}: {message}"))
        })?;
        vars.extend(pairs);
    }
    Ok(vars)
}

/// A project name as Compose makes one: lowercase letters, digits, `_` and `-`.
fn project_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect::<String>()
        .trim_start_matches(['_', '-'])
        .to_owned()
}

/// Parses one compose file (its `.env` beside it) into a model, positions in `label`.
fn parse_file(
    text: &str,
    label: &str,
    lookup: model::Lookup,
) -> Result<(model::File, keys::Found), Vec<ManifestError>> {
    let found = keys::check(text);
    if !found.errors.is_empty() {
        return Err(found
            .errors
            .iter()
            .map(|(path, at, message)| ManifestError {
                file: label.to_owned(),
                line: at.line,
                column: at.column,
                field: path.clone(),
                message: message.clone(),
            })
            .collect());
    }
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if blank {
        return Ok((model::File::default(), found));
    }
    let (file, unset) = model::with_vars(lookup, || {
        let file = crate::manifest::parse::deserialize::<model::File>(text, label);
        (file, model::take_unset())
    });
    let mut found = found;
    let mut seen = BTreeSet::new();
    for (name, line, column) in unset {
        if seen.insert(name.clone()) {
            found.unset.push(ManifestError {
                file: label.to_owned(),
                line,
                column,
                field: String::new(),
                message: format!("variable {name} is not set: it reads as an empty string"),
            });
        }
    }
    let file = file.map_err(|mut e| {
        e.field = named_path(&e.field, (e.line, e.column), &found.at);
        vec![e]
    })?;
    Ok((file, found))
}

/// `path` with each `?` (a key the deserializer could not name: a service's, a network's)
/// replaced by the key of that level nearest before the error's position (`services.?.x` at
/// line 12 is the service whose key comes last before line 12).
fn named_path(path: &str, at: (u64, u64), keys: &BTreeMap<String, keys::At>) -> String {
    let mut named = String::new();
    for segment in path.split('.') {
        let prefix = if named.is_empty() {
            String::new()
        } else {
            format!("{named}.")
        };
        let next = if segment == "?" {
            keys.iter()
                .filter_map(|(k, a)| {
                    let rest = k.strip_prefix(&prefix)?;
                    (!rest.contains('.') && (a.line, a.column) <= at)
                        .then_some(((a.line, a.column), rest))
                })
                .max()
                .map_or("?", |(_, rest)| rest)
        } else {
            segment
        };
        named = format!("{prefix}{next}");
    }
    named
}

/// Reads the compose file at `path` (named `label` in messages and as the objects' source).
pub fn load(path: &Path, label: &str, options: &Options) -> Result<Project, Vec<ManifestError>> {
    let text = options
        .read(path)
        .map_err(|e| vec![whole(label, format!("cannot read: {e}"))])?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if OVERRIDE_NAMES.contains(&name) {
        return Err(vec![whole(
            label,
            "compose override files are not merged by dockhand: move its keys into the main compose file".into(),
        )]);
    }
    // The project's folder, absolute: `-f compose.yaml` names one in the working directory,
    // whose name is the project's (a relative path has no parent to name, and `../x` under
    // `./compose.yaml` must leave the folder, not stay in it).
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = crate::manifest::parse::lexical(&absolute)
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    let label_dir = Path::new(label)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dotenv = environment(&dir, &label_dir, label, options).map_err(|e| vec![e])?;
    let env_options = options.clone();
    let lookup: model::Lookup = Rc::new(move |k: &str| {
        env_options
            .reads_env(k)
            .then(|| std::env::var(k).ok())
            .flatten()
            .or_else(|| dotenv.get(k).cloned())
    });
    let (file, found) = parse_file(&text, label, lookup.clone())?;
    let at = |path: &str| locate(&found, path);
    let err_at = |path: &str, message: String| {
        let (line, column) = at(path);
        ManifestError {
            file: label.to_owned(),
            line,
            column,
            field: path.to_owned(),
            message,
        }
    };
    let mut warnings: Vec<ManifestError> = found
        .warnings
        .iter()
        .map(|(p, _, m)| err_at(p, m.clone()))
        .collect();
    warnings.extend(found.unset.iter().cloned());

    // `extends`, with other files read relative to this one.
    let services: BTreeMap<String, model::Service> = file
        .services
        .iter()
        .map(|(k, s)| (k.0.clone(), s.value.clone()))
        .collect();
    let load_other = |other: &str, service: &str| -> Result<model::Service, String> {
        let other_path = dir.join(other);
        let text = options
            .read(&other_path)
            .map_err(|e| format!("extends: cannot read {other}: {e}"))?;
        let (f, _) = parse_file(&text, other, lookup.clone()).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let theirs: BTreeMap<String, model::Service> = f
            .services
            .iter()
            .map(|(k, s)| (k.0.clone(), s.value.clone()))
            .collect();
        if !theirs.contains_key(service) {
            return Err(format!("extends: {other} has no service {service:?}"));
        }
        // Their own `extends` of a third file are not followed: one level across files.
        let mut resolved = extends::resolve(&theirs, &|f, _| {
            Err(format!(
                "extends: {other} extends {f} in turn; dockhand follows one file"
            ))
        })
        .map_err(|(_, e)| e)?;
        let mut s = resolved.remove(service).unwrap_or_default();
        if let Some(prefix) = Path::new(other).parent() {
            extends::rebase(&mut s, prefix);
        }
        Ok(s)
    };
    let resolved = extends::resolve(&services, &load_other)
        .map_err(|(svc, e)| vec![err_at(&format!("services.{svc}.extends"), e)])?;
    let mut file = file;
    for (k, s) in file.services.iter_mut() {
        if let Some(r) = resolved.get(&k.0) {
            s.value = r.clone();
        }
    }

    let project = file
        .name
        .as_ref()
        .map(|n| n.0.clone())
        .or_else(|| lookup("COMPOSE_PROJECT_NAME"))
        .unwrap_or_else(|| {
            std::fs::canonicalize(&dir)
                .unwrap_or_else(|_| dir.clone())
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let project = project_name(&project);
    if project.is_empty() {
        return Err(vec![err_at(
            "name",
            "the project needs a name: set name: at the top of the file".into(),
        )]);
    }
    let mut profiles: BTreeSet<String> = options.profiles.iter().cloned().collect();
    if let Some(p) = lookup("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        );
    }
    let cx = translate::Context {
        project: &project,
        dir: &dir,
        lookup: &*lookup,
        profiles: &profiles,
    };
    let out = translate::translate(&file, &cx);
    warnings.extend(
        out.warnings
            .iter()
            .map(|p| err_at(&p.path, p.message.clone())),
    );
    let mut errors: Vec<ManifestError> = out
        .errors
        .iter()
        .map(|p| err_at(&p.path, p.message.clone()))
        .collect();
    let mut objects = Vec::new();
    for doc in &out.docs {
        let text = match serde_saphyr::to_string(&doc.value) {
            Ok(t) => t,
            Err(e) => {
                errors.push(err_at(&doc.from, format!("cannot translate: {e}")));
                continue;
            }
        };
        // A bind source that does not exist is this file's error too, at the key that named it.
        let mut missing_warned = Vec::new();
        let parsed = parse_str(&text, label, Some(&dir)).and_then(|objs| {
            let missing = crate::manifest::parse::missing_bind_sources(&objs);
            if missing.is_empty() {
                Ok(objs)
            } else if options.missing_binds_warn {
                missing_warned = missing;
                Ok(objs)
            } else {
                Err(missing)
            }
        });
        // Where a translated field came from in the compose file.
        let located = |e: &ManifestError, message: String| {
            let path = origin_of(doc, &e.field);
            let (line, column) = at(&path);
            ManifestError {
                file: label.to_owned(),
                line,
                column,
                field: path,
                message,
            }
        };
        warnings.extend(
            missing_warned
                .into_iter()
                .map(|e| located(&e, e.message.clone())),
        );
        match parsed {
            Ok(objs) => {
                let line = at(&doc.from).0;
                objects.extend(objs.into_iter().map(|mut o| {
                    o.line = line;
                    o
                }));
            }
            Err(errs) => errors.extend(errs.iter().map(|e| {
                let message = if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{} (as dockhand's {})", e.message, e.field)
                };
                located(e, message)
            })),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Project {
        name: project,
        docs: out.docs,
        objects,
        warnings,
    })
}

/// The key of the file a translated field (`spec.ports[0].host`) came from.
fn origin_of(doc: &Doc, field: &str) -> String {
    let rest = field.strip_prefix("spec.").unwrap_or_default();
    let top = rest.split(['.', '[']).next().unwrap_or_default();
    if field.starts_with("metadata.labels") {
        return format!("{}.labels", doc.from);
    }
    doc.origins
        .get(top)
        .cloned()
        .unwrap_or_else(|| doc.from.clone())
}

/// The position of a key path, or of its nearest ancestor the key check saw.
fn locate(found: &keys::Found, path: &str) -> (u64, u64) {
    let mut p = path;
    loop {
        if let Some(at) = found.at.get(p) {
            return (at.line, at.column);
        }
        match p.rfind('.') {
            Some(i) => p = &p[..i],
            None => return (0, 0),
        }
    }
}

#[cfg(test)]
mod tests;
