//! pkg: a Homebrew-style package manager for artifacts stored in OCI registries.
//!
//! The modules are declared in the order of an install's data flow: a formula (from a tap, or
//! recorded for a reference) → resolve → plan → apply (a transaction per unit) → pour (one
//! keg) → source (a registry repository or an OCI layout) → verify (signatures) → store (the
//! cache) → cellar (unpack, relocation, receipt) → link. `bottle` walks the road in reverse;
//! the rest serves them all. See docs/architecture.md.

// What to install.
pub mod formula;
pub(crate) mod tap;
pub mod references;
pub(crate) mod bundle;
pub(crate) mod lock;
pub mod resolve;
pub(crate) mod plan;
// Carrying it out.
pub(crate) mod apply;
pub(crate) mod pour;
pub(crate) mod source;
pub mod registry;
pub(crate) mod verify;
pub(crate) mod store;
pub(crate) mod cellar;
pub(crate) mod link;
// The reverse road.
pub(crate) mod bottle;
// The prefix's records and what reads them.
pub(crate) mod records;
pub(crate) mod inventory;
pub(crate) mod doctor;
pub(crate) mod shellenv;
// Shared by all.
pub mod digest;
pub(crate) mod version;
pub mod platform;
pub(crate) mod spread;
pub(crate) mod settings;
pub(crate) mod report;
pub mod interrupt;
// The command line.
pub mod cli;
pub mod commands;
