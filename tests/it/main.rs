//! Integration tests: a real distribution registry with token auth, fixtures pushed by skopeo, and
//! the real `pkg` binary.

mod artifacts;
mod bottle;
mod bundle;
mod containment;
mod corpora;
mod crash;
mod everyday;
mod experience;
mod faults;
mod fleet;
mod formats;
mod harness;
mod harness_selftest;
mod homebrew;
mod hostile;
mod house;
mod install;
mod lifecycle;
mod link_modes;
mod parallel;
mod plan;
mod reach;
mod readme;
mod realworld;
mod second_day;
mod secrets;
mod speed;
mod store_trust;
mod supply;
mod trust;
