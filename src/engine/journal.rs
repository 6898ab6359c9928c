//! The run journal: everything needed to resume a run, written durably before and after every
//! side effect. One JSON document per run (`<run_dir>/journal.json`), replaced atomically.
//!
//! Format history (keep every old version loadable):
//! - 1: flat `workflow_path` / `workflow_sha256`, steps without intent or checkpoints, no
//!   resources, no target.
//! - 2: `workflow` {path, sha256, text}, `target`, per-step intent/checkpoints, `resources`.
//! - 3: the workflow's text and the files it names live in the run's file store
//!   (`<run_dir>/files/<sha256>`); `workflow` {path, builtin, sha256, files}. A version 2
//!   journal keeps its `text`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::actions::{ActionError, Args, Intent, Outputs, ResourceRef};
use crate::workflow::Origin;

pub const FORMAT_VERSION: u32 = 3;
pub const FILE_NAME: &str = "journal.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
    /// Stopped before a `confirm` step nobody confirmed.
    AwaitingConfirmation,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::AwaitingConfirmation => "awaiting confirmation",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// Intent recorded, outcome unknown until recorded otherwise.
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Done for good: resume moves past it.
    pub fn is_done(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Skipped)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Refused because someone else holds the VM (exit 3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// Refused before any change: what was asked cannot work (exit 2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl From<&ActionError> for StepError {
    fn from(e: &ActionError) -> Self {
        StepError {
            message: e.message.clone(),
            hint: e.hint.clone(),
            locked: e.locked,
            refused: e.refused,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowRecord {
    /// The file the run started from (absolute), or `builtin:NAME.yaml`.
    pub path: PathBuf,
    /// The built-in's name, when the run started from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builtin: Option<String>,
    /// Of the text; the text itself is in the run's file store under this hash.
    pub sha256: String,
    /// Format 2 kept the text here; format 3 keeps it in the file store.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// The files the steps name, by the path a step gives, as stored when first read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, StoredFile>,
}

/// A file a step names, stored in the run's file store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub sha256: String,
    /// Where it was read from (a path, or `builtin:...`).
    pub origin: String,
}

impl WorkflowRecord {
    /// A run's workflow, whose text goes to the run's file store (not this record).
    pub fn new(origin: &Origin, text: &str) -> Self {
        WorkflowRecord {
            path: PathBuf::from(origin.record()),
            builtin: match origin {
                Origin::Builtin(name) => Some(name.clone()),
                Origin::File(_) => None,
            },
            sha256: sha256_hex(text),
            text: String::new(),
            files: BTreeMap::new(),
        }
    }

    pub fn origin(&self) -> Origin {
        match &self.builtin {
            Some(name) => Origin::Builtin(name.clone()),
            None => Origin::File(self.path.clone()),
        }
    }
}

pub fn sha256_hex(text: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(text.as_ref()))
}

/// Hashes name files in the store: nothing but 64 hex digits may pass for one.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    pub id: String,
    pub uses: String,
    pub status: StepStatus,
    #[serde(default)]
    pub attempts: u32,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub started: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub ended: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub args: Args,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<Intent>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub checkpoints: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Outputs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
    /// The mutating Azure requests the step sent, with their correlation and operation ids
    /// (`azure::calls::Call`): evidence for the report, never read to resume.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Value>,
}

impl StepRecord {
    pub fn pending(id: impl Into<String>, uses: impl Into<String>) -> Self {
        StepRecord {
            id: id.into(),
            uses: uses.into(),
            status: StepStatus::Pending,
            attempts: 0,
            started: None,
            ended: None,
            args: Args::new(),
            intent: None,
            checkpoints: Map::new(),
            outputs: Outputs::new(),
            error: None,
            calls: Vec::new(),
        }
    }

    /// Back to pending (for `resume --from-step`), keeping the attempt count for the record.
    pub fn reset(&mut self) {
        let attempts = self.attempts;
        *self = StepRecord::pending(std::mem::take(&mut self.id), std::mem::take(&mut self.uses));
        self.attempts = attempts;
    }
}

