//! `build`: a server's image made from source through the engine's build API.
//!
//! The image is tagged by a digest of what the build sees (the context's files after
//! `.dockerignore`, with their paths, contents and executable bits, plus the Dockerfile's path,
//! the arguments and the target), so an edit anywhere in the context makes a new tag, and the new
//! tag is a spec change that rolls the server. An unchanged context finds its image on the engine
//! and builds nothing. File contents are hashed through `ConfigFiles`' cache, so a no-op pass
//! costs one `stat` per context file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config_files::ConfigFiles;
use crate::engine::BuildSpec;
use crate::manifest::server::Build;
use crate::manifest::short_hash;

/// The most files one build context may hold (a context of a whole home directory is a mistake
/// better named than sent).
pub const MAX_CONTEXT_FILES: usize = 20_000;

/// The image tag and what to send for a server's build, or why the context cannot be read.
pub fn prepare(
    instance: &str,
    server: &str,
    build: &Build,
    image: Option<&str>,
    cache: &ConfigFiles,
) -> Result<BuildSpec, String> {
    let context = Path::new(&build.context);
    // What is read of the context is read below it: a link is sent (and hashed) as a link.
    let roots = [context.to_path_buf()];
    if !context.is_dir() {
        return Err(format!(
            "build context {} is not a directory",
            build.context
        ));
    }
    let dockerfile = build
        .dockerfile
        .clone()
        .unwrap_or_else(|| "Dockerfile".into());
    let ignore_path = context.join(".dockerignore");
    let ignore = match std::fs::symlink_metadata(&ignore_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        _ => {
            let bytes = crate::hostfs::read(&ignore_path, Some(&roots), 1 << 20)
                .map_err(|e| format!("{}/.dockerignore: {}", build.context, e.why()))?;
            Ignore::parse(&String::from_utf8_lossy(&bytes))
        }
    };
    let mut files = Vec::new();
    walk(context, context, &ignore, &mut files)
        .map_err(|e| format!("build context {}: {e}", build.context))?;
    // The engine needs the Dockerfile even when `.dockerignore` names it.
    let df = dockerfile.trim_start_matches("./").to_owned();
    if !files.contains(&df) {
        let is_file = std::fs::symlink_metadata(context.join(&df))
            .is_ok_and(|m| m.is_file() || m.file_type().is_symlink());
        if !is_file {
            return Err(format!(
                "build.dockerfile: {df} is not a file in the context {}",
                build.context
            ));
        }
        files.push(df.clone());
    }
    files.sort();
    let mut acc = format!("{dockerfile}\0{:?}\0", build.target);
    for (k, v) in &build.args {
        acc.push_str(&format!("{k}={}\0", v.0));
    }
    for f in &files {
        let path = context.join(f);
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let digest = if meta.file_type().is_symlink() {
            let target =
                std::fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            super::config_files::link_digest(&target)
        } else {
            cache.file(&path, &meta, &roots)?
        };
        let exec = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0;
        acc.push_str(&format!("{f}\0{digest}\0{exec}\n"));
    }
    let digest = short_hash(acc.as_bytes());
    Ok(BuildSpec {
        tag: format!("dh_{instance}_{server}:{}", &digest[..digest.len().min(16)]),
        context: PathBuf::from(&build.context),
        dockerfile,
        args: build
            .args
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
        target: build.target.clone(),
        files: Arc::new(files),
        also: image.map(str::to_owned),
        labels: crate::engine::labels::owner_labels(instance),
    })
}

fn walk(root: &Path, dir: &Path, ignore: &Ignore, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            // An excluded directory is still walked when an exception may re-include below it.
            if !ignore.excludes(&rel) || ignore.has_exceptions() {
                walk(root, &path, ignore, out)?;
            }
        } else if (kind.is_file() || kind.is_symlink()) && !ignore.excludes(&rel) {
            // A link is sent as a link, as the engine's own client sends it: the build
            // resolves it inside the context, so a link to a host file reads nothing of it.
            out.push(rel);
            if out.len() > MAX_CONTEXT_FILES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_CONTEXT_FILES} files (exclude some with .dockerignore)"
                )));
            }
        }
    }
    Ok(())
}

/// `.dockerignore` as the engine reads it: one pattern per line, `#` comments, `*`, `?`, `**`
/// and `[...]` globs relative to the context root, and `!` exceptions; the last matching
/// pattern decides, and a pattern that matches a directory excludes what is below it.
#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<(Vec<String>, bool)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, exception) = match line.strip_prefix('!') {
                Some(p) => (p.trim(), true),
                None => (line, false),
            };
            let segments: Vec<String> = pattern
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_owned)
                .collect();
            if !segments.is_empty() {
                patterns.push((segments, exception));
            }
        }
        Ignore { patterns }
    }

    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, e)| *e)
    }

    /// Whether the context-relative path `rel` stays out of the build.
    pub fn excludes(&self, rel: &str) -> bool {
        let path: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for (pattern, exception) in &self.patterns {
            // The path itself, or a directory above it.
            let hit = (1..=path.len()).any(|n| segments_match(pattern, &path[..n]));
            if hit {
                excluded = !exception;
            }
        }
        excluded
    }
}

fn segments_match(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| segments_match(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((seg, more)) => {
                glob(first.as_bytes(), seg.as_bytes()) && segments_match(rest, more)
            }
            None => false,
        },
    }
}

