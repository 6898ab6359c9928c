//! What the engine tells the world. The engine only emits these; `crate::report` shows them.

use serde::Serialize;
use serde_json::{Map, Value};

use super::journal::RunStatus;

/// One thing that happened during a run. Serialized as one JSON line by `--output json`
/// (`{"event": "step_started", ...}`).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        workflow: String,
        steps: Vec<StepInfo>,
        resumed: bool,
    },
    StepStarted {
        step: String,
        name: String,
        attempt: u32,
    },
    /// A sub-status reported by the action, e.g. "waiting for snapshot: InProgress".
    StepStatus {
        step: String,
        message: String,
    },
    /// A step found `running` after a crash: the action was asked what happened.
    StepReconciled {
        step: String,
        adopted: bool,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        delay_ms: u64,
        error: String,
    },
    StepSucceeded {
        step: String,
        outputs: Map<String, Value>,
        elapsed_ms: u64,
    },
    StepFailed {
        step: String,
        error: String,
        hint: Option<String>,
        elapsed_ms: u64,
    },
    StepSkipped {
        step: String,
        reason: String,
    },
    AwaitingConfirmation {
        step: String,
        prompt: String,
        /// What the step would change and the verdicts it follows, one line each.
        details: Vec<String>,
    },
    /// The run stopped: succeeded, failed, or waiting for a confirmation.
    RunFinished {
        run_id: String,
        status: RunStatus,
        outputs: Map<String, Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        resume_command: Option<String>,
    },
    RunInterrupted {
        run_id: String,
        resume_command: String,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct StepInfo {
    pub id: String,
    pub name: String,
    pub uses: String,
}

/// Receives engine events. Implemented by the reporters.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);

    /// Asks a yes/no question on the terminal (for `confirm` steps); only called when the
    /// engine runs interactively.
    fn confirm(&self, prompt: &str) -> bool;
}
