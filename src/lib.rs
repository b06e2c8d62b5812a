//! pkg: a Homebrew-style package manager for artifacts stored in OCI registries.
//!
//! The modules follow the data flow of an install: formula → resolve → registry (auth, manifest,
//! blob) → store (cache) → cellar (unpack, receipt) → link; plan/ decides what install and
//! upgrade do, apply/ carries it out. See docs/architecture.md.

pub(crate) mod apply;
pub(crate) mod bottle;
pub(crate) mod bundle;
pub(crate) mod cellar;
pub mod cli;
pub mod commands;
pub mod digest;
pub(crate) mod doctor;
pub mod formula;
pub mod interrupt;
pub(crate) mod inventory;
pub(crate) mod link;
pub(crate) mod lock;
pub(crate) mod plan;
pub mod platform;
pub(crate) mod pour;
pub(crate) mod records;
pub mod references;
pub mod registry;
pub(crate) mod report;
pub mod resolve;
pub(crate) mod settings;
pub(crate) mod shellenv;
pub(crate) mod source;
pub(crate) mod store;
pub(crate) mod tap;
pub(crate) mod verify;
pub(crate) mod version;
