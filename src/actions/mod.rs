//! Actions: what a workflow step can do (`uses: core.echo`, `uses: azure.snapshot.create`).
//!
//! Every action implements [`Action`]: it declares its parameters and outputs (so the analyzer
//! can type-check a workflow before anything runs), describes its effect for `rescue plan`,
//! executes, reconciles an unknown outcome after a crash, and knows how to undo itself.
//! The engine only ever sees this trait; it knows steps, not clouds.

pub mod aks;
pub mod azure;
pub mod core;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Resolved arguments of a step (`with:` after expression evaluation).
pub type Args = Map<String, Value>;
/// What a step produced; later steps read it as `${{ steps.ID.outputs.NAME }}`.
pub type Outputs = Map<String, Value>;

/// The type of a parameter, checked by the analyzer against literal arguments
/// and at run time against evaluated ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Integer,
    Boolean,
    Number,
    List,
    Object,
    Any,
    /// A path to a file the step reads (a script): a string to the analyzer; the run stores
    /// the file's content when it starts, and the step reads it through `Env::read_file`.
    File,
}

impl ParamType {
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            ParamType::String | ParamType::File => value.is_string(),
            ParamType::Integer => value.is_i64() || value.is_u64(),
            ParamType::Boolean => value.is_boolean(),
            ParamType::Number => value.is_number(),
            ParamType::List => value.is_array(),
            ParamType::Object => value.is_object(),
            ParamType::Any => true,
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Number => "number",
            ParamType::List => "list",
            ParamType::Object => "object",
            ParamType::Any => "any",
            ParamType::File => "file path",
        };
        f.write_str(s)
    }
}

/// One parameter an action accepts under `with:`.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub description: &'static str,
}

/// One output an action produces.
#[derive(Clone, Copy, Debug)]
pub struct OutputSpec {
    pub name: &'static str,
    pub description: &'static str,
}

/// The static description of an action, used by validation, `rescue schema` and `--help`.
#[derive(Clone, Copy, Debug)]
pub struct ActionSpec {
    /// e.g. `azure.snapshot.create`
    pub name: &'static str,
    /// One line for listings.
    pub summary: &'static str,
    pub params: &'static [Param],
    pub outputs: &'static [OutputSpec],
    /// Changes something outside rescue (Azure). Read-only actions are free to re-run.
    pub mutates: bool,
}

/// Arguments at plan time: some are known, others depend on a step that has not run yet.
#[derive(Clone, Debug, Default)]
pub struct PlanArgs {
    pub known: Args,
    /// argument name -> id of the step whose outputs it waits for
    pub unknown: BTreeMap<String, String>,
}

impl PlanArgs {
    /// The argument as plan text: its value, or "(known after step X)".
    pub fn display(&self, name: &str) -> String {
        if let Some(step) = self.unknown.get(name) {
            return format!("(known after step {step})");
        }
        match self.known.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => "(not set)".to_string(),
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.known.get(name).and_then(Value::as_str)
    }
}

/// What a step would do, for `rescue plan`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Description {
    /// One sentence, e.g. "create snapshot aks-node-2-snap-20261126 of disk aks-node-2_OsDisk".
    pub summary: String,
    /// The changes it would make, one per resource and effect (none for a read-only step).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// The Azure calls it would make, e.g. "PUT .../snapshots/NAME".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<String>,
    /// Facts read from current state that make the plan concrete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// What, in current state, would make the step fail or needs attention: always shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The kinds of change a plan shows, as Terraform marks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// `+`: a resource that does not exist yet.
    Create,
    /// `~`: a resource changed in place.
    Update,
    /// `-`: a resource removed.
    Delete,
    /// `>`: an action on a resource (deallocate, start, a script run).
    Action,
}

impl ChangeKind {
    pub fn mark(self) -> char {
        match self {
            ChangeKind::Create => '+',
            ChangeKind::Update => '~',
            ChangeKind::Delete => '-',
            ChangeKind::Action => '>',
        }
    }
}

/// One change to one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// The ARM type, e.g. `Microsoft.Compute/snapshots`.
    pub resource_type: String,
    /// The resource's name, or "(known after step X)".
    pub name: String,
    /// Its ARM id, when known at plan time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What happens to it: "deallocate", "tag rescue-run = RUN_ID", "OS disk A -> B".
    pub what: String,
}

/// A resource a step is about to create; recorded in the journal BEFORE it exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRef {
    /// e.g. "snapshot", "disk"
    pub kind: String,
    /// Full ARM id.
    pub id: String,
}

/// What a step is about to do, made deterministic from the run id so that a crashed step can
/// find what it may already have done. Recorded durably before `execute` is called.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Intent {
    /// Free-form detail (names chosen, the disk about to be swapped out, ...).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub creates: Vec<ResourceRef>,
    /// What it creates serves the run only (a rescue VM and its network): its undo deletes them
    /// without `--delete-created`, unlike copies of the user's data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scaffolding: bool,
}

