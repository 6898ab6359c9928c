//! `aks.pool.ensure_capacity`: the dead node's pods must fit somewhere before it is taken away;
//! if they do not, the pool grows by the shortfall and the new nodes are Ready first.
//! `aks.pool.scale`: a pool at a given count (restoring it at the end).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::actions::azure::{ensure, output, Plan, Run, Want};
use crate::actions::{ActionSpec, ChangeKind, Description, OutputSpec, Outputs};
use crate::azure::aks::scaled_pool_body;
use crate::azure::converge::Next;
use crate::azure::Write;
use crate::kubernetes::{Node, Pod};

pub struct EnsureCapacity;
pub struct ScalePool;

/// A pool's scale creates or deletes machines: minutes each, an hour is stuck.
const SCALE_DEADLINE: Duration = Duration::from_secs(3600);
/// New nodes register and go Ready within minutes of their machine (AKS docs: "a few minutes").
const READY_DEADLINE: Duration = Duration::from_secs(30 * 60);

const P_POOL: Param = Param {
    name: "pool",
    ty: ParamType::String,
    required: true,
    description: "the node pool",
};

static ENSURE: ActionSpec = ActionSpec {
    name: "aks.pool.ensure_capacity",
    summary: "make room for a node's pods on the others: scale its pool up by the shortfall and wait for the new nodes to be Ready",
    params: &[P_CLUSTER_ID, P_POOL, P_NODE, P_KUBECONFIG],
    outputs: &[
        OutputSpec {
            name: "original_count",
            description: "the pool's count before",
        },
        OutputSpec {
            name: "added",
            description: "nodes added for capacity (0: the pods fit)",
        },
    ],
    mutates: true,
};

static SCALE: ActionSpec = ActionSpec {
    name: "aks.pool.scale",
    summary: "bring a node pool to a node count",
    params: &[
        P_CLUSTER_ID,
        P_POOL,
        Param {
            name: "count",
            ty: ParamType::Integer,
            required: true,
            description: "the pool's node count",
        },
    ],
    outputs: &[OutputSpec {
        name: "count",
        description: "the pool's count afterwards",
    }],
    mutates: true,
};

/// How many nodes like `template` must be added so that every pod of `moving` fits, placed
/// first-fit by decreasing CPU as the scheduler's filter would place them one by one (requests
/// against allocatable minus what is already requested there).
pub(crate) fn shortfall(moving: &[Pod], free: &[(u64, u64)], template: (u64, u64)) -> u64 {
    let mut free = free.to_vec();
    let mut pods: Vec<(u64, u64)> = moving
        .iter()
        .map(|p| (p.cpu_millis, p.memory_bytes))
        .collect();
    pods.sort_by(|a, b| b.cmp(a));
    let mut added = 0;
    for (cpu, mem) in pods {
        if cpu > template.0 || mem > template.1 {
            // Fits on no node of this pool: adding nodes would not help.
            continue;
        }
        match free.iter_mut().find(|(c, m)| *c >= cpu && *m >= mem) {
            Some(slot) => {
                slot.0 -= cpu;
                slot.1 -= mem;
            }
            None => {
                added += 1;
                free.push((template.0 - cpu, template.1 - mem));
            }
        }
    }
    added
}

/// A node that takes new pods: Ready, not cordoned, no NoSchedule or NoExecute taint.
pub(crate) fn schedulable(n: &Node) -> bool {
    n.ready
        && !n.unschedulable
        && !n
            .taints
            .iter()
            .any(|t| t.ends_with(":NoSchedule") || t.ends_with(":NoExecute"))
}

/// The room left on each schedulable node but `except`: allocatable minus the requests of the
/// pods bound to it.
pub(crate) fn free_room(nodes: &[Node], pods: &[Pod], except: &str) -> Vec<(u64, u64)> {
    nodes
        .iter()
        .filter(|n| n.name != except && schedulable(n))
        .map(|n| {
            let used = pods
                .iter()
                .filter(|p| p.node.as_deref() == Some(n.name.as_str()) && !p.finished());
            let (cpu, mem) = used.fold((0, 0), |(c, m), p| (c + p.cpu_millis, m + p.memory_bytes));
            (
                n.cpu_millis.saturating_sub(cpu),
                n.memory_bytes.saturating_sub(mem),
            )
        })
        .collect()
}

