//! One integration-test binary (one link on a 2-core machine); a module per area.

mod aks;
mod cli;
mod conformance;
mod crash;
mod emulator;
mod engine;
mod fleet;
mod repair;
mod shared_state;
mod support;
