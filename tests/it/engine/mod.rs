//! Integration tests: engine.

mod kill;
mod lock;
mod resume;
mod run;
mod run_support;
