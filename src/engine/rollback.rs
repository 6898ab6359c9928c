//! `rescue rollback`: undo what a run did, in reverse, through each action's `undo`.
//!
//! The plan is recomputed from the journal on every invocation and merged with the rollback
//! section already journaled, so running it again continues where it stopped (undos done stay
//! done; one found running is undone again: every undo is idempotent).
//!
//! Generic rules (the engine knows steps, not clouds): a step whose intent created resources has
//! an undo that deletes them, so it runs only with `delete_created`, and a snapshot's only with
//! `include_snapshot` as well (the safety copy is kept by default); what an intent marks as
//! scaffolding (a rescue VM and its network, of no use once the run is undone) is undone always. A step that started but whose
//! outcome is unknown (running, failed) is undone too, with its intent's detail and the id of what
//! it was to create standing in for its outputs; undos check the current state before acting.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::journal::{Journal, StepError, StepRecord, StepStatus};
use super::recorder::Recorder;
use crate::actions::{Action, ActionError, Args, Env, Outputs, Registry, StepContext, StepHost};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    /// Also delete what the run created (the disk copy).
    pub delete_created: bool,
    /// With `delete_created`: the snapshot too.
    pub include_snapshot: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoStatus {
    Pending,
    /// Started; outcome unknown until recorded otherwise.
    Running,
    Done,
    Failed,
    /// Not undone by these options (a created resource that is kept).
    Kept,
}

/// One step's undo, as journaled in the rollback section.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UndoRecord {
    pub step: String,
    pub uses: String,
    pub status: UndoStatus,
    /// What the undo does (or, when kept, what is kept and how to delete it).
    pub description: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub checkpoints: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackStatus {
    Running,
    Succeeded,
    Failed,
}

/// The rollback section of a run's journal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RollbackRecord {
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    pub status: RollbackStatus,
    pub options: Options,
    pub undos: Vec<UndoRecord>,
}

/// What a step left for its undo to work from: its outputs, or for a step whose outcome is
/// unknown, its intent's detail and the id of what it was to create.
fn outputs_for_undo(step: &StepRecord) -> Option<Outputs> {
    match step.status {
        StepStatus::Succeeded => Some(step.outputs.clone()),
        StepStatus::Running | StepStatus::Failed => {
            let intent = step.intent.as_ref()?;
            let mut outputs = intent.detail.as_object().cloned().unwrap_or_default();
            if let Some(created) = intent.creates.first() {
                outputs.entry("id").or_insert_with(|| json!(created.id));
            }
            Some(outputs)
        }
        StepStatus::Pending | StepStatus::Skipped => None,
    }
}

