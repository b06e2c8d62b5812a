//! `pkg login`'s credentials on disk: `auth.json` in Docker's shape (`auths.REGISTRY.auth`,
//! base64 of `user:password`), mode 0600, every other entry kept, replaced in one rename.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::auth::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds {what}; fix or remove it", path.display())]
    Malformed { path: PathBuf, what: String },
}

/// Adds (or replaces) `registry` in the auth file, keeping everything else in it.
pub fn store(path: &Path, registry: &str, credentials: &Credentials) -> Result<(), LoginError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoginError::Io { path, source }
    };
    let bad = |what: &str| LoginError::Malformed {
        path: path.to_owned(),
        what: what.to_owned(),
    };
    let dir = path
        .parent()
        .ok_or_else(|| bad("a path with no directory"))?;
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    let mut doc: serde_json::Value = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| bad("not valid JSON"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(io(path)(e)),
    };
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object"))?;
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    let auths = auths
        .as_object_mut()
        .ok_or_else(|| bad("an `auths` that is not an object"))?;
    let raw = format!("{}:{}", credentials.username, credentials.password);
    auths.insert(
        registry.to_owned(),
        serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)}),
    );
    write(path, &doc)
}

/// Removes `registry` from the auth file; whether it was there.
pub fn remove(path: &Path, registry: &str) -> Result<bool, LoginError> {
    let bad = |what: &str| LoginError::Malformed {
        path: path.to_owned(),
        what: what.to_owned(),
    };
    let mut doc: serde_json::Value = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| bad("not valid JSON"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(LoginError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let Some(auths) = doc.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return Ok(false);
    };
    let keys: Vec<String> = auths
        .keys()
        .filter(|k| {
            let host = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            super::auth::same_endpoint(host.split('/').next().unwrap_or(host), registry)
        })
        .cloned()
        .collect();
    if keys.is_empty() {
        return Ok(false);
    }
    for k in keys {
        auths.remove(&k);
    }
    write(path, &doc)?;
    Ok(true)
}

/// Writes the auth file whole, mode 0600, through a temp file in its directory and a rename.
fn write(path: &Path, doc: &serde_json::Value) -> Result<(), LoginError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| LoginError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".auth-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(io(tmp.path()))?;
    serde_json::to_writer_pretty(&mut tmp, doc).map_err(|e| io(path)(e.into()))?;
    tmp.write_all(b"\n").map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
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
}
