//! `aks.pool.delete_machine`: the broken machine is deleted through its pool (`deleteMachines`),
//! so that AKS, not an IaaS call, removes the instance and its node, and the pool's count
//! follows. AKS's `delete-machines` does no cordon or drain: the steps before it did that.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::actions::azure::{output, Plan, Run};
use crate::actions::{ActionSpec, Change, ChangeKind, Description, OutputSpec, Outputs};
use crate::azure::aks::delete_machines_body;
use crate::azure::lro::{Ended, Operation, Started};
use crate::azure::model::Provisioning;
use crate::azure::{ErrorKind, Write};

pub struct DeleteMachine;

const DELETE_DEADLINE: Duration = Duration::from_secs(3600);

static DELETE_MACHINE: ActionSpec = ActionSpec {
    name: "aks.pool.delete_machine",
    summary: "delete a node's machine through its node pool (deleteMachines)",
    params: &[
        P_CLUSTER_ID,
        Param {
            name: "pool",
            ty: ParamType::String,
            required: true,
            description: "the node pool",
        },
        P_NODE,
        P_INSTANCE,
        Param {
            name: "snapshot_id",
            ty: ParamType::String,
            required: false,
            description: "the OS disk's snapshot, which must exist before the machine (and its OS disk with it) is deleted",
        },
    ],
    outputs: &[OutputSpec {
        name: "deleted",
        description: "the machine deleted",
    }],
    mutates: true,
};

#[async_trait]
impl AzureStep for DeleteMachine {
    const SPEC: &'static ActionSpec = &DELETE_MACHINE;
    const INTENT: &'static [&'static str] = &["cluster_id", "pool", "node", "instance_id"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let node = p.args.display("node");
        Ok(Description {
            summary: format!(
                "delete node {node}'s machine through pool {}",
                p.args.display("pool")
            ),
            changes: vec![Change {
                kind: ChangeKind::Delete,
                resource_type: "Microsoft.Compute/virtualMachineScaleSets/virtualMachines".into(),
                name: node.clone(),
                id: p.args.str("instance_id").map(str::to_string),
                what: "deleteMachines (its OS disk goes with it; the snapshot stays)".into(),
            }],
            calls: vec![
                "GET INSTANCE".into(),
                "POST .../agentPools/POOL/deleteMachines {machineNames: [NODE]}".into(),
                "GET <Location> until Succeeded".into(),
            ],
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = ctx.env.azure()?;
        let cluster = cluster_id_arg(args)?;
        let pool = pool_id(&cluster, str_arg(args, "pool")?);
        let node = str_arg(args, "node")?;
        let instance = ResourceId::parse(str_arg(args, "instance_id")?)?;
        // A Uniform instance's OS disk is deleted with it: its content must survive somewhere.
        if let Some(snapshot) = opt_str(args, "snapshot_id") {
            let id = ResourceId::parse(snapshot)?;
            let kept = azure.read(&id).await?;
            if !kept.is_some_and(|s| s.provisioning == Provisioning::Succeeded) {
                return Err(ActionError::fatal(format!(
                    "snapshot {} of the node's OS disk is not there (or not finished): the machine is not deleted without it",
                    id.name
                ))
                .with_hint("check the snapshot step (`rescue status RUN_ID`), then `rescue resume RUN_ID`"));
            }
        }
        let started = Instant::now();
        let deadline = started + DELETE_DEADLINE;
        let mut pending: Option<Operation> = ctx
            .checkpoints
            .get("operation")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        loop {
            // An operation sent by an earlier attempt is followed, never sent again.
            if let Some(op) = pending.take() {
                if let Ended::Failed(e) = azure.poll(&op, deadline).await? {
                    ctx.checkpoint("operation", serde_json::Value::Null).await?;
                    return Err(e.into());
                }
                ctx.checkpoint("operation", serde_json::Value::Null).await?;
            }
            if azure.read(&instance).await?.is_none() {
                break;
            }
            let now = azure.read_existing(&pool).await?;
            if let Provisioning::InProgress(state) = &now.provisioning {
                ctx.status(format!("pool is {state}: waiting to delete {node}"));
            } else {
                let body = delete_machines_body(&[node.to_string()]);
                let label = format!("delete machine {node}");
                match azure
                    .write(&pool, &Write::DeleteMachines(body), None, &label)
                    .await
                {
                    Ok(Started::Pending(op)) => {
                        ctx.checkpoint("operation", json!(op)).await?;
                        pending = Some(op);
                        continue;
                    }
                    Ok(Started::Done(_)) => continue,
                    // Another operation on the cluster (its own reconcile, a scale) is running.
                    Err(e) if e.kind == ErrorKind::Conflict => {
                        ctx.status(format!("the cluster is busy: waiting to delete {node}"))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if Instant::now() > deadline {
                return Err(ActionError::retryable(format!(
                    "machine {node} still exists after {}",
                    crate::azure::human(started.elapsed())
                ))
                .with_hint("`rescue resume` to try again"));
            }
            azure
                .wait(crate::azure::lro::unhinted(started.elapsed()))
                .await;
        }
        Ok(output("deleted", json!(node)))
    }
}
