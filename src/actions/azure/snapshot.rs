//! `azure.snapshot.create`: an incremental, tagged snapshot of a disk (the safety copy, kept).

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs, Reconciled};

pub struct CreateSnapshot;

static SPEC: ActionSpec = ActionSpec {
    name: "azure.snapshot.create",
    summary: "snapshot a disk (incremental, tagged with the run id); the snapshot is kept",
    params: &[
        Param {
            name: "disk_id",
            ty: ParamType::String,
            required: true,
            description: "ARM id of the disk to snapshot",
        },
        Param {
            name: "resource_group",
            ty: ParamType::String,
            required: false,
            description: "where to create it (default: the disk's)",
        },
        Param {
            name: "name",
            ty: ParamType::String,
            required: false,
            description: "snapshot name (default: DISK-snap-RUN_ID)",
        },
        Param {
            name: "sku",
            ty: ParamType::String,
            required: false,
            description: "Standard_LRS (default), Premium_LRS or Standard_ZRS",
        },
        Param {
            name: "incremental",
            ty: ParamType::Boolean,
            required: false,
            description: "incremental snapshot (default true)",
        },
    ],
    outputs: &[
        OutputSpec {
            name: "id",
            description: "ARM id of the snapshot",
        },
        OutputSpec {
            name: "name",
            description: "snapshot name",
        },
        OutputSpec {
            name: "source_disk_id",
            description: "the disk it was taken of",
        },
    ],
    mutates: true,
};

/// The snapshot's id, decided from the arguments and the run id alone.
pub(crate) fn target(args: &Args, run_id: &str) -> Result<(ResourceId, ResourceId), ActionError> {
    let source = id_arg(args, "disk_id", Kind::Disk)?;
    let rg = opt_str(args, "resource_group")
        .unwrap_or(&source.resource_group)
        .to_string();
    let name = opt_str(args, "name")
        .map(str::to_string)
        .unwrap_or_else(|| derived_name(&source.name, "snap", run_id));
    Ok((
        source.clone(),
        ResourceId::new(&source.subscription, &rg, Kind::Snapshot, &name),
    ))
}

