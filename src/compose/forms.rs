//! Compose's string mini-languages: short port and volume syntax, Go durations, byte sizes and
//! shell words. Pure functions, each error saying what was expected.

use std::time::Duration;

/// One published port, after ranges are expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub container: u16,
    /// 0: the engine picks.
    pub host: u16,
    pub host_ip: Option<String>,
    pub udp: bool,
}

fn port_range(s: &str, what: &str) -> Result<(u16, u16), String> {
    let one = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid {what} port {p:?}: expected 1 to 65535"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return Err(format!(
                    "invalid {what} port range {s:?}: the end is before the start"
                ));
            }
            Ok((a, b))
        }
        None => one(s).map(|p| (p, p)),
    }
}

fn protocol(p: &str) -> Result<bool, String> {
    match p {
        "tcp" => Ok(false),
        "udp" => Ok(true),
        other => Err(format!("invalid protocol {other:?}: expected tcp or udp")),
    }
}

/// Expands container and host ranges of equal length (a host range for one container port
/// would leave the choice to the engine, which one engine cannot promise).
pub fn expand_ports(
    container: &str,
    host: Option<&str>,
    host_ip: Option<String>,
    udp: bool,
) -> Result<Vec<Port>, String> {
    let (c0, c1) = port_range(container, "container")?;
    let hosts = match host.filter(|h| !h.is_empty()) {
        Some(h) => Some(port_range(h, "host")?),
        None => None,
    };
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != c1 - c0 {
            return Err(format!(
                "host ports {h0}-{h1} and container ports {c0}-{c1} differ in length: dockhand maps ranges one to one"
            ));
        }
    }
    Ok((c0..=c1)
        .enumerate()
        .map(|(i, c)| Port {
            container: c,
            host: hosts.map_or(0, |(h0, _)| h0 + i as u16),
            host_ip: host_ip.clone(),
            udp,
        })
        .collect())
}

/// `[HOST_IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTOCOL]`, IPv6 addresses in brackets.
pub fn short_port(s: &str) -> Result<Vec<Port>, String> {
    let (spec, udp) = match s.rsplit_once('/') {
        Some((spec, p)) => (spec, protocol(p)?),
        None => (s, false),
    };
    let (ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once(']')
            .ok_or_else(|| format!("invalid port {s:?}: unclosed [ in the host address"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| format!("invalid port {s:?}: expected [IP]:HOST:CONTAINER"))?;
        (Some(ip.to_owned()), rest)
    } else {
        match spec.matches(':').count() {
            0 | 1 => (None, spec),
            2 => {
                let (ip, rest) = spec.split_once(':').unwrap_or_default();
                (Some(ip.to_owned()), rest)
            }
            _ => {
                return Err(format!(
                    "invalid port {s:?}: expected [HOST_IP:][HOST:]CONTAINER[/PROTOCOL] (IPv6 addresses in [])"
                ))
            }
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    let ip = ip.filter(|i| !i.is_empty());
    if let Some(ip) = &ip {
        ip.parse::<std::net::IpAddr>()
            .map_err(|_| format!("invalid host address {ip:?} in port {s:?}"))?;
    }
    expand_ports(container, host, ip, udp)
}

/// A mount in short syntax: `[SOURCE:]TARGET[:MODE]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `None`: an anonymous volume.
    pub source: Option<String>,
    pub target: String,
    pub read_only: bool,
    /// `z` or `Z`: SELinux relabelling, passed to the engine.
    pub relabel: Option<char>,
    /// Flags accepted that change nothing here (`cached`, `delegated`, `consistent`: Docker
    /// Desktop's file sharing on macOS; `nocopy`), for one warning.
    pub ignored: Vec<String>,
}

impl Mount {
    /// Whether the source is a host path rather than a volume's name.
    pub fn is_bind(&self) -> bool {
        self.source.as_deref().is_some_and(is_path)
    }
}

/// Whether a volume source is a host path (Compose's rule: it starts like one).
pub fn is_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with('.') || s.starts_with('~')
}

pub fn short_volume(s: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] => (None, *t, None),
        [a, b] if b.starts_with('/') => (Some(*a), *b, None),
        [t, m] => (None, *t, Some(*m)),
        [a, b, m] => (Some(*a), *b, Some(*m)),
        _ => {
            return Err(format!(
                "invalid volume {s:?}: expected [SOURCE:]TARGET[:MODE]"
            ))
        }
    };
    if !target.starts_with('/') {
        return Err(format!(
            "invalid volume {s:?}: the target {target:?} must be an absolute path in the container"
        ));
    }
    if source == Some("") {
        return Err(format!(
            "invalid volume {s:?}: the source is empty (an unset variable?)"
        ));
    }
    let mut read_only = false;
    let mut relabel = None;
    let mut ignored = Vec::new();
    for m in mode
        .map(|m| m.split(',').collect::<Vec<_>>())
        .unwrap_or_default()
    {
        match m {
            "ro" => read_only = true,
            "rw" | "" => {}
            "z" => relabel = Some('z'),
            "Z" => relabel = Some('Z'),
            "cached" | "delegated" | "consistent" | "nocopy" => ignored.push(m.to_owned()),
            other => {
                return Err(format!(
                    "invalid volume mode {other:?} in {s:?}: expected ro, rw, z, Z, cached, delegated, consistent or nocopy"
                ))
            }
        }
    }
    Ok(Mount {
        source: source.map(str::to_owned),
        target: target.to_owned(),
        read_only,
        relabel,
        ignored,
    })
}

