//! `kind: Secret`: one value that servers take as a file or a variable, kept out of every
//! manifest, log and API answer. The manifest says only where the value is: a file on the
//! controller's host, a variable of the controller's environment, or the value itself encrypted
//! with age to the controller's key (so it can be committed to git).

use serde::{Deserialize, Deserializer, Serialize};

use super::fields::EnvName;
use super::{Name, ScalarString};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    /// A file on the controller's host, relative to the manifest's directory (host policy:
    /// inside the manifests directory or under --allow-host-path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A variable of the controller's environment (host policy: --allow-secret-env NAME).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvName>,
    /// The value encrypted with age to the controller's public key, armored
    /// (`dockhand secret encrypt` or `age -a -r age1…` prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted: Option<String>,
}

/// Where a secret's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource<'a> {
    File(&'a str),
    Env(&'a str),
    Encrypted(&'a str),
}

impl SecretSpec {
    pub fn check(&self) -> Result<(), (String, String)> {
        let given = [
            self.file.is_some(),
            self.env.is_some(),
            self.encrypted.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err((
                "spec".into(),
                "expected exactly one of file, env or encrypted".into(),
            ));
        }
        if let Some(text) = &self.encrypted {
            if !crate::age::is_armored(text) {
                return Err((
                    "spec.encrypted".into(),
                    "expected an armored age file (-----BEGIN AGE ENCRYPTED FILE-----), as `dockhand secret encrypt` prints it".into(),
                ));
            }
        }
        if self.file.as_deref() == Some("") {
            return Err(("spec.file".into(), "expected a path".into()));
        }
        Ok(())
    }

    pub fn source(&self) -> SecretSource<'_> {
        match (&self.file, &self.env, &self.encrypted) {
            (Some(f), _, _) => SecretSource::File(f),
            (_, Some(e), _) => SecretSource::Env(&e.0),
            (_, _, Some(t)) => SecretSource::Encrypted(t),
            // `check` allows no other form.
            _ => SecretSource::Encrypted(""),
        }
    }
}

/// A secret a server reads as a file, `/run/secrets/<target>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretMount {
    /// The Secret object.
    pub name: String,
    /// The file's name under /run/secrets (default: the secret's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Permissions in octal as chmod takes them (default 0400).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "octal"
    )]
    pub mode: Option<u32>,
    /// The file's owner (default: the server's numeric `user`, else root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// A mode as it is written (`"0440"`), so it reads back the same.
fn octal<S: serde::Serializer>(mode: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match mode {
        Some(m) => s.collect_str(&format_args!("0{m:o}")),
        None => s.serialize_none(),
    }
}

/// Where a secret's file goes in the container.
pub const SECRETS_DIR: &str = "/run/secrets";

impl SecretMount {
    pub fn file_name(&self) -> &str {
        self.target.as_deref().unwrap_or(&self.name)
    }

    pub fn path(&self) -> String {
        format!("{SECRETS_DIR}/{}", self.file_name())
    }

    /// The file's mode, owner and group for a server running as `user`.
    pub fn ownership(&self, user: Option<&str>) -> (u32, u32, u32) {
        let mut ids = user.unwrap_or_default().splitn(2, ':');
        let uid = ids.next().and_then(|u| u.parse().ok());
        let gid = ids.next().and_then(|g| g.parse().ok()).or(uid);
        (
            self.mode.unwrap_or(0o400),
            self.uid.or(uid).unwrap_or(0),
            self.gid.or(gid).or(self.uid).unwrap_or(0),
        )
    }
}

impl schemars::JsonSchema for SecretMount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretMount".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let name = g.subschema_for::<Name>();
        schemars::json_schema!({"anyOf": [name, {
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": name,
                "target": {"type": "string"},
                "mode": {"type": ["string", "integer"], "description": "octal permissions (default 0400)"},
                "uid": {"type": "integer", "minimum": 0},
                "gid": {"type": "integer", "minimum": 0}
            }
        }]})
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMount {
    name: Name,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    mode: Option<ScalarString>,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    gid: Option<u32>,
}

impl<'de> Deserialize<'de> for SecretMount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Short(Name),
            Long(RawMount),
        }
        let raw = match Form::deserialize(d).map_err(|_| {
            D::Error::custom(
                "expected a Secret's name, or {name: NAME, target: FILE, mode: 0400, uid: N, gid: N}",
            )
        })? {
            Form::Short(n) => RawMount {
                name: n,
                target: None,
                mode: None,
                uid: None,
                gid: None,
            },
            Form::Long(r) => r,
        };
        if let Some(t) = &raw.target {
            if t.is_empty() || t.contains('/') || t == "." || t == ".." {
                return Err(D::Error::custom(format!(
                    "invalid target {t:?}: expected a file name, which goes under {SECRETS_DIR}"
                )));
            }
        }
        let mode = match &raw.mode {
            None => None,
            Some(m) => {
                let text = m.0.trim_start_matches("0o");
                let mode = u32::from_str_radix(text, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        D::Error::custom(format!(
                            "invalid mode {:?}: expected octal permissions such as 0400 or 0440",
                            m.0
                        ))
                    })?;
                Some(mode)
            }
        };
        Ok(SecretMount {
            name: raw.name.0,
            target: raw.target,
            mode,
            uid: raw.uid,
            gid: raw.gid,
        })
    }
}

/// `password: {fromSecret: NAME}` on a Database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FromSecret {
    pub from_secret: Name,
}
/// Whether the controller's variable `name` is among `allowed`: names, or prefixes ending in
/// `*` (`--allow-secret-env`, for a Secret's `env` and a compose file's `${VAR}` alike).
pub fn env_allowed(allowed: &[String], name: &str) -> bool {
    allowed.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}
