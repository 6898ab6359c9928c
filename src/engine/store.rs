//! Where runs live: `<state_dir>/runs/<run_id>/`, with sortable run ids.

use std::fs::{self, DirBuilder};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;
use time::{macros::format_description, OffsetDateTime};

use super::journal::Journal;

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

pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(state_dir: PathBuf) -> Self {
        Store { root: state_dir }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    /// Creates the directory of a new run, with a fresh id.
    pub fn create_run(&self) -> anyhow::Result<(String, PathBuf)> {
        create_private_dir(&self.runs_dir())?;
        loop {
            let id = new_run_id();
            let dir = self.run_dir(&id);
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok((id, dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create run directory {}", dir.display()))
                }
            }
        }
    }

    /// The run id `given` stands for: itself, or for `last` the most recent run (ids sort by
    /// start time).
    pub fn resolve(&self, given: &str) -> anyhow::Result<String> {
        if given != LAST {
            return Ok(given.to_string());
        }
        let mut ids: Vec<String> = fs::read_dir(self.runs_dir())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().join(super::journal::FILE_NAME).is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.pop().with_context(|| {
            format!(
                "`last`: there are no runs in {}\n  hint: start one with `rescue run`",
                self.runs_dir().display()
            )
        })
    }

    /// The directory of an existing run, or an error that says how to find run ids.
    pub fn existing_run(&self, run_id: &str) -> anyhow::Result<PathBuf> {
        let dir = self.run_dir(run_id);
        if !is_valid_run_id(run_id) || !Journal::path(&dir).is_file() {
            anyhow::bail!(
                "no run `{run_id}` in {}\n  hint: `rescue runs` lists the runs (use the same --state-dir)",
                self.runs_dir().display()
            );
        }
        Ok(dir)
    }

    /// Every run with a readable journal, oldest first; unreadable ones as errors.
    pub fn list(&self) -> Vec<(String, anyhow::Result<Journal>)> {
        let Ok(entries) = fs::read_dir(self.runs_dir()) else {
            return Vec::new();
        };
        let mut runs: Vec<_> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(super::journal::FILE_NAME).is_file())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        runs.sort();
        runs.into_iter()
            .map(|(id, dir)| (id, Journal::load(&dir)))
            .collect()
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
}
