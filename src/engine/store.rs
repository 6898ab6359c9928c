//! Where runs live: the [`RunStore`] trait, its local directory (`<state_dir>/runs/<run_id>/`),
//! and sortable run ids.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rand::Rng;
use time::{macros::format_description, OffsetDateTime};

use super::journal::Journal;
use super::lock::{Holder, LockError};

/// A new run id: `YYYYMMDD-HHMMSS-xxxx` (UTC, 4 random hex digits), sortable by start time.
pub fn new_run_id() -> String {
    let now = OffsetDateTime::now_utc();
    let stamp = now
        .format(format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .expect("static format");
    format!("{stamp}-{:04x}", rand::thread_rng().gen::<u16>())
}

/// The newest of `ids` (run or fleet ids, which name the second they started in): the last
/// in order, or among those of that same second the one `started` says began last (the random
/// suffix says nothing). Only that second's are looked at.
pub fn newest(
    mut ids: Vec<String>,
    started: impl Fn(&str) -> Option<OffsetDateTime>,
) -> Option<String> {
    ids.sort();
    let second = ids.last()?.get(..15)?.to_string();
    ids.retain(|id| id.starts_with(&second));
    if ids.len() == 1 {
        return ids.pop();
    }
    ids.into_iter().max_by_key(|id| (started(id), id.clone()))
}

/// Run ids are also directory names: refuse anything that could escape the runs directory.
pub fn is_valid_run_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Creates a directory (and parents) readable by the owner only.
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create directory {}", path.display()))
}

/// What a command taking a run id accepts for the most recent run.
pub const LAST: &str = "last";

/// Held for as long as the value lives: no other process continues the run meanwhile.
pub trait HeldRun: Send + Sync + std::fmt::Debug {}

impl HeldRun for super::lock::RunLock {}

/// Where runs are kept: their journals, locks, stored files and kept artifacts. A run always
/// works in a local directory ([`RunStore::run_dir`]: reports, the emulator's data); a shared
/// store is the authority over it, and brings it to any machine ([`RunStore::fetch`]).
///
/// A save that the store refuses because another process holds the run now fails with
/// [`Fenced`]: the run must stop before its next effect.
pub trait RunStore: Send + Sync {
    /// As the user names it: a directory, or `azblob://ACCOUNT/CONTAINER`.
    fn location(&self) -> String;
    /// The run's local working directory.
    fn run_dir(&self, run_id: &str) -> PathBuf;
    /// A new run: a fresh id, claimed in the store, with its local directory.
    fn create_run(&self) -> anyhow::Result<String>;
    /// The ids of the runs with a journal, oldest first.
    fn run_ids(&self) -> anyhow::Result<Vec<String>>;
    /// Brings the run's journal and files into its local directory; false: no such run.
    fn fetch(&self, run_id: &str) -> anyhow::Result<bool>;
    /// The run's journal as stored (None: no such run), without fetching the rest.
    fn journal_text(&self, run_id: &str) -> anyhow::Result<Option<String>>;
    /// Where the run's journal is stored, for messages.
    fn journal_place(&self, run_id: &str) -> PathBuf;
    /// One process per run. `take_over`: the holder is known to be gone (`--force-unlock`).
    fn lock(&self, run_id: &str, take_over: bool) -> Result<Box<dyn HeldRun>, LockError>;
    /// Replaces the journal durably.
    fn save_journal(&self, run_id: &str, bytes: &[u8]) -> anyhow::Result<()>;
    /// Stores a file the run reads (its workflow, scripts) by content; its SHA-256.
    fn put_file(&self, run_id: &str, bytes: &[u8]) -> anyhow::Result<String>;
    /// Keeps a file a step produced (`fsck.log`) with the run; its local path.
    fn keep(&self, run_id: &str, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf>;
    /// Who holds the run now, if anyone.
    fn holder(&self, run_id: &str) -> Option<Holder>;
    /// Forgets a run that never started.
    fn discard(&self, run_id: &str);
}

/// The run is someone else's now: a shared store refused this process's save (its lease was
/// lost or broken, or the journal changed under it). Exit 3; nothing more is done.
#[derive(Clone, Debug, thiserror::Error)]
#[error("run {run_id} is no longer this process's: {why}; {}\n  hint: this process stopped before its next change; see where the run stands with `rescue status {run_id}`", match .holder { Some(h) => format!("it is held by {h} now"), None => "nobody holds it now".to_string() })]
pub struct Fenced {
    pub run_id: String,
    pub why: String,
    pub holder: Option<Holder>,
}

/// Runs in a local directory: `<state_dir>/runs/<run_id>/`, locked with a file lock.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(state_dir: PathBuf) -> Self {
        LocalStore { root: state_dir }
    }

    fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// A fresh run id whose directory this call created.
    pub fn create_dir(&self) -> anyhow::Result<String> {
        create_private_dir(&self.runs_dir())?;
        loop {
            let id = new_run_id();
            let dir = self.run_dir(&id);
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(id),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create run directory {}", dir.display()))
                }
            }
        }
    }
}

