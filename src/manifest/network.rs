//! `kind: Network` and `kind: Route`: where servers live on the host, and the front doors to them.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fields::{ContainerPort, Protocol};
use super::Name;

/// An IPv4 network in CIDR form (`10.99.0.0/24`); a bare address is a /32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    fn mask(self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// The network's own address and its broadcast address, never assignable to a host.
    pub fn is_reserved(self, ip: Ipv4Addr) -> bool {
        let base = u32::from(self.addr) & self.mask();
        self.prefix < 31 && (u32::from(ip) == base || u32::from(ip) == base | !self.mask())
    }

    pub fn parse(s: &str) -> Result<Cidr, String> {
        let err = || {
            format!("invalid network {s:?}: expected an IPv4 CIDR like 10.99.0.0/24 or an address")
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| err())?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        if prefix > 32 {
            return Err(err());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Cidr::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    /// `bridge` (default); other engine drivers pass through.
    #[serde(default = "default_driver")]
    pub driver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Ipv4Addr>,
    /// No route out: its containers reach each other, and nothing beyond the network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// The driver's own options (`com.docker.network.bridge.name: br-app`, an MTU).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub options: std::collections::BTreeMap<String, super::ScalarString>,
}

fn default_driver() -> String {
    "bridge".into()
}

impl NetworkSpec {
    pub fn check(&self) -> Result<(), (String, String)> {
        if let (Some(g), None) = (self.gateway, self.subnet) {
            return Err(("spec.gateway".into(), format!("gateway {g} needs a subnet")));
        }
        if let (Some(g), Some(net)) = (self.gateway, self.subnet) {
            if !net.contains(g) || net.is_reserved(g) {
                return Err((
                    "spec.gateway".into(),
                    format!("gateway {g} does not lie in {net}"),
                ));
            }
        }
        Ok(())
    }
}

/// Where a route sends traffic: a Server's container port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub server: Name,
    pub port: ContainerPort,
}

/// Clients from `source` (an address or a CIDR) go to `to`; the most specific rule wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub source: Cidr,
    pub to: Target,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteSpec {
    #[serde(default)]
    pub protocol: Protocol,
    /// The host address dockhand listens on.
    pub listen: ListenAddr,
    pub to: Target,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// UDP: a client's session ends after this long without traffic (default 60s).
    #[schemars(with = "crate::manifest::schema::DurationText")]
    #[serde(
        default = "default_idle",
        with = "humantime_serde",
        skip_serializing_if = "is_default_idle"
    )]
    pub udp_idle_timeout: Duration,
}

fn default_idle() -> Duration {
    Duration::from_secs(60)
}

fn is_default_idle(d: &Duration) -> bool {
    *d == default_idle()
}

impl RouteSpec {
    /// Where its traffic may go: the default target, then each rule's.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        std::iter::once(&self.to).chain(self.rules.iter().map(|r| &r.to))
    }

    pub fn check(&self) -> Result<(), (String, String)> {
        for (i, a) in self.rules.iter().enumerate() {
            for b in &self.rules[..i] {
                if a.source == b.source
                    || (a.source.prefix == b.source.prefix && a.source.contains(b.source.addr))
                {
                    return Err((
                        format!("spec.rules[{i}].source"),
                        format!("rule for {} overlaps the rule for {}", a.source, b.source),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The target for a client: the most specific matching rule, else the default.
    pub fn target_for(&self, client: Ipv4Addr) -> &Target {
        self.rules
            .iter()
            .filter(|r| r.source.contains(client))
            .max_by_key(|r| r.source.prefix)
            .map_or(&self.to, |r| &r.to)
    }
}

/// `host:port` to listen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ListenAddr(pub SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(ListenAddr).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid listen address {s:?}: expected host:port like 0.0.0.0:25565"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_contain_and_reserve() {
        let net = Cidr::parse("10.99.0.0/24").expect("cidr");
        assert!(net.contains("10.99.0.10".parse().expect("ip")));
        assert!(!net.contains("10.98.0.10".parse().expect("ip")));
        assert!(net.is_reserved("10.99.0.255".parse().expect("ip")));
        assert!(net.is_reserved("10.99.0.0".parse().expect("ip")));
        assert_eq!(Cidr::parse("192.168.1.50").expect("ip").prefix, 32);
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let t = |s: &str| Target {
            server: Name(s.into()),
            port: ContainerPort(1),
        };
        let spec = RouteSpec {
            protocol: Protocol::Tcp,
            listen: ListenAddr("0.0.0.0:1".parse().expect("addr")),
            to: t("lobby"),
            rules: vec![
                Rule {
                    source: Cidr::parse("10.0.0.0/8").expect("cidr"),
                    to: t("wide"),
                },
                Rule {
                    source: Cidr::parse("10.1.2.3").expect("cidr"),
                    to: t("one"),
                },
            ],
            udp_idle_timeout: default_idle(),
        };
        assert_eq!(
            spec.target_for("10.1.2.3".parse().expect("ip")).server.0,
            "one"
        );
        assert_eq!(
            spec.target_for("10.9.9.9".parse().expect("ip")).server.0,
            "wide"
        );
        assert_eq!(
            spec.target_for("127.0.0.1".parse().expect("ip")).server.0,
            "lobby"
        );
        assert!(spec.check().is_ok());
        let mut dup = spec.clone();
        dup.rules.push(Rule {
            source: Cidr::parse("10.0.0.0/8").expect("cidr"),
            to: t("again"),
        });
        assert!(dup.check().is_err());
    }
}
