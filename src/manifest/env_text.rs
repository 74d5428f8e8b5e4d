//! The text of an env file (`KEY=VALUE` lines), as Compose reads it: the format of `envFile`
//! and of a compose project's `.env`, shared by the server's env files and interpolation.

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
}