/// A resource some step created or was about to create; recorded before it exists.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResourceRecord {
    pub step: String,
    #[serde(flatten)]
    pub resource: ResourceRef,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded: OffsetDateTime,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    pub format_version: u32,
    pub run_id: String,
    pub workflow: WorkflowRecord,
    #[serde(default)]
    pub inputs: Map<String, Value>,
    /// Where the run acts (Azure subscription, emulator); opaque to the engine, owned by the CLI.
    #[serde(default)]
    pub target: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    pub status: RunStatus,
    pub steps: Vec<StepRecord>,
    #[serde(default)]
    pub resources: Vec<ResourceRecord>,
    /// The workflow's outputs, once the run succeeded.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Map<String, Value>,
    /// `rescue rollback` progress, once one was started (then the run is not resumed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<super::rollback::RollbackRecord>,
}

impl Journal {
    pub fn new(
        run_id: String,
        workflow: WorkflowRecord,
        inputs: Map<String, Value>,
        target: Value,
        steps: Vec<StepRecord>,
    ) -> Self {
        let now = OffsetDateTime::now_utc();
        Journal {
            format_version: FORMAT_VERSION,
            run_id,
            workflow,
            inputs,
            target,
            created: now,
            updated: now,
            status: RunStatus::Running,
            steps,
            resources: Vec::new(),
            outputs: Map::new(),
            rollback: None,
        }
    }

    pub fn step(&self, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn step_mut(&mut self, id: &str) -> Option<&mut StepRecord> {
        self.steps.iter_mut().find(|s| s.id == id)
    }

    /// Records the resources an intent is about to create (once each, however often retried).
    pub fn record_resources(&mut self, step: &str, intent: &Intent) {
        for resource in &intent.creates {
            let known = self
                .resources
                .iter()
                .any(|r| r.step == step && r.resource == *resource);
            if !known {
                self.resources.push(ResourceRecord {
                    step: step.to_string(),
                    resource: resource.clone(),
                    recorded: OffsetDateTime::now_utc(),
                });
            }
        }
    }

    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join(FILE_NAME)
    }

    /// Loads any known format version, upgrading older ones in memory. A journal that is not
    /// what rescue writes (bad JSON, wrong types, references that do not hold, another run's
    /// id than its directory's) is a [`DamagedJournal`].
    pub fn load(run_dir: &Path) -> anyhow::Result<Journal> {
        let path = Self::path(run_dir);
        let text = fs::read_to_string(&path)
            .with_context(|| format!("cannot read journal {}", path.display()))?;
        let dir_name = run_dir.file_name().map(|n| n.to_string_lossy());
        Self::parse_stored(&text, dir_name.as_deref().unwrap_or_default(), &path)
    }

    /// [`Journal::parse`] of the journal stored for run `run_id` at `place`: any problem, and
    /// another run's id inside, is a [`DamagedJournal`] naming the place.
    pub fn parse_stored(text: &str, run_id: &str, place: &Path) -> anyhow::Result<Journal> {
        let damaged = |problem: String| DamagedJournal {
            path: place.to_path_buf(),
            problem,
        };
        let journal = Self::parse(text).map_err(|e| damaged(format!("{e:#}")))?;
        if journal.run_id != run_id {
            return Err(damaged(format!(
                "it records run `{}`, but lies in the directory of run `{run_id}` (copied or edited?)",
                journal.run_id
            ))
            .into());
        }
        Ok(journal)
    }

    /// Reads a journal's text and checks that it holds together. Errors name the field
    /// (`steps[1].attempts`) and the line and column.
    pub fn parse(text: &str) -> anyhow::Result<Journal> {
        let value: Value = serde_json::from_str(text)?;
        let version = value
            .get("format_version")
            .and_then(Value::as_u64)
            .context("no `format_version` (a whole number)")?;
        let journal = match version {
            1 => located(text).map(v1::JournalV1::upgrade)?,
            // Version 3 only moved the text out; a version 2 journal reads as it is.
            2 | 3 => located(text)?,
            n => bail!(
                "journal format version {n} is newer than this rescue understands ({FORMAT_VERSION}); \
                 use the rescue version that started the run"
            ),
        };
        journal.check()?;
        Ok(journal)
    }