/// A Go duration (`1m30s`, `500ms`, `1.5s`, `2h`), as Compose writes them.
pub fn duration(s: &str) -> Result<Duration, String> {
    let err = || format!("invalid duration {s:?}: expected a duration like 30s, 1m30s or 500ms");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = t;
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let value: f64 = rest[..n].parse().map_err(|_| err())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// A duration as dockhand writes it (`1m 30s`, `500ms`).
pub fn duration_text(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A byte size as Compose writes it: a number with `b`, `k`/`kb`, `m`/`mb` or `g`/`gb`, any case.
pub fn bytes(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let err = || format!("invalid size {s:?}: expected a number of bytes, or one with k, m or g");
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let value: f64 = t[..digits].parse().map_err(|_| err())?;
    let scale: u64 = match &t[digits..] {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        _ => return Err(err()),
    };
    Ok((value * scale as f64) as u64)
}

/// Splits a command string into words as a POSIX shell would (quotes and backslashes; no
/// expansion), as Compose does for `command: echo "a b"`.
pub fn shell_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => word.push(x),
                        None => return Err(format!("unclosed ' in command {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => word.push(x),
                            Some('\n') => {}
                            Some(x) => {
                                word.push('\\');
                                word.push(x);
                            }
                            None => return Err(format!("unclosed \" in command {s:?}")),
                        },
                        Some(x) => word.push(x),
                        None => return Err(format!("unclosed \" in command {s:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(x) => word.push(x),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(container: u16, host: u16, ip: Option<&str>, udp: bool) -> Port {
        Port {
            container,
            host,
            host_ip: ip.map(str::to_owned),
            udp,
        }
    }

    #[test]
    fn short_ports_read_every_form_compose_documents() {
        assert_eq!(short_port("3000").unwrap(), [p(3000, 0, None, false)]);
        assert_eq!(short_port("8000:80").unwrap(), [p(80, 8000, None, false)]);
        assert_eq!(
            short_port("127.0.0.1:8001:8001").unwrap(),
            [p(8001, 8001, Some("127.0.0.1"), false)]
        );
        assert_eq!(
            short_port("127.0.0.1::5000").unwrap(),
            [p(5000, 0, Some("127.0.0.1"), false)]
        );
        assert_eq!(
            short_port("6060:6060/udp").unwrap(),
            [p(6060, 6060, None, true)]
        );
        assert_eq!(
            short_port("[::1]:6001:6001").unwrap(),
            [p(6001, 6001, Some("::1"), false)]
        );
        assert_eq!(
            short_port("9090-9091:8080-8081").unwrap(),
            [p(8080, 9090, None, false), p(8081, 9091, None, false)]
        );
        assert_eq!(short_port("3000-3001").unwrap().len(), 2);
        for bad in [
            "0",
            "70000",
            "8000-8001:80",
            "80/sctp",
            "a:b:c:d",
            "x.y:80:80",
        ] {
            assert!(short_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_volumes_tell_binds_from_named_and_anonymous_volumes() {
        let m = short_volume("db-data:/var/lib/postgresql/data").unwrap();
        assert_eq!(m.source.as_deref(), Some("db-data"));
        assert!(!m.is_bind());
        let m = short_volume("./conf/nginx.conf:/etc/nginx/nginx.conf:ro").unwrap();
        assert!(m.is_bind() && m.read_only);
        let m = short_volume("/data").unwrap();
        assert_eq!(m.source, None);
        assert!(short_volume("/data:ro").unwrap().read_only);
        assert!(short_volume("data:relative").is_err());
        let z = short_volume("./x:/y:z,ro").unwrap();
        assert_eq!((z.relabel, z.read_only), (Some('z'), true));
        assert_eq!(short_volume("./x:/y:Z").unwrap().relabel, Some('Z'));
        assert_eq!(short_volume("./x:/y:cached").unwrap().ignored, ["cached"]);
        assert!(short_volume("./x:/y:bogus").is_err());
    }

    #[test]
    fn go_durations_and_compose_sizes_are_read() {
        assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(duration("0").unwrap(), Duration::ZERO);
        assert!(duration("10 parsecs").is_err());
        assert_eq!(bytes("50M").unwrap(), 50 << 20);
        assert_eq!(bytes("1gb").unwrap(), 1 << 30);
        assert_eq!(bytes("1024").unwrap(), 1024);
        assert!(bytes("lots").is_err());
    }

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            shell_words(r#"sh -c "echo 'hi there' \"x\"" a\ b"#).unwrap(),
            ["sh", "-c", "echo 'hi there' \"x\"", "a b"]
        );
        assert_eq!(shell_words("  a   ''  ").unwrap(), ["a", ""]);
        assert!(shell_words("echo 'open").is_err());
    }
}
