//! Disks stuck on a dead machine. `aks.node.release` waits for Kubernetes to let go of a
//! powered-off node (its pods gone, its VolumeAttachments and Azure disks released) and
//! force-detaches in Azure only past a deadline. `aks.disk.release` detaches one disk from the
//! VM or instance holding it, gracefully first and by ForceDetach past a deadline, and waits
//! for Kubernetes to agree.
//!
//! ForceDetach is the last resort because it detaches "without the guest flushing": Microsoft's
//! docs say to use it only when a normal detach fails (DataDiskDetachOptionTypes, "Force-detach
//! is ... a last resort option to detach a disk forcibly from the VM. All writes might not have
//! been flushed when using this detach behavior"). On a machine that is off nothing is left to
//! flush, but the choice is still the engineer's to see: the step says when it does it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::azure::{ensure, existing_vm, output, short, Plan, Run, Want};
use crate::actions::{ActionSpec, Change, ChangeKind, Description, OutputSpec, Outputs};
use crate::azure::converge::Next;
use crate::azure::model::same_id;
use crate::azure::Write;

pub struct ReleaseNode;
pub struct ReleaseDisk;

const P_FORCE_AFTER: Param = Param {
    name: "force_detach_after",
    ty: ParamType::String,
    required: false,
    description: "how long to wait for a normal release before ForceDetach (default 10m)",
};
const DEFAULT_FORCE_AFTER: Duration = Duration::from_secs(600);
/// After ForceDetach, Kubernetes still has to notice (its attach-detach controller).
const AGREE_DEADLINE: Duration = Duration::from_secs(15 * 60);

static RELEASE_NODE: ActionSpec = ActionSpec {
    name: "aks.node.release",
    summary: "wait until a powered-off node's pods are gone and its volumes detached (ForceDetach in Azure past a deadline)",
    params: &[
        P_CLUSTER_ID,
        P_NODE,
        P_INSTANCE,
        P_FORCE_AFTER,
        P_KUBECONFIG,
    ],
    outputs: &[
        OutputSpec {
            name: "force_detached",
            description: "disks detached by ForceDetach (empty: Kubernetes released them)",
        },
        OutputSpec {
            name: "waited_seconds",
            description: "how long the release took",
        },
    ],
    mutates: true,
};

static RELEASE_DISK: ActionSpec = ActionSpec {
    name: "aks.disk.release",
    summary: "detach a managed disk from the stopped VM or instance holding it, ForceDetach past a deadline, and wait for Kubernetes to agree",
    params: &[
        Param {
            name: "disk_id",
            ty: ParamType::String,
            required: true,
            description: "the managed disk",
        },
        Param {
            name: "holder_id",
            ty: ParamType::String,
            required: false,
            description: "the VM or instance holding it (`aks.disk.find_holder` outputs it; empty: none)",
        },
        Param {
            name: "cluster_id",
            ty: ParamType::String,
            required: false,
            description: "the AKS cluster, whose VolumeAttachments must agree",
        },
        P_FORCE_AFTER,
        P_KUBECONFIG,
    ],
    outputs: &[
        OutputSpec {
            name: "forced",
            description: "whether ForceDetach was needed",
        },
        OutputSpec {
            name: "disk_state",
            description: "the disk's state afterwards (Unattached)",
        },
    ],
    mutates: true,
};

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When the step first started waiting, kept across resumes so that a deadline is not
/// restarted by a crash.
async fn since(ctx: &StepContext) -> Result<u64, ActionError> {
    if let Some(s) = ctx.checkpoints.get("since").and_then(Value::as_u64) {
        return Ok(s);
    }
    let now = unix_now();
    ctx.checkpoint("since", json!(now)).await?;
    Ok(now)
}

fn remaining(since: u64, after: Duration) -> Duration {
    after.saturating_sub(Duration::from_secs(unix_now().saturating_sub(since)))
}