/// After a crash a step found `running` has an unknown outcome.
#[derive(Clone, Debug)]
pub enum Reconciled {
    /// It had finished: adopt these outputs, do not run it again.
    Adopt(Outputs),
    /// It had not (or it is safe to repeat): run it again.
    Redo,
}

/// A failed action. `retryable` lets the engine apply the step's retry policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionError {
    pub message: String,
    /// What the engineer should do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default)]
    pub retryable: bool,
    /// Someone else holds what the step needs (a VM claimed by another run): exit 3, not 1.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// A pre-flight refusal: what was asked cannot work, and nothing was changed (exit 2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

impl ActionError {
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            retryable: false,
            locked: false,
            refused: false,
        }
    }
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            retryable: true,
            locked: false,
            refused: false,
        }
    }
    /// Held by someone else; the run stops with exit 3.
    pub fn locked(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            retryable: false,
            locked: true,
            refused: false,
        }
    }
    /// What was asked cannot work; refused before any change (exit 2).
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            refused: true,
            ..Self::fatal(message)
        }
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ActionError {}

/// The engine's side of a running step: progress text and durable checkpoints.
/// Implemented by the engine, so that actions never touch the journal or the reporter directly.
#[async_trait]
pub trait StepHost: Send + Sync {
    /// A sub-status for the progress line, e.g. "waiting for snapshot: InProgress".
    fn status(&self, step_id: &str, message: String);
    /// Record a value durably in the step's journal entry (e.g. an operation URL just
    /// received) so that reconcile can use it after a crash.
    async fn checkpoint(&self, step_id: &str, key: &str, value: Value) -> Result<(), ActionError>;
    /// Keep a file the step fetched (the full fsck log) in the run directory under `name`,
    /// replacing any earlier copy; where it went. `None`: this host keeps no files.
    fn artifact(
        &self,
        _step_id: &str,
        _name: &str,
        _bytes: &[u8],
    ) -> Result<Option<std::path::PathBuf>, ActionError> {
        Ok(None)
    }
    /// Ask the person at the terminal a yes/no question, whatever `--yes` says (a step that
    /// finds the run may do harm asks again). `None`: nobody can answer.
    fn ask(&self, _step_id: &str, _question: &str) -> Option<bool> {
        None
    }
    /// Evidence for the run's report: a mutating Azure request the step sent and its answer
    /// (`azure::calls::Call` as JSON). Kept with the journal's next write, not on its own.
    fn call(&self, _step_id: &str, _call: Value) {}
}

/// The one door through which actions read the files a workflow names (parameters of type
/// [`ParamType::File`]). A run reads from the copies stored with it, so that a resumed run runs
/// what it started with; a plan reads beside the workflow.
pub trait Files: Send + Sync {
    fn read(&self, path: &str) -> Result<FileText, ActionError>;
}

/// A file read through [`Files`].
#[derive(Clone, Debug)]
pub struct FileText {
    /// Where it came from, for messages (a path, `builtin:...`, or the run's stored copy).
    pub origin: String,
    pub text: String,
}

/// Services the actions may use. Built by the CLI; opaque to the engine.
#[derive(Clone, Default)]
pub struct Env {
    /// Present when the workflow targets Azure or the emulator.
    pub azure: Option<Arc<crate::azure::Azure>>,
    /// `--force-unlock ID`: a VM lock held by this (dead) run, or a rescue VM claimed by this
    /// (dead) fleet, may be taken over.
    pub force_unlock: Option<String>,
    /// The fleet this run is one of: the rescue VMs it claimed ([`azure::pool`]) are this
    /// run's to use.
    pub fleet: Option<String>,
    /// The VM locks this run holds; every Azure write checks them first.
    pub locks: Arc<azure::HeldLocks>,
    /// Where `read_file` reads: the run's stored copies, or beside the workflow for a plan.
    pub files: Option<Arc<dyn Files>>,
    /// The Kubernetes API servers the AKS steps have connected to.
    pub clusters: Arc<aks::Clusters>,
    /// Rescue VMs this run shares with others (a fleet's): a copy is attached only while the
    /// run holds a place on its VM.
    pub places: Option<Arc<dyn Places>>,
}

/// How a shared rescue VM is named among [`Places`]: `rg/name`, lowercase, as ARM compares
/// names.
pub fn place_key(resource_group: &str, vm: &str) -> String {
    format!("{resource_group}/{vm}").to_ascii_lowercase()
}

/// Rescue VMs shared by runs side by side: each takes so many copies at once (its data-disk
/// slots). `azure.vm.attach_disk` enters before it attaches, `azure.vm.detach_disk` leaves once
/// the copy is detached.
#[async_trait]
pub trait Places: Send + Sync {
    /// Waits for a place on the VM `rg/name` (lowercase); nothing to wait for on a VM that is
    /// not shared, or when this run holds its place already.
    async fn enter(&self, vm: &str);
    /// This run's copy left the VM `rg/name`: its place is free.
    fn leave(&self, vm: &str);
}