impl RunStore for LocalStore {
    fn location(&self) -> String {
        self.runs_dir().display().to_string()
    }

    fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    fn create_run(&self) -> anyhow::Result<String> {
        self.create_dir()
    }

    fn run_ids(&self) -> anyhow::Result<Vec<String>> {
        let Ok(entries) = fs::read_dir(self.runs_dir()) else {
            return Ok(Vec::new());
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(super::journal::FILE_NAME).is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn fetch(&self, run_id: &str) -> anyhow::Result<bool> {
        Ok(is_valid_run_id(run_id) && Journal::path(&self.run_dir(run_id)).is_file())
    }

    fn journal_text(&self, run_id: &str) -> anyhow::Result<Option<String>> {
        let path = Journal::path(&self.run_dir(run_id));
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read journal {}", path.display())),
        }
    }

    fn journal_place(&self, run_id: &str) -> PathBuf {
        Journal::path(&self.run_dir(run_id))
    }

    fn lock(&self, run_id: &str, _take_over: bool) -> Result<Box<dyn HeldRun>, LockError> {
        // The OS releases a dead holder's file lock: there is never anything to take over.
        super::lock::RunLock::acquire(&self.run_dir(run_id), run_id)
            .map(|l| Box::new(l) as Box<dyn HeldRun>)
    }

    fn save_journal(&self, run_id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        super::journal::write_durably(&Journal::path(&self.run_dir(run_id)), bytes)
    }

    fn put_file(&self, run_id: &str, bytes: &[u8]) -> anyhow::Result<String> {
        super::files::FileStore::new(&self.run_dir(run_id)).put(bytes)
    }

    fn keep(&self, run_id: &str, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.run_dir(run_id).join(name);
        super::journal::write_file_durably(&path, bytes)?;
        Ok(path)
    }

    fn holder(&self, run_id: &str) -> Option<Holder> {
        super::lock::holder(&self.run_dir(run_id))
    }

    fn discard(&self, run_id: &str) {
        let _ = fs::remove_dir_all(self.run_dir(run_id));
    }
}

/// Finding runs in a store by what the user typed.
pub struct Store {
    inner: Arc<dyn RunStore>,
}

impl Store {
    pub fn new(inner: Arc<dyn RunStore>) -> Self {
        Store { inner }
    }

    /// The run id `given` stands for: itself, or for `last` the most recent run (ids sort by
    /// start time).
    pub fn resolve(&self, given: &str) -> anyhow::Result<String> {
        if given != LAST {
            return Ok(given.to_string());
        }
        let created = |id: &str| {
            let text = self.inner.journal_text(id).ok()??;
            let journal: serde_json::Value = serde_json::from_str(&text).ok()?;
            OffsetDateTime::parse(
                journal["created"].as_str()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()
        };
        newest(self.inner.run_ids()?, created).with_context(|| {
            format!(
                "`last`: there are no runs in {}\n  hint: start one with `rescue run`",
                self.inner.location()
            )
        })
    }

    /// The local directory of an existing run (brought from a shared store), or an error that
    /// says how to find run ids.
    pub fn existing_run(&self, run_id: &str) -> anyhow::Result<PathBuf> {
        if !is_valid_run_id(run_id) || !self.inner.fetch(run_id)? {
            anyhow::bail!(
                "no run `{run_id}` in {}\n  hint: `rescue runs` lists the runs (use the same --state-dir and --state)",
                self.inner.location()
            );
        }
        Ok(self.inner.run_dir(run_id))
    }

    /// Every run with a readable journal, oldest first; unreadable ones as errors.
    pub fn list(&self) -> anyhow::Result<Vec<(String, anyhow::Result<Journal>)>> {
        let ids = self.inner.run_ids()?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let journal = self.inner.journal_text(&id).and_then(|text| {
                    let text = text.with_context(|| format!("run {id} has no journal"))?;
                    Journal::parse_stored(&text, &id, &self.inner.journal_place(&id))
                });
                (id, journal)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_short_and_sortable() {
        let id = new_run_id();
        assert_eq!(id.len(), "YYYYMMDD-HHMMSS-xxxx".len(), "{id}");
        assert!(is_valid_run_id(&id));
        assert!(!is_valid_run_id("../etc"));
    }

    #[test]
    fn last_is_the_run_created_last_even_within_one_second() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        for (id, created) in [
            ("20261202-120106-ffff", "2026-12-02T12:01:06.100Z"),
            ("20261202-120106-0001", "2026-12-02T12:01:06.900Z"),
            ("20261202-120105-ffff", "2026-12-02T12:01:05.950Z"),
        ] {
            std::fs::create_dir_all(runs.join(id)).unwrap();
            std::fs::write(
                runs.join(id).join(super::super::journal::FILE_NAME),
                format!(r#"{{"created": "{created}"}}"#),
            )
            .unwrap();
        }
        let store = Store::new(Arc::new(LocalStore::new(dir.path().to_path_buf())));
        assert_eq!(store.resolve(LAST).unwrap(), "20261202-120106-0001");
        assert_eq!(store.resolve("x").unwrap(), "x");
    }
}
