//! Resource quantities as users write them (`256m`, `1.5g`, `0.5`, `500m` CPUs), checked at parse time.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A memory limit in bytes. Written as `256m`, `1g`, `512Mi`, `1048576` or `1.5g`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory(pub u64);

/// Parses a size in bytes; suffixes are binary (k = 1024), as `docker run --memory` reads them.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        "t" | "tb" | "ti" | "tib" => 1 << 40,
        _ => return Err(size_error("size", s)),
    };
    let value: f64 = num.parse().map_err(|_| size_error("size", s))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(size_error("size", s));
    }
    Ok(bytes as u64)
}

/// Parses a memory limit: a size of at least 6 MiB, the engine's minimum.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    let bytes = parse_size(s).map_err(|_| size_error("memory", s))?;
    if bytes < 6 << 20 {
        return Err(format!(
            "invalid memory {s:?}: the engine needs at least 6m (6 MiB)"
        ));
    }
    Ok(bytes)
}

fn size_error(what: &str, s: &str) -> String {
    format!("invalid {what} {s:?}: expected a size like 256m, 1g, 512Mi or a number of bytes")
}

/// A size in bytes (`shmSize`), written like a memory limit but with no minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = crate::manifest::ScalarString::deserialize(d)?.0;
        parse_size(&s).map(Size).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = crate::manifest::ScalarString::deserialize(d)?.0;
        parse_memory(&s)
            .map(Memory)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A CPU limit in cores. Written as `0.5`, `2` or `500m` (millicores).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cpus(pub f64);

impl Cpus {
    /// The engine's unit: 1e-9 CPUs.
    pub fn nano(self) -> i64 {
        (self.0 * 1e9).round() as i64
    }
}

pub fn parse_cpus(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let value = match t.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| {
        format!(
            "invalid cpus {s:?}: expected a number of cores like 0.5 or 2, or millicores like 500m"
        )
    })?;
    if !(0.001..=1024.0).contains(&value) {
        return Err(format!(
            "invalid cpus {s:?}: expected between 0.001 and 1024 cores"
        ));
    }
    Ok(value)
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = crate::manifest::ScalarString::deserialize(d)?.0;
        parse_cpus(&s).map(Cpus).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_suffixes_are_binary() {
        assert_eq!(parse_memory("256m"), Ok(256 << 20));
        assert_eq!(parse_memory("1G"), Ok(1 << 30));
        assert_eq!(parse_memory("512Mi"), Ok(512 << 20));
        assert_eq!(parse_memory("1.5g"), Ok(3 << 29));
        assert_eq!(parse_memory("10485760"), Ok(10 << 20));
    }

    #[test]
    fn bad_memory_is_rejected_with_the_expected_form() {
        let e = parse_memory("lots").unwrap_err();
        assert!(e.contains("expected a size like 256m"), "{e}");
        assert!(parse_memory("1k").unwrap_err().contains("at least 6m"));
        assert!(parse_memory("12q").is_err());
    }

    #[test]
    fn cpus_accept_cores_and_millicores() {
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        assert_eq!(parse_cpus("500m"), Ok(0.5));
        assert_eq!(Cpus(0.5).nano(), 500_000_000);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("half").is_err());
    }
}
