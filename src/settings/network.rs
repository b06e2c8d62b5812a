//! The network side of the settings: registry mirrors and the hosts served only through them,
//! TLS roots, proxies, timeouts, retries, the mirror cooldown, and the credentials the
//! environment gives — each read flag → environment → config file → default and recorded for
//! `pkg config`.

use super::*;

pub(super) type Shows = BTreeMap<&'static str, Shown>;

/// The registry mirrors and the hosts served only through them (`PKG_REGISTRY_MIRRORS`,
/// `PKG_REGISTRY_MIRROR_ONLY`, or the config file's `mirrors` and `mirror_only`).
pub(super) fn mirrors(file: &File, shown: &mut Shows) -> Result<Mirrors, SettingsError> {
    let env_mirrors = std::env::var("PKG_REGISTRY_MIRRORS")
        .ok()
        .filter(|m| !m.trim().is_empty());
    let file_mirrors = file.mirrors.as_ref().map(|m| {
        m.iter()
            .flat_map(|(k, v)| match v {
                OneOrMany::One(u) => vec![format!("{k}={u}")],
                OneOrMany::Many(us) => us.iter().map(|u| format!("{k}={u}")).collect(),
            })
            .collect::<Vec<_>>()
            .join(",")
    });
    let (mirrors, src) = pick(None, env_mirrors, file_mirrors, String::new);
    let mirrors_setting = match src {
        SetBy::File => "`mirrors` in the config file",
        _ => crate::registry::MIRRORS_VAR,
    };
    let list: Vec<&str> = mirrors.split(',').filter(|m| !m.is_empty()).collect();
    shown.insert("mirrors", entry(mirrors.clone(), json!(list), src));
    let env_only = std::env::var("PKG_REGISTRY_MIRROR_ONLY")
        .ok()
        .filter(|m| !m.trim().is_empty());
    let (only, src) = pick(
        None,
        env_only,
        file.mirror_only.as_ref().map(|h| h.join(",")),
        String::new,
    );
    let only_setting = match src {
        SetBy::File => "`mirror_only` in the config file",
        _ => crate::registry::MIRROR_ONLY_VAR,
    };
    let list: Vec<&str> = only.split(',').filter(|m| !m.is_empty()).collect();
    shown.insert("mirror_only", entry(only.clone(), json!(list), src));
    Ok(Mirrors::parse_named(&mirrors, mirrors_setting)?.mirror_only_named(&only, only_setting)?)
}

