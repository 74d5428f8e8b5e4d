//! The keys of a Compose file and of its services, checked before anything is read: a key
//! dockhand cannot honour is an error at its line, one that changes nothing at runtime is a
//! warning, an `x-` key is skipped, and anything else is a typo. Without this a serde model
//! would either drop unknown keys silently or refuse the `x-` keys Compose allows everywhere.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Top-level keys that are read.
const TOP: &[&str] = &[
    "name", "services", "networks", "volumes", "secrets", "configs",
];

/// Service keys that change nothing a container does (with why), accepted with a warning.
const WARNED: &[(&str, &str)] = &[
    ("logging", "the engine's default log driver is used"),
    ("attach", "only changes what `docker compose up` prints"),
    (
        "develop",
        "`compose watch` has no counterpart; edits to the files are synced by dockhand",
    ),
    ("annotations", "no runtime effect on one engine"),
];

/// Service keys of the Compose specification that dockhand does not honour.
const REFUSED: &[&str] = &[
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "device_cgroup_rules",
    "domainname",
    "external_links",
    "gpus",
    "group_add",
    "ipc",
    "isolation",
    "label_file",
    "mac_address",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "post_start",
    "pre_stop",
    "provider",
    "runtime",
    "storage_opt",
    "use_api_socket",
    "userns_mode",
    "uts",
    "volumes_from",
];

/// A key of the file, with where it is.
#[derive(Clone, Debug)]
pub struct At {
    pub key: String,
    pub line: u64,
    pub column: u64,
}

/// What the check found: errors and warnings, each at a key (`services.web.runtime`).
#[derive(Debug, Default)]
pub struct Found {
    pub errors: Vec<(String, At, String)>,
    pub warnings: Vec<(String, At, String)>,
    /// Where every key is, by its dotted path (`services.web.ports`), four levels deep.
    pub at: BTreeMap<String, At>,
    /// Variables read while unset, once each (warnings, as Compose gives them).
    pub unset: Vec<crate::manifest::ManifestError>,
}

/// The keys of a mapping, in order, each with the keys of its value when that is a mapping.
struct Keys(Vec<(At, Option<Keys>)>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Spanned<KeyText>>()? {
                    let nested = m.next_value::<MaybeKeys>()?.0;
                    out.push((
                        At {
                            key: k.value.0,
                            line: k.referenced.line(),
                            column: k.referenced.column(),
                        },
                        nested,
                    ));
                }
                Ok(Keys(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A key as text, whatever scalar it is.
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::manifest::scalar::exact(d).map(KeyText)
    }
}

/// The keys of a value if it is a mapping (only two levels are kept: the top and services).
struct MaybeKeys(Option<Keys>);

impl<'de> Deserialize<'de> for MaybeKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeKeys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<MaybeKeys, A::Error> {
                Keys::deserialize(de::value::MapAccessDeserializer::new(m))
                    .map(|k| MaybeKeys(Some(k)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<MaybeKeys, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeKeys(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<MaybeKeys, E> {
                Ok(MaybeKeys(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MaybeKeys, E> {
                Ok(MaybeKeys(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<MaybeKeys, E> {
                Ok(MaybeKeys(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<MaybeKeys, E> {
                Ok(MaybeKeys(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MaybeKeys, E> {
                Ok(MaybeKeys(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MaybeKeys, E> {
                Ok(MaybeKeys(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<MaybeKeys, E> {
                Ok(MaybeKeys(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The field names a derived `Deserialize` reads, asked from the type itself, so the list of
/// supported keys can never drift from the model.
fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    struct Catch(Option<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for &mut Catch {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(de::Error::custom("caught"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut c = Catch(None);
    let _ = T::deserialize(&mut c);
    c.0.unwrap_or(&[])
}

/// Checks the keys of the file `text`. A file that is not a mapping at all is left to the
/// model's own error.
pub fn check(text: &str) -> Found {
    let mut found = Found::default();
    let Ok(top) = serde_saphyr::from_str::<Keys>(text) else {
        return found;
    };
    let service_keys = fields_of::<super::model::Service>();
    record(&mut found.at, "", &top, 4);
    for (at, nested) in top.0 {
        let k = at.key.clone();
        if k.starts_with("x-") {
            continue;
        }
        match k.as_str() {
            "version" => found.warnings.push((
                k,
                at,
                "obsolete in the Compose specification; ignored".into(),
            )),
            "include" => found.errors.push((
                k,
                at,
                "not supported by dockhand: list each compose file instead (--compose FILE)".into(),
            )),
            _ if TOP.contains(&k.as_str()) => {
                if k == "services" {
                    for (svc, keys) in nested.map(|n| n.0).unwrap_or_default() {
                        for (key, _) in keys.map(|k| k.0).unwrap_or_default() {
                            let path = format!("services.{}.{}", svc.key, key.key);
                            classify(&mut found, service_keys, path, key);
                        }
                    }
                }
            }
            _ => found.errors.push((
                k,
                at,
                format!("unknown top-level key: expected one of {}", TOP.join(", ")),
            )),
        }
    }
    found
}

/// Records where each key of `keys` is, below `prefix`, `depth` levels deep.
fn record(at: &mut BTreeMap<String, At>, prefix: &str, keys: &Keys, depth: usize) {
    if depth == 0 {
        return;
    }
    for (k, nested) in &keys.0 {
        let path = if prefix.is_empty() {
            k.key.clone()
        } else {
            format!("{prefix}.{}", k.key)
        };
        if let Some(n) = nested {
            record(at, &path, n, depth - 1);
        }
        at.insert(path, k.clone());
    }
}

fn classify(found: &mut Found, supported: &[&str], path: String, at: At) {
    let k = at.key.as_str();
    if k.starts_with("x-") && k != "x-dockhand" {
        return;
    }
    if supported.contains(&k) {
        return;
    }
    if let Some((_, why)) = WARNED.iter().find(|(w, _)| *w == k) {
        let why = (*why).to_owned();
        found.warnings.push((path, at, why));
    } else if REFUSED.contains(&k) {
        found
            .errors
            .push((path, at, "not supported by dockhand".into()));
    } else {
        found
            .errors
            .push((path, at, "unknown key of a Compose service".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_keys_come_from_the_model() {
        let f = fields_of::<super::super::model::Service>();
        assert!(f.contains(&"image") && f.contains(&"x-dockhand") && f.contains(&"depends_on"));
    }

    #[test]
    fn keys_are_sorted_into_refused_warned_unknown_and_extension() {
        let text = "version: '3'\nx-common: &c {a: 1}\nservices:\n  web:\n    image: x\n    runtime: runc\n    logging: {driver: json-file}\n    x-note: hi\n    imgae: typo\nfoo: 1\n";
        let f = check(text);
        let errors: Vec<_> = f
            .errors
            .iter()
            .map(|(p, a, _)| (p.as_str(), a.line))
            .collect();
        assert_eq!(
            errors,
            [
                ("services.web.runtime", 6),
                ("services.web.imgae", 9),
                ("foo", 10)
            ]
        );
        let warnings: Vec<_> = f
            .warnings
            .iter()
            .map(|(p, a, _)| (p.as_str(), a.line))
            .collect();
        assert_eq!(warnings, [("version", 1), ("services.web.logging", 7)]);
        assert_eq!(f.at["services.web"].line, 4);
        assert_eq!(f.at["services.web.logging.driver"].line, 7);
    }
}