/// One path segment against `*`, `?`, `[...]` (with `^`/`!` negation and ranges) and `\` escapes.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((b'[', rest)) => {
            let Some((&c, s_rest)) = s.split_first() else {
                return false;
            };
            let Some(end) = rest.iter().position(|&b| b == b']') else {
                return c == b'[' && glob(rest, s_rest);
            };
            let (class, after) = (&rest[..end], &rest[end + 1..]);
            let (negated, class) = match class.first() {
                Some(b'^' | b'!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= (class[i]..=class[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negated && glob(after, s_rest)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            s.first() == rest.first() && glob(&rest[1..], &s[1..])
        }
        Some((&c, rest)) => s.first() == Some(&c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns_read_as_the_engine_reads_them() {
        let ig = Ignore::parse(
            "# comment\nnode_modules\n*.log\n**/*.tmp\n/secret\ndocs/**\n!docs/keep.md\nbuild?/\n[ab].txt\n",
        );
        for excluded in [
            "node_modules",
            "node_modules/x/y.js",
            "app.log",
            "a/b/c.tmp",
            "c.tmp",
            "secret",
            "docs/a.md",
            "build1/out",
            "a.txt",
        ] {
            assert!(ig.excludes(excluded), "{excluded}");
        }
        for kept in [
            "src/app.log",
            "src/main.rs",
            "docs/keep.md",
            "c.txt",
            "secrets",
            "build12/x",
        ] {
            assert!(!ig.excludes(kept), "{kept}");
        }
    }

    #[test]
    fn the_tag_follows_the_context_and_the_build_settings_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = dir.path();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\n").expect("write");
        std::fs::write(ctx.join("app.sh"), "echo 1\n").expect("write");
        std::fs::write(ctx.join("debug.log"), "noise\n").expect("write");
        std::fs::write(ctx.join(".dockerignore"), "*.log\nDockerfile\n").expect("write");
        let build = Build {
            context: ctx.display().to_string(),
            dockerfile: None,
            args: Default::default(),
            target: None,
        };
        let cache = ConfigFiles::default();
        let one = prepare("i", "api", &build, None, &cache).expect("prepares");
        assert!(one.tag.starts_with("dh_i_api:"), "{}", one.tag);
        assert_eq!(*one.files, [".dockerignore", "Dockerfile", "app.sh"]);
        std::fs::write(ctx.join("debug.log"), "more noise\n").expect("write");
        assert_eq!(
            prepare("i", "api", &build, None, &cache)
                .expect("prepares")
                .tag,
            one.tag
        );
        std::fs::write(ctx.join("app.sh"), "echo 2\n").expect("write");
        let two = prepare("i", "api", &build, None, &cache).expect("prepares");
        assert_ne!(two.tag, one.tag);
        let with_target = Build {
            target: Some("prod".into()),
            ..build.clone()
        };
        assert_ne!(
            prepare("i", "api", &with_target, None, &cache)
                .expect("prepares")
                .tag,
            two.tag
        );
        let mut tar = Vec::new();
        two.write_archive(&mut tar).expect("tar");
        let names: Vec<String> = tar::Archive::new(tar.as_slice())
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(names, [".dockerignore", "Dockerfile", "app.sh"]);
        let missing = Build {
            dockerfile: Some("Nope".into()),
            ..build
        };
        assert!(prepare("i", "api", &missing, None, &cache).is_err());
    }

    #[test]
    fn links_in_a_context_are_sent_as_links_and_never_followed() {
        // The safety review's leak: `ln -s /srv/rootonly/canary.txt ctx/leak` plus `COPY leak`
        // served the root-only file, and a linked Dockerfile put its first line in the status.
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let canary = outside.path().join("canary.txt");
        std::fs::write(&canary, "ROOT-ONLY-CANARY").expect("write");
        let ctx = dir.path();
        std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY leak /leak\n").expect("write");
        std::os::unix::fs::symlink(&canary, ctx.join("leak")).expect("symlink");
        std::os::unix::fs::symlink(&canary, ctx.join("Dockerfile.link")).expect("symlink");
        // A sparse file (a hole of 1 MiB) must not become a GNU sparse entry the engine refuses.
        let sparse = std::fs::File::create(ctx.join("sparse.img")).expect("create");
        sparse.set_len(1 << 20).expect("truncate");
        let build = Build {
            context: ctx.display().to_string(),
            dockerfile: None,
            args: Default::default(),
            target: None,
        };
        let spec = prepare("i", "api", &build, None, &ConfigFiles::default()).expect("prepares");
        let mut tar = Vec::new();
        spec.write_archive(&mut tar).expect("tar");
        let text = String::from_utf8_lossy(&tar);
        assert!(!text.contains("ROOT-ONLY-CANARY"), "the link was followed");
        let mut archive = tar::Archive::new(tar.as_slice());
        for e in archive.entries().expect("entries") {
            let e = e.expect("entry");
            let name = e.path().expect("path").display().to_string();
            let kind = e.header().entry_type();
            match name.as_str() {
                "leak" | "Dockerfile.link" => {
                    assert!(kind.is_symlink(), "{name}: {kind:?}");
                    assert_eq!(
                        e.link_name().expect("link").expect("target").as_ref(),
                        canary.as_path()
                    );
                }
                "sparse.img" => assert!(kind.is_file(), "{kind:?}"),
                _ => {}
            }
        }
        let linked = Build {
            dockerfile: Some("Dockerfile.link".into()),
            ..build
        };
        // The Dockerfile named is a link: it goes as a link too, and nothing of its target is
        // read into the tag's digest or a message.
        let spec = prepare("i", "api", &linked, None, &ConfigFiles::default()).expect("prepares");
        let mut tar = Vec::new();
        spec.write_archive(&mut tar).expect("tar");
        assert!(!String::from_utf8_lossy(&tar).contains("ROOT-ONLY-CANARY"));
    }
}