/// TLS roots, proxies, timeouts, retries and the mirror cooldown (environment, config file,
/// defaults); `offline` is the caller's, since a flag sets it too.
/// Long: one network setting after another (TLS roots, proxies, timeouts, retries, cooldown), each
/// from environment, config file or default.
pub(super) fn network(file: &File, shown: &mut Shows) -> Result<NetworkOptions, SettingsError> {
    let mut network = NetworkOptions::default();
    // TLS: a CA file of the user's own, beside the bundled and the system's roots.
    let (ca_file, src) = pick(
        None,
        env_path("PKG_CA_FILE")?.map(Some),
        file.ca_file
            .clone()
            .map(|p| absolute("ca_file (config file)", p))
            .transpose()?
            .map(Some),
        || None,
    );
    let ca = match &ca_file {
        Some(path) => Some((
            path.clone(),
            std::sync::Arc::new(crate::registry::network::read_ca_file(path)?),
        )),
        None => None,
    };
    shown.insert(
        "ca_file",
        entry(
            ca_file
                .as_ref()
                .map_or("none".into(), |p| p.display().to_string()),
            json!(ca_file),
            src,
        ),
    );
    let ssl: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok().map(|p| format!("{v}={p}")))
        .collect();
    shown.insert(
        "tls_roots",
        entry(
            if ssl.is_empty() {
                "bundled + the system's".to_owned()
            } else {
                format!("bundled + {}", ssl.join(", "))
            },
            json!({"bundled": true, "system": ssl.is_empty(), "env": ssl}),
            if ssl.is_empty() {
                SetBy::Default
            } else {
                SetBy::Env
            },
        ),
    );
    network.ca = ca;
    let proxies = crate::registry::network::Proxies::from_env()?;
    shown.insert(
        "proxies",
        entry(
            proxies.describe(),
            proxies.as_json(),
            if proxies == Default::default() {
                SetBy::Default
            } else {
                SetBy::Env
            },
        ),
    );
    network.proxies = proxies;
    let secs = |v: u64| Duration::from_secs(v.max(1));
    let (connect, src) = pick(
        None,
        env_number("PKG_CONNECT_TIMEOUT", " of seconds")?.map(secs),
        file.connect_timeout.map(secs),
        || network.connect_timeout,
    );
    network.connect_timeout = connect;
    shown.insert(
        "connect_timeout",
        entry(
            format!("{}s", connect.as_secs()),
            json!(connect.as_secs()),
            src,
        ),
    );
    let (read, src) = pick(
        None,
        env_number("PKG_READ_TIMEOUT", " of seconds")?.map(secs),
        file.read_timeout.map(secs),
        || network.read_timeout,
    );
    network.read_timeout = read;
    shown.insert(
        "read_timeout",
        entry(format!("{}s", read.as_secs()), json!(read.as_secs()), src),
    );
    let tries = |n: u64| u32::try_from(n.clamp(1, 100)).unwrap_or(5);
    let (retries, src) = pick(
        None,
        env_number("PKG_RETRIES", "")?.map(tries),
        file.retries.map(|r| r.clamp(1, 100)),
        || network.tries,
    );
    network.tries = retries;
    shown.insert("retries", entry(retries.to_string(), json!(retries), src));
    let (max_wait, src) = pick(
        None,
        env_number("PKG_MAX_WAIT", " of seconds")?.map(Duration::from_secs),
        file.max_wait.map(Duration::from_secs),
        || network.max_wait,
    );
    network.max_wait = max_wait;
    shown.insert(
        "max_wait",
        entry(
            format!("{}s", max_wait.as_secs()),
            json!(max_wait.as_secs()),
            src,
        ),
    );
    let (cooldown, src) = pick(
        None,
        env_number("PKG_MIRROR_COOLDOWN", " of seconds")?.map(Duration::from_secs),
        file.mirror_cooldown.map(Duration::from_secs),
        || network.mirror_cooldown,
    );
    network.mirror_cooldown = cooldown;
    shown.insert(
        "mirror_cooldown",
        entry(
            format!("{}s", cooldown.as_secs()),
            json!(cooldown.as_secs()),
            src,
        ),
    );
    Ok(network)
}

/// Credentials from `PKG_REGISTRY_USERNAME`/`PASSWORD` (both or neither) and the hosts they
/// are for (`PKG_REGISTRY_HOST`, ghcr.io by default): never sent to any other.
pub(super) fn env_credentials(
    shown: &mut Shows,
) -> Result<(Option<Credentials>, Vec<String>), SettingsError> {
    let user = std::env::var("PKG_REGISTRY_USERNAME")
        .ok()
        .filter(|v| !v.is_empty());
    let pass = std::env::var("PKG_REGISTRY_PASSWORD")
        .ok()
        .filter(|v| !v.is_empty());
    let env = match (user, pass) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(SettingsError::HalfCredentials {
                set: "PKG_REGISTRY_USERNAME",
                unset: "PKG_REGISTRY_PASSWORD",
            });
        }
        (None, Some(_)) => {
            return Err(SettingsError::HalfCredentials {
                set: "PKG_REGISTRY_PASSWORD",
                unset: "PKG_REGISTRY_USERNAME",
            });
        }
    };
    // The hosts the environment's credentials are for: never any other.
    let env_hosts: Vec<String> = match std::env::var("PKG_REGISTRY_HOST") {
        Ok(v) if !v.trim().is_empty() => {
            let mut hosts = Vec::new();
            for h in v.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                if h.contains('/') || h.contains('@') || h.contains(char::is_whitespace) {
                    return Err(SettingsError::CredentialsHost {
                        value: h.to_owned(),
                    });
                }
                hosts.push(h.to_ascii_lowercase());
            }
            hosts
        }
        _ => vec![crate::registry::auth::DEFAULT_CREDENTIALS_HOST.to_owned()],
    };
    shown.insert(
        "credentials",
        entry(
            match &env {
                Some(c) => format!(
                    "{} (PKG_REGISTRY_USERNAME/PASSWORD, for {} only)",
                    c.username,
                    env_hosts.join(", ")
                ),
                None => "auth files".into(),
            },
            match &env {
                Some(c) => json!({"username": c.username, "hosts": env_hosts}),
                None => json!("auth files"),
            },
            if env.is_some() {
                SetBy::Env
            } else {
                SetBy::Default
            },
        ),
    );
    Ok((env, env_hosts))
}
