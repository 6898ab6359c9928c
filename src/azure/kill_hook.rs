//! Test hooks (documented, used by the crash tests in tests/it/crash): the process SIGKILLs
//! itself right after Azure answered
//! - `RESCUE_TEST_KILL_AFTER_MUTATION=N`: its N-th mutating request (PUT/PATCH/POST/DELETE),
//!   before the operation is checkpointed: Azure acts, the journal knows nothing of it;
//! - `RESCUE_TEST_KILL_AFTER_POLL=N`: its N-th poll of a long-running operation.
//!
//! Together with the engine's `RESCUE_TEST_KILL_AT` (after journal writes) and
//! `RESCUE_TEST_KILL_IN_WRITE` (in the middle of one) these are every point where a real crash
//! leaves Azure and the journal disagreeing.

use crate::engine::recorder::KillSwitch;

pub const AFTER_MUTATION_ENV: &str = "RESCUE_TEST_KILL_AFTER_MUTATION";
pub const AFTER_POLL_ENV: &str = "RESCUE_TEST_KILL_AFTER_POLL";

static MUTATIONS: KillSwitch = KillSwitch::new(AFTER_MUTATION_ENV);
static POLLS: KillSwitch = KillSwitch::new(AFTER_POLL_ENV);

/// Azure answered a mutating request.
pub(crate) fn after_mutation() {
    MUTATIONS.hit();
}

/// Azure answered a poll of an operation.
pub(crate) fn after_poll() {
    POLLS.hit();
}
