//! Variable interpolation in compose files, as Compose does it: `$VAR`, `${VAR}`,
//! `${VAR:-default}` (unset or empty), `${VAR-default}` (unset), `${VAR:?message}` and
//! `${VAR?message}` (an error), `${VAR:+alternative}` and `${VAR+alternative}`, and `$$` for a
//! literal `$`. Defaults and alternatives may hold interpolations of their own. Values come from
//! a lookup (the environment, then the project's `.env`), never from a shell: nothing is run.

/// Why a string could not be interpolated, at which byte of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    #[error("unclosed ${{ at byte {at}: expected }}")]
    Unclosed { at: usize },
    #[error("invalid variable name {name:?} at byte {at}: expected letters, digits and '_', not starting with a digit")]
    BadName { name: String, at: usize },
    #[error("invalid interpolation {text:?} at byte {at}: expected ${{VAR}}, ${{VAR:-default}}, ${{VAR-default}}, ${{VAR:?message}} or ${{VAR:+alternative}}")]
    BadForm { text: String, at: usize },
    #[error("interpolation nested more than {max} deep at byte {at}: expected at most {max} levels of ${{VAR:-${{...}}}}")]
    TooDeep { at: usize, max: usize },
    #[error("required variable {name} is {why}: {message}")]
    Required {
        name: String,
        why: &'static str,
        message: String,
    },
}

/// The deepest nesting of defaults in defaults (`${A:-${B:-${C}}}`) read; deeper is an error,
/// not a stack overflow (a 3.5 KB file nested 500 deep aborted the controller).
pub const MAX_DEPTH: usize = 16;

/// `text` with every interpolation replaced, looking names up with `lookup`.
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    interpolate_noting(text, lookup, &mut |_| {})
}

/// Like `interpolate`, calling `unset` with each variable referred to bare (`$X`, `${X}`: no
/// default to fall back on) that `lookup` does not know, as it goes: one pass over the text,
/// however many variables it names.
pub fn interpolate_noting(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut dyn FnMut(&str),
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut cx = Cx { lookup, unset };
    expand(text, 0, 0, &mut cx, &mut out)?;
    Ok(out)
}

/// What expanding needs besides the text.
struct Cx<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    unset: &'a mut dyn FnMut(&str),
}

