//! `healthCheck`: how a container proves it serves, and what happens when it stops doing so.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::fields::ContainerPort;

/// How the engine decides whether a running container is healthy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", try_from = "RawHealthCheck")]
pub struct HealthCheck {
    pub probe: Probe,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retries: u32,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(with = "humantime_serde")]
    pub start_period: Duration,
    pub on_unhealthy: OnUnhealthy,
}

/// The probe: a command in the container, an HTTP GET or a TCP connect to a container port;
/// or none at all, switching off the image's own HEALTHCHECK.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Probe {
    Exec(Vec<String>),
    Http { port: ContainerPort, path: String },
    Tcp { port: ContainerPort },
    Disabled,
}

impl Probe {
    /// The engine's healthcheck test. HTTP and TCP probes run inside the container with the
    /// image's `wget` (or `curl`) and `nc`. The engine enforces the timeout itself, so `wget`
    /// gets no `-T` (Debian's static busybox crashes on it).
    pub fn engine_test(&self, timeout: Duration) -> Vec<String> {
        let secs = timeout.as_secs().max(1);
        match self {
            Probe::Exec(cmd) => std::iter::once("CMD".to_owned()).chain(cmd.iter().cloned()).collect(),
            Probe::Http { port, path } => {
                let url = format!("http://127.0.0.1:{}{}", port.0, path);
                vec![
                    "CMD-SHELL".into(),
                    format!("wget -q -O /dev/null '{url}' || curl -fsS -m {secs} -o /dev/null '{url}'"),
                ]
            }

            Probe::Tcp { port } => vec![
                "CMD-SHELL".into(),
                format!("nc -z -w {secs} 127.0.0.1 {p} 2>/dev/null || nc -w {secs} 127.0.0.1 {p} </dev/null", p = port.0),
            ],
            Probe::Disabled => vec!["NONE".into()],
        }
    }
}

impl HealthCheck {
    /// Whether it switches health checking off (`disable: true`).
    pub fn is_disabled(&self) -> bool {
        self.probe == Probe::Disabled
    }
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum OnUnhealthy {
    /// Restart the container once it is unhealthy (default).
    #[default]
    Restart,
    /// Only report it.
    None,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawHealthCheck {
    #[serde(default)]
    exec: Option<Vec<String>>,
    #[serde(default)]
    http: Option<RawHttp>,
    #[serde(default)]
    tcp: Option<RawTcp>,
    /// `true` switches off the image's own HEALTHCHECK (and takes no probe).
    #[serde(default)]
    disable: bool,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(default = "default_interval", with = "humantime_serde")]
    interval: Duration,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
    #[serde(default = "default_retries")]
    retries: u32,
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(default, with = "humantime_serde")]
    start_period: Duration,
    #[serde(default)]
    on_unhealthy: OnUnhealthy,
    /// The stored (normalized) form of the probe.
    #[serde(default)]
    probe: Option<Probe>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    port: ContainerPort,
    #[serde(default = "default_path")]
    path: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawTcp {
    port: ContainerPort,
}

fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_retries() -> u32 {
    3
}
fn default_path() -> String {
    "/".into()
}

impl TryFrom<RawHealthCheck> for HealthCheck {
    type Error = String;

    fn try_from(r: RawHealthCheck) -> Result<Self, String> {
        let mut probes = Vec::new();
        if let Some(cmd) = r.exec {
            if cmd.is_empty() {
                return Err("healthCheck.exec must name a command".into());
            }
            probes.push(Probe::Exec(cmd));
        }
        if let Some(h) = r.http {
            if !h.path.starts_with('/') || h.path.contains('\'') {
                return Err(format!(
                    "invalid healthCheck.http.path {:?}: expected a path starting with /",
                    h.path
                ));
            }
            probes.push(Probe::Http {
                port: h.port,
                path: h.path,
            });
        }
        if let Some(t) = r.tcp {
            probes.push(Probe::Tcp { port: t.port });
        }
        if r.disable {
            probes.push(Probe::Disabled);
        }
        probes.extend(r.probe);
        if probes.len() != 1 {
            return Err(if r.disable {
                "healthCheck.disable: true takes no exec, http or tcp probe".into()
            } else {
                "a healthCheck needs exactly one of exec, http or tcp (or disable: true)".into()
            });
        }
        if r.retries == 0 {
            return Err("healthCheck.retries must be at least 1".into());
        }
        for (name, d) in [("interval", r.interval), ("timeout", r.timeout)] {
            if d < Duration::from_millis(1) {
                return Err(format!("healthCheck.{name} must be at least 1ms"));
            }
        }
        Ok(HealthCheck {
            probe: probes.remove(0),
            interval: r.interval,
            timeout: r.timeout,
            retries: r.retries,
            start_period: r.start_period,
            on_unhealthy: r.on_unhealthy,
        })
    }
}
