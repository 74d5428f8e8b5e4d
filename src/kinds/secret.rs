//! `kind: Secret`: where a value is read from at each pass, and what a Secret's status says.
//!
//! Values live in memory only (never in the state file, events or statuses); servers get them
//! as files copied into the container before it starts (a swarm secret on a swarm) or as
//! variables. Their digest joins each consumer's spec hash, so a changed value rolls exactly the
//! servers that use it. Files are re-read only when their size or time changes, and an encrypted
//! value is decrypted once per ciphertext, so a no-op pass stays cheap.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use super::config_files::StampCache;
use crate::age::Identity;
use crate::manifest::secret::{SecretSource, SecretSpec};
use crate::manifest::{short_hash, Object, ObjectKey, Phase, Spec};
use crate::store::Status;

/// A secret's value; its `Debug` never shows it.
pub struct Value {
    bytes: Zeroizing<Vec<u8>>,
    /// Identifies the value in spec hashes (mixed with the rest of a spec, never shown alone).
    pub digest: String,
}

impl Value {
    pub fn new(bytes: Vec<u8>) -> Value {
        let bytes = Zeroizing::new(bytes);
        let mut salted = b"dockhand-secret\0".to_vec();
        salted.extend_from_slice(&bytes);
        let digest = short_hash(&salted);
        salted.iter_mut().for_each(|b| *b = 0);
        Value { bytes, digest }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value as an environment variable takes it.
    pub fn text(&self) -> Result<&str, String> {
        let s = std::str::from_utf8(&self.bytes)
            .map_err(|_| "its value is not UTF-8 text, which a variable needs".to_owned())?;
        if s.contains('\0') {
            return Err("its value holds a NUL byte, which a variable cannot".into());
        }
        Ok(s)
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Value(***)")
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        self.digest == other.digest
    }
}

/// The Secrets among `desired`.
fn secrets(desired: &[Object]) -> impl Iterator<Item = (&Object, &SecretSpec)> {
    desired.iter().filter_map(|o| match &o.spec {
        Spec::Secret(s) => Some((o, s)),
        _ => None,
    })
}

/// Every Secret's value by name, or why it has none.
pub type Values = HashMap<String, Result<Arc<Value>, String>>;

/// The largest Secret file read (a key or a certificate chain, not a data set).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads secrets' values: the controller's identities for encrypted ones, and caches.
#[derive(Default)]
pub struct Resolver {
    identities: Vec<Identity>,
    files: StampCache<Arc<Value>>,
    decrypted: Mutex<HashMap<String, Arc<Value>>>,
}

impl Resolver {
    pub fn new(identities: Vec<Identity>) -> Resolver {
        Resolver {
            identities,
            ..Resolver::default()
        }
    }

    /// The value of every Secret in `desired` but those refused (by the host policy).
    /// A Secret's `file` is read below `roots` (the host policy's), by descriptor.
    pub fn resolve_all(
        &self,
        desired: &[Object],
        refused: &HashMap<ObjectKey, String>,
        roots: &[std::path::PathBuf],
    ) -> Values {
        secrets(desired)
            .map(|(o, s)| {
                let value = match refused.get(&o.key()) {
                    Some(why) => Err(why.clone()),
                    None => self.resolve(s, roots),
                };
                (o.name.clone(), value)
            })
            .collect()
    }

    fn resolve(
        &self,
        spec: &SecretSpec,
        roots: &[std::path::PathBuf],
    ) -> Result<Arc<Value>, String> {
        match spec.source() {
            SecretSource::File(path) => {
                // Opened once: the file checked is the file read, whatever is renamed over it.
                let p = Path::new(path);
                let (file, meta) = crate::hostfs::open_confined(p, roots)
                    .map_err(|e| format!("spec.file: {e}"))?;
                self.files.get(p, &meta, || {
                    crate::hostfs::read_all(&file, p, MAX_FILE_BYTES)
                        .map(|b| Arc::new(Value::new(b)))
                        .map_err(|e| format!("spec.file: {e}"))
                })
            }
            SecretSource::Env(var) => std::env::var_os(var)
                .map(|v| Arc::new(Value::new(v.into_encoded_bytes())))
                .ok_or_else(|| format!("spec.env: the controller has no variable {var}")),
            SecretSource::Encrypted(text) => {
                let key = short_hash(text.as_bytes());
                let mut seen = self.decrypted.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(v) = seen.get(&key) {
                    return Ok(v.clone());
                }
                if self.identities.is_empty() {
                    return Err("spec.encrypted: the controller was given no age identity (--age-identity FILE) to decrypt it".into());
                }
                let plain = crate::age::decrypt(text.as_bytes(), &self.identities)
                    .map_err(|e| format!("spec.encrypted: {e}"))?;
                let value = Arc::new(Value::new(plain.to_vec()));
                seen.insert(key, value.clone());
                Ok(value)
            }
        }
    }
}

/// What a Secret's status says: Ready with where its value came from, Invalid when the host
/// policy refuses its source, Failed when the value cannot be read. Never the value.
pub fn statuses(
    desired: &[Object],
    values: &Values,
    refused: &HashMap<ObjectKey, String>,
    generations: &HashMap<ObjectKey, i64>,
) -> Vec<Status> {
    secrets(desired)
        .map(|(o, s)| {
            let mut st = Status::pending(o.key());
            let (phase, message) = match (refused.get(&o.key()), values.get(&o.name)) {
                (Some(why), _) => (Phase::Invalid, why.clone()),
                (None, Some(Ok(_))) => (
                    Phase::Ready,
                    match s.source() {
                        SecretSource::File(f) => format!("read from {f}"),
                        SecretSource::Env(v) => format!("read from the controller's variable {v}"),
                        SecretSource::Encrypted(_) => {
                            "decrypted with the controller's age identity".into()
                        }
                    },
                ),
                (None, Some(Err(why))) => (Phase::Failed, why.clone()),
                (None, None) => (Phase::Pending, "not read yet".into()),
            };
            st.phase = phase;
            st.message = Some(message);
            st.observed_generation = generations.get(&o.key()).copied().unwrap_or(1);
            st
        })
        .collect()
}

/// The Secrets a server uses, with the field that names each.
pub fn used_by(spec: &crate::manifest::ServerSpec) -> Vec<(String, &str)> {
    let files = spec
        .secrets
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("spec.secrets[{i}]"), m.name.as_str()));
    let env = spec
        .env
        .iter()
        .filter_map(|(k, v)| Some((format!("spec.env.{}", k.0), v.secret()?)));
    files.chain(env).collect()
}