/// "None of `disks` is attached to `holder`", by the detach the holder takes: a VM's
/// `attachDetachDataDisks`, an instance's PUT with the disks marked `toBeDetached` (the
/// scale-set VM API has no detach action). With `force`, each carries `detachOption:
/// ForceDetach`.
async fn detach(
    ctx: &StepContext,
    holder: &ResourceId,
    disks: &[String],
    force: bool,
    key: &str,
) -> Result<(), ActionError> {
    let how = if force { "force-detach" } else { "detach" };
    let label = format!(
        "{how} {} from {}",
        disks
            .iter()
            .map(|d| short(d))
            .collect::<Vec<_>>()
            .join(", "),
        holder.name
    );
    let deadline = crate::actions::azure::VM_UPDATE_DEADLINE;
    let desired = Want::new(holder, label, deadline, |now| {
        let Some(now) = now else {
            // The machine is gone, and its disks with it.
            return Ok(Next::Done);
        };
        let vm = existing_vm(Some(now), holder)?;
        let left: Vec<&crate::azure::model::DataDisk> = vm
            .data_disks
            .iter()
            .filter(|d| disks.iter().any(|x| same_id(x, &d.disk_id)))
            .collect();
        if left.is_empty() {
            return Ok(Next::Done);
        }
        if !force && left.iter().all(|d| d.to_be_detached) {
            return Ok(Next::Wait("a detach is in flight".into()));
        }
        let option = force.then_some("ForceDetach");
        Ok(Next::Write(match holder.kind {
            Kind::ScaleSetVm => {
                let mut body = now.raw.clone();
                if let Some(list) = body
                    .pointer_mut("/properties/storageProfile/dataDisks")
                    .and_then(Value::as_array_mut)
                {
                    for d in list.iter_mut() {
                        let id = d.pointer("/managedDisk/id").and_then(Value::as_str);
                        if id.is_some_and(|id| disks.iter().any(|x| same_id(x, id))) {
                            d["toBeDetached"] = json!(true);
                            if let Some(o) = option {
                                d["detachOption"] = json!(o);
                            }
                        }
                    }
                }
                if let Some(p) = body.get_mut("properties").and_then(Value::as_object_mut) {
                    // What ARM computes is not sent back.
                    p.remove("instanceView");
                    p.remove("provisioningState");
                }
                Write::Put(body)
            }
            _ => Write::AttachDetach(json!({
                "dataDisksToDetach": left
                    .iter()
                    .map(|d| match option {
                        Some(o) => json!({"diskId": d.disk_id, "detachOption": o}),
                        None => json!({"diskId": d.disk_id}),
                    })
                    .collect::<Vec<_>>()
            })),
        }))
    })
    .with_instance_view();
    ensure(ctx, &desired, key).await.map(|_| ())
}

/// Whether `node` is let go of: no pod of it left to move, no VolumeAttachment to it, and
/// (with `machine`) no data disk on its machine in Azure; what is left, if not.
async fn left_on(
    k: &crate::kubernetes::Cluster,
    machine: Option<(&crate::azure::Azure, &ResourceId)>,
    node: &str,
) -> Result<Result<(), String>, ActionError> {
    let pods = displaced(&k.pods().await?, node).len();
    let attachments = k
        .attachments()
        .await?
        .into_iter()
        .filter(|a| a.node == node)
        .count();
    let disks = match machine {
        Some((azure, id)) => disks_of(azure.read_vm(id, false).await?.as_ref()).len(),
        None => 0,
    };
    Ok(if pods == 0 && attachments == 0 && disks == 0 {
        Ok(())
    } else {
        Err(format!(
            "{pods} pod(s), {attachments} volume attachment(s), {disks} Azure disk(s) left"
        ))
    })
}

fn disks_of(vm: Option<&crate::azure::model::Vm>) -> Vec<String> {
    vm.map(|v| v.data_disks.iter().map(|d| d.disk_id.clone()).collect())
        .unwrap_or_default()
}

