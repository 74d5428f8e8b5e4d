//! `dockhand validate -f PATH`: the checks a source runs, offline (no engine, no state file),
//! for CI: every manifest and compose file parsed and validated, the checks that span files
//! (the same object twice, dependency cycles, host ports published twice) included.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::print_invalid;
use crate::compose;
use crate::source::{assemble, directory, Origin, Part};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// A manifest or compose file, or a directory of them (read recursively, like --manifests).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Activate the compose services of this profile too (repeatable).
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
}

pub async fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let options = compose::Options {
        profiles: args.profiles.clone(),
        ..Default::default()
    };
    let mut parts = Vec::new();
    for f in &args.files {
        if f.is_dir() {
            let files = directory::ComposeFiles {
                files: Vec::new(),
                options: options.clone(),
            };
            let mut part = directory::read_with(f, &files);
            // Labels relative to the directory read, as the directory source gives them; here
            // they name the directory too.
            let prefix = f.display().to_string();
            let relabel = |l: &str| format!("{}/{l}", prefix.trim_end_matches('/'));
            part.files = part
                .files
                .into_iter()
                .map(|(l, objs)| (relabel(&l), objs))
                .collect();
            for e in part.errors.iter_mut().chain(part.warnings.iter_mut()) {
                e.file = relabel(&e.file);
            }
            parts.push((Origin::Directory, part));
        } else if !f.exists() {
            anyhow::bail!("{} does not exist", f.display());
        } else {
            let label = f.display().to_string();
            let mut part = Part {
                complete: true,
                ..Part::default()
            };
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if compose::is_compose_name(name) {
                match compose::load(f, &label, &options) {
                    Ok(p) => {
                        part.warnings.extend(p.warnings);
                        part.add(label, Ok(p.objects));
                    }
                    Err(e) => part.add(label, Err(e)),
                }
            } else {
                let parsed = crate::manifest::parse::read_bounded(f)
                    .map_err(|e| anyhow::anyhow!("cannot read {label}: {e}"))?;
                let dir = std::fs::canonicalize(f)
                    .ok()
                    .and_then(|p| p.parent().map(PathBuf::from));
                part.add(
                    label.clone(),
                    crate::manifest::parse_str(&parsed, &label, dir.as_deref()),
                );
            }
            parts.push((Origin::Directory, part));
        }
    }
    let snapshot = assemble(parts);
    for w in &snapshot.warnings {
        eprintln!("warning: {w}");
    }
    if !snapshot.errors.is_empty() {
        print_invalid(&snapshot.errors);
        eprintln!("{} error(s)", snapshot.errors.len());
        return Ok(ExitCode::from(1));
    }
    println!("valid: {} object(s)", snapshot.objects.len());
    Ok(ExitCode::SUCCESS)
}