/// A server's secrets, looked up in `values`: each value, or why the server must wait.
pub fn lookup<'v>(
    spec: &crate::manifest::ServerSpec,
    values: &'v Values,
) -> Result<Vec<(&'v str, &'v Arc<Value>)>, String> {
    let mut out = Vec::new();
    for (field, name) in used_by(spec) {
        match values.get_key_value(name) {
            None => {
                return Err(format!(
                    "{field}: secret {name} is not declared (kind: Secret); waiting for it"
                ))
            }
            Some((_, Err(why))) => return Err(format!("{field}: secret {name}: {why}")),
            Some((n, Ok(v))) => {
                if field.starts_with("spec.env.") {
                    v.text()
                        .map_err(|why| format!("{field}: secret {name}: {why}"))?;
                }
                out.push((n.as_str(), v));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse_str;

    fn objects(text: &str) -> Vec<Object> {
        parse_str(text, "/m/s.yaml", Some(Path::new("/m"))).expect("parses")
    }

    #[test]
    fn values_are_read_from_files_env_and_age_and_never_printed() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file").expect("write");
        let id = Identity::generate().expect("random");
        let sealed = crate::age::encrypt_armored(b"from-age", &[id.recipient()]).expect("seals");
        std::env::set_var("DOCKHAND_TEST_SECRET_VALUE", "from-env");
        let indented: String = sealed.lines().map(|l| format!("    {l}\n")).collect();
        let text = format!(
            "apiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: a}}\nspec: {{file: {}}}\n---\napiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: b}}\nspec: {{env: DOCKHAND_TEST_SECRET_VALUE}}\n---\napiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: c}}\nspec:\n  encrypted: |\n{indented}---\napiVersion: dockhand/v1\nkind: Secret\nmetadata: {{name: d}}\nspec: {{env: DOCKHAND_TEST_SECRET_UNSET}}\n",
            file.display()
        );
        let objs = objects(&text);
        let roots = [dir.path().to_path_buf()];
        let values = Resolver::new(vec![id]).resolve_all(&objs, &HashMap::new(), &roots);
        let get = |n: &str| values[n].as_ref().map(|v| v.bytes().to_vec());
        assert_eq!(get("a"), Ok(b"from-file".to_vec()));
        assert_eq!(get("b"), Ok(b"from-env".to_vec()));
        assert_eq!(get("c"), Ok(b"from-age".to_vec()));
        assert!(get("d").is_err_and(|e| e.contains("DOCKHAND_TEST_SECRET_UNSET")));
        let shown = format!("{values:?}");
        assert!(!shown.contains("from-"), "{shown}");
        let st = statuses(&objs, &values, &HashMap::new(), &HashMap::new());
        assert_eq!(st[2].phase, Phase::Ready);
        assert_eq!(st[3].phase, Phase::Failed);
        // Without the identity, an encrypted value says what is missing.
        let none = Resolver::default().resolve_all(&objs, &HashMap::new(), &roots);
        assert!(none["c"]
            .as_ref()
            .is_err_and(|e| e.contains("--age-identity")));
    }

    #[test]
    fn a_server_waits_for_an_undeclared_or_unreadable_secret() {
        let objs = objects("apiVersion: dockhand/v1\nkind: Server\nmetadata: {name: web}\nspec:\n  image: x\n  secrets: [tok, {name: key, target: key.pem, mode: '0440', uid: 1000}]\n  env: {TOKEN: {fromSecret: tok}}\n");
        let Spec::Server(s) = &objs[0].spec else {
            panic!("a server")
        };
        assert_eq!(s.secrets[1].ownership(None), (0o440, 1000, 1000));
        assert_eq!(s.secrets[0].ownership(Some("70:71")), (0o400, 70, 71));
        assert_eq!(s.secrets[1].path(), "/run/secrets/key.pem");
        let mut values = Values::new();
        values.insert("tok".into(), Ok(Arc::new(Value::new(b"t".to_vec()))));
        let e = lookup(s, &values).expect_err("key missing");
        assert!(
            e.starts_with("spec.secrets[1]: secret key is not declared"),
            "{e}"
        );
        values.insert("key".into(), Err("spec.file: gone".into()));
        let e = lookup(s, &values).expect_err("key unreadable");
        assert_eq!(e, "spec.secrets[1]: secret key: spec.file: gone");
        values.insert("key".into(), Ok(Arc::new(Value::new(vec![0, 1]))));
        assert_eq!(lookup(s, &values).expect("all there").len(), 3);
        values.insert("tok".into(), Ok(Arc::new(Value::new(vec![0xff]))));
        let e = lookup(s, &values).expect_err("not text");
        assert!(
            e.starts_with("spec.env.TOKEN: secret tok: its value is not UTF-8"),
            "{e}"
        );
    }
}
