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

/// Whether an address is private (in the broad sense: not a public internet host).
pub fn is_private(ip: IpAddr) -> bool {
    let ip = match ip {
        // An IPv4 address mapped into IPv6 (::ffff:10.0.0.1) is judged as IPv4.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    denied().iter().any(|net| net.contains(&ip))
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

/// A name that does not resolve.
#[derive(Debug, thiserror::Error)]
#[error("no such host: {host} ({message})")]
pub struct NoSuchHost {
    /// The host name.
    pub host: String,
    /// What the resolver said.
    pub message: String,
}

/// The system resolver, with private addresses filtered out of its answers.
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let target = if host.contains(':') {
                format!("[{host}]:0")
            } else {
                format!("{host}:0")
            };
            let lookup = tokio::net::lookup_host(target)
                .await
                .map(|a| a.collect::<Vec<_>>());
            let found: Vec<SocketAddr> = match lookup {
                Ok(addrs) => addrs,
                Err(e) => {
                    return Err(Box::new(NoSuchHost {
                        host,
                        message: e.to_string(),
                    }) as _);
                }
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
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