/// "Pool `pool` has `count` nodes" (with `at_least`, "at least `count`": a pool someone else
/// grew further meanwhile is not shrunk), by a PUT of the pool as read with its count changed.
pub(crate) async fn scale(
    ctx: &StepContext,
    pool: &ResourceId,
    count: u64,
    at_least: bool,
    key: &str,
) -> Result<(), ActionError> {
    let (_, name) = pool.parent_and_child().unwrap_or_default();
    let desired = Want::new(
        pool,
        format!("node pool {name} at {count} nodes"),
        SCALE_DEADLINE,
        move |now| {
            let now = now.ok_or_else(|| {
                ActionError::fatal(format!("node pool {} does not exist", pool.name))
            })?;
            let now_count = now.raw["properties"]["count"].as_u64().unwrap_or(0);
            Ok(if now_count == count || (at_least && now_count > count) {
                Next::Done
            } else {
                Next::Write(Write::Put(scaled_pool_body(now, count)))
            })
        },
    );
    ensure(ctx, &desired, key).await.map(|_| ())
}

/// Ready nodes of `pool`, but `except`.
fn ready_in_pool(nodes: &[Node], pool: &str, except: &str) -> usize {
    nodes
        .iter()
        .filter(|n| n.name != except && n.ready)
        .filter(|n| {
            n.labels.get("agentpool").map(String::as_str) == Some(pool)
                || n.labels
                    .get("kubernetes.azure.com/agentpool")
                    .map(String::as_str)
                    == Some(pool)
        })
        .count()
}

/// What making room for `node`'s pods takes now: the pods that must move, how many nodes the
/// pool lacks for them (nodes like `node` itself), and the pool's count.
struct Room {
    moving: Vec<Pod>,
    added: u64,
    count: u64,
}

async fn assess(
    env: &crate::actions::Env,
    k: &crate::kubernetes::Cluster,
    pool: &ResourceId,
    node: &str,
) -> Result<Room, ActionError> {
    let (nodes, pods) = (k.nodes().await?, k.pods().await?);
    let moving = displaced(&pods, node);
    let template = nodes
        .iter()
        .find(|n| n.name == node)
        .map(|n| (n.cpu_millis, n.memory_bytes))
        .unwrap_or_default();
    let added = shortfall(&moving, &free_room(&nodes, &pods, node), template);
    let count = env.azure()?.read_existing(pool).await?.raw["properties"]["count"]
        .as_u64()
        .unwrap_or(0);
    Ok(Room {
        moving,
        added,
        count,
    })
}

