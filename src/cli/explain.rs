//! `dockhand explain server.spec.healthCheck`: a field's documentation, read from the JSON
//! Schema the manifest types generate (so it can never disagree with what the parser takes),
//! as `kubectl explain` does.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::manifest::Kind;

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A kind and a field path: `server`, `server.spec.healthCheck`, `route.spec.rules`.
    pub path: String,
}

/// Follows `$ref`s to the schema they name.
fn deref<'a>(root: &'a Value, mut node: &'a Value) -> &'a Value {
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => match r
                .strip_prefix("#/$defs/")
                .and_then(|n| root["$defs"].get(n))
            {
                Some(n) => node = n,
                None => break,
            },
            None => break,
        }
    }
    node
}

/// The schemas a node stands for: itself, its variants, and the items of an array or map.
fn variants<'a>(root: &'a Value, node: &'a Value) -> Vec<&'a Value> {
    let node = deref(root, node);
    let mut out = vec![node];
    for key in ["anyOf", "oneOf", "allOf"] {
        for v in node
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(variants(root, v));
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(v) = node.get(key).filter(|v| v.is_object()) {
            out.extend(variants(root, v));
        }
    }
    out
}

/// The schema of `field` below `node`.
fn child<'a>(root: &'a Value, node: &'a Value, field: &str) -> Option<&'a Value> {
    variants(root, node)
        .into_iter()
        .find_map(|v| v.get("properties").and_then(|p| p.get(field)))
}

/// A short type for a schema: `string`, `[PortSpec]`, `Duration`, `a | b`.
fn type_of(node: &Value) -> String {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        return r.trim_start_matches("#/$defs/").to_owned();
    }
    if let Some(e) = node.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = e
            .iter()
            .map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
            .collect();
        return names.join(" | ");
    }
    if let Some(c) = node.get("const") {
        return c.to_string();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(vs) = node.get(key).and_then(Value::as_array) {
            let parts: Vec<String> = vs
                .iter()
                .filter(|v| v.get("type") != Some(&Value::String("null".into())))
                .map(type_of)
                .collect();
            return parts.join(" | ");
        }
    }
    let ty = match node.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "object".into(),
    };
    match (ty.as_str(), node.get("items")) {
        ("array", Some(items)) => format!("[{}]", type_of(items)),
        _ => ty,
    }
}

fn description(root: &Value, node: &Value) -> Option<String> {
    node.get("description")
        .or_else(|| {
            variants(root, node)
                .into_iter()
                .find_map(|v| v.get("description"))
        })
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub async fn run(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let root: Value = serde_json::from_str(&crate::manifest::schema::json_schema())?;
    let mut parts = args.path.split('.');
    let kind = Kind::parse_or_err(parts.next().unwrap_or_default())?;
    let spec_def = format!("#/$defs/{}Spec", kind.as_str());
    let spec = serde_json::json!({"$ref": spec_def});
    let top = serde_json::json!({
        "description": format!("A dockhand/v1 {} manifest.", kind.as_str()),
        "properties": {
            "apiVersion": root["properties"]["apiVersion"],
            "kind": {"const": kind.as_str()},
            "metadata": root["properties"]["metadata"],
            "spec": spec,
        }
    });
    let mut node = &top;
    let mut walked = Vec::new();
    for field in parts {
        match child(&root, node, field) {
            Some(n) => node = n,
            None => {
                eprintln!(
                    "error: {} has no field {field:?} (see `dockhand explain {}`)",
                    if walked.is_empty() {
                        kind.label().to_owned()
                    } else {
                        format!("{}.{}", kind.label(), walked.join("."))
                    },
                    std::iter::once(kind.label())
                        .chain(walked.iter().copied())
                        .collect::<Vec<_>>()
                        .join(".")
                );
                return Ok(ExitCode::from(1));
            }
        }
        walked.push(field);
    }
    println!("KIND:     {}", kind.as_str());
    if !walked.is_empty() {
        println!("FIELD:    {}", walked.join("."));
        println!("TYPE:     {}", type_of(node));
    }
    if let Some(d) = description(&root, node) {
        println!("\nDESCRIPTION:\n{}", indent(&d));
    }
    let mut fields: Vec<(String, String, String)> = Vec::new();
    for v in variants(&root, node) {
        for (name, f) in v
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if fields.iter().any(|(n, _, _)| n == name) || name == "probe" {
                continue;
            }
            let first = description(&root, f)
                .and_then(|d| d.lines().next().map(str::to_owned))
                .unwrap_or_default();
            fields.push((name.clone(), type_of(f), first));
        }
    }
    if !fields.is_empty() {
        println!("\nFIELDS:");
        let w = fields.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        for (name, ty, d) in fields {
            println!("  {name:<w$}  <{ty}>");
            if !d.is_empty() {
                println!("  {:<w$}    {d}", "");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