    /// What the types cannot say: ids and the references between parts of the journal.
    fn check(&self) -> anyhow::Result<()> {
        if !super::store::is_valid_run_id(&self.run_id) {
            bail!("`run_id` {:?} is not a run id", self.run_id);
        }
        if !self.workflow.text.is_empty() && sha256_hex(&self.workflow.text) != self.workflow.sha256
        {
            bail!("`workflow.text` does not match `workflow.sha256`: the recorded workflow was edited");
        }
        let hashes = std::iter::once(&self.workflow.sha256)
            .chain(self.workflow.files.values().map(|f| &f.sha256));
        if let Some(bad) = hashes.into_iter().find(|h| !is_sha256(h)) {
            bail!("{bad:?} in `workflow` is not a SHA-256 (64 hex digits)");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            if step.id.is_empty() {
                bail!("`steps[{i}]` has an empty `id`");
            }
            if !seen.insert(step.id.as_str()) {
                bail!("`steps[{i}]`: step `{}` is recorded twice", step.id);
            }
        }
        let unknown = |what: &str, step: &str| {
            anyhow::anyhow!(
                "{what} names step `{step}`, which the journal's `steps` do not have (steps: {})",
                self.step_list()
            )
        };
        if let Some(r) = self
            .resources
            .iter()
            .find(|r| !seen.contains(r.step.as_str()))
        {
            return Err(unknown("a recorded resource", &r.step));
        }
        if let Some(rollback) = &self.rollback {
            if let Some(u) = rollback
                .undos
                .iter()
                .find(|u| !seen.contains(u.step.as_str()))
            {
                return Err(unknown("the rollback section", &u.step));
            }
        }
        Ok(())
    }

    fn step_list(&self) -> String {
        let ids: Vec<&str> = self.steps.iter().map(|s| s.id.as_str()).collect();
        if ids.is_empty() {
            "none".into()
        } else {
            ids.join(", ")
        }
    }

    /// The journal's steps are the workflow's `(id, uses)`, in order: what the engine walks.
    pub fn check_steps(&self, workflow: &[(String, String)]) -> Result<(), String> {
        for (id, uses) in workflow {
            match self.step(id) {
                None => {
                    return Err(format!(
                    "the workflow's step `{id}` is missing from the journal (steps recorded: {})",
                    self.step_list()
                ))
                }
                Some(s) if &s.uses != uses => {
                    return Err(format!(
                        "step `{id}` is recorded as `{}`, but the workflow's step uses `{uses}`",
                        s.uses
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = self
            .steps
            .iter()
            .find(|s| !workflow.iter().any(|(id, _)| *id == s.id))
        {
            return Err(format!(
                "the journal records step `{}`, which the workflow does not have",
                extra.id
            ));
        }
        Ok(())
    }

    /// Saves the journal in its store, durably (locally: temp file in the same directory,
    /// fsync, rename, fsync dir).
    pub fn save(&mut self, store: &dyn super::store::RunStore) -> anyhow::Result<()> {
        self.updated = OffsetDateTime::now_utc();
        let bytes = serde_json::to_vec_pretty(self)?;
        store.save_journal(&self.run_id, &bytes)
    }
}

/// Deserializes `text`, naming the field that does not fit (`steps[1].attempts: invalid type
/// ... at line 12 column 20`).
fn located<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("`{path}`: {}", e.into_inner())
    })
}

/// A journal rescue did not write as it is: edited, truncated, or another run's. Nothing is
/// done with it (exit 2); the message says what is wrong and where.
#[derive(Debug, thiserror::Error)]
#[error("journal {} is damaged: {problem}\n  hint: rescue replaces its journal atomically and never writes this; restore the file from a backup or undo the edit, then run the command again", path.display())]
pub struct DamagedJournal {
    pub path: PathBuf,
    pub problem: String,
}

/// Test hook (documented, used by the crash tests): `RESCUE_TEST_KILL_IN_WRITE=N` SIGKILLs the
/// process in its N-th journal write, once the new content is on disk in the temporary file and
/// before it replaces the journal.
pub const KILL_IN_WRITE_ENV: &str = "RESCUE_TEST_KILL_IN_WRITE";
static IN_WRITE: super::recorder::KillSwitch = super::recorder::KillSwitch::new(KILL_IN_WRITE_ENV);

/// Replaces the journal at `path` with `bytes` so that a crash leaves either the old or the new
/// content. The file is owner-only (tempfile creates it 0600).
pub fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    replace_file(path, bytes, Some(&IN_WRITE))
}

/// [`write_durably`] for files that are not the journal (the kill hook counts journal writes).
pub fn write_file_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    replace_file(path, bytes, None)
}

