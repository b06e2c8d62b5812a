//! A real CNCF distribution 2.8 registry (`/usr/bin/docker-registry`) on 127.0.0.1 with token auth
//! pointing at an in-process [`TokenIssuer`], filesystem storage in a temp dir, and fixtures pushed
//! with skopeo.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::layout::{Built, Fixture, OciLayout, sha256_digest};
use super::token::{ISSUER, PASSWORD, SERVICE, TokenIssuer, USERNAME};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Ports for registries come from one counter per test process, in a range below Linux's
/// ephemeral ports (32768–60999), so a stopped registry's port is never handed to another test's
/// registry (a test that stops its registry must see connection refused, not a stranger).
fn next_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 15_000;
    const SPAN: u32 = 17_000;
    // A per-process start so concurrent test runs on one machine rarely meet.
    let base = std::process::id().wrapping_mul(7919) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(n < SPAN, "ran out of registry ports");
        let port = (LOW + (base + n) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A minimal HTTP client for the harness itself (never used by pkg).
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(20)))
        .max_redirects(0)
        .build()
        .new_agent()
}

pub struct Registry {
    root: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    issuer: TokenIssuer,
    /// Plain `Basic` auth from an htpasswd file instead of tokens (the issuer then goes unused).
    htpasswd: bool,
    /// A pull-through cache of this registry URL (distribution's `proxy.remoteurl`), open to
    /// anonymous pulls: what a fleet puts in front of ghcr.io.
    remote: Option<String>,
    /// Serving https with a certificate from a CA made for the test (`ca_pem`).
    tls: Option<Tls>,
}

/// A private CA and a certificate it issued for 127.0.0.1 and localhost.
pub struct Tls {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Tls {
    pub fn generate() -> Tls {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "pkg test CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        for ip in ["127.0.0.1", "127.0.0.2"] {
            leaf.subject_alt_names
                .push(rcgen::SanType::IpAddress(ip.parse().unwrap()));
        }
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = leaf
            .signed_by(&key, &issuer)
            .expect("sign the server certificate");
        Tls {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Registry {
    /// Starts a token issuer and a registry trusting it; returns once `GET /v2/` answers 401.
    pub fn start() -> Registry {
        Self::start_with(false)
    }

    /// A registry with distribution's htpasswd auth: `401` with a `Basic` challenge, the test
    /// user's name and password accepted on every request, no token service.
    pub fn start_with_htpasswd() -> Registry {
        Self::start_with(true)
    }

    /// CNCF distribution as a pull-through cache of `remote` (which it asks for anonymous
    /// tokens by itself), open to anonymous clients.
    pub fn start_pull_through(remote: &str) -> Registry {
        Self::start_mode(false, Some(remote.to_owned()), None)
    }

    /// A registry and token service on https, with certificates from a CA made for the test
    /// ([`Registry::ca_pem`]): a company mirror with a private CA.
    pub fn start_tls() -> Registry {
        Self::start_mode(false, None, Some(Tls::generate()))
    }

    fn start_with(htpasswd: bool) -> Registry {
        Self::start_mode(htpasswd, None, None)
    }

    fn start_mode(htpasswd: bool, remote: Option<String>, tls: Option<Tls>) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: install Debian's `docker-registry` package (scripts/test does)"
        );
        let root = tempfile::Builder::new()
            .prefix("pkg-it-registry-")
            .tempdir()
            .expect("registry temp dir");
        let cert = root.path().join("issuer-cert.pem");
        let issuer = TokenIssuer::start_with(
            &cert,
            tls.as_ref().map(|t| {
                (
                    t.cert_pem.clone().into_bytes(),
                    t.key_pem.clone().into_bytes(),
                )
            }),
        );
        if let Some(t) = &tls {
            std::fs::write(root.path().join("tls-cert.pem"), &t.cert_pem).unwrap();
            std::fs::write(root.path().join("tls-key.pem"), &t.key_pem).unwrap();
            std::fs::write(root.path().join("ca.pem"), &t.ca_pem).unwrap();
        }
        std::fs::create_dir_all(root.path().join("storage")).unwrap();
        if htpasswd {
            let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt hash");
            std::fs::write(root.path().join("htpasswd"), format!("{USERNAME}:{hash}\n")).unwrap();
        }
        let mut registry = Registry {
            root,
            port: 0,
            child: None,
            issuer,
            htpasswd,
            remote,
            tls,
        };
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let port = next_port();
            match registry.spawn(port) {
                Ok(()) => {
                    super::note_host(&registry.host());
                    return registry;
                }
                Err(log) => last_log = log,
            }
        }
        panic!("docker-registry did not start; its log:\n{last_log}");
    }

