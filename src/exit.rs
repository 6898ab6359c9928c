//! Exit codes: stable, documented in `--help` and the README.

/// Every step succeeded (or, for plan/validate, the workflow is valid).
pub const SUCCESS: u8 = 0;
/// A step failed; the run is journaled and `rescue resume RUN_ID` continues it.
pub const STEP_FAILED: u8 = 1;
/// Invalid workflow, inputs, journal or usage; nothing was changed.
pub const INVALID: u8 = 2;
/// Another process (or another engineer's run) holds the lock.
pub const LOCKED: u8 = 3;
/// Somebody answered no: to the go-ahead (nothing was changed, no run is kept) or to a step's
/// own question such as the OS-disk swap (the run is saved; `rescue resume RUN_ID` asks again).
pub const DECLINED: u8 = 4;
/// Interrupted (Ctrl-C / SIGTERM); the journal is saved and the run is resumable.
pub const INTERRUPTED: u8 = 130;

/// The text shown at the end of `--help`.
pub const HELP: &str = "\
Exit codes:
  0    success
  1    a step failed; the run is saved, `rescue resume RUN_ID` continues it
  2    invalid workflow, inputs, journal or usage; nothing was changed
  3    locked: another process or run holds the run or the VM
  4    declined: you answered no (to the go-ahead: nothing was changed; to a step's question:
       the run is saved, `rescue resume RUN_ID` asks again)
  130  interrupted; the run is saved, `rescue resume RUN_ID` continues it";
