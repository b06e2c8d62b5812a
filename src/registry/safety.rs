//! Where a request may go: token realms (never a downgrade, never an internal address the
//! registry is not on) and redirects (no https → http, credentials only on the registry's own
//! origin).

use url::Url;

use super::{RegistryError, redact};

/// A realm must be an http(s) URL, and never plain http when the registry itself is https.
pub(super) fn check_realm(base: &Url, realm: &Url) -> Result<(), RegistryError> {
    if !matches!(realm.scheme(), "http" | "https") {
        return Err(RegistryError::Realm {
            realm: redact(realm),
            reason: "the token service must be an http(s) URL".into(),
        });
    }
    if base.scheme() == "https" && realm.scheme() != "https" {
        return Err(RegistryError::Realm {
            realm: redact(realm),
            reason: "refusing a plain-http token service for an https registry".into(),
        });
    }
    // A hostile registry must not aim our requests (and credentials) at a metadata service or
    // another machine of the local network: a realm on a loopback, private or link-local
    // address is only accepted when the registry itself is on that host.
    if realm.host_str() == base.host_str() {
        return Ok(());
    }
    let addresses: Vec<std::net::IpAddr> = match realm.host() {
        Some(url::Host::Ipv4(ip)) => vec![ip.into()],
        Some(url::Host::Ipv6(ip)) => vec![ip.into()],
        Some(url::Host::Domain(d)) => {
            use std::net::ToSocketAddrs as _;
            (d, realm.port_or_known_default().unwrap_or(443))
                .to_socket_addrs()
                .map(|a| a.map(|a| a.ip()).collect())
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    if let Some(ip) = addresses.into_iter().find(|ip| is_internal(*ip)) {
        return Err(RegistryError::Realm {
            realm: redact(realm),
            reason: format!(
                "refusing a token service on the internal address {ip}, which is not the registry's own host"
            ),
        });
    }
    Ok(())
}

/// Loopback, private, link-local, shared (CGNAT), unspecified and unique-local addresses.
pub(super) fn is_internal(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(v4.into());
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Where a redirect leads, and whether the registry's Authorization header may go along.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Hop {
    pub(super) url: Url,
    pub(super) authorized: bool,
}

/// The next hop of a redirect from `current` (a request for the registry at `base`) to
/// `location`: resolved against `current`; refused when it leaves https for anything else or
/// is not http(s) at all; authorized only when it stays on the registry's own origin (scheme,
/// host and port).
pub(super) fn next_hop(
    base: &Url,
    current: &Url,
    location: Option<&str>,
) -> Result<Hop, RegistryError> {
    let refuse = |reason: String| RegistryError::Redirect {
        url: redact(current),
        reason,
    };
    let location = location.ok_or_else(|| refuse("a redirect without a Location header".into()))?;
    let next = current
        .join(location)
        .map_err(|e| refuse(format!("bad Location: {e}")))?;
    if current.scheme() == "https" && next.scheme() != "https" {
        return Err(refuse(format!(
            "refusing to follow a redirect from https to {}",
            next.scheme()
        )));
    }
    if !matches!(next.scheme(), "http" | "https") {
        return Err(refuse(format!(
            "refusing to follow a redirect to a {} URL",
            next.scheme()
        )));
    }
    Ok(Hop {
        authorized: same_origin(base, &next),
        url: next,
    })
}

pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

pub(super) fn origin_key(base: &Url) -> String {
    base.origin().ascii_serialization()
}

pub(super) fn host_port(base: &Url) -> String {
    match (base.host_str(), base.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}