#[async_trait]
impl Action for CreateSnapshot {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        let mut notes = Vec::new();
        let (summary, calls) = match target(&args.known, &ctx.run_id) {
            Ok((source, snap)) => {
                match plan_read(ctx, &source).await {
                    Ok(Some(d)) => notes.push(format!("source disk: {}", disk_summary(&d))),
                    Ok(None) => notes.push(format!("disk {} does not exist now", source.name)),
                    Err(e) => notes.push(e),
                }
                (
                    format!(
                        "snapshot {} of disk {} (incremental, tagged {RUN_TAG}={})",
                        snap.name, source.name, ctx.run_id
                    ),
                    vec![
                        format!("GET {source}"),
                        format!("PUT {snap}"),
                        "GET <Azure-AsyncOperation> until Succeeded".into(),
                    ],
                )
            }
            Err(_) => (
                format!(
                    "snapshot disk {} (incremental, tagged with the run id)",
                    args.display("disk_id")
                ),
                vec![
                    "GET .../disks/DISK".into(),
                    "PUT .../snapshots/DISK-snap-RUN".into(),
                    "GET <Azure-AsyncOperation> until Succeeded".into(),
                ],
            ),
        };
        Ok(Description {
            summary,
            calls,
            notes,
        })
    }

    fn intent(&self, run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        let (source, snap) = target(args, run_id)?;
        Ok(Intent {
            detail: json!({"name": snap.name, "source_disk_id": source.to_string()}),
            creates: vec![resource_ref(&snap)],
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let azure = azure(ctx)?;
        let (source, snap) = target(args, &ctx.run_id)?;
        with_progress(ctx, async {
            let body_for = |disk: &Value| {
                json!({
                    "location": location(disk),
                    "tags": run_tags(&ctx.run_id, &[("rescue-source", &source.to_string())]),
                    "sku": {"name": opt_str(args, "sku").unwrap_or("Standard_LRS")},
                    "properties": {
                        "creationData": {"createOption": "Copy", "sourceResourceId": source.to_string()},
                        "incremental": args.get("incremental").and_then(Value::as_bool).unwrap_or(true),
                        "osType": disk.pointer("/properties/osType"),
                        "hyperVGeneration": disk.pointer("/properties/hyperVGeneration"),
                    }
                })
            };
            let created = create_owned(ctx, azure, &snap, &source, body_for).await?;
            Ok(outputs(&created, &snap, &source))
        })
        .await
    }

    async fn reconcile(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Reconciled, ActionError> {
        let azure = azure(ctx)?;
        let (source, snap) = target(args, &ctx.run_id)?;
        Ok(adopt_if(
            created_earlier(ctx, azure, &snap)
                .await?
                .map(|r| outputs(&r, &snap, &source)),
        ))
    }

    fn describe_undo(&self, _args: &Args, outputs: &Outputs) -> Option<String> {
        Some(format!(
            "delete snapshot {}",
            outputs.get("name").and_then(Value::as_str).unwrap_or("?")
        ))
    }

    async fn undo(
        &self,
        ctx: &StepContext,
        _args: &Args,
        outputs: &Outputs,
    ) -> Result<(), ActionError> {
        let azure = azure(ctx)?;
        let id = ResourceId::parse(
            outputs
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        )?;
        with_progress(ctx, delete_created(ctx, azure, &id, &ctx.run_id)).await
    }
}

fn outputs(created: &Value, snap: &ResourceId, source: &ResourceId) -> Outputs {
    let mut out = Outputs::new();
    out.insert(
        "id".into(),
        json!(created
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or(snap.to_string())),
    );
    out.insert("name".into(), json!(snap.name));
    out.insert("source_disk_id".into(), json!(source.to_string()));
    out
}

/// "30 GiB Premium_LRS, zone 1, V2, Attached"
pub(crate) fn disk_summary(disk: &Value) -> String {
    format!(
        "{} GiB {}, {}, {}, {}",
        disk.pointer("/properties/diskSizeGB")
            .map(Value::to_string)
            .unwrap_or("?".into()),
        disk.pointer("/sku/name")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        zone(disk)
            .map(|z| format!("zone {z}"))
            .unwrap_or_else(|| "no zone".into()),
        disk.pointer("/properties/hyperVGeneration")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        disk.pointer("/properties/diskState")
            .and_then(Value::as_str)
            .unwrap_or("?"),
    )
}

/// Create `id` from `source` (PUT with `body_for(source)`), or adopt it when an earlier attempt
/// of this run already did: continue a checkpointed operation, or take the tagged resource.
pub(crate) async fn create_owned(
    ctx: &StepContext,
    azure: &Azure,
    id: &ResourceId,
    source: &ResourceId,
    body_for: impl Fn(&Value) -> Value,
) -> Result<Value, ActionError> {
    let key = OPERATION;
    if let Some(result) = resume_pending(ctx, azure, key).await {
        return result;
    }
    let label = format!("{} {}", id.kind.noun(), id.name);
    let result = when_idle(ctx, azure, &label, || async {
        if let Some(existing) = azure.find(id).await? {
            ensure_ours(&existing, id, &ctx.run_id)?;
            match provisioning(&existing).as_str() {
                "succeeded" => {
                    ctx.status(format!(
                        "{label} already exists (created by this run): adopted"
                    ));
                    return Ok(existing);
                }
                // Azure refuses to update a resource whose creation failed: remove ours, start over.
                "failed" => {
                    ctx.status(format!(
                        "{label} failed to create earlier: deleting it to create it again"
                    ));
                    delete_created(ctx, azure, id, &ctx.run_id).await?;
                }
                // Our own earlier request (its answer lost) is still creating it.
                "creating" | "updating" => {
                    return Err(ActionError::retryable(format!(
                        "{label}: another operation (its creation) is still running"
                    )));
                }
                _ => {}
            }
        }
        let source_resource = azure.get(source).await?;
        let started = azure.put(id, body_for(&source_resource), &label).await?;
        finish(ctx, azure, started, key).await
    })
    .await?;
    match provisioning(&result).as_str() {
        "succeeded" | "" => Ok(result),
        other => Err(ActionError::retryable(format!(
            "{label} ended in provisioning state {other}"
        ))),
    }
}
