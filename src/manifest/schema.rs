//! The JSON Schema of dockhand manifests, generated from the same Rust types that parse them,
//! so editors (yaml-language-server) flag mistakes as they are typed. Published as
//! `schema/dockhand.schema.json`; a test keeps that file equal to what the types generate.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Value};

use super::database::{DatabaseSpec, Identifier};
use super::fields::{AbsPath, ContainerPort, EnvName, HostPort, Hostname, Image};
use super::network::{Cidr, ListenAddr, NetworkSpec, RouteSpec};
use super::options::{
    Capability, Device, EnvFile, HostAddress, HostKey, SecurityOpt, Signal, SysctlName, Tmpfs,
    Ulimit, UlimitName, ULIMITS,
};
use super::quantity::{Cpus, Memory, Size};
use super::server::ServerSpec;
use super::{Kind, LabelKey, Name, ScalarString, API_VERSION};

/// A duration written as text: `30s`, `2m`, `1h30m`.
pub struct DurationText;

/// Schemas of the types with hand-written parsers: what they accept, as text.
macro_rules! text_schema {
    ($($ty:ty => $name:literal, $schema:tt;)*) => {$(
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    )*};
}

text_schema! {
    DurationText => "Duration", {
        "type": "string",
        "pattern": "^([0-9]+(ns|us|ms|s|m|h|d)\\s*)+$",
        "description": "a duration like 30s, 2m or 1h30m"
    };
    Name => "Name", {
        "type": "string",
        "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        "description": "a DNS label: lowercase letters, digits and '-', at most 63 characters"
    };
    ScalarString => "Scalar", {
        "type": ["string", "number", "boolean"],
        "description": "a string; numbers and booleans are taken as their text"
    };
    LabelKey => "LabelKey", {
        "type": "string",
        "pattern": "^[^\\s=]+$",
        "not": {"pattern": "^dockhand\\."},
        "description": "a label key without spaces or '='; the prefix dockhand. is reserved"
    };
    Image => "Image", {
        "type": "string",
        "pattern": "^\\S+$",
        "description": "an image reference like busybox:1.36 or registry:5000/app@sha256:..."
    };
    EnvName => "EnvName", {
        "type": "string",
        "pattern": "^[^=\\x00]+$",
        "description": "an environment variable name: anything but '=' and NUL"
    };
    Hostname => "Hostname", {
        "type": "string",
        "pattern": "^[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?(\\.[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?)*$",
        "maxLength": 253,
        "description": "a host name: labels of letters, digits and '-' separated by dots"
    };
    AbsPath => "AbsolutePath", {
        "type": "string",
        "pattern": "^/",
        "description": "an absolute path inside the container"
    };
    ContainerPort => "ContainerPort", {
        "type": ["integer", "string"],
        "minimum": 1,
        "maximum": 65535
    };
    HostPort => "HostPort", {
        "type": ["integer", "string"],
        "minimum": 0,
        "maximum": 65535,
        "description": "a host port; 0 or absent lets the engine choose"
    };
    Memory => "Memory", {
        "type": ["string", "integer"],
        "pattern": "^\\s*[0-9.]+\\s*([kKmMgGtT]([iI]?[bB]?)?|[bB])?\\s*$",
        "description": "bytes, or a size like 256m, 1g or 512Mi (binary units, at least 6m)"
    };
    Size => "Size", {
        "type": ["string", "integer"],
        "pattern": "^\\s*[0-9.]+\\s*([kKmMgGtT]([iI]?[bB]?)?|[bB])?\\s*$",
        "description": "bytes, or a size like 64m, 1g or 512Mi (binary units)"
    };
    HostKey => "HostKey", {
        "type": "string",
        "description": "a host name for /etc/hosts"
    };
    HostAddress => "HostAddress", {
        "type": "string",
        "description": "an IPv4 or IPv6 address, or host-gateway (the engine's host)"
    };
    Capability => "Capability", {
        "type": "string",
        "pattern": "^[A-Za-z][A-Za-z0-9_]*$",
        "description": "a Linux capability like NET_ADMIN or CAP_SYS_PTRACE, or ALL"
    };
    Device => "Device", {
        "type": "string",
        "pattern": "^/dev(/[^:]*)?(:/[^:]+)?(:[rwm]{1,3})?$",
        "description": "HOST[:CONTAINER[:PERMISSIONS]], like /dev/fuse or /dev/sda:/dev/xvda:r"
    };
    SysctlName => "Sysctl", {
        "type": "string",
        "pattern": "^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+$",
        "description": "a namespaced kernel parameter like net.core.somaxconn"
    };
    Tmpfs => "Tmpfs", {
        "type": "string",
        "pattern": "^/[^:]*(:\\S+)?$",
        "description": "PATH[:OPTIONS], like /run or /run:size=64m,mode=1777"
    };
    Signal => "Signal", {
        "type": ["string", "integer"],
        "pattern": "^([A-Z][A-Z0-9+-]*|[0-9]+)$",
        "description": "a signal like SIGTERM, SIGQUIT or SIGRTMIN+3, or its number"
    };
    SecurityOpt => "SecurityOpt", {
        "type": "string",
        "pattern": "^(no-new-privileges([:=](true|false))?|apparmor[:=].+|label[:=].+|seccomp[:=]unconfined|systempaths[:=]unconfined)$",
        "description": "no-new-privileges, apparmor=PROFILE, label=LABEL, seccomp=unconfined or systempaths=unconfined"
    };
    EnvFile => "EnvFile", {
        "type": "string",
        "minLength": 1,
        "description": "a file of KEY=VALUE lines, relative to the manifest"
    };
    Ulimit => "Ulimit", {
        "anyOf": [
            {"type": "integer", "minimum": -1},
            {
                "type": "object",
                "properties": {
                    "soft": {"type": "integer", "minimum": -1},
                    "hard": {"type": "integer", "minimum": -1}
                },
                "required": ["soft", "hard"],
                "additionalProperties": false
            }
        ],
        "description": "one limit for soft and hard, or {soft, hard}; -1 is unlimited"
    };
    Cpus => "Cpus", {
        "type": ["number", "string"],
        "description": "CPUs, like 0.5 or \"1.5\""
    };
    Cidr => "Cidr", {
        "type": "string",
        "description": "an IPv4 address or network, like 10.99.0.0/24 or 192.168.1.50"
    };
    ListenAddr => "ListenAddress", {
        "type": "string",
        "description": "host:port to listen on, like 0.0.0.0:25565"
    };
    Identifier => "Identifier", {
        "type": "string",
        "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,62}$",
        "description": "a PostgreSQL role or database name: a letter, then letters, digits, '_' or '-' (at most 63)"
    };
}