#[async_trait]
impl AzureStep for ReleaseNode {
    const SPEC: &'static ActionSpec = &RELEASE_NODE;
    const INTENT: &'static [&'static str] = &["node", "instance_id"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let node = p.args.display("node");
        Ok(Description {
            summary: format!(
                "wait until node {node}'s pods are gone and its volumes detached; ForceDetach after {}",
                p.args.str("force_detach_after").unwrap_or("10m")
            ),
            changes: vec![crate::actions::azure::change(
                ChangeKind::Action,
                Kind::ScaleSetVm,
                p.args
                    .str("instance_id")
                    .and_then(|i| ResourceId::parse(i).ok())
                    .as_ref(),
                &p.args.display("instance_id"),
                "ForceDetach its data disks, only if still attached past the deadline",
            )],
            calls: vec![
                "GET /api/v1/pods, GET /apis/storage.k8s.io/v1/volumeattachments".into(),
                "GET INSTANCE?$expand=instanceView".into(),
                "PUT INSTANCE (dataDisks toBeDetached, detachOption ForceDetach), past the deadline"
                    .into(),
            ],
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let cluster = cluster_id_arg(args)?;
        let node = str_arg(args, "node")?.to_string();
        let instance = ResourceId::parse(str_arg(args, "instance_id")?)?;
        let after = duration_arg(args, "force_detach_after", DEFAULT_FORCE_AFTER)?;
        let k = connect(&ctx.env, &cluster, args).await?;
        let azure = ctx.env.azure()?.clone();
        let started = since(ctx).await?;
        let mut forced: Vec<String> = ctx
            .checkpoints
            .get("forced")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        // Kubernetes releases the node on its own once it is out of service: give it until
        // the deadline, then force what Azure still shows attached.
        let what = format!("node {node} to be released");
        let check = |in_azure: bool| {
            let (k, azure, node, instance) =
                (k.clone(), azure.clone(), node.clone(), instance.clone());
            async move {
                let machine = match in_azure {
                    true => Some((azure.as_ref(), &instance)),
                    false => None,
                };
                left_on(&k, machine, &node).await
            }
        };
        let released = until(ctx, &what, after + AGREE_DEADLINE, || check(true));
        if tokio::time::timeout(remaining(started, after), released)
            .await
            .is_err()
        {
            let vm = azure.read_vm(&instance, false).await?;
            let disks = disks_of(vm.as_ref());
            if !disks.is_empty() {
                ctx.status(format!(
                    "still attached after {}: ForceDetach of {} (the machine is off)",
                    crate::azure::human(after),
                    disks
                        .iter()
                        .map(|d| short(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                ctx.checkpoint("forced", json!(disks)).await?;
                detach(ctx, &instance, &disks, true, "force_operation").await?;
                forced = disks;
            }
            until(ctx, &what, AGREE_DEADLINE, || check(false)).await?;
        }
        let mut out = output("force_detached", json!(forced));
        out.insert(
            "waited_seconds".into(),
            json!(unix_now().saturating_sub(started)),
        );
        Ok(out)
    }
}

#[async_trait]
impl AzureStep for ReleaseDisk {
    const SPEC: &'static ActionSpec = &RELEASE_DISK;
    const INTENT: &'static [&'static str] = &["disk_id", "holder_id"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let disk = p.args.display("disk_id");
        let holder = p.args.display("holder_id");
        Ok(Description {
            summary: format!(
                "detach disk {} from {}; ForceDetach after {}",
                short(&disk),
                short(&holder),
                p.args.str("force_detach_after").unwrap_or("10m")
            ),
            changes: vec![Change {
                kind: ChangeKind::Update,
                resource_type: "Microsoft.Compute/disks".into(),
                name: short(&disk),
                id: p.args.str("disk_id").map(str::to_string),
                what: format!("detach from {}", short(&holder)),
            }],
            calls: vec![
                "POST VM/attachDetachDataDisks, or PUT INSTANCE (toBeDetached)".into(),
                "the same with detachOption ForceDetach, past the deadline".into(),
                "GET .../disks/DISK until Unattached; GET volumeattachments until none attached"
                    .into(),
            ],
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = ctx.env.azure()?.clone();
        let disk = super::super::azure::id_arg(args, "disk_id", Kind::Disk)?;
        let after = duration_arg(args, "force_detach_after", DEFAULT_FORCE_AFTER)?;
        let started = since(ctx).await?;
        let mut forced = ctx.checkpoints.get("forced") == Some(&json!(true));
        if let Some(holder) = opt_str(args, "holder_id") {
            let holder = ResourceId::parse(holder)?;
            let disks = [disk.to_string()];
            let graceful = detach(ctx, &holder, &disks, false, "operation");
            let done = match forced {
                true => None,
                false => tokio::time::timeout(remaining(started, after), graceful)
                    .await
                    .ok(),
            };
            match done {
                Some(result) => result?,
                None => {
                    ctx.status(format!(
                        "disk {} still attached after {}: ForceDetach",
                        disk.name,
                        crate::azure::human(after)
                    ));
                    ctx.checkpoint("forced", json!(true)).await?;
                    forced = true;
                    detach(ctx, &holder, &disks, true, "force_operation").await?;
                }
            }
        }
        let state = azure
            .read_existing(&disk)
            .await?
            .str("/properties/diskState")
            .unwrap_or("Unattached")
            .to_string();
        if let Some(cluster) = opt_str(args, "cluster_id") {
            let cluster = ResourceId::parse(cluster)?;
            let k = connect(&ctx.env, &cluster, args).await?;
            let held = opt_str(args, "holder_id").map(str::to_string);
            until(
                ctx,
                "Kubernetes to agree the disk is detached",
                AGREE_DEADLINE,
                || {
                    let (k, disk, held) = (k.clone(), disk.clone(), held.clone());
                    async move {
                        let volumes: Vec<String> = k
                            .volumes()
                            .await?
                            .into_iter()
                            .filter(|v| v.handle.as_deref().is_some_and(|h| disk.same_as(h)))
                            .map(|v| v.name)
                            .collect();
                        let nodes = k.nodes().await?;
                        // The holder's node: the attachment Kubernetes must drop.
                        let old: Vec<String> = nodes
                            .iter()
                            .filter(|n| {
                                held.as_deref().is_some_and(|h| {
                                    crate::azure::aks::provider_id(&n.provider_id)
                                        .is_ok_and(|id| id.same_as(h))
                                })
                            })
                            .map(|n| n.name.clone())
                            .collect();
                        let stale = k
                            .attachments()
                            .await?
                            .into_iter()
                            .filter(|a| {
                                old.contains(&a.node)
                                    && a.volume.as_ref().is_some_and(|v| volumes.contains(v))
                            })
                            .count();
                        Ok(if stale == 0 {
                            Ok(())
                        } else {
                            Err(format!("{stale} VolumeAttachment(s) on the old node"))
                        })
                    }
                },
            )
            .await?;
        }
        let mut out = output("forced", json!(forced));
        out.insert("disk_state".into(), json!(state));
        Ok(out)
    }
}
