//! `azure.snapshot.create`: an incremental, tagged snapshot of a disk (the safety copy, kept).

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs};

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
impl AzureStep for CreateSnapshot {
    const SPEC: &'static ActionSpec = &SPEC;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let mut notes = Vec::new();
        let mut warnings = Vec::new();
        let known = target(&args.known, &ctx.run_id).ok();
        let changes = vec![change(
            ChangeKind::Create,
            Kind::Snapshot,
            known.as_ref().map(|(_, snap)| snap),
            &format!("(named after the disk of {})", args.display("disk_id")),
            format!(
                "of disk {}, incremental, kept as the safety copy",
                known
                    .as_ref()
                    .map(|(s, _)| s.name.clone())
                    .unwrap_or_else(|| args.display("disk_id")),
            ),
        )];
        let (summary, calls) = match known {
            Some((source, snap)) => {
                match plan_read(ctx, &source).await {
                    Ok(Some(d)) => notes.push(format!("source disk: {}", disk_summary(&d))),
                    Ok(None) => warnings.push(format!("disk {} does not exist now", source.name)),
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
            None => (
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
            changes,
            calls,
            notes,
            warnings,
        })
    }

    /// The snapshot's name and id follow from the run id: later steps plan with them.
    async fn read_now(&self, k: &Known<'_>) -> Option<Result<Outputs, ActionError>> {
        let Known { ctx, args } = *k;
        let (source, snap) = target(args, &ctx.run_id).ok()?;
        Some(Ok(outputs(None, &snap, &source)))
    }

    fn intent(&self, run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        let (source, snap) = target(args, run_id)?;
        Ok(Intent {
            detail: json!({"name": snap.name, "source_disk_id": source.to_string()}),
            creates: vec![resource_ref(&snap)],
            scaffolding: false,
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let (source, snap) = target(args, &ctx.run_id)?;
        with_progress(ctx, async {
            let disk = azure.read_existing(&source).await?;
            let mut extra = Map::new();
            extra.insert(
                "incremental".into(),
                json!(args
                    .get("incremental")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)),
            );
            let mut body = copy::body(
                &disk,
                Kind::Snapshot,
                &source,
                run_tags(&ctx.run_id, &[("rescue-source", &source.to_string())]),
                extra,
            );
            body["sku"] = json!({"name": opt_str(args, "sku").unwrap_or("Standard_LRS")});
            let created = create(ctx, &snap, body, SNAPSHOT_DEADLINE).await?;
            Ok(outputs(created.as_ref(), &snap, &source))
        })
        .await
    }

    fn describe_undo(&self, _args: &Args, outputs: &Outputs) -> Option<String> {
        deletes("snapshot", outputs)
    }

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        undo_created(u).await
    }
}

fn outputs(created: Option<&Resource>, snap: &ResourceId, source: &ResourceId) -> Outputs {
    let mut out = created_outputs(created, snap);
    out.insert("source_disk_id".into(), json!(source.to_string()));
    out
}

/// "30 GiB Premium_LRS, zone 1, V2, Attached"
pub(crate) fn disk_summary(disk: &Resource) -> String {
    format!(
        "{} GiB {}, {}, {}, {}",
        disk.raw
            .pointer("/properties/diskSizeGB")
            .map(Value::to_string)
            .unwrap_or("?".into()),
        disk.str("/sku/name").unwrap_or("?"),
        disk.zone()
            .map(|z| format!("zone {z}"))
            .unwrap_or_else(|| "no zone".into()),
        disk.str("/properties/hyperVGeneration").unwrap_or("?"),
        disk.str("/properties/diskState").unwrap_or("?"),
    )
}
