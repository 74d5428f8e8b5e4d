//! `envFile`: environment variables kept in files next to the manifest (`.env`), read at each
//! pass so an edit reaches the container. A file is re-read only when its size or modification
//! time changed, so a no-op pass costs one `stat` per file. Its content counts in the spec
//! hash (an edit recreates the container); an unreadable or malformed file holds the object
//! back with the line at fault, leaving its running container alone.

use std::path::Path;
use std::sync::Arc;

use super::config_files::StampCache;
use crate::manifest::short_hash;

/// One file's variables, in file order, and the hash of its bytes.
#[derive(Debug, PartialEq)]
pub struct Loaded {
    pub vars: Vec<(String, String)>,
    pub digest: String,
}

/// Files read before, by path, with the stamp they had.
#[derive(Default)]
pub struct EnvFiles {
    seen: StampCache<Arc<Loaded>>,
}

impl EnvFiles {
    /// The file's variables, read again only if it changed.
    pub fn load(&self, path: &Path) -> Result<Arc<Loaded>, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a file", path.display()));
        }
        self.seen.get(path, &meta, || {
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
            let vars = parse(&text)
                .map_err(|(line, why)| format!("{} line {line}: {why}", path.display()))?;
            Ok(Arc::new(Loaded {
                vars,
                digest: short_hash(text.as_bytes()),
            }))
        })
    }
}

/// `KEY=VALUE` lines, as Compose reads them: blank lines and `#` comments are skipped, `export`
/// is allowed before a key, a value in double quotes takes `\n`, `\t`, `\"` and `\\` escapes, one
/// in single quotes is literal, and an unquoted one ends at ` #`. Values are taken as written
/// (no `${VAR}` interpolation: the controller's own environment is not the application's).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err((
                n + 1,
                format!("expected KEY=VALUE, found {:?}", truncate(line)),
            ));
        };
        let key = key.trim_end();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err((
                n + 1,
                format!(
                    "invalid name {:?}: expected a name without spaces before '='",
                    truncate(key)
                ),
            ));
        }
        out.push((
            key.to_owned(),
            value_of(value.trim_start()).map_err(|e| (n + 1, e))?,
        ));
    }
    Ok(out)
}

fn value_of(v: &str) -> Result<String, String> {
    let rest_ok = |rest: &str| {
        let rest = rest.trim_start();
        rest.is_empty() || rest.starts_with('#')
    };
    if let Some(body) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    return if rest_ok(&body[i + 1..]) {
                        Ok(out)
                    } else {
                        Err("unexpected text after the closing quote".into())
                    };
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('"' | '\\' | '$')) => out.push(c),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => out.push('\\'),
                },
                c => out.push(c),
            }
        }
        return Err("unclosed double quote (values are one line; write \\n for a newline)".into());
    }
    if let Some(body) = v.strip_prefix('\'') {
        let Some(end) = body.find('\'') else {
            return Err("unclosed single quote".into());
        };
        return if rest_ok(&body[end + 1..]) {
            Ok(body[..end].to_owned())
        } else {
            Err("unexpected text after the closing quote".into())
        };
    }
    let end = v
        .char_indices()
        .find(|&(i, c)| c == '#' && v[..i].ends_with(char::is_whitespace))
        .map_or(v.len(), |(i, _)| i);
    Ok(v[..end].trim_end().to_owned())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_read_as_compose_reads_them() {
        let text = "# a comment\n\nA=1\nexport B = two words \nC=\"line\\nnext\" # note\nD='lit\\n $X'\nE=x#y\nF=x #y\nG=\nH=a=b\n";
        let vars = parse(text).expect("parses");
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("line\nnext"));
        assert_eq!(get("D"), Some("lit\\n $X"));
        assert_eq!(get("E"), Some("x#y"));
        assert_eq!(get("F"), Some("x"));
        assert_eq!(get("G"), Some(""));
        assert_eq!(get("H"), Some("a=b"));
    }

    #[test]
    fn a_bad_line_is_named() {
        assert_eq!(parse("A=1\nJUST_A_NAME\n").unwrap_err().0, 2);
        assert!(parse("A=\"open\n").unwrap_err().1.contains("unclosed"));
        assert!(parse("MY KEY=1\n").unwrap_err().1.contains("invalid name"));
    }

    #[test]
    fn a_file_is_read_again_only_when_it_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=1\n").expect("write");
        let files = EnvFiles::default();
        let first = files.load(&path).expect("loads");
        assert!(Arc::ptr_eq(&first, &files.load(&path).expect("loads")));
        std::fs::write(&path, "A=22\n").expect("write");
        let second = files.load(&path).expect("loads");
        assert_eq!(second.vars, [("A".to_owned(), "22".to_owned())]);
        assert_ne!(first.digest, second.digest);
        assert!(files.load(&dir.path().join("missing")).is_err());
    }
}