#[async_trait]
impl AzureStep for EnsureCapacity {
    const SPEC: &'static ActionSpec = &ENSURE;
    const INTENT: &'static [&'static str] = &["cluster_id", "pool", "node"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let mut notes = Vec::new();
        let mut changes = Vec::new();
        let node = args.display("node");
        if let Some(found) = plan_connect(ctx, args).await {
            match found {
                Ok((id, k)) => {
                    let pool = args.display("pool");
                    let Room {
                        moving,
                        added,
                        count,
                    } = assess(&ctx.env, &k, &pool_id(&id, &pool), &node).await?;
                    notes.push(format!(
                        "now: {} pod(s) to move ({}m CPU, {} MiB requested); {}",
                        moving.len(),
                        moving.iter().map(|p| p.cpu_millis).sum::<u64>(),
                        moving.iter().map(|p| p.memory_bytes).sum::<u64>() >> 20,
                        if added == 0 {
                            "they fit on the other nodes".to_string()
                        } else {
                            format!("they do not fit: {added} node(s) more")
                        }
                    ));
                    if added > 0 {
                        changes.push(pool_change(
                            &id,
                            &pool,
                            format!("count {count} -> {}", count + added),
                        ));
                    }
                }
                Err(e) => notes.push(format!("cannot read the cluster now: {e}")),
            }
        }
        Ok(Description {
            summary: format!("make room for node {node}'s pods"),
            changes,
            calls: vec![
                "GET /api/v1/nodes, GET /api/v1/pods".into(),
                "PUT .../agentPools/POOL (count + shortfall), if they do not fit".into(),
                "GET <Azure-AsyncOperation> until Succeeded; GET /api/v1/nodes until Ready".into(),
            ],
            notes,
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let cluster = cluster_id_arg(args)?;
        let pool_name = str_arg(args, "pool")?;
        let node = str_arg(args, "node")?;
        let pool = pool_id(&cluster, pool_name);
        let k = connect(&ctx.env, &cluster, args).await?;
        // Decided once: a resumed step scales to the count it chose, not to a new shortfall
        // computed while its own new nodes come up.
        let (original, added) = match (
            ctx.checkpoints
                .get("original_count")
                .and_then(|v| v.as_u64()),
            ctx.checkpoints.get("added").and_then(|v| v.as_u64()),
        ) {
            (Some(o), Some(a)) => (o, a),
            _ => {
                let room = assess(&ctx.env, &k, &pool, node).await?;
                let (original, added) = (room.count, room.added);
                ctx.checkpoint("original_count", json!(original)).await?;
                ctx.checkpoint("added", json!(added)).await?;
                (original, added)
            }
        };
        if added > 0 {
            ctx.status(format!(
                "the pods do not fit on the other nodes: scaling pool {pool_name} {original} -> {}",
                original + added
            ));
            scale(ctx, &pool, original + added, true, "operation").await?;
            // The broken node is one of the original count and is not Ready.
            let want = (original + added - 1) as usize;
            until(
                ctx,
                &format!("{added} new node(s) Ready"),
                READY_DEADLINE,
                || {
                    let k = k.clone();
                    async move {
                        let nodes = k.nodes().await?;
                        let ready = ready_in_pool(&nodes, pool_name, node);
                        Ok(if ready >= want {
                            Ok(())
                        } else {
                            Err(format!("{ready} of {want} nodes Ready"))
                        })
                    }
                },
            )
            .await?;
        }
        let mut out = output("original_count", json!(original));
        out.insert("added".into(), json!(added));
        Ok(out)
    }
}

fn pool_change(cluster: &ResourceId, pool: &str, what: String) -> crate::actions::Change {
    crate::actions::Change {
        kind: ChangeKind::Update,
        resource_type: POOL_TYPE.into(),
        name: pool.to_string(),
        id: Some(pool_id(cluster, pool).to_string()),
        what,
    }
}

const POOL_TYPE: &str = "Microsoft.ContainerService/managedClusters/agentPools";

#[async_trait]
impl AzureStep for ScalePool {
    const SPEC: &'static ActionSpec = &SCALE;
    const INTENT: &'static [&'static str] = &["cluster_id", "pool", "count"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { args, .. } = *p;
        let pool = args.display("pool");
        let count = args.display("count");
        let changes = match args.str("cluster_id").map(ResourceId::parse) {
            Some(Ok(id)) => vec![pool_change(&id, &pool, format!("count -> {count}"))],
            _ => vec![crate::actions::Change {
                kind: ChangeKind::Update,
                resource_type: POOL_TYPE.into(),
                name: pool.clone(),
                id: None,
                what: format!("count -> {count}"),
            }],
        };
        Ok(Description {
            summary: format!("bring node pool {pool} to {count} nodes"),
            changes,
            calls: vec![
                "GET .../agentPools/POOL".into(),
                "PUT .../agentPools/POOL, unless the count is already so".into(),
            ],
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let cluster = cluster_id_arg(args)?;
        let pool = pool_id(&cluster, str_arg(args, "pool")?);
        let count = args
            .get("count")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| ActionError::fatal("argument `count` must be a whole number"))?;
        scale(ctx, &pool, count, false, "operation").await?;
        Ok(output("count", json!(count)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: u64) -> Pod {
        Pod {
            namespace: "prod".into(),
            name: format!("p{cpu}"),
            node: Some("dead".into()),
            phase: "Running".into(),
            deleting: false,
            ready: true,
            owner: None,
            cpu_millis: cpu,
            memory_bytes: 1 << 30,
            claims: vec![],
        }
    }

    #[test]
    fn pods_that_fit_need_no_node_and_those_that_do_not_need_the_fewest() {
        let gig = 1u64 << 30;
        let free = [(1000, 8 * gig), (500, 8 * gig)];
        assert_eq!(shortfall(&[pod(900), pod(400)], &free, (3860, 12 * gig)), 0);
        // 2 × 1500m no longer fit in 1000m + 500m: one new node takes both.
        assert_eq!(
            shortfall(&[pod(1500), pod(1500)], &free, (3860, 12 * gig)),
            1
        );
        // A sum that fits is not enough when no single node has the room.
        assert_eq!(shortfall(&[pod(1200)], &free, (3860, 12 * gig)), 1);
    }
}
