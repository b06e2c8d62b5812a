//! `pkg login REGISTRY`: checks a username and password (or token) with the registry and stores
//! them in pkg's own auth file (`~/.config/pkg/auth.json`, docker's `{"auths": {HOST: {"auth":
//! base64}}}` shape, mode 0600, written through a temp file + rename). pkg reads that file before
//! docker's and podman's. The password is never printed.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;

use crate::cli::LoginArgs;
use crate::registry::auth::Credentials;

use super::Ctx;

pub fn run(ctx: &Ctx, args: &LoginArgs) -> anyhow::Result<()> {
    let registry = normalize_registry(&args.registry)?;
    let credentials = read_credentials(args)?;
    if !args.no_verify {
        ctx.client()
            .check_login(&registry, &credentials)
            .with_context(|| format!("logging in to {registry} failed; nothing was stored"))?;
    }
    let path = crate::settings::auth_file_path()
        .context("cannot find a home directory for pkg's auth file")?;
    store(&path, &registry, &credentials)?;
    ctx.reporter.status(
        "Logged in",
        &format!(
            "to {registry} as {} (stored in {})",
            credentials.username,
            path.display()
        ),
    );
    Ok(())
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
        bail!(
            "`{value}` is not a registry host; expected something like ghcr.io or 127.0.0.1:5000"
        );
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
    if username.is_empty() {
        bail!("no username given: pass --username or put it on the first line of standard input");
    }
    if username.contains(':') {
        bail!("a username cannot contain `:`");
    }
    if password.is_empty() {
        bail!("no password or token given on standard input");
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

/// Adds (or replaces) `registry` in the auth file, keeping everything else in it.
fn store(path: &Path, registry: &str, credentials: &Credentials) -> anyhow::Result<()> {
    let dir = path.parent().context("the auth file has no directory")?;
    if !dir.exists() {
        fs_err::create_dir_all(dir)?;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut doc: serde_json::Value = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid JSON; fix or remove it", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let Some(obj) = doc.as_object_mut() else {
        bail!("{} is not a JSON object; fix or remove it", path.display());
    };
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    let Some(auths) = auths.as_object_mut() else {
        bail!(
            "`auths` in {} is not an object; fix or remove it",
            path.display()
        );
    };
    let raw = format!("{}:{}", credentials.username, credentials.password);
    auths.insert(
        registry.to_owned(),
        serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)}),
    );
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    serde_json::to_writer_pretty(&mut tmp, &doc)?;
    tmp.write_all(b"\n")?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::auth::CredentialSource;

    #[test]
    fn stores_docker_shaped_entries_with_mode_0600_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pkg/auth.json");
        let me = Credentials {
            username: "me".into(),
            password: "pw1".into(),
        };
        store(&path, "ghcr.io", &me).unwrap();
        store(
            &path,
            "127.0.0.1:5000",
            &Credentials {
                username: "you".into(),
                password: "pw2".into(),
            },
        )
        .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let source = CredentialSource {
            env: None,
            env_hosts: Vec::new(),
            auth_files: vec![path.clone()],
        };
        let c = source.lookup("ghcr.io").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "pw1"));
        let c = source.lookup("127.0.0.1:5000").unwrap();
        assert_eq!(c.username, "you");
    }

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
