//! `build`: a Server's image made from a directory of source, as Compose's `build:` reads it
//! (`build: ./api`, or `{context, dockerfile, args, target}`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::scalar::{MapForm, ScalarOrMap};
use super::ScalarString;

/// Where and how to build. `context` is made absolute, relative to the manifest, when it is read.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(with = "BuildForm")]
pub struct Build {
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, ScalarString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BuildMap {
    /// The directory sent to the engine, relative to the manifest.
    context: String,
    /// The Dockerfile, relative to the context (default `Dockerfile`).
    #[serde(default)]
    dockerfile: Option<String>,
    /// Build arguments (`ARG`), taken as strings.
    #[serde(default)]
    args: BTreeMap<String, ScalarString>,
    /// The stage of a multi-stage Dockerfile to build.
    #[serde(default)]
    target: Option<String>,
}

impl MapForm for BuildMap {
    const EXPECTING: &'static str = "a context directory, or {context, dockerfile, args, target}";
}

/// How the schema shows `build`: a context path, or the mapping.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum BuildForm {
    Context(String),
    Full(BuildMap),
}

impl<'de> Deserialize<'de> for Build {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = match ScalarOrMap::<BuildMap>::deserialize(d)? {
            ScalarOrMap::Scalar(context) => BuildMap {
                context,
                dockerfile: None,
                args: BTreeMap::new(),
                target: None,
            },
            ScalarOrMap::Map(m) => m,
        };
        let bad =
            |field: &str, why: &str| serde::de::Error::custom(format!("build.{field}: {why}"));
        if b.context.is_empty() {
            return Err(bad("context", "expected a directory"));
        }
        if let Some(f) = &b.dockerfile {
            if f.is_empty() || f.starts_with('/') || f.split('/').any(|s| s == "..") {
                return Err(bad(
                    "dockerfile",
                    "expected a path inside the context, like Dockerfile or docker/api.Dockerfile",
                ));
            }
        }
        if b.target
            .as_deref()
            .is_some_and(|t| t.is_empty() || t.contains(char::is_whitespace))
        {
            return Err(bad("target", "expected a stage name"));
        }
        Ok(Build {
            context: b.context,
            dockerfile: b.dockerfile,
            args: b.args,
            target: b.target,
        })
    }
}
