//! Plans: what a workflow would do, step by step, without changing anything.
//!
//! Built from a checked workflow, its resolved inputs and the actions' `describe`, which may
//! read (never write) current state. Values that depend on a step not yet run are shown as
//! "(known after step X)".

mod render;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::actions::{
    Action, ChangeKind, Description, Env, Outputs, PlanArgs, PlanContext, Registry,
};
use crate::workflow::{expr, Scope, StepScope, Workflow};

pub use render::{render_short, render_text};

/// Bumped when the JSON shape changes incompatibly (2: changes per step, totals, outputs as
/// planned values).
pub const FORMAT_VERSION: u32 = 2;

/// The run id shown in a plan made outside a run. Valid in Azure names, so a name derived from
/// it reads `...-snap-RUN_ID` rather than a sanitised `...-snap--run-`.
pub const PLACEHOLDER_RUN_ID: &str = "RUN_ID";

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub workflow: WorkflowInfo,
    pub inputs: Map<String, Value>,
    /// Where the plan would act ("Azure subscription …", "the emulator at …"), set by the CLI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub steps: Vec<PlannedStep>,
    /// Workflow outputs: their value when known now, else the step they wait for.
    pub outputs: BTreeMap<String, PlannedArg>,
    /// Steps that would change something outside rescue (Azure).
    pub mutating_steps: usize,
    pub totals: Totals,
}

/// `Plan: N to add, M to change, K to destroy, J actions.`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub actions: usize,
}

