//! The private-address guard: vaultkeep does not fetch from loopback, private, link-local,
//! shared or multicast addresses unless allowed, checked after DNS resolution (so a name that
//! resolves to 10.0.0.1 is caught) and on every redirect hop.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Networks that are not the public internet.
fn denied() -> &'static [IpNet] {
    static NETS: OnceLock<Vec<IpNet>> = OnceLock::new();
    NETS.get_or_init(|| {
        [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.168.0.0/16",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "::/128",
            "::1/128",
            "64:ff9b:1::/48",
            "100::/64",
            "2001:db8::/32",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
        ]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
    })
}

/// Whether an address is private (in the broad sense: not a public internet host). An IPv6
/// address that carries an IPv4 address is judged by that IPv4 address: v4-mapped
/// (`::ffff:10.0.0.1`), v4-compatible (`::10.0.0.1`), v4-translated (`::ffff:0:10.0.0.1`),
/// NAT64 (`64:ff9b::10.0.0.1`) and 6to4 (`2002:0a00:0001::`).
pub fn is_private(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    denied().iter().any(|net| net.contains(&ip))
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms that carry one.
fn embedded_v4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let last =
        std::net::Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(last),
        // ::ffff:0:a.b.c.d
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(last),
        // ::a.b.c.d, but not :: and ::1, which are themselves denied
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(last),
        // 64:ff9b::a.b.c.d
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(last),
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(std::net::Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// A name that resolves only to private addresses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, a private address (use --allow-private to fetch it)")]
pub struct Blocked {
    /// The host name.
    pub host: String,
    /// The first address it resolved to.
    pub ip: IpAddr,
}

/// A name that does not exist: the resolver answered, and said so (NXDOMAIN, or no address).
#[derive(Debug, thiserror::Error)]
#[error("no such host: {host} ({message})")]
pub struct NoSuchHost {
    /// The host name.
    pub host: String,
    /// What the resolver said.
    pub message: String,
}

/// A name that cannot be resolved now: no resolver reachable, a temporary failure, no network.
/// Says nothing about the host (issue 9: offline is not dead).
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host} now ({message})")]
pub struct CannotResolve {
    /// The host name.
    pub host: String,
    /// What the resolver said.
    pub message: String,
}

/// The system resolver (getaddrinfo: hosts file, DNS, mDNS as the system is set up), with
/// private addresses filtered out of its answers.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found = {
                let host = host.clone();
                tokio::task::spawn_blocking(move || lookup(&host))
                    .await
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)??
            };
            let kept: Vec<SocketAddr> = found
                .iter()
                .filter(|a| allow_private || !is_private(a.ip()))
                .copied()
                .collect();
            match (kept.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(kept.into_iter()) as Addrs),
                (true, Some(first)) => Err(Box::new(Blocked {
                    host,
                    ip: first.ip(),
                }) as _),
                (true, None) => Err(Box::new(NoSuchHost {
                    host,
                    message: "no addresses".into(),
                }) as _),
            }
        })
    }
}

/// Resolves a name, telling "no such host" from "cannot resolve now" by getaddrinfo's code.
fn lookup(host: &str) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    use dns_lookup::LookupErrorKind as Kind;
    let hints = dns_lookup::AddrInfoHints {
        socktype: i32::from(dns_lookup::SockType::Stream),
        ..Default::default()
    };
    match dns_lookup::getaddrinfo(Some(host), None, Some(hints)) {
        Ok(found) => Ok(found.filter_map(Result::ok).map(|a| a.sockaddr).collect()),
        Err(e) => {
            let kind = e.kind();
            let message = std::io::Error::from(e).to_string();
            let host = host.to_string();
            Err(match kind {
                Kind::NoName | Kind::NoData => Box::new(NoSuchHost { host, message }),
                _ => Box::new(CannotResolve { host, message }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_link_local_and_multicast_are_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn public_addresses_are_not() {
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "::ffff:0:808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
