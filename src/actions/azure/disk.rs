//! `azure.disk.create_from_snapshot`: the working copy that gets repaired and swapped in, copied
//! from a snapshot, or straight from the source disk while its VM is deallocated (Azure copies a
//! managed disk with `createOption: Copy` from either; the latter runs beside the snapshot
//! rather than after it).

use async_trait::async_trait;
use serde_json::{json, Map};

use super::snapshot::disk_summary;
use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs};

pub struct CreateFromSnapshot;

static SPEC: ActionSpec = ActionSpec {
    name: "azure.disk.create_from_snapshot",
    summary: "create a disk from a snapshot or a deallocated VM's disk, with the source disk's zone, SKU, generation and OS type",
    params: &[
        Param { name: "snapshot_id", ty: ParamType::String, required: false, description: "ARM id of the snapshot to copy (default: copy source_disk_id itself, whose VM must be deallocated)" },
        Param { name: "source_disk_id", ty: ParamType::String, required: true, description: "the disk copied, or the snapshot was taken of (zone, SKU, generation and OS type are copied from it)" },
        Param { name: "resource_group", ty: ParamType::String, required: false, description: "where to create it (default: the source disk's)" },
        Param { name: "name", ty: ParamType::String, required: false, description: "disk name (default: SOURCE-fixed-RUN_ID)" },
    ],
    outputs: &[
        OutputSpec { name: "id", description: "ARM id of the new disk" },
        OutputSpec { name: "name", description: "name of the new disk" },
        OutputSpec { name: "zone", description: "its zone (the source disk's)" },
    ],
    mutates: true,
};

/// What is copied (the snapshot, or the source disk), the source disk, and the new disk.
fn target(args: &Args, run_id: &str) -> Result<(ResourceId, ResourceId, ResourceId), ActionError> {
    let source = id_arg(args, "source_disk_id", Kind::Disk)?;
    let snapshot = match opt_str(args, "snapshot_id") {
        Some(_) => id_arg(args, "snapshot_id", Kind::Snapshot)?,
        None => source.clone(),
    };
    let rg = opt_str(args, "resource_group")
        .unwrap_or(&source.resource_group)
        .to_string();
    let name = opt_str(args, "name")
        .map(str::to_string)
        .unwrap_or_else(|| derived_name(&source.name, "fixed", run_id));
    Ok((
        snapshot,
        source.clone(),
        ResourceId::new(&source.subscription, &rg, Kind::Disk, &name),
    ))
}

fn outputs(created: Option<&Resource>, disk: &ResourceId) -> Outputs {
    let mut out = created_outputs(created, disk);
    out.insert(
        "zone".into(),
        json!(created.and_then(|r| r.zone()).unwrap_or_default()),
    );
    out
}

#[async_trait]
impl AzureStep for CreateFromSnapshot {
    const SPEC: &'static ActionSpec = &SPEC;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let mut notes = Vec::new();
        let mut warnings = Vec::new();
        let source = args
            .str("source_disk_id")
            .and_then(|s| ResourceId::parse(s).ok());
        if let Some(source) = &source {
            match plan_read(ctx, source).await {
                Ok(Some(d)) => {
                    notes.push(format!(
                        "copy will match the source disk: {}",
                        disk_summary(&d)
                    ));
                    warnings.extend(copy::refusal(&d));
                }
                Ok(None) => warnings.push(format!("disk {} does not exist now", source.name)),
                Err(e) => notes.push(e),
            }
        }
        let known = target(&args.known, &ctx.run_id).ok();
        let name = source
            .as_ref()
            .map(|s| {
                opt_str(&args.known, "name")
                    .map(str::to_string)
                    .unwrap_or_else(|| derived_name(&s.name, "fixed", &ctx.run_id))
            })
            .unwrap_or_else(|| "SOURCE-fixed-RUN".into());
        let from =
            if args.known.contains_key("snapshot_id") || args.unknown.contains_key("snapshot_id") {
                format!("snapshot {}", args.display("snapshot_id"))
            } else {
                format!(
                    "disk {} (its VM deallocated)",
                    args.display("source_disk_id")
                )
            };
        Ok(Description {
            summary: format!(
                "create disk {name} from {from} (same zone, SKU, generation and OS type as the source; tagged {RUN_TAG}={})",
                ctx.run_id
            ),
            changes: vec![change(
                ChangeKind::Create,
                Kind::Disk,
                known.as_ref().map(|(_, _, disk)| disk),
                &name,
                "a copy, with the source disk's zone, SKU, generation, encryption and security",
            )],
            calls: vec![
                format!("GET {}", source.as_ref().map(|s| s.to_string()).unwrap_or(".../disks/SOURCE".into())),
                format!("PUT .../disks/{name}"),
                "GET <Azure-AsyncOperation> until Succeeded".into(),
            ],
            notes,
            warnings,
        })
    }

    /// The copy's name and id follow from the run id: later steps plan with them.
    async fn read_now(&self, k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        let Known { ctx, args } = *k;
        let (_, source, disk) = target(args, &ctx.run_id).ok()?;
        let zone = match plan_read(ctx, &source).await {
            Ok(Some(d)) => d.zone().unwrap_or_default().to_string(),
            _ => String::new(),
        };
        let mut out = Outputs::new();
        out.insert("id".into(), json!(disk.to_string()));
        out.insert("name".into(), json!(disk.name));
        out.insert("zone".into(), json!(zone));
        Some(Ok(out))
    }

    fn intent(&self, run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        let (snapshot, source, disk) = target(args, run_id)?;
        Ok(Intent {
            detail: json!({"name": disk.name, "snapshot_id": snapshot.to_string(), "source_disk_id": source.to_string()}),
            creates: vec![resource_ref(&disk)],
            scaffolding: false,
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let (snapshot, source, disk) = target(args, &ctx.run_id)?;
        with_progress(ctx, async {
            let source_disk = azure.read_existing(&source).await?;
            let body = copy::body(
                &source_disk,
                Kind::Disk,
                &snapshot,
                run_tags(&ctx.run_id, &[("rescue-source", &snapshot.to_string())]),
                Map::new(),
            );
            let created = create(ctx, &disk, body, DISK_DEADLINE).await?;
            Ok(outputs(created.as_ref(), &disk))
        })
        .await
    }

    fn describe_undo(&self, _args: &Args, outputs: &Outputs) -> Option<String> {
        deletes("disk", outputs)
    }

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        undo_created(u).await
    }
}
