//! Integration tests: crash safety (kill anywhere and resume, faults, rollback, cleanup, the VM lock).

mod cleanup;
mod faults;
mod fencing;
pub(crate) mod kill;
mod lock;
mod rollback;
pub(crate) mod support;
