//! Runs the real `pkg` binary with an isolated prefix, cache, HOME and formula directory.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::token::{PASSWORD, USERNAME};

const PKG: &str = env!("CARGO_BIN_EXE_pkg");
const TIMEOUT: Duration = Duration::from_secs(120);

pub struct TestContext {
    /// Holds every directory below; removed on drop.
    _root: tempfile::TempDir,
    pub prefix: PathBuf,
    pub cache: PathBuf,
    pub home: PathBuf,
    pub formulae: PathBuf,
    mirrors: Option<String>,
    credentials: Option<(String, String)>,
    /// `PKG_REGISTRY_HOST` for the credentials; `None`: every registry this test started.
    credentials_host: Option<String>,
    /// The test's registries when the credentials were given (a command may run on another
    /// thread, which started none).
    hosts_at_credentials: String,
    /// Extra environment for every run (`PKG_RETRIES`, timeouts, limits…).
    env: Vec<(String, String)>,
}

/// What one `pkg` run did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn describe(&self) -> String {
        format!(
            "pkg {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, 0, "expected success:\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn failure(self) -> Run {
        assert_eq!(self.code, 1, "expected exit code 1:\n{}", self.describe());
        self
    }

    #[track_caller]
    pub fn failure_with(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            code,
            "expected exit code {code}:\n{}",
            self.describe()
        );
        self
    }

    /// Asserts that stdout or stderr contains `text`.
    #[track_caller]
    pub fn says(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text) || self.stderr.contains(text),
            "expected the output to mention {text:?}:\n{}",
            self.describe()
        );
        self
    }

    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    pub fn new() -> TestContext {
        let root = tempfile::Builder::new()
            .prefix("pkg-it-")
            .tempdir()
            .expect("test temp dir");
        let dir = |name: &str| {
            let p = root.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        // The prefix itself is left for pkg to create.
        let prefix = root.path().join("prefix");
        TestContext {
            cache: dir("cache"),
            home: dir("home"),
            formulae: dir("formulae"),
            prefix,
            _root: root,
            mirrors: None,
            credentials: None,
            credentials_host: None,
            hosts_at_credentials: String::new(),
            env: Vec::new(),
        }
    }

    /// Another context with its own prefix and HOME but the same cache and formulae.
    pub fn sharing_cache(&self) -> TestContext {
        let mut other = TestContext::new();
        other.cache = self.cache.clone();
        other.formulae = self.formulae.clone();
        other.mirrors = self.mirrors.clone();
        other.credentials = self.credentials.clone();
        other.credentials_host = self.credentials_host.clone();
        other.hosts_at_credentials = self.hosts_at_credentials.clone();
        other.env = self.env.clone();
        other
    }

    /// Sets an environment variable for later runs (e.g. `PKG_RETRIES`, `PKG_READ_TIMEOUT`).
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The root of every directory of this context (prefix, cache, HOME, formulae).
    pub fn root(&self) -> &Path {
        self._root.path()
    }

    /// Sets `PKG_REGISTRY_MIRRORS` for later runs.
    pub fn mirrors(&mut self, value: &str) -> &mut Self {
        self.mirrors = Some(value.to_owned());
        self
    }

    /// Passes the test user's credentials in `PKG_REGISTRY_USERNAME`/`PKG_REGISTRY_PASSWORD`.
    pub fn with_credentials(&mut self) -> &mut Self {
        self.credentials(USERNAME, PASSWORD)
    }

    /// Passes these credentials in `PKG_REGISTRY_USERNAME`/`PKG_REGISTRY_PASSWORD`, for every
    /// registry and proxy this test started (`PKG_REGISTRY_HOST`, unless
    /// [`TestContext::credentials_host`] says otherwise).
    pub fn credentials(&mut self, username: &str, password: &str) -> &mut Self {
        self.credentials = Some((username.to_owned(), password.to_owned()));
        self.hosts_at_credentials = super::test_hosts();
        self
    }

    /// The `PKG_REGISTRY_HOST` the environment's credentials are for (`""`: pkg's default).
    pub fn credentials_host(&mut self, hosts: &str) -> &mut Self {
        self.credentials_host = Some(hosts.to_owned());
        self
    }

    pub fn write_formula(&self, name: &str, toml: &str) {
        std::fs::write(self.formulae.join(format!("{name}.toml")), toml).unwrap();
    }

    pub fn keg(&self, name: &str, version: &str) -> PathBuf {
        self.prefix.join("Cellar").join(name).join(version)
    }

    pub fn receipt(&self, name: &str, version: &str) -> serde_json::Value {
        let path = self.keg(name, version).join(".pkg/receipt.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read receipt {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("receipt {} is not JSON: {e}\n{text}", path.display()))
    }

    /// Versions present in `PREFIX/Cellar/NAME`, sorted.
    /// Forgets what `pkg install NAME@…` asked for (`var/pkg/requests/NAME.toml`): the state of a
    /// user who installed the then-newest version before a newer one was published, which
    /// `pkg upgrade` moves. Tests that set up an older version with `NAME@VERSION` and then
    /// upgrade use it (an exact version asked for is otherwise kept).
    pub fn forget_request(&self, name: &str) {
        let path = self.prefix.join(format!("var/pkg/requests/{name}.toml"));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub fn cellar_versions(&self, name: &str) -> Vec<String> {
        let dir = self.prefix.join("Cellar").join(name);
        let mut v: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// Runs `pkg ARGS…` with nothing from the caller's environment but PATH.
    pub fn pkg(&self, args: &[&str]) -> Run {
        run_with_timeout(self.command(args), args)
    }

    /// The `pkg ARGS…` command [`TestContext::pkg`] runs (stdout and stderr piped), for tests
    /// that start it themselves (to signal or kill it, or run several at once).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(PKG);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("PKG_PREFIX", &self.prefix)
            .env("PKG_CACHE", &self.cache)
            .env("PKG_FORMULAE", &self.formulae)
            .env("RUST_BACKTRACE", "1")
            .current_dir(&self.home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(m) = &self.mirrors {
            cmd.env("PKG_REGISTRY_MIRRORS", m);
        }
        if let Some((user, password)) = &self.credentials {
            let hosts = (self.credentials_host.clone()).unwrap_or_else(|| {
                let now = super::test_hosts();
                [self.hosts_at_credentials.as_str(), now.as_str()]
                    .into_iter()
                    .filter(|h| !h.is_empty())
                    .collect::<Vec<_>>()
                    .join(",")
            });
            cmd.env("PKG_REGISTRY_USERNAME", user)
                .env("PKG_REGISTRY_PASSWORD", password);
            if !hosts.is_empty() {
                cmd.env("PKG_REGISTRY_HOST", hosts);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Waits for a child started from [`TestContext::command`] (at most two minutes).
    pub fn wait(child: std::process::Child, args: &[&str]) -> Run {
        wait_with_timeout(child, args)
    }

    /// A listing of everything under the prefix (for failure messages and "nothing installed").
    pub fn prefix_listing(&self) -> String {
        let mut out = String::new();
        list(&self.prefix, &self.prefix, &mut out);
        out
    }
}

fn list(root: &Path, dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.file_type().is_symlink() {
            let _ = writeln!(
                out,
                "{rel} -> {}",
                std::fs::read_link(&p).unwrap().display()
            );
        } else if meta.is_dir() {
            let _ = writeln!(out, "{rel}/");
            list(root, &p, out);
        } else {
            let _ = writeln!(out, "{rel}");
        }
    }
}

fn run_with_timeout(mut cmd: Command, args: &[&str]) -> Run {
    wait_with_timeout(cmd.spawn().expect("run the pkg binary"), args)
}

fn wait_with_timeout(mut child: std::process::Child, args: &[&str]) -> Run {
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run = Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out_thread.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_thread.join().unwrap()).into_owned(),
    };
    assert!(
        status.is_some(),
        "pkg did not finish within {TIMEOUT:?}:\n{}",
        run.describe()
    );
    run
}

/// Builds a formula file's text.
pub struct Formula {
    name: String,
    bin: Option<Vec<String>>,
    versions: Vec<String>,
}

impl Formula {
    pub fn new(name: &str) -> Formula {
        Formula {
            name: name.to_owned(),
            bin: None,
            versions: Vec::new(),
        }
    }

    pub fn bin(mut self, bins: &[&str]) -> Formula {
        self.bin = Some(bins.iter().map(|s| s.to_string()).collect());
        self
    }

    /// A version at `repository:tag`, optionally pinned to `digest`, with dependencies.
    pub fn version_with(
        mut self,
        version: &str,
        repository: &str,
        tag: &str,
        digest: Option<&str>,
        depends_on: &[(&str, &str)],
    ) -> Formula {
        let mut s =
            format!("\n[versions.\"{version}\"]\nrepository = \"{repository}\"\ntag = \"{tag}\"\n");
        if let Some(d) = digest {
            let _ = writeln!(s, "digest = \"{d}\"");
        }
        if !depends_on.is_empty() {
            let deps: Vec<String> = depends_on
                .iter()
                .map(|(n, r)| format!("{n} = \"{r}\""))
                .collect();
            let _ = writeln!(s, "depends_on = {{ {} }}", deps.join(", "));
        }
        self.versions.push(s);
        self
    }

    pub fn version(self, version: &str, repository: &str, tag: &str) -> Formula {
        self.version_with(version, repository, tag, None, &[])
    }

    pub fn to_toml(&self) -> String {
        let mut s = format!(
            "name = \"{name}\"\ndesc = \"The {name} test package\"\nhomepage = \"https://example.com/{name}\"\nlicense = \"MIT\"\n",
            name = self.name
        );
        if let Some(bins) = &self.bin {
            let quoted: Vec<String> = bins.iter().map(|b| format!("\"{b}\"")).collect();
            let _ = writeln!(s, "bin = [{}]", quoted.join(", "));
        }
        for v in &self.versions {
            s.push_str(v);
        }
        s
    }
}
