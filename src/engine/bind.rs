//! Binds a checked workflow to the engine: its steps with their actions, and a resolver that
//! evaluates the step expressions against what the journal knows.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::executor::{Resolver, StepDef};
use super::journal::{Journal, StepStatus};
use crate::actions::{ActionError, Args, Registry};
use crate::workflow::{self, Retry, Scope, StepScope, Workflow};

/// What expressions see at this point of the run: inputs, run id, finished steps.
pub fn scope(journal: &Journal) -> Scope {
    let steps = journal
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped
            )
        })
        .map(|s| {
            (
                s.id.clone(),
                StepScope {
                    status: s.status.as_str().to_string(),
                    outputs: s.outputs.clone(),
                },
            )
        })
        .collect();
    Scope {
        run_id: journal.run_id.clone(),
        inputs: journal.inputs.clone(),
        steps,
    }
}

/// The engine's view of the workflow's steps. The workflow was validated, so every action exists.
pub fn steps(wf: &Workflow, registry: &Registry) -> Vec<StepDef> {
    wf.steps
        .iter()
        .enumerate()
        .map(|(index, step)| StepDef {
            id: step.id.value.clone(),
            name: step.title().to_string(),
            uses: step.uses.value.clone(),
            action: registry
                .get(&step.uses.value)
                .expect("validated workflows use known actions")
                .clone(),
            condition: step.condition.as_ref().map(|c| c.value.clone()),
            confirm: step.confirm.clone(),
            retry: step.retry.clone().unwrap_or(Retry {
                max_attempts: 1,
                ..Retry::default()
            }),
            timeout: step.timeout,
            needs: workflow::graph::needs(wf, index),
        })
        .collect()
}

/// (id, action) of every step, to align a journal with a changed workflow.
pub fn step_ids(wf: &Workflow) -> Vec<(String, String)> {
    wf.steps
        .iter()
        .map(|s| (s.id.value.clone(), s.uses.value.clone()))
        .collect()
}

pub struct WorkflowResolver {
    workflow: Arc<Workflow>,
}

impl WorkflowResolver {
    pub fn new(workflow: Arc<Workflow>) -> Self {
        WorkflowResolver { workflow }
    }
}

fn eval_error(e: workflow::EvalError) -> ActionError {
    ActionError::fatal(e.to_string()).with_hint(
        "fix the workflow, then resume with --force (the run remembers the steps already done)",
    )
}

impl Resolver for WorkflowResolver {
    fn condition(&self, step: usize, journal: &Journal) -> Result<bool, ActionError> {
        workflow::eval_condition(&self.workflow.steps[step], &scope(journal)).map_err(eval_error)
    }

    fn args(&self, step: usize, journal: &Journal) -> Result<Args, ActionError> {
        workflow::eval_args(&self.workflow.steps[step], &scope(journal)).map_err(eval_error)
    }

    fn outputs(&self, journal: &Journal) -> Result<Map<String, Value>, ActionError> {
        workflow::eval_outputs(&self.workflow, &scope(journal)).map_err(eval_error)
    }
}
