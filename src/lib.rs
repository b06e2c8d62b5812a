//! pkg: a Homebrew-style package manager for artifacts stored in OCI registries.
//!
//! The modules follow the data flow of an install: formula → resolve → registry (auth, manifest,
//! blob) → store (cache) → cellar (unpack, receipt) → link; plan/ decides what install and
//! upgrade do, apply/ carries it out. See docs/architecture.md.

pub mod apply;
pub mod bottle;
pub mod cellar;
pub mod cli;
pub mod commands;
pub mod digest;
pub mod formula;
pub mod interrupt;
pub mod link;
pub mod lock;
pub mod plan;
pub mod platform;
pub mod pour;
pub mod records;
pub mod references;
pub mod registry;
pub mod report;
pub mod resolve;
pub mod settings;
pub mod source;
pub mod store;
pub mod tap;
pub mod version;