fn replace_file(
    path: &Path,
    bytes: &[u8],
    hook: Option<&super::recorder::KillSwitch>,
) -> anyhow::Result<()> {
    let dir = path.parent().context("the file has no directory")?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".journal-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let written = |e: std::io::Error| {
        anyhow::Error::new(e).context(format!("cannot write {}", path.display()))
    };
    tmp.write_all(bytes).map_err(written)?;
    tmp.as_file().sync_all().map_err(written)?;
    if let Some(hook) = hook {
        hook.hit();
    }
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Format version 1, kept so that runs started by an older rescue still load.
mod v1 {
    use super::*;

    #[derive(Deserialize)]
    pub struct JournalV1 {
        run_id: String,
        workflow_path: PathBuf,
        workflow_sha256: String,
        #[serde(default)]
        inputs: Map<String, Value>,
        #[serde(with = "time::serde::rfc3339")]
        created: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        updated: OffsetDateTime,
        status: RunStatus,
        steps: Vec<StepV1>,
    }

    #[derive(Deserialize)]
    struct StepV1 {
        id: String,
        uses: String,
        status: StepStatus,
        #[serde(default)]
        attempts: u32,
        #[serde(default, with = "time::serde::rfc3339::option")]
        started: Option<OffsetDateTime>,
        #[serde(default, with = "time::serde::rfc3339::option")]
        ended: Option<OffsetDateTime>,
        #[serde(default)]
        args: Args,
        #[serde(default)]
        outputs: Outputs,
        #[serde(default)]
        error: Option<String>,
    }

    impl JournalV1 {
        pub fn upgrade(self) -> Journal {
            Journal {
                format_version: FORMAT_VERSION,
                run_id: self.run_id,
                // v1 kept no copy of the text: resume can say that it changed, not how.
                workflow: WorkflowRecord {
                    path: self.workflow_path,
                    builtin: None,
                    sha256: self.workflow_sha256,
                    text: String::new(),
                    files: BTreeMap::new(),
                },
                inputs: self.inputs,
                target: Value::Null,
                created: self.created,
                updated: self.updated,
                status: self.status,
                steps: self
                    .steps
                    .into_iter()
                    .map(|s| StepRecord {
                        id: s.id,
                        uses: s.uses,
                        status: s.status,
                        attempts: s.attempts,
                        started: s.started,
                        ended: s.ended,
                        args: s.args,
                        intent: None,
                        checkpoints: Map::new(),
                        outputs: s.outputs,
                        error: s.error.map(|message| StepError {
                            message,
                            hint: None,
                            locked: false,
                            refused: false,
                        }),
                        calls: Vec::new(),
                    })
                    .collect(),
                resources: Vec::new(),
                outputs: Map::new(),
                rollback: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> Journal {
        let wf = WorkflowRecord::new(&Origin::File("/wf.yaml".into()), "name: x\n");
        Journal::new(
            "20261126-120000-abcd".into(),
            wf,
            Map::new(),
            Value::Null,
            vec![StepRecord::pending("a", "core.echo")],
        )
    }

    #[test]
    fn saves_owner_only_and_round_trips() {
        let root = tempfile::tempdir().unwrap();
        let mut journal = sample();
        let store = super::super::store::LocalStore::new(root.path().to_path_buf());
        let dir = root.path().join("runs").join(&journal.run_id);
        fs::create_dir_all(&dir).unwrap();
        journal.save(&store).unwrap();
        let mode = fs::metadata(Journal::path(&dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let loaded = Journal::load(&dir).unwrap();
        assert_eq!(loaded.run_id, journal.run_id);
        assert_eq!(loaded.steps[0].status, StepStatus::Pending);
        // Only the journal is left behind, no temp files.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);

        // The same journal in another run's directory is refused.
        let other = root.path().join("runs").join("20261126-120000-ffff");
        fs::create_dir(&other).unwrap();
        fs::copy(Journal::path(&dir), Journal::path(&other)).unwrap();
        let err = Journal::load(&other).unwrap_err();
        assert!(err.downcast_ref::<DamagedJournal>().is_some(), "{err}");
        assert!(
            err.to_string()
                .contains("directory of run `20261126-120000-ffff`"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_newer_format() {
        let err = Journal::parse(r#"{"format_version": 99}"#).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn resources_are_recorded_once() {
        let mut journal = sample();
        let intent = Intent {
            creates: vec![ResourceRef {
                kind: "file".into(),
                id: "/x".into(),
            }],
            ..Default::default()
        };
        journal.record_resources("a", &intent);
        journal.record_resources("a", &intent);
        assert_eq!(journal.resources.len(), 1);
    }
}
