//! AKS actions (`aks.*`): restoring service when a node dies, with the Azure side (node pools,
//! scale-set instances) through [`crate::azure`] and the Kubernetes side (nodes, pods,
//! VolumeAttachments) through [`crate::kubernetes`].
//!
//! What they share lives here: the connection to a cluster's API server (one per cluster and
//! process, from the user's kubeconfig or the cluster admin's), the arguments naming a cluster,
//! and the wait that polls until the cluster is as wanted.

mod capacity;
mod find;
mod machines;
mod moved;
mod node;
mod release;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::azure::{opt_str, str_arg, subscription, AzureStep, Step};
use super::{Action, ActionError, Args, Param, ParamType, PlanArgs, PlanContext, StepContext};
use crate::azure::ids::{Kind, ResourceId};
use crate::azure::Azure;
use crate::kubernetes::{self, Cluster};

pub fn all() -> Vec<Arc<dyn Action>> {
    fn step<T: AzureStep>(action: T) -> Arc<dyn Action> {
        Arc::new(Step(action))
    }
    vec![
        step(find::FindNode),
        step(find::FindHolder),
        step(capacity::EnsureCapacity),
        step(capacity::ScalePool),
        step(node::Cordon),
        step(node::OutOfService),
        step(release::ReleaseNode),
        step(release::ReleaseDisk),
        step(moved::WaitMoved),
        step(machines::DeleteMachine),
    ]
}

impl From<kubernetes::Error> for ActionError {
    fn from(e: kubernetes::Error) -> ActionError {
        // The API server down or overloaded is worth another attempt; a refusal is not.
        let retryable = e.status.is_none_or(|s| s >= 500 || s == 429);
        let mut out = ActionError::fatal(e.to_string());
        out.retryable = retryable;
        match e.status {
            Some(401 | 403) => out.with_hint(
                "the kubeconfig's user may not do this: pass `kubeconfig` with a cluster admin's, \
                 or leave it out to use the cluster admin credentials from Azure",
            ),
            _ => out,
        }
    }
}

/// One connection per cluster for the process: the admin credentials are fetched once.
#[derive(Default)]
pub struct Clusters(Mutex<BTreeMap<String, Cluster>>);

// Parameters the AKS actions share.
pub(crate) const P_CLUSTER_ID: Param = Param {
    name: "cluster_id",
    ty: ParamType::String,
    required: true,
    description: "the AKS cluster's ARM id (`aks.node.find` outputs it)",
};
pub(crate) const P_NODE: Param = Param {
    name: "node",
    ty: ParamType::String,
    required: true,
    description: "the Kubernetes node name (`kubectl get nodes`)",
};
pub(crate) const P_INSTANCE: Param = Param {
    name: "instance_id",
    ty: ParamType::String,
    required: true,
    description: "the scale-set instance behind the node (`aks.node.find` outputs it)",
};
pub(crate) const P_KUBECONFIG: Param = Param {
    name: "kubeconfig",
    ty: ParamType::String,
    required: false,
    description: "a kubeconfig file to reach the API server with (default: the cluster admin's, \
                  from Azure, as `az aks get-credentials --admin` fetches it)",
};

/// The cluster named by `resource_group` and `cluster`.
pub(crate) fn cluster_arg(azure: &Azure, args: &Args) -> Result<ResourceId, ActionError> {
    Ok(ResourceId::new(
        &subscription(azure, args),
        str_arg(args, "resource_group")?,
        Kind::ManagedCluster,
        str_arg(args, "cluster")?,
    ))
}

/// The cluster of a `cluster_id` argument.
pub(crate) fn cluster_id_arg(args: &Args) -> Result<ResourceId, ActionError> {
    super::azure::id_arg(args, "cluster_id", Kind::ManagedCluster)
}

/// The agent pool `pool` of `cluster`.
pub(crate) fn pool_id(cluster: &ResourceId, pool: &str) -> ResourceId {
    ResourceId::new(
        &cluster.subscription,
        &cluster.resource_group,
        Kind::AgentPool,
        &format!("{}/agentPools/{pool}", cluster.name),
    )
}

/// The API server of `cluster`, with the step's `kubeconfig` or the admin's from Azure.
pub(crate) async fn connect(
    env: &super::Env,
    cluster: &ResourceId,
    args: &Args,
) -> Result<Cluster, ActionError> {
    let key = cluster.to_string().to_ascii_lowercase();
    if let Some(c) = env
        .clusters
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return Ok(c.clone());
    }
    let text = match opt_str(args, "kubeconfig") {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            ActionError::fatal(format!("cannot read kubeconfig {path}: {e}"))
                .with_hint("give the path of a readable kubeconfig, or leave `kubeconfig` out")
        })?,
        None => env.azure()?.admin_kubeconfig(cluster).await?,
    };
    let c = Cluster::connect(&text).await?;
    env.clusters
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, c.clone());
    Ok(c)
}

/// [`connect`] for a plan: the cluster when its arguments are known.
pub(crate) async fn plan_connect(
    ctx: &PlanContext,
    args: &PlanArgs,
) -> Option<Result<(ResourceId, Cluster), ActionError>> {
    let id = ResourceId::parse(args.str("cluster_id")?).ok()?;
    ctx.env.azure.as_ref()?;
    Some(connect(&ctx.env, &id, &args.known).await.map(|c| (id, c)))
}

/// A duration argument (`10m`, `90s`), else `default`.
pub(crate) fn duration_arg(
    args: &Args,
    name: &str,
    default: Duration,
) -> Result<Duration, ActionError> {
    match opt_str(args, name) {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            ActionError::refused(format!(
                "argument `{name}`: `{text}` is not a duration ({e})"
            ))
            .with_hint("write it as 90s, 10m or 1h")
        }),
    }
}

/// Poll `check` until it says done (`Some`), with the step's status saying what it waits for
/// and for how long; past `deadline`, fail with `check`'s last reason. Polls start fast (a
/// cluster's controllers act within seconds) and slow down to 2 s: a few GETs to the API
/// server, cheaper than the seconds of service they could otherwise miss.
pub(crate) async fn until<T, F, Fut>(
    ctx: &StepContext,
    what: &str,
    deadline: Duration,
    mut check: F,
) -> Result<T, ActionError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ActionError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let why = match check().await? {
            Ok(done) => return Ok(done),
            Err(why) => why,
        };
        let waited = started.elapsed();
        if waited > deadline {
            return Err(ActionError::retryable(format!(
                "{what}: still {why} after {}",
                crate::azure::human(waited)
            ))
            .with_hint("look at the cluster (`kubectl get nodes,pods -A -o wide`), then `rescue resume` to wait again"));
        }
        ctx.status(format!(
            "waiting for {what}: {why} ({})",
            crate::azure::human(waited)
        ));
        match &ctx.env.azure {
            Some(azure) => azure.wait(delay).await,
            None => tokio::time::sleep(delay).await,
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The pods that have to move off `node`: not a DaemonSet's, not finished.
pub(crate) fn displaced(pods: &[kubernetes::Pod], node: &str) -> Vec<kubernetes::Pod> {
    pods.iter()
        .filter(|p| p.node.as_deref() == Some(node) && !p.is_daemon() && !p.finished())
        .cloned()
        .collect()
}

/// A pod as steps pass it on (`aks.node.find`'s `pods`).
pub(crate) fn pod_json(p: &kubernetes::Pod) -> Value {
    json!({
        "pod": p.key(),
        "owner": p.owner,
        "node": p.node,
        "cpu_millis": p.cpu_millis,
        "memory_bytes": p.memory_bytes,
        "claims": p.claims,
    })
}