/// Expands `text` (found at byte `base` of the original, `depth` defaults deep) into `out`.
fn expand(
    text: &str,
    base: usize,
    depth: usize,
    cx: &mut Cx<'_>,
    out: &mut String,
) -> Result<(), InterpolateError> {
    if depth > MAX_DEPTH {
        return Err(InterpolateError::TooDeep {
            at: base,
            max: MAX_DEPTH,
        });
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let Some(off) = text[i..].find('$') else {
            out.push_str(&text[i..]);
            break;
        };
        out.push_str(&text[i..i + off]);
        let at = i + off;
        match bytes.get(at + 1) {
            Some(b'$') => {
                out.push('$');
                i = at + 2;
            }
            Some(b'{') => {
                let end = closing_brace(text, at + 2)
                    .ok_or(InterpolateError::Unclosed { at: base + at })?;
                braced(&text[at + 2..end], base + at, depth, cx, out)?;
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let len = text[at + 1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count();
                let name = &text[at + 1..at + 1 + len];
                match (cx.lookup)(name) {
                    Some(v) => out.push_str(&v),
                    None => (cx.unset)(name),
                }
                i = at + 1 + len;
            }
            // A lone `$` (at the end, or before anything else) stays, as Compose keeps it.
            _ => {
                out.push('$');
                i = at + 1;
            }
        }
    }
    Ok(())
}

/// The index of the `}` closing a `${` whose body starts at `from`, nested braces counted.
fn closing_brace(text: &str, from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate().skip(from) {
        match b {
            b'{' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

fn braced(
    body: &str,
    at: usize,
    depth: usize,
    cx: &mut Cx<'_>,
    out: &mut String,
) -> Result<(), InterpolateError> {
    let name_len = body
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let (name, rest) = body.split_at(name_len);
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(InterpolateError::BadName {
            name: body.chars().take(40).collect(),
            at,
        });
    }
    let value = (cx.lookup)(name);
    let empty = value.as_deref().is_none_or(str::is_empty);
    let (op, arg) = if rest.is_empty() {
        ("", "")
    } else if let Some(op) = [":-", ":?", ":+"]
        .into_iter()
        .find(|op| rest.starts_with(op))
    {
        (op, &rest[2..])
    } else if let Some(op) = ["-", "?", "+"].into_iter().find(|op| rest.starts_with(op)) {
        (op, &rest[1..])
    } else {
        return Err(InterpolateError::BadForm {
            text: format!("${{{}}}", body.chars().take(40).collect::<String>()),
            at,
        });
    };
    // The argument's own interpolations start after `${`, the name and the operator.
    let arg_at = at + 2 + name.len() + op.len();
    let next = depth + 1;
    match op {
        "" => match value {
            Some(v) => out.push_str(&v),
            None => (cx.unset)(name),
        },
        ":-" if empty => expand(arg, arg_at, next, cx, out)?,
        "-" if value.is_none() => expand(arg, arg_at, next, cx, out)?,
        ":-" | "-" => out.push_str(&value.unwrap_or_default()),
        ":?" | "?" if (op == ":?" && empty) || value.is_none() => {
            let mut message = String::new();
            expand(arg, arg_at, next, cx, &mut message)?;
            return Err(InterpolateError::Required {
                name: name.to_owned(),
                why: if value.is_none() { "not set" } else { "empty" },
                message: if message.is_empty() {
                    "it must be set".into()
                } else {
                    message
                },
            });
        }
        ":?" | "?" => out.push_str(&value.unwrap_or_default()),
        ":+" if !empty => expand(arg, arg_at, next, cx, out)?,
        "+" if value.is_some() => expand(arg, arg_at, next, cx, out)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TAG" => Some("1.25".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".into()),
            _ => None,
        }
    }

    fn i(text: &str) -> Result<String, InterpolateError> {
        interpolate(text, &env)
    }

    #[test]
    fn compose_forms_interpolate_as_compose_does() {
        let cases = [
            ("nginx:${TAG}", "nginx:1.25"),
            ("nginx:$TAG", "nginx:1.25"),
            ("$TAG-x", "1.25-x"),
            ("${UNSET}", ""),
            ("${UNSET:-9000}", "9000"),
            ("${EMPTY:-9000}", "9000"),
            ("${EMPTY-9000}", ""),
            ("${UNSET-9000}", "9000"),
            ("${PORT:-9000}", "8080"),
            ("${PORT:+on}", "on"),
            ("${EMPTY:+on}", ""),
            ("${EMPTY+on}", "on"),
            ("${UNSET+on}", ""),
            ("${UNSET:-${PORT}}", "8080"),
            ("${UNSET:-${ALSO:-deep}}", "deep"),
            ("$$HOME and $$${TAG}", "$HOME and $1.25"),
            ("cost: 5$", "cost: 5$"),
            ("a $ b", "a $ b"),
            ("${PORT?}", "8080"),
            ("no variables", "no variables"),
        ];
        for (text, want) in cases {
            assert_eq!(i(text).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn required_variables_fail_with_their_message() {
        let e = i("${DB_PASSWORD:?set it in .env}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "required variable DB_PASSWORD is not set: set it in .env"
        );
        let e = i("${EMPTY:?}").unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        assert_eq!(i("${EMPTY?}").as_deref(), Ok(""));
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_not_a_stack_overflow() {
        let deep = |n: usize| format!("{}x{}", "${U:-".repeat(n), "}".repeat(n));
        assert_eq!(i(&deep(MAX_DEPTH)).as_deref(), Ok("x"));
        // 500 deep aborted `up` at every restart (3.5 KB); 100,000 deep is 600 KB.
        for n in [MAX_DEPTH + 1, 500, 100_000] {
            let e = i(&deep(n)).expect_err("too deep");
            assert!(matches!(e, InterpolateError::TooDeep { .. }), "{e}");
        }
    }

    #[test]
    fn unset_bare_references_are_noted_in_one_pass() {
        let mut noted = Vec::new();
        let out = interpolate_noting("$A ${B} ${C:-c} $TAG ${D-d}", &env, &mut |n| {
            noted.push(n.to_owned())
        })
        .expect("interpolates");
        assert_eq!(out, "  c 1.25 d");
        assert_eq!(noted, ["A", "B"]);
        // Linear in the text: 1.2 M `$$` and 6,000 unset variables took 50 s per parse.
        let text = format!("{}{}", "$$".repeat(1_200_000), "${U}".repeat(6000));
        let started = std::time::Instant::now();
        let mut count = 0;
        interpolate_noting(&text, &env, &mut |_| count += 1).expect("interpolates");
        assert_eq!(count, 6000);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn malformed_interpolations_name_where_they_are() {
        assert_eq!(i("ab${TAG"), Err(InterpolateError::Unclosed { at: 2 }));
        assert!(matches!(
            i("${1X}"),
            Err(InterpolateError::BadName { at: 0, .. })
        ));
        assert!(matches!(
            i("x ${}"),
            Err(InterpolateError::BadName { at: 2, .. })
        ));
        assert!(matches!(
            i("${TAG/x/y}"),
            Err(InterpolateError::BadForm { .. })
        ));
        assert!(matches!(
            i("${UNSET:-${}}"),
            Err(InterpolateError::BadName { at: 9, .. })
        ));
    }
}
