//! Test harness: a token issuer, a real registry, OCI layout fixtures and a `pkg` runner.

pub mod context;
pub mod layout;
pub mod proxy;
pub mod registry;
pub mod token;

pub use context::{Formula, Run, TestContext};
pub use layout::{Built, Fixture, ImageSpec, sha256_digest};
pub use registry::Registry;
