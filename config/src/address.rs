//! Network addresses: PostgreSQL nodes (`"db1:5432"`) and the proxy's own
//! listen address (`"0.0.0.0:6432"`).

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The port PostgreSQL listens on unless told otherwise, used when a node
/// address leaves it out.
pub const DEFAULT_PORT: u16 = 5432;

/// A PostgreSQL server, as `host:port`.
///
/// The host stays a name (not a resolved IP) so DNS changes, e.g. after a
/// failover that moves a name, are picked up when connecting. IPv6 hosts are
/// written in brackets (`"[::1]:5432"`) and stored without them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    pub host: String,
    pub port: u16,
}

impl FromStr for NodeAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| {
            format!("invalid node address {text:?}: {why}; expected \"host:port\", e.g. \"db1:5432\" or \"[::1]:5432\"")
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| invalid("missing ']'"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(invalid("only IPv6 addresses go in brackets"));
            }
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| invalid("expected ':' after ']'"))?,
                    ),
                ),
            }
        } else if text.parse::<Ipv6Addr>().is_ok() {
            (text, None)
        } else {
            match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        if host.contains(':') && host.parse::<Ipv6Addr>().is_err() {
            return Err(invalid("IPv6 addresses must be written in brackets"));
        }
        if host.chars().any(|c| c.is_whitespace() || "/[]".contains(c)) {
            return Err(invalid("the host contains a blank, '/' or a bracket"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&port| port != 0)
                .ok_or_else(|| invalid("the port must be a number from 1 to 65535"))?,
        };
        Ok(NodeAddress {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl<'de> Deserialize<'de> for NodeAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::de::from_str(
            deserializer,
            "a node address such as \"db1:5432\"",
            str::parse,
        )
    }
}

/// Parses the proxy's listen address: an IP address and a port, no host names,
/// since binding needs one definite interface.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("invalid listen address {text:?}: expected an IP address and a port, e.g. \"0.0.0.0:6432\" or \"[::]:6432\"")
    })
}

/// `deserialize_with` adapter for the listen address.
pub(crate) fn deserialize_listen<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    crate::de::from_str(
        deserializer,
        "a listen address such as \"0.0.0.0:6432\"",
        parse_listen,
    )
}

/// Like [`deserialize_listen`], for a listener that is off unless set.
pub(crate) fn deserialize_optional_listen<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    deserialize_listen(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> Result<(String, u16), String> {
        text.parse::<NodeAddress>().map(|a| (a.host, a.port))
    }

    #[test]
    fn parses_host_and_port() {
        assert_eq!(node("db1:6543"), Ok(("db1".into(), 6543)));
        assert_eq!(node("10.0.0.7:5432"), Ok(("10.0.0.7".into(), 5432)));
        assert_eq!(node("[::1]:5433"), Ok(("::1".into(), 5433)));
    }

    #[test]
    fn port_defaults_to_5432() {
        assert_eq!(node("db1"), Ok(("db1".into(), 5432)));
        assert_eq!(node("[fe80::1]"), Ok(("fe80::1".into(), 5432)));
        assert_eq!(node("::1"), Ok(("::1".into(), 5432)));
    }

    #[test]
    fn display_round_trips() {
        for text in ["db1:5432", "[::1]:5432", "10.0.0.7:6000"] {
            assert_eq!(text.parse::<NodeAddress>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for text in [
            "",
            ":5432",
            "db1:",
            "db1:0",
            "db1:65536",
            "db1:port",
            "[::1",
            "[::1]5432",
            "[db1]:5432",
            "db 1:5432",
            "/tmp:5432",
            "fe80::1::2:x",
        ] {
            assert!(node(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(
            node("db1:x"),
            Err("invalid node address \"db1:x\": the port must be a number from 1 to 65535; expected \"host:port\", e.g. \"db1:5432\" or \"[::1]:5432\"".into())
        );
    }

    #[test]
    fn listen_needs_an_ip_and_a_port() {
        assert_eq!(
            parse_listen("127.0.0.1:6432"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 6432)))
        );
        assert!(parse_listen("[::]:6432").is_ok());
        assert!(parse_listen("localhost:6432").is_err());
        assert!(parse_listen("0.0.0.0").is_err());
    }
}
