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
pub fn note_host(host: &str) {
    HOSTS.with(|h| h.borrow_mut().push(host.to_owned()));
}

/// The registry endpoints this test started, comma-separated.
pub fn test_hosts() -> String {
    HOSTS.with(|h| h.borrow().join(","))
}
