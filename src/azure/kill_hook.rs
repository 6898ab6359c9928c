//! Test hooks (documented, used by the crash tests in tests/it/crash): the process SIGKILLs
//! itself right after Azure answered
//! - `RESCUE_TEST_KILL_AFTER_MUTATION=N`: its N-th mutating request (PUT/PATCH/POST/DELETE),
//!   before the operation is checkpointed: Azure acts, the journal knows nothing of it;
//! - `RESCUE_TEST_KILL_AFTER_POLL=N`: its N-th poll of a long-running operation.
//!
//! Together with the engine's `RESCUE_TEST_KILL_AT` (journal writes) these are every point where
//! a real crash leaves Azure and the journal disagreeing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const AFTER_MUTATION_ENV: &str = "RESCUE_TEST_KILL_AFTER_MUTATION";
pub const AFTER_POLL_ENV: &str = "RESCUE_TEST_KILL_AFTER_POLL";

struct Counter {
    kill_at: OnceLock<Option<u64>>,
    seen: AtomicU64,
}

impl Counter {
    const fn new() -> Self {
        Counter { kill_at: OnceLock::new(), seen: AtomicU64::new(0) }
    }

    fn count(&self, env: &str) {
        let kill_at = *self.kill_at.get_or_init(|| std::env::var(env).ok().and_then(|v| v.parse().ok()));
        let Some(kill_at) = kill_at else { return };
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 == kill_at {
            // SAFETY: raising a signal in our own process has no memory-safety preconditions.
            unsafe { libc::raise(libc::SIGKILL) };
        }
    }
}

static MUTATIONS: Counter = Counter::new();
static POLLS: Counter = Counter::new();

/// Azure answered a mutating request.
pub(crate) fn after_mutation() {
    MUTATIONS.count(AFTER_MUTATION_ENV);
}

/// Azure answered a poll of an operation.
pub(crate) fn after_poll() {
    POLLS.count(AFTER_POLL_ENV);
}
