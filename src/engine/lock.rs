//! One process per run: an exclusive `File::lock` on `<run_dir>/lock`, holding pid, host and
//! start time so that the refusal can say who holds it. The OS releases it when the process
//! dies, so a killed run never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub const FILE_NAME: &str = "lock";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
}

impl Holder {
    /// This process, now.
    pub fn me() -> Holder {
        Holder {
            pid: std::process::id(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            user: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.is_empty()),
            started: OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        }
    }

    /// A process on this machine that has exited: it holds nothing any more.
    pub fn is_gone_from_here(&self) -> bool {
        let here = gethostname::gethostname().to_string_lossy().into_owned();
        // SAFETY: kill(2) with signal 0 only asks whether the process exists.
        self.host == here
            && self.pid != 0
            && unsafe { libc::kill(self.pid as i32, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} on {}", self.pid, self.host)?;
        if let Some(user) = &self.user {
            write!(f, " (user {user})")?;
        }
        write!(f, " since {}", self.started)
    }
}

/// The hint when the local lock is held.
const LOCAL_HINT: &str =
    "wait for it to finish, or stop that process; the lock is released when it exits";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("run {run_id} is in use by {}\n  hint: {hint}", .holder.as_ref().map_or("another process".into(), |h| h.to_string()))]
    Held {
        run_id: String,
        holder: Option<Holder>,
        hint: String,
    },
    #[error("cannot lock run {run_id}: {source}")]
    Io {
        run_id: String,
        source: std::io::Error,
    },
}

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    pub fn acquire(run_dir: &Path, run_id: &str) -> Result<RunLock, LockError> {
        let io = |source| LockError::Io {
            run_id: run_id.to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(run_dir.join(FILE_NAME))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str(&text).ok();
                return Err(LockError::Held {
                    run_id: run_id.to_string(),
                    holder,
                    hint: LOCAL_HINT.into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = Holder::me();
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(
            serde_json::to_string(&holder)
                .expect("plain struct")
                .as_bytes(),
        )
        .map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

/// Who holds the run's lock now, if anyone: the run is running in that process. The probe
/// takes a shared lock for an instant when it is free; a `resume` starting in that very
/// instant is refused as it would be by any holder, and works when run again.
pub fn holder(run_dir: &Path) -> Option<Holder> {
    let mut file = OpenOptions::new()
        .read(true)
        .open(run_dir.join(FILE_NAME))
        .ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            Some(serde_json::from_str(&text).unwrap_or(Holder {
                pid: 0,
                host: "?".into(),
                user: None,
                started: OffsetDateTime::UNIX_EPOCH,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = RunLock::acquire(dir.path(), "r1").unwrap();
        let err = RunLock::acquire(dir.path(), "r1").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(matches!(
            err,
            LockError::Held {
                holder: Some(_),
                ..
            }
        ));
        assert_eq!(holder(dir.path()).map(|h| h.pid), Some(std::process::id()));
        drop(_held);
        assert!(holder(dir.path()).is_none());
    }
}