impl Env {
    /// Time passes (a retry delay, a prompt, a sleep step): Azure is read afresh after it.
    pub fn time_passes(&self) {
        if let Some(azure) = &self.azure {
            azure.time_passes();
        }
    }

    /// A file a step names (`script:`), as the workflow gives it.
    pub fn read_file(&self, path: &str) -> Result<FileText, ActionError> {
        match &self.files {
            Some(files) => files.read(path),
            None => Err(ActionError::fatal(format!(
                "cannot read {path}: this step runs without the workflow's files"
            ))),
        }
    }

    pub fn azure(&self) -> Result<&Arc<crate::azure::Azure>, ActionError> {
        self.azure.as_ref().ok_or_else(|| {
            ActionError::fatal("this step needs Azure, but no Azure target is configured")
                .with_hint("log in with `az login`, or rehearse on the emulator with `--emulator`")
        })
    }
}

/// Everything a step sees while it runs.
#[derive(Clone)]
pub struct StepContext {
    pub run_id: String,
    pub step_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the run was started (its journal's creation).
    pub run_started: time::OffsetDateTime,
    pub env: Env,
    /// Checkpoints recorded by an earlier attempt or an earlier process.
    pub checkpoints: Map<String, Value>,
    pub host: Arc<dyn StepHost>,
}

impl StepContext {
    pub fn status(&self, message: impl Into<String>) {
        self.host.status(&self.step_id, message.into());
    }

    pub async fn checkpoint(&self, key: &str, value: Value) -> Result<(), ActionError> {
        self.host.checkpoint(&self.step_id, key, value).await
    }

    pub fn artifact(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Option<std::path::PathBuf>, ActionError> {
        self.host.artifact(&self.step_id, name, bytes)
    }

    pub fn ask(&self, question: &str) -> Option<bool> {
        let answer = self.host.ask(&self.step_id, question);
        self.env.time_passes();
        answer
    }
}

/// What a step sees while being planned. Reads are allowed, writes never.
#[derive(Clone)]
pub struct PlanContext {
    /// The run id the run would get, or a placeholder such as "RUN_ID" for a bare plan.
    pub run_id: String,
    pub step_id: String,
    pub env: Env,
    /// What `read_for_plan` read for this step, when it did: `describe` shows it rather
    /// than reading the same state again.
    pub read: Option<Outputs>,
}

#[async_trait]
pub trait Action: Send + Sync {
    fn spec(&self) -> &'static ActionSpec;

    /// What the step would do. May read current state (GET only) to be concrete.
    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError>;

    /// The step's outputs, when they are known before it runs: a read-only action reads them
    /// (GETs only), one that creates a deterministically named resource predicts them. Later
    /// steps then plan with the real disk and VM instead of "(known after step X)".
    /// Called before `describe`, which finds the result in `PlanContext::read`.
    /// `None`: not known at plan time (the default).
    async fn read_for_plan(
        &self,
        _ctx: &PlanContext,
        _args: &Args,
    ) -> Option<Result<Outputs, ActionError>> {
        None
    }

    /// Deterministic record of what execute is about to do; journaled before execute.
    fn intent(&self, _run_id: &str, _step_id: &str, _args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent::default())
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        intent: &Intent,
    ) -> Result<Outputs, ActionError>;

    /// Called on resume for a step found `running`: find out whether it completed.
    /// The default re-runs it, right for read-only and naturally idempotent actions.
    async fn reconcile(
        &self,
        _ctx: &StepContext,
        _args: &Args,
        _intent: &Intent,
    ) -> Result<Reconciled, ActionError> {
        Ok(Reconciled::Redo)
    }

    /// Called, on resume and before a rollback, for each step that had succeeded: rebuild what
    /// the run holds in memory (the VM locks it took). The default does nothing.
    fn resumed(&self, _env: &Env, _args: &Args, _outputs: &Outputs) {}

    /// One line saying what undo would do, for `rollback --dry-run`; None if nothing to undo.
    fn describe_undo(&self, _args: &Args, _outputs: &Outputs) -> Option<String> {
        None
    }

    /// Reverse the effect of a succeeded step (used by `rescue rollback`). Must be idempotent.
    async fn undo(
        &self,
        _ctx: &StepContext,
        _args: &Args,
        _outputs: &Outputs,
    ) -> Result<(), ActionError> {
        Ok(())
    }
}

/// All known actions by name.
pub struct Registry {
    actions: BTreeMap<&'static str, Arc<dyn Action>>,
}

impl Registry {
    /// Every built-in action: `core.*` and `azure.*`.
    pub fn builtin() -> Self {
        let mut registry = Registry {
            actions: BTreeMap::new(),
        };
        for action in core::all()
            .into_iter()
            .chain(azure::all())
            .chain(aks::all())
        {
            registry.register(action);
        }
        registry
    }

    pub fn register(&mut self, action: Arc<dyn Action>) {
        self.actions.insert(action.spec().name, action);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.actions.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.actions.keys().copied()
    }

    pub fn specs(&self) -> impl Iterator<Item = &'static ActionSpec> + '_ {
        self.actions.values().map(|a| a.spec())
    }
}