/// The undos of `journal`'s steps, last step first, merged with an earlier rollback's progress.
pub fn plan(journal: &Journal, registry: &Registry, options: Options) -> Vec<UndoRecord> {
    let earlier = journal
        .rollback
        .as_ref()
        .map(|r| r.undos.as_slice())
        .unwrap_or_default();
    let mut undos = Vec::new();
    for step in journal.steps.iter().rev() {
        let Some(outputs) = outputs_for_undo(step) else {
            continue;
        };
        let Some(action) = registry.get(&step.uses) else {
            continue;
        };
        let Some(description) = action.describe_undo(&step.args, &outputs) else {
            continue;
        };
        let creates = step
            .intent
            .as_ref()
            .map(|i| i.creates.clone())
            .unwrap_or_default();
        let scaffolding = step.intent.as_ref().is_some_and(|i| i.scaffolding);
        let kept = if creates.is_empty() || scaffolding {
            None
        } else if !options.delete_created {
            Some("pass --delete-created to delete it")
        } else if creates.iter().any(|r| r.kind == "snapshot") && !options.include_snapshot {
            Some("the safety copy; pass --include-snapshot too to delete it")
        } else {
            None
        };
        let before = earlier.iter().find(|u| u.step == step.id);
        let record = match (kept, before) {
            (_, Some(done)) if done.status == UndoStatus::Done => done.clone(),
            (Some(why), _) => UndoRecord {
                step: step.id.clone(),
                uses: step.uses.clone(),
                status: UndoStatus::Kept,
                description: format!(
                    "keep {} ({why})",
                    creates
                        .iter()
                        .map(|r| format!("{} {}", r.kind, name_of(&r.id)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                checkpoints: Map::new(),
                error: None,
            },
            (None, before) => UndoRecord {
                step: step.id.clone(),
                uses: step.uses.clone(),
                status: before.map_or(UndoStatus::Pending, |b| {
                    if b.status == UndoStatus::Kept {
                        UndoStatus::Pending
                    } else {
                        b.status
                    }
                }),
                description,
                checkpoints: before.map(|b| b.checkpoints.clone()).unwrap_or_default(),
                error: None,
            },
        };
        undos.push(record);
    }
    undos
}

fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// Where progress lines go.
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// How a rollback ended.
#[derive(Debug)]
pub enum Outcome {
    Succeeded,
    Failed { step: String, error: ActionError },
}

/// Runs the planned undos in order, journaling each before and after.
pub async fn execute(
    recorder: Arc<Recorder>,
    registry: &Registry,
    env: Env,
    options: Options,
    report: Report,
) -> anyhow::Result<Outcome> {
    let undos = plan(&recorder.read(), registry, options);
    recorder.update(|j| {
        let started = j
            .rollback
            .as_ref()
            .map_or_else(OffsetDateTime::now_utc, |r| r.started);
        j.rollback = Some(RollbackRecord {
            started,
            status: RollbackStatus::Running,
            options,
            undos: undos.clone(),
        });
    })?;
    let (run_id, run_started) = {
        let j = recorder.read();
        // What the run still holds (the VM locks of steps not yet undone) fences the undos as
        // it fenced the run.
        let undone = |id: &str| {
            undos
                .iter()
                .any(|u| u.step == id && matches!(u.status, UndoStatus::Done))
        };
        for step in j
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Succeeded && !undone(&s.id))
        {
            if let Some(action) = registry.get(&step.uses) {
                action.resumed(&env, &step.args, &step.outputs);
            }
        }
        (j.run_id.clone(), j.created)
    };
    for (index, undo) in undos.iter().enumerate() {
        if matches!(undo.status, UndoStatus::Done | UndoStatus::Kept) {
            continue;
        }
        let step = recorder
            .read()
            .step(&undo.step)
            .cloned()
            .expect("planned from the journal");
        let action: &Arc<dyn Action> = registry.get(&step.uses).expect("planned from the registry");
        let outputs = outputs_for_undo(&step).unwrap_or_default();
        set(&recorder, index, |u| {
            u.status = UndoStatus::Running;
            u.error = None;
        })?;
        report(format!("undo {}: {}", undo.step, undo.description));
        let ctx = StepContext {
            run_id: run_id.clone(),
            step_id: undo.step.clone(),
            attempt: 1,
            run_started,
            env: env.clone(),
            checkpoints: undo.checkpoints.clone(),
            host: Arc::new(UndoHost {
                recorder: recorder.clone(),
                index,
                report: report.clone(),
            }),
        };
        let result = action.undo(&ctx, &step.args as &Args, &outputs).await;
        recorder.crash_point();
        match result {
            Ok(()) => set(&recorder, index, |u| u.status = UndoStatus::Done)?,
            Err(error) => {
                set(&recorder, index, |u| {
                    u.status = UndoStatus::Failed;
                    u.error = Some(StepError::from(&error));
                })?;
                recorder.update(|j| {
                    j.rollback.as_mut().expect("set above").status = RollbackStatus::Failed
                })?;
                return Ok(Outcome::Failed {
                    step: undo.step.clone(),
                    error,
                });
            }
        }
    }
    recorder
        .update(|j| j.rollback.as_mut().expect("set above").status = RollbackStatus::Succeeded)?;
    Ok(Outcome::Succeeded)
}

fn set(
    recorder: &Recorder,
    index: usize,
    change: impl FnOnce(&mut UndoRecord),
) -> anyhow::Result<()> {
    recorder.update(|j| change(&mut j.rollback.as_mut().expect("rollback section").undos[index]))
}

/// Checkpoints of an undo go to its rollback entry, apart from the forward step's.
struct UndoHost {
    recorder: Arc<Recorder>,
    index: usize,
    report: Report,
}

#[async_trait]
impl StepHost for UndoHost {
    fn status(&self, step_id: &str, message: String) {
        (self.report)(format!("  {step_id}: {message}"));
    }

    async fn checkpoint(&self, _step_id: &str, key: &str, value: Value) -> Result<(), ActionError> {
        set(&self.recorder, self.index, |u| {
            u.checkpoints.insert(key.to_string(), value);
        })
        .map_err(|e| {
            ActionError::fatal(format!("cannot record a checkpoint in the journal: {e:#}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::{Intent, ResourceRef};
    use crate::engine::journal::WorkflowRecord;

    fn step(id: &str, uses: &str, status: StepStatus, creates: &[(&str, &str)]) -> StepRecord {
        let mut s = StepRecord::pending(id, uses);
        s.status = status;
        s.args = json!({"resource_group": "rg", "vm": "vm", "disk_id": "/d"})
            .as_object()
            .cloned()
            .unwrap();
        s.intent = Some(Intent {
            detail: json!({"name": id, "original_disk_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/orig"}),
            creates: creates
                .iter()
                .map(|(kind, id)| ResourceRef {
                    kind: kind.to_string(),
                    id: id.to_string(),
                })
                .collect(),
            scaffolding: false,
        });
        s
    }

    fn journal() -> Journal {
        let steps = vec![
            step("lock", "azure.vm.lock", StepStatus::Succeeded, &[]),
            step("inspect", "azure.vm.inspect", StepStatus::Succeeded, &[]),
            step(
                "snapshot",
                "azure.snapshot.create",
                StepStatus::Succeeded,
                &[("snapshot", "/x/snapshots/s")],
            ),
            step(
                "copy",
                "azure.disk.create_from_snapshot",
                StepStatus::Succeeded,
                &[("disk", "/x/disks/c")],
            ),
            step("attach", "azure.vm.attach_disk", StepStatus::Running, &[]),
            step("swap", "azure.vm.swap_os_disk", StepStatus::Pending, &[]),
        ];
        Journal::new(
            "r".into(),
            WorkflowRecord::new(&crate::workflow::Origin::File("/w.yaml".into()), ""),
            Map::new(),
            Value::Null,
            steps,
        )
    }

    fn statuses(undos: &[UndoRecord]) -> Vec<(&str, UndoStatus)> {
        undos.iter().map(|u| (u.step.as_str(), u.status)).collect()
    }

    #[test]
    fn reverse_order_keeps_created_resources_unless_asked() {
        let registry = Registry::builtin();
        let undos = plan(&journal(), &registry, Options::default());
        assert_eq!(
            statuses(&undos),
            vec![
                ("attach", UndoStatus::Pending),
                ("copy", UndoStatus::Kept),
                ("snapshot", UndoStatus::Kept),
                ("lock", UndoStatus::Pending)
            ]
        );
        let delete = plan(
            &journal(),
            &registry,
            Options {
                delete_created: true,
                include_snapshot: false,
            },
        );
        assert_eq!(delete[1].status, UndoStatus::Pending);
        assert_eq!(
            delete[2].status,
            UndoStatus::Kept,
            "the snapshot needs --include-snapshot"
        );
        assert!(
            delete[2].description.contains("--include-snapshot"),
            "{}",
            delete[2].description
        );
        let all = plan(
            &journal(),
            &registry,
            Options {
                delete_created: true,
                include_snapshot: true,
            },
        );
        assert!(all.iter().all(|u| u.status == UndoStatus::Pending));
    }

    #[test]
    fn a_second_rollback_keeps_what_is_done_and_unkeeps_what_is_now_asked() {
        let registry = Registry::builtin();
        let mut j = journal();
        let mut undos = plan(&j, &registry, Options::default());
        undos[0].status = UndoStatus::Done;
        undos[3].status = UndoStatus::Running;
        j.rollback = Some(RollbackRecord {
            started: OffsetDateTime::now_utc(),
            status: RollbackStatus::Failed,
            options: Options::default(),
            undos,
        });
        let again = plan(
            &j,
            &registry,
            Options {
                delete_created: true,
                include_snapshot: true,
            },
        );
        assert_eq!(
            statuses(&again),
            vec![
                ("attach", UndoStatus::Done),
                ("copy", UndoStatus::Pending),
                ("snapshot", UndoStatus::Pending),
                ("lock", UndoStatus::Running)
            ]
        );
    }

    #[test]
    fn a_step_with_unknown_outcome_is_undone_from_its_intent() {
        let s = step(
            "copy",
            "azure.disk.create_from_snapshot",
            StepStatus::Running,
            &[("disk", "/x/disks/c")],
        );
        let outputs = outputs_for_undo(&s).unwrap();
        assert_eq!(outputs["id"], "/x/disks/c");
        assert_eq!(outputs["name"], "copy");
        assert!(outputs_for_undo(&StepRecord::pending("p", "core.echo")).is_none());
    }
}
