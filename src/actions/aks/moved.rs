//! `aks.pods.wait_moved`: service is back when every workload that had a pod on the dead node
//! has all its pods Running and ready elsewhere, and each claim they mount is attached to the
//! node they run on.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::azure::{output, Plan, Run};
use crate::actions::{ActionSpec, Description, OutputSpec, Outputs};

pub struct WaitMoved;

/// Rescheduling, a CSI attach and a container start: minutes; half an hour is stuck.
const MOVE_DEADLINE: Duration = Duration::from_secs(30 * 60);

static WAIT_MOVED: ActionSpec = ActionSpec {
    name: "aks.pods.wait_moved",
    summary:
        "wait until the pods a node had run elsewhere, Ready, with their volumes attached there",
    params: &[
        P_CLUSTER_ID,
        P_NODE,
        Param {
            name: "owners",
            ty: ParamType::Object,
            required: true,
            description: "workload (`NAMESPACE/KIND/NAME`) -> pods it wants running (`aks.node.find`'s `owners`)",
        },
        Param {
            name: "not_ready_since",
            ty: ParamType::String,
            required: false,
            description: "when the node stopped being Ready (`aks.node.find`'s), for how long service was degraded",
        },
        P_KUBECONFIG,
    ],
    outputs: &[
        OutputSpec {
            name: "moves",
            description: "for each workload, where its pods run now",
        },
        OutputSpec {
            name: "restored_after_seconds",
            description: "from the run's start until every pod ran again",
        },
        OutputSpec {
            name: "degraded_seconds",
            description: "from the node's NotReady until every pod ran again (null: not known)",
        },
    ],
    mutates: false,
};

/// For each owner, its pods that serve (Running, ready, not deleting, off `node`) with the node
/// they are on; the reason it is not done yet, if it is not.
async fn serving(
    k: &crate::kubernetes::Cluster,
    node: &str,
    owners: &BTreeMap<String, u64>,
) -> Result<Result<Value, String>, ActionError> {
    let pods = k.pods().await?;
    let volumes = k.volumes().await?;
    let attachments = k.attachments().await?;
    let mut moves = serde_json::Map::new();
    let mut missing = Vec::new();
    for (owner, want) in owners {
        let mut placed = Vec::new();
        let of_owner = |p: &&crate::kubernetes::Pod| {
            p.owner
                .as_ref()
                .is_some_and(|o| format!("{}/{o}", p.namespace) == *owner)
        };
        for p in pods.iter().filter(of_owner) {
            let Some(on) = p.node.as_deref() else {
                continue;
            };
            if on == node || p.deleting || p.phase != "Running" || !p.ready {
                continue;
            }
            let unattached = p.claims.iter().find(|claim| {
                let claim = format!("{}/{claim}", p.namespace);
                let pv = volumes
                    .iter()
                    .find(|v| v.claim.as_deref() == Some(claim.as_str()));
                !pv.is_some_and(|pv| {
                    attachments.iter().any(|a| {
                        a.node == on && a.attached && a.volume.as_deref() == Some(pv.name.as_str())
                    })
                })
            });
            if let Some(claim) = unattached {
                missing.push(format!("{}'s claim {claim} not attached on {on}", p.key()));
                continue;
            }
            placed.push(json!({"pod": p.key(), "node": on}));
        }
        if (placed.len() as u64) < *want {
            missing.push(format!("{owner} {} of {want} serving", placed.len()));
        }
        moves.insert(owner.clone(), Value::Array(placed));
    }
    Ok(if missing.is_empty() {
        Ok(Value::Object(moves))
    } else {
        Err(missing.join("; "))
    })
}

#[async_trait]
impl AzureStep for WaitMoved {
    const SPEC: &'static ActionSpec = &WAIT_MOVED;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        Ok(Description {
            summary: format!(
                "wait until node {}'s workloads run elsewhere with their volumes",
                p.args.display("node")
            ),
            calls: vec![
                "GET /api/v1/pods, /api/v1/persistentvolumes, volumeattachments until they do"
                    .into(),
            ],
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let cluster = cluster_id_arg(args)?;
        let node = str_arg(args, "node")?.to_string();
        let owners: BTreeMap<String, u64> = args
            .get("owners")
            .cloned()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| ActionError::fatal("argument `owners` must map owners to pod counts"))?;
        let k = connect(&ctx.env, &cluster, args).await?;
        let moves = until(ctx, "the workloads to serve again", MOVE_DEADLINE, || {
            let (k, node, owners) = (k.clone(), node.clone(), owners.clone());
            async move { serving(&k, &node, &owners).await }
        })
        .await?;
        let now = time::OffsetDateTime::now_utc();
        let restored = (now - ctx.run_started).whole_seconds();
        let degraded = opt_str(args, "not_ready_since")
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|since| (now - since).whole_seconds().max(0));
        let mut out = output("moves", moves);
        out.insert("restored_after_seconds".into(), json!(restored.max(0)));
        out.insert("degraded_seconds".into(), json!(degraded));
        Ok(out)
    }
}
