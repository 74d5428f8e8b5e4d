//! `dependsOn`: which objects must reach which condition before an object starts.

use serde::{Deserialize, Deserializer, Serialize};

/// What a dependency must reach before its dependent is started.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum Condition {
    /// Its container is running.
    #[default]
    Started,
    /// Its health check passes.
    Healthy,
    /// It exited with code 0.
    Completed,
}

/// One entry of `dependsOn`: `api` (a Server, condition Started) or the full form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub kind: super::Kind,
    pub name: String,
    pub condition: Condition,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
}

impl Dependency {
    pub fn key(&self) -> super::ObjectKey {
        super::ObjectKey::new(self.kind, self.name.clone())
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawDependency {
    #[serde(default = "default_dep_kind")]
    kind: DepKind,
    name: super::Name,
    #[serde(default)]
    condition: Condition,
    #[serde(default)]
    restart: bool,
}

/// A kind as written in `dependsOn` (the manifest form).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
struct DepKind(String);

fn default_dep_kind() -> DepKind {
    DepKind("Server".into())
}

impl super::scalar::MapForm for RawDependency {
    const EXPECTING: &'static str = "a server name, or {kind, name, condition, restart}";
}

impl<'de> Deserialize<'de> for Dependency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use super::scalar::ScalarOrMap;
        match ScalarOrMap::<RawDependency>::deserialize(d)? {
            // `dependsOn: [y]` names a server `y`, not a boolean.
            ScalarOrMap::Scalar(name) => {
                super::check_dns_label(&name).map_err(serde::de::Error::custom)?;
                Ok(Dependency {
                    kind: super::Kind::Server,
                    name,
                    condition: Condition::Started,
                    restart: false,
                })
            }
            ScalarOrMap::Map(r) => {
                let kind = super::Kind::from_manifest(&r.kind.0)
                    .map_err(|e| serde::de::Error::custom(format!("dependsOn: {e}")))?;
                Ok(Dependency {
                    kind,
                    name: r.name.0,
                    condition: r.condition,
                    restart: r.restart,
                })
            }
        }
    }
}

impl schemars::JsonSchema for Dependency {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Dependency".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let name = g.subschema_for::<super::Name>();
        let full = g.subschema_for::<RawDependency>();
        schemars::json_schema!({
            "description": "a Server's name (condition Started), or {kind, name, condition, restart}",
            "anyOf": [name, full]
        })
    }
}
