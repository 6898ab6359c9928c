//! The journal of the run in progress, shared by the executor and the running action, saved
//! durably after every change.
//!
//! Test hook (documented, used by the crash tests): `RESCUE_TEST_KILL_AT=N` makes the process
//! SIGKILL itself at the N-th crash point. Crash points are every durable journal write and the
//! moment an action's `execute` returns, before its result is recorded; together they are every
//! step boundary a real crash can hit.
//!
//! `RESCUE_TEST_SIGNAL=INT` makes every such hook (these and `azure::kill_hook`'s) raise SIGINT
//! instead: a Ctrl-C at an exact point, which the run handles as it handles a real one.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::journal::Journal;
use super::store::RunStore;

pub const KILL_AT_ENV: &str = "RESCUE_TEST_KILL_AT";
pub const SIGNAL_ENV: &str = "RESCUE_TEST_SIGNAL";

/// A process-wide test hook: SIGKILL the process at the N-th time `hit` is called, N from the
/// environment variable (unset: never). Used for crash points that have no Recorder at hand.
pub struct KillSwitch {
    env: &'static str,
    kill_at: std::sync::OnceLock<Option<u64>>,
    seen: AtomicU64,
}

impl KillSwitch {
    pub const fn new(env: &'static str) -> Self {
        KillSwitch {
            env,
            kill_at: std::sync::OnceLock::new(),
            seen: AtomicU64::new(0),
        }
    }

    pub fn hit(&self) {
        let kill_at = *self
            .kill_at
            .get_or_init(|| std::env::var(self.env).ok().and_then(|v| v.parse().ok()));
        if kill_at.is_some_and(|n| self.seen.fetch_add(1, Ordering::SeqCst) + 1 == n) {
            let signal = match std::env::var(SIGNAL_ENV).as_deref() {
                Ok("INT") => libc::SIGINT,
                _ => libc::SIGKILL,
            };
            // SAFETY: raising a signal in our own process has no memory-safety preconditions.
            unsafe { libc::raise(signal) };
        }
    }
}

static CRASH_POINTS: KillSwitch = KillSwitch::new(KILL_AT_ENV);

pub struct Recorder {
    store: Arc<dyn RunStore>,
    dir: PathBuf,
    journal: Mutex<Journal>,
}

impl Recorder {
    pub fn new(store: Arc<dyn RunStore>, journal: Journal) -> Self {
        Recorder {
            dir: store.run_dir(&journal.run_id),
            store,
            journal: Mutex::new(journal),
        }
    }

    pub fn journal_path(&self) -> PathBuf {
        Journal::path(&self.dir)
    }

    /// The run's local directory: the journal's working copy, and the reports.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn store(&self) -> &Arc<dyn RunStore> {
        &self.store
    }

    /// Read access; never hold it across an await.
    pub fn read(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the journal and saves it durably before returning.
    pub fn update<T>(&self, change: impl FnOnce(&mut Journal) -> T) -> anyhow::Result<T> {
        let mut journal = self.read();
        let result = change(&mut journal);
        journal.save(self.store.as_ref())?;
        drop(journal);
        self.crash_point();
        Ok(result)
    }

    /// Changes the journal in memory only: saved with the next [`Recorder::update`]. For
    /// evidence that must not add a journal write (and a crash point) of its own.
    pub fn stage(&self, change: impl FnOnce(&mut Journal)) {
        change(&mut self.read());
    }

    /// See the module documentation.
    pub fn crash_point(&self) {
        CRASH_POINTS.hit();
    }
}
