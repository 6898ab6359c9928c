//! Integration tests: engine.

mod bad_input;
mod builtin;
mod disk_full;
mod journal;
mod kill;
mod lock;
mod plan;
mod resume;
mod run;
mod run_support;
mod target;
mod validate;