    fn config(&self, port: u16) -> String {
        let root = self.root.path();
        let mut secret = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret).unwrap();
        format!(
            "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: '{storage}'
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: {secret}
{tls}{auth}",
            storage = root.join("storage").display(),
            secret = hex::encode(secret),
            tls = if self.tls.is_some() {
                format!(
                    "  tls:\n    certificate: '{}'\n    key: '{}'\n",
                    root.join("tls-cert.pem").display(),
                    root.join("tls-key.pem").display()
                )
            } else {
                String::new()
            },
            auth = if let Some(remote) = &self.remote {
                format!("proxy:\n  remoteurl: {remote}\n")
            } else if self.htpasswd {
                format!(
                    "auth:
  htpasswd:
    realm: pkg-test
    path: '{}'
",
                    root.join("htpasswd").display()
                )
            } else {
                format!(
                    "auth:
  token:
    realm: '{realm}'
    service: {SERVICE}
    issuer: {ISSUER}
    rootcertbundle: '{cert}'
",
                    realm = self.issuer.realm(),
                    cert = root.join("issuer-cert.pem").display(),
                )
            },
        )
    }

    fn log_path(&self) -> PathBuf {
        self.root.path().join("registry.log")
    }

    /// The registry's own log (warnings and errors only).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self, port: u16) -> Result<(), String> {
        let config_path = self.root.path().join("config.yml");
        std::fs::write(&config_path, self.config(port)).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {REGISTRY_BIN}: {e}"));
        let agent = http_agent();
        // (On https, the plain probe is answered 400 by the TLS listener: it is up.)
        let url = format!("http://127.0.0.1:{port}/v2/");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if let Ok(resp) = agent.get(&url).call() {
                if resp.status() == 401
                    || (self.remote.is_some() && resp.status() == 200)
                    || (self.tls.is_some() && resp.status() == 400)
                {
                    self.port = port;
                    self.child = Some(child);
                    return Ok(());
                }
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "GET {url} answered {} instead of 401 (another server on the port?)",
                    resp.status()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "docker-registry did not answer on {url} within 20 s; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The PEM of the CA that issued a TLS registry's certificate (its file: [`Registry::ca_path`]).
    pub fn ca_path(&self) -> PathBuf {
        self.root.path().join("ca.pem")
    }

    /// A TLS registry's CA and certificate.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// `https://127.0.0.1:PORT` for a TLS registry.
    pub fn https_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, the registry part of a repository reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }

    pub fn storage(&self) -> PathBuf {
        self.root.path().join("storage")
    }

    /// Kills the registry; its port stays unused for the rest of the test run.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where distribution keeps a blob's bytes.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Flips one byte in the middle of a stored blob (same size, other content) and returns the
    /// digest of the bytes the registry now serves under the old digest.
    pub fn tamper_blob(&self, digest: &str) -> String {
        let path = self.blob_path(digest);
        let mut bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("cannot read blob {}: {e}", path.display()));
        assert_eq!(sha256_digest(&bytes), digest, "blob file is not {digest}");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        sha256_digest(&bytes)
    }

    /// Builds `fixture` as an OCI layout and pushes it as `REPO:TAG` with skopeo (as the test user).
    /// Pushes `blobs` and then `manifest` (exact bytes, as `media_type`) to `repo` at
    /// `reference` over the registry API with the test user's token, as a signing client
    /// publishing an attestation does. Returns the manifest's digest.
    pub fn put_raw(
        &self,
        repo: &str,
        blobs: &[&[u8]],
        manifest: &[u8],
        media_type: &str,
        reference: &str,
    ) -> String {
        use base64::Engine as _;
        let agent = http_agent();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{USERNAME}:{PASSWORD}"));
        let mut resp = agent
            .get(&format!(
                "{}?service={SERVICE}&scope=repository:{repo}:pull,push",
                self.issuer.realm()
            ))
            .header("Authorization", &format!("Basic {basic}"))
            .call()
            .unwrap();
        let token: serde_json::Value =
            serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
        let base = self.url();
        for blob in blobs {
            let digest = super::layout::sha256_digest(blob);
            let resp = agent
                .post(&format!("{base}/v2/{repo}/blobs/uploads/"))
                .header("Authorization", &bearer)
                .send_empty()
                .unwrap();
            assert_eq!(resp.status(), 202, "upload of {digest} not started");
            let location = resp
                .headers()
                .get("location")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let location = if location.starts_with('/') {
                format!("{base}{location}")
            } else {
                location
            };
            let sep = if location.contains('?') { '&' } else { '?' };
            let resp = agent
                .put(&format!("{location}{sep}digest={digest}"))
                .header("Authorization", &bearer)
                .header("Content-Type", "application/octet-stream")
                .send(*blob)
                .unwrap();
            assert_eq!(resp.status(), 201, "upload of {digest} not accepted");
        }
        let resp = agent
            .put(&format!("{base}/v2/{repo}/manifests/{reference}"))
            .header("Authorization", &bearer)
            .header("Content-Type", media_type)
            .send(manifest)
            .unwrap();
        assert_eq!(resp.status(), 201, "manifest {reference} not accepted");
        super::layout::sha256_digest(manifest)
    }

    pub fn push(&self, repo: &str, tag: &str, fixture: &Fixture) -> Built {
        let layout_dir = tempfile::Builder::new()
            .prefix("layout-")
            .tempdir_in(self.root.path())
            .unwrap();
        let mut layout = OciLayout::create(layout_dir.path());
        let built = layout.add(tag, fixture);
        skopeo_push(layout.dir(), tag, &format!("{}/{repo}:{tag}", self.host()));
        built
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `skopeo copy --all oci:DIR:TAG docker://DEST` with the test user's credentials; panics with
/// skopeo's output when it fails.
pub fn skopeo_push(layout: &Path, tag: &str, dest: &str) {
    skopeo_copy(&["--all", "--preserve-digests"], layout, tag, dest);
}

/// `skopeo copy ARGS oci:DIR:TAG docker://DEST` with the test user's credentials (e.g.
/// `--format v2s2` to convert to Docker's formats); panics with skopeo's output when it fails.
pub fn skopeo_copy(args: &[&str], layout: &Path, tag: &str, dest: &str) {
    let home = tempfile::tempdir().unwrap();
    let output = Command::new("skopeo")
        .args(["--insecure-policy", "copy"])
        .args(args)
        .arg("--dest-creds")
        .arg(format!("{USERNAME}:{PASSWORD}"))
        .arg("--dest-tls-verify=false")
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run skopeo ({e}): install Debian's `skopeo` package (scripts/test does)")
        });
    assert!(
        output.status.success(),
        "skopeo copy to {dest} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
