//! `pkg login REGISTRY`: checks a username and password (or token) with the registry and stores
//! them in pkg's own auth file (`~/.config/pkg/auth.json`, docker's `{"auths": {HOST: {"auth":
//! base64}}}` shape, mode 0600, written through a temp file + rename). pkg reads that file before
//! docker's and podman's. The password is never printed.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};

use anyhow::Context as _;

use crate::cli::{LoginArgs, LogoutArgs};
use crate::registry::auth::Credentials;
use crate::registry::login::store;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &LoginArgs) -> anyhow::Result<()> {
    let registry = normalize_registry(&args.registry)?;
    // The credentials are for the endpoint pkg really talks to: a mirror's, when mirrored.
    let (endpoint, mirrored) = endpoint_of(ctx, &registry)?;
    let credentials = read_credentials(args)?;
    if !args.no_verify {
        ctx.client()
            .check_login(&registry, &credentials)
            .with_context(|| format!("logging in to {endpoint} failed; nothing was stored"))?;
    }
    let path = crate::settings::auth_file_path()
        .context("cannot find a home directory for pkg's auth file")?;
    store(&path, &endpoint, &credentials)?;
    let whom = if mirrored {
        format!("{registry} is mirrored to {endpoint}; logged in there")
    } else {
        format!("to {registry}")
    };
    ctx.reporter.status(
        "Logged in",
        &format!(
            "{whom} as {} (stored in {})",
            credentials.username,
            path.display()
        ),
    );
    Ok(())
}

/// `pkg logout REGISTRY`: forgets what `pkg login` stored for it (for its mirror when mirrored).
pub fn logout(ctx: &Ctx, args: &LogoutArgs) -> anyhow::Result<()> {
    let registry = normalize_registry(&args.registry)?;
    let (endpoint, mirrored) = endpoint_of(ctx, &registry)?;
    let path = crate::settings::auth_file_path()
        .context("cannot find a home directory for pkg's auth file")?;
    let mut removed = crate::registry::login::remove(&path, &endpoint)?;
    if mirrored {
        // A login from before pkg followed mirrors, under the registry's own name.
        removed |= crate::registry::login::remove(&path, &registry)?;
    }
    let whom = if mirrored {
        format!("{endpoint} (the mirror of {registry})")
    } else {
        endpoint.clone()
    };
    if removed {
        ctx.reporter.status("Logged out", &format!("of {whom}"));
    } else {
        ctx.reporter
            .status("Not logged in", &format!("to {whom} in {}", path.display()));
    }
    // Credentials from elsewhere still apply; say where, never what.
    if let Some((_, from)) = ctx
        .settings
        .credentials
        .hosts()
        .into_iter()
        .find(|(h, _)| crate::registry::auth::same_endpoint(h, &endpoint))
    {
        let fix = if from.starts_with("PKG_") {
            "unset PKG_REGISTRY_USERNAME and PKG_REGISTRY_PASSWORD".to_owned()
        } else {
            format!("remove them there (`docker logout {endpoint}` or `podman logout {endpoint}`)")
        };
        ctx.reporter.warn(&format!(
            "credentials for {endpoint} still come from {from}; {fix}"
        ));
    }
    Ok(())
}

/// The endpoint (host[:port]) requests for `registry` go to first, and whether it is a mirror.
fn endpoint_of(ctx: &Ctx, registry: &str) -> anyhow::Result<(String, bool)> {
    let mirrors = &ctx.settings.mirrors;
    let url = mirrors.endpoint(registry)?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => registry.to_owned(),
    };
    Ok((host, mirrors.is_mirror(registry, &url)))
}

/// `ghcr.io`, `https://ghcr.io/`, `127.0.0.1:5000` → the host[:port] key.
fn normalize_registry(value: &str) -> anyhow::Result<String> {
    let host = value
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !ok {
        return Err(super::BadInput(format!(
            "`{value}` is not a registry host; expected something like ghcr.io or 127.0.0.1:5000"
        ))
        .into());
    }
    Ok(host.to_ascii_lowercase())
}

fn read_credentials(args: &LoginArgs) -> anyhow::Result<Credentials> {
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal() && !args.password_stdin;
    // One lock for every read: taking the stdin lock twice would deadlock.
    let mut lines = stdin.lock();
    let line = |lines: &mut std::io::StdinLock<'_>, prompt: &str| -> anyhow::Result<String> {
        if interactive {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        let mut s = String::new();
        lines.read_line(&mut s).context("reading standard input")?;
        Ok(s.trim_end_matches(['\n', '\r']).to_owned())
    };
    let username = match &args.username {
        Some(u) => u.clone(),
        None => line(&mut lines, "Username: ")?,
    };
    let password = if args.password_stdin {
        let mut s = String::new();
        lines
            .read_to_string(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\n', '\r']).to_owned()
    } else if interactive {
        let _echo = EchoOff::new();
        let p = line(&mut lines, "Password or token: ")?;
        eprintln!();
        p
    } else {
        line(&mut lines, "")?
    };
    let bad = |m: &str| Err(super::BadInput(m.to_owned()).into());
    if username.is_empty() {
        return bad(
            "no username given: pass --username or put it on the first line of standard input",
        );
    }
    if username.contains(':') {
        return bad("a username cannot contain `:`");
    }
    if password.is_empty() {
        return bad("no password or token given on standard input");
    }
    Ok(Credentials { username, password })
}

/// Turns terminal echo off while a password is typed (and back on when dropped).
struct EchoOff {
    active: bool,
}

impl EchoOff {
    fn new() -> EchoOff {
        let active = std::process::Command::new("stty")
            .arg("-echo")
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success());
        EchoOff { active }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if self.active {
            let _ = std::process::Command::new("stty")
                .arg("echo")
                .stdin(std::process::Stdio::inherit())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names() {
        assert_eq!(normalize_registry("https://GHCR.io/").unwrap(), "ghcr.io");
        assert_eq!(
            normalize_registry("127.0.0.1:5000").unwrap(),
            "127.0.0.1:5000"
        );
        assert!(normalize_registry("ghcr.io/acme").is_err());
        assert!(normalize_registry("").is_err());
    }
}
