//! `dockhand convert`: a compose file as dockhand manifests, to move over for good. It runs the
//! compose source's own translation (and its validation), so what it writes is what the source
//! would run.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use super::print_invalid;
use crate::compose::{self, Doc};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The compose file to convert.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "compose.yaml"
    )]
    pub file: PathBuf,
    /// Write one manifest per object into this directory (made if missing), with paths
    /// relative to it; without it, every manifest goes to stdout with paths relative to the
    /// compose file's directory.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Convert the services of this profile too (repeatable).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
}

pub async fn run(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let label = args.file.to_string_lossy().into_owned();
    let options = compose::Options {
        profiles: args.profiles.clone(),
        // The manifests are run later, perhaps elsewhere: a missing bind source is listed
        // (with the mkdir that makes it), not a refusal to translate.
        missing_binds_warn: true,
        ..Default::default()
    };
    let project = match compose::load(&args.file, &label, &options) {
        Ok(p) => p,
        Err(errors) => {
            print_invalid(&errors);
            return Ok(ExitCode::from(1));
        }
    };
    for w in &project.warnings {
        eprintln!("warning: {w}");
    }
    let compose_dir = absolute(args.file.parent().unwrap_or(Path::new(".")))?;
    match &args.output {
        None => {
            let mut out = String::new();
            for (i, doc) in project.docs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&render(doc, &label, &project.name)?);
            }
            print!("{out}");
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let out_dir = absolute(dir)?;
            for doc in &project.docs {
                let mut doc = doc.clone();
                rebase(&mut doc.value, &compose_dir, &out_dir);
                let path = dir.join(format!("{}.yaml", doc.name));
                std::fs::write(&path, render(&doc, &label, &project.name)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One manifest with a header saying where it came from and what was chosen.
fn render(doc: &Doc, file: &str, project: &str) -> anyhow::Result<String> {
    let mut out = format!(
        "# Converted by dockhand from {file} ({}, project {project}).\n",
        doc.from
    );
    for n in &doc.notes {
        out.push_str(&format!("# {n}\n"));
    }
    out.push_str(&serde_saphyr::to_string(&doc.value).context("cannot write YAML")?);
    Ok(out)
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    let p = if p.as_os_str().is_empty() {
        Path::new(".")
    } else {
        p
    };
    std::fs::canonicalize(p).with_context(|| format!("cannot resolve {}", p.display()))
}

/// Makes the relative host paths of a manifest (bind sources, build context, env files),
/// written relative to `from`, relative to `to`.
fn rebase(doc: &mut Value, from: &Path, to: &Path) {
    let fix = |v: &mut Value| {
        if let Value::String(s) = v {
            if !Path::new(s.as_str()).is_absolute() {
                let target = crate::manifest::parse::lexical(&from.join(s.as_str()));
                *s = relative(to, &target).to_string_lossy().into_owned();
            }
        }
    };
    let Some(spec) = doc.get_mut("spec") else {
        return;
    };
    if let Some(Value::Array(volumes)) = spec.get_mut("volumes") {
        for v in volumes {
            if v.get("type").and_then(Value::as_str) == Some("bind") {
                if let Some(src) = v.get_mut("source") {
                    fix(src);
                }
            }
        }
    }
    if let Some(ctx) = spec.get_mut("build").and_then(|b| b.get_mut("context")) {
        fix(ctx);
    }
    if let Some(Value::Array(files)) = spec.get_mut("envFile") {
        files.iter_mut().for_each(fix);
    }
}

/// `target` relative to the directory `base` (both absolute).
fn relative(base: &Path, target: &Path) -> PathBuf {
    let b: Vec<Component> = base.components().collect();
    let t: Vec<Component> = target.components().collect();
    let common = b.iter().zip(&t).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_made_relative_to_the_output_directory() {
        assert_eq!(
            relative(Path::new("/a/b/out"), Path::new("/a/b/www")),
            Path::new("../www")
        );
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), Path::new("."));
        let mut doc = serde_json::json!({"spec": {
            "volumes": [{"type": "bind", "source": "./www", "target": "/www"},
                        {"source": "shop_data", "target": "/data"}],
            "build": {"context": "api"}, "envFile": ["api.env"]}});
        rebase(&mut doc, Path::new("/p"), Path::new("/p/manifests"));
        assert_eq!(doc["spec"]["volumes"][0]["source"], "../www");
        assert_eq!(doc["spec"]["volumes"][1]["source"], "shop_data");
        assert_eq!(doc["spec"]["build"]["context"], "../api");
        assert_eq!(doc["spec"]["envFile"][0], "../api.env");
    }
}