impl JsonSchema for UlimitName {
    fn schema_name() -> Cow<'static, str> {
        "UlimitName".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": "string", "enum": ULIMITS})
    }
}

/// The whole manifest schema: header fields, then the spec that the kind selects.
pub fn json_schema() -> String {
    let mut g = schemars::generate::SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator();
    let specs: Vec<(Kind, Schema)> = Kind::ALL
        .into_iter()
        .map(|k| {
            let s = match k {
                Kind::Server => g.subschema_for::<ServerSpec>(),
                Kind::Database => g.subschema_for::<DatabaseSpec>(),
                Kind::Network => g.subschema_for::<NetworkSpec>(),
                Kind::Route => g.subschema_for::<RouteSpec>(),
                Kind::Secret => g.subschema_for::<super::secret::SecretSpec>(),
            };
            (k, s)
        })
        .collect();
    let name = g.subschema_for::<Name>();
    let label_key = g.subschema_for::<LabelKey>();
    let label_value = g.subschema_for::<ScalarString>();
    let defs = g.take_definitions(true);
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let by_kind: Vec<Value> = specs
        .into_iter()
        .map(|(k, s)| {
            json!({
                "if": {"properties": {"kind": {"const": k.as_str()}}, "required": ["kind"]},
                "then": {"properties": {"spec": s}}
            })
        })
        .collect();
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://dockhand.dev/schema/dockhand.schema.json",
        "title": "dockhand manifest",
        "description": "One document of a dockhand manifest file (a file may hold several, separated by ---).",
        "type": "object",
        "additionalProperties": false,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"enum": kinds},
            "metadata": {
                "type": "object",
                "additionalProperties": false,
                "required": ["name"],
                "properties": {
                    "name": name,
                    "labels": {
                        "type": "object",
                        "propertyNames": label_key,
                        "additionalProperties": label_value
                    }
                }
            },
            "spec": {"type": "object"}
        },
        "allOf": by_kind,
        "$defs": defs,
    });
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published file is what the types generate: run `dockhand schema >
    /// schema/dockhand.schema.json` after changing a manifest type.
    #[test]
    fn published_schema_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/dockhand.schema.json");
        let published = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            published.trim_end() == json_schema(),
            "schema/dockhand.schema.json is stale: run `cargo run -q -- schema > schema/dockhand.schema.json`"
        );
    }

    #[test]
    fn schema_selects_the_spec_by_kind() {
        let v: Value = serde_json::from_str(&json_schema()).expect("json");
        assert_eq!(v["allOf"].as_array().map(Vec::len), Some(5));
        let defs = v["$defs"].as_object().expect("defs");
        for name in [
            "ServerSpec",
            "DatabaseSpec",
            "NetworkSpec",
            "RouteSpec",
            "SecretSpec",
            "Duration",
        ] {
            assert!(defs.contains_key(name), "{name} missing");
        }
    }

    /// What a text type's schema (its `pattern`, a `not` pattern, `minLength`) says of `s`.
    fn schema_accepts<T: JsonSchema>(s: &str) -> bool {
        let mut g = SchemaGenerator::default();
        let def = serde_json::to_value(T::json_schema(&mut g)).unwrap_or_default();
        let matches = |p: &Value| {
            p.as_str().is_none_or(|p| {
                regex::Regex::new(p)
                    .unwrap_or_else(|e| panic!("bad pattern {p}: {e}"))
                    .is_match(s)
            })
        };
        let long_enough = def["minLength"]
            .as_u64()
            .is_none_or(|n| s.chars().count() as u64 >= n);
        let excluded = def["not"].is_object() && matches(&def["not"]["pattern"]);
        matches(&def["pattern"]) && !excluded && long_enough
    }

    /// The type's parser and its schema give the same verdict on `s`.
    fn agrees<T: JsonSchema + serde::de::DeserializeOwned>(s: &str) -> Result<(), String> {
        let parser = serde_json::from_value::<T>(Value::String(s.to_owned())).is_ok();
        let schema = schema_accepts::<T>(s);
        if parser == schema {
            Ok(())
        } else {
            Err(format!(
                "{} {s:?}: schema says {schema}, parser says {parser}",
                T::schema_name()
            ))
        }
    }

    fn agree(s: &str) -> Result<(), String> {
        agrees::<Name>(s)?;
        agrees::<LabelKey>(s)?;
        agrees::<EnvName>(s)?;
        agrees::<Identifier>(s)?;
        agrees::<AbsPath>(s)?;
        agrees::<Image>(s)
    }

    #[test]
    fn text_schemas_agree_with_their_parsers_on_edge_cases() {
        let cases = [
            "",
            "a",
            "A",
            "-a",
            "a-",
            "a_b",
            "_a",
            "1a",
            "a.b",
            "a/b",
            "a=b",
            "a b",
            "a\tb",
            "a\0b",
            "dockhand.x",
            "dockhandx",
            "x.dockhand.y",
            "/",
            "/data",
            "rel/path",
            "PATH",
            "my-var",
            "9lives",
            "busybox:1.36",
            &"a".repeat(63),
            &"a".repeat(64),
            &"b".repeat(70),
        ];
        for s in cases {
            agree(s).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    proptest::proptest! {
        #[test]
        fn text_schemas_agree_with_their_parsers(
            s in proptest::prop_oneof![
                "[a-zA-Z0-9_./= \\-]{0,70}",
                "(dockhand\\.)?[a-z0-9\\-]{0,65}",
                "/?[a-zA-Z_][a-zA-Z0-9_\\-\u{0}]{0,8}",
            ]
        ) {
            proptest::prop_assert!(agree(&s).is_ok(), "{}", agree(&s).err().unwrap_or_default());
        }
    }
}
