//! Test harness: a token issuer, a real registry, OCI layout fixtures and a `pkg` runner.

pub mod cdn;
pub mod context;
pub mod layout;
pub mod proxy;
pub mod registry;
pub mod token;

pub use context::{Formula, Run, TestContext};
pub use layout::{Built, Fixture, ImageSpec, sha256_digest};
pub use registry::Registry;

thread_local! {
    /// Registry and proxy hosts this test (its thread) started: the hosts the test user's
    /// credentials are for when a test passes them in the environment (`PKG_REGISTRY_HOST`).
    static HOSTS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records a registry endpoint this test started (see [`test_hosts`]).
/// Writes `bytes` over `path` in place and puts its modification time back, as a careful
/// tamperer (or `cp -p`) would: only the ctime, or a checksum of the bytes, shows the change.
pub fn rewrite_keeping_mtime(path: &std::path::Path, bytes: &[u8]) {
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

pub fn note_host(host: &str) {
    HOSTS.with(|h| h.borrow_mut().push(host.to_owned()));
}

/// The registry endpoints this test started, comma-separated.
pub fn test_hosts() -> String {
    HOSTS.with(|h| h.borrow().join(","))
}
