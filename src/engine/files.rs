//! A run's files, content-addressed: `<run_dir>/files/<sha256>` holds the workflow's text and
//! every file its steps name (scripts), as they were when the run first read them. The journal
//! maps each path a step gives to its hash, so a resumed run runs what it started with, even
//! after the original files changed or were deleted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;

use super::journal::{sha256_hex, write_file_durably, DamagedJournal, StoredFile};
use super::recorder::Recorder;
use super::store::create_private_dir;
use crate::actions::{ActionError, FileText, Files};
use crate::workflow::Origin;

pub const DIR_NAME: &str = "files";

pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    pub fn new(run_dir: &Path) -> Self {
        FileStore {
            dir: run_dir.join(DIR_NAME),
        }
    }

    /// Stores `bytes` (once: the same content is the same file) and returns their hash. Runs
    /// store through their [`super::store::RunStore`], which may keep them elsewhere too.
    pub fn put(&self, bytes: &[u8]) -> anyhow::Result<String> {
        let sha = sha256_hex(bytes);
        let path = self.dir.join(&sha);
        if !path.is_file() {
            create_private_dir(&self.dir)?;
            write_file_durably(&path, bytes)?;
        }
        Ok(sha)
    }

    /// The stored content with this hash; content that no longer matches it is refused.
    pub fn get(&self, sha: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.dir.join(sha);
        let bytes = std::fs::read(&path).with_context(|| {
            format!(
                "the run's stored copy {} is missing (the journal names it)",
                path.display()
            )
        })?;
        if sha256_hex(&bytes) != sha {
            return Err(DamagedJournal {
                path,
                problem: "this stored file no longer matches its hash (edited?)".into(),
            }
            .into());
        }
        Ok(bytes)
    }

    /// Stored text (the workflow's), None when the store has no such file.
    pub fn get_text_if_present(&self, sha: &str) -> anyhow::Result<Option<String>> {
        if !self.dir.join(sha).is_file() {
            return Ok(None);
        }
        let bytes = self.get(sha)?;
        String::from_utf8(bytes)
            .map(Some)
            .context("a stored workflow is not UTF-8 text")
    }
}

/// What a run's steps read through `Env::read_file`: the stored copy when the run has one;
/// else the file beside the workflow, stored and journaled before the step sees it.
pub struct RunFiles {
    store: FileStore,
    origin: Origin,
    recorder: Arc<Recorder>,
}

impl RunFiles {
    pub fn new(run_dir: &Path, origin: Origin, recorder: Arc<Recorder>) -> Self {
        RunFiles {
            store: FileStore::new(run_dir),
            origin,
            recorder,
        }
    }
}

impl Files for RunFiles {
    fn read(&self, path: &str) -> Result<FileText, ActionError> {
        let fatal = |e: anyhow::Error| ActionError::fatal(format!("{e:#}"));
        let stored = self.recorder.read().workflow.files.get(path).cloned();
        let (origin, bytes) = match stored {
            Some(file) => (file.origin, self.store.get(&file.sha256).map_err(fatal)?),
            None => {
                // Named by an expression only known now: kept from here on, like the others.
                let (origin, bytes) = self.origin.read_relative(path).map_err(|e| {
                    ActionError::fatal(e)
                        .with_hint("a relative path is read beside the workflow file")
                })?;
                let run_id = self.recorder.read().run_id.clone();
                let sha256 = self
                    .recorder
                    .store()
                    .put_file(&run_id, &bytes)
                    .map_err(fatal)?;
                let record = StoredFile {
                    sha256,
                    origin: origin.clone(),
                };
                self.recorder
                    .update(|j| j.workflow.files.insert(path.to_string(), record))
                    .map_err(fatal)?;
                (origin, bytes)
            }
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| ActionError::fatal(format!("{origin} is not text")))?;
        Ok(FileText { origin, text })
    }
}