impl Totals {
    fn of(steps: &[PlannedStep]) -> Totals {
        let mut t = Totals::default();
        for step in steps {
            let Some(effect) = &step.effect else { continue };
            // A step that changes something outside Azure (a file) is one action.
            if step.mutates && effect.changes.is_empty() {
                t.actions += 1;
            }
            for change in &effect.changes {
                match change.kind {
                    ChangeKind::Create => t.add += 1,
                    ChangeKind::Update => t.change += 1,
                    ChangeKind::Delete => t.destroy += 1,
                    ChangeKind::Action => t.actions += 1,
                }
            }
        }
        t
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkflowInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub path: String,
    pub sha256: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlannedStep {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub uses: String,
    pub args: BTreeMap<String, PlannedArg>,
    /// What it would do; absent when the step would be skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Description>,
    #[serde(skip_serializing_if = "Option::is_none", rename = "if")]
    pub condition: Option<Condition>,
    /// The question asked before the step runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm: Option<String>,
    pub mutates: bool,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The steps it waits for, when it says (`needs:`); otherwise it waits for the step above.
    /// Steps whose needs are met run side by side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<Vec<String>>,
}

/// An argument: its value, or the step it waits for.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlannedArg {
    Value(Value),
    /// The id of the step that produces it.
    KnownAfter(String),
    /// Only the finished run will tell.
    KnownAfterRun,
}

#[derive(Clone, Debug, Serialize)]
pub struct Condition {
    pub expression: String,
    pub decision: Decision,
    /// The step whose result decides it, when not decidable now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_after: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Runs,
    Skipped,
    AtRunTime,
}

/// Why a plan could not be made (a step's arguments do not evaluate, or reading current
/// state failed); names the step.
#[derive(Debug, thiserror::Error)]
#[error("step `{step}`: {message}")]
pub struct PlanError {
    pub step: String,
    pub message: String,
}

/// A step's outputs when known now: read (read-only steps) or predicted (deterministic names),
/// so later steps plan with real values. A failed read is a note, not a failed plan: the run
/// reads again and decides then. A read that shows the plan cannot work (a VM that does not
/// exist) is `Err`: the plan fails.
async fn known_now(
    action: &dyn Action,
    ctx: &PlanContext,
    args: &PlanArgs,
    notes: &mut Vec<String>,
) -> Result<Option<Outputs>, String> {
    if !args.unknown.is_empty() {
        return Ok(None);
    }
    let Some(read) = action.read_for_plan(ctx, &args.known).await else {
        return Ok(None);
    };
    match read {
        Ok(outputs) => {
            notes.push(if action.spec().mutates {
                "its outputs follow from the run id: later steps plan with them".into()
            } else {
                "read now; later steps plan with these values (the run reads them again)".into()
            });
            Ok(Some(outputs))
        }
        Err(e) if e.refused => Err(e.to_string()),
        Err(e) => {
            notes.push(format!("could not read now: {}", e.message));
            Ok(None)
        }
    }
}

/// Plans `wf` with `inputs` (already resolved and checked).
pub async fn build(
    wf: &Workflow,
    inputs: Map<String, Value>,
    registry: &Registry,
    env: &Env,
    run_id: &str,
) -> Result<Plan, PlanError> {
    let mut scope = Scope {
        run_id: run_id.to_string(),
        inputs: inputs.clone(),
        steps: BTreeMap::new(),
    };
    let mut steps = Vec::with_capacity(wf.steps.len());
    for step in &wf.steps {
        let fail = |message: String| PlanError {
            step: step.id.value.clone(),
            message,
        };
        let action = registry
            .get(&step.uses.value)
            .ok_or_else(|| fail(format!("unknown action `{}`", step.uses.value)))?;
        let condition = match &step.condition {
            None => None,
            Some(c) => Some(match expr::condition_waits_for(step, &scope) {
                Some(after) => Condition {
                    expression: c.value.clone(),
                    decision: Decision::AtRunTime,
                    known_after: Some(after),
                },
                None => {
                    let runs = expr::eval_condition(step, &scope).map_err(|e| fail(e.message))?;
                    Condition {
                        expression: c.value.clone(),
                        decision: if runs {
                            Decision::Runs
                        } else {
                            Decision::Skipped
                        },
                        known_after: None,
                    }
                }
            }),
        };
        let skipped = condition
            .as_ref()
            .is_some_and(|c| c.decision == Decision::Skipped);
        // A skipped step's arguments may read steps that were skipped too: they are not shown.
        let plan_args = match expr::plan_args(step, &scope) {
            Err(_) if skipped => PlanArgs::default(),
            other => other.map_err(|e| fail(e.message))?,
        };
        let effect = if skipped {
            // As in a run's journal: later expressions see it skipped, without outputs.
            let status = "skipped".into();
            let outputs = Default::default();
            scope
                .steps
                .insert(step.id.value.clone(), StepScope { status, outputs });
            None
        } else {
            let mut ctx = PlanContext {
                run_id: run_id.to_string(),
                step_id: step.id.value.clone(),
                env: env.clone(),
                read: None,
            };
            let mut read_notes = Vec::new();
            ctx.read = known_now(action.as_ref(), &ctx, &plan_args, &mut read_notes)
                .await
                .map_err(|message| PlanError {
                    step: step.id.value.clone(),
                    message,
                })?;
            let mut effect = action
                .describe(&ctx, &plan_args)
                .await
                .map_err(|e| fail(e.to_string()))?;
            effect.notes.extend(read_notes);
            if let Some(outputs) = ctx.read {
                let status = "succeeded".into();
                scope
                    .steps
                    .insert(step.id.value.clone(), StepScope { status, outputs });
            }
            Some(effect)
        };
        let mut args: BTreeMap<String, PlannedArg> = plan_args
            .known
            .into_iter()
            .map(|(k, v)| (k, PlannedArg::Value(v)))
            .collect();
        args.extend(
            plan_args
                .unknown
                .into_iter()
                .map(|(k, after)| (k, PlannedArg::KnownAfter(after))),
        );
        steps.push(PlannedStep {
            id: step.id.value.clone(),
            name: step.name.clone(),
            uses: step.uses.value.clone(),
            args,
            effect,
            condition,
            confirm: step.confirm.clone(),
            mutates: action.spec().mutates,
            max_attempts: step.max_attempts(),
            timeout: step
                .timeout
                .map(|t| humantime::format_duration(t).to_string()),
            needs: step
                .needs
                .as_ref()
                .map(|n| n.iter().map(|s| s.value.clone()).collect()),
        });
    }
    let outputs = expr::plan_outputs(wf, &scope)
        .into_iter()
        .map(|(name, planned)| {
            let arg = match planned {
                Ok(v) => PlannedArg::Value(v),
                Err(step) if step.is_empty() => PlannedArg::KnownAfterRun,
                Err(step) => PlannedArg::KnownAfter(step),
            };
            (name, arg)
        })
        .collect();
    Ok(Plan {
        format_version: FORMAT_VERSION,
        target: None,
        totals: Totals::of(&steps),
        workflow: WorkflowInfo {
            name: wf.name.clone(),
            description: wf.description.clone(),
            path: wf.source.name.clone(),
            sha256: wf.sha256(),
        },
        inputs,
        mutating_steps: steps
            .iter()
            .filter(|s| s.mutates && s.effect.is_some())
            .count(),
        steps,
        outputs,
    })
}
