//! `aks.node.cordon`: no new pod lands on the node. `aks.node.out_of_service`: the taint that
//! lets Kubernetes force-delete the node's pods and detach their volumes, put on only once Azure
//! (not Kubernetes) says the machine is off: the taint on a node that still runs would let two
//! pods write one disk.

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::actions::azure::{output, Plan, Run, Undo};
use crate::actions::{ActionSpec, Change, ChangeKind, Description, OutputSpec, Outputs};
use crate::kubernetes::OUT_OF_SERVICE;

pub struct Cordon;
pub struct OutOfService;

static CORDON: ActionSpec = ActionSpec {
    name: "aks.node.cordon",
    summary: "cordon a node (kubectl cordon): no new pod is scheduled on it",
    params: &[P_CLUSTER_ID, P_NODE, P_KUBECONFIG],
    outputs: &[OutputSpec {
        name: "node",
        description: "the node cordoned",
    }],
    mutates: true,
};

static OUT_OF_SERVICE_SPEC: ActionSpec = ActionSpec {
    name: "aks.node.out_of_service",
    summary: "taint a node that Azure reports off node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
    params: &[
        P_CLUSTER_ID,
        P_NODE,
        P_INSTANCE,
        P_KUBECONFIG,
    ],
    outputs: &[OutputSpec {
        name: "taint",
        description: "the taint put on",
    }],
    mutates: true,
};

const TAINT_VALUE: &str = "nodeshutdown";
const TAINT_EFFECT: &str = "NoExecute";

fn node_change(node: &str, what: &str) -> Change {
    Change {
        kind: ChangeKind::Update,
        resource_type: "v1/Node".into(),
        name: node.to_string(),
        id: None,
        what: what.into(),
    }
}

#[async_trait]
impl AzureStep for Cordon {
    const SPEC: &'static ActionSpec = &CORDON;
    const INTENT: &'static [&'static str] = &["cluster_id", "node"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let node = p.args.display("node");
        Ok(Description {
            summary: format!("cordon node {node}"),
            changes: vec![node_change(&node, "spec.unschedulable = true")],
            calls: vec!["PATCH /api/v1/nodes/NODE".into()],
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let cluster = cluster_id_arg(args)?;
        let node = str_arg(args, "node")?;
        let k = connect(&ctx.env, &cluster, args).await?;
        // A node already gone (deleted by an earlier run's end) has nothing left to cordon.
        if k.node(node).await?.is_some_and(|n| !n.unschedulable) {
            k.cordon(node, true).await?;
        }
        Ok(output("node", json!(node)))
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        Some(format!(
            "uncordon node {}",
            opt_str(args, "node").unwrap_or("?")
        ))
    }

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        let Undo { ctx, args, .. } = *u;
        let cluster = cluster_id_arg(args)?;
        let node = str_arg(args, "node")?;
        let k = connect(&ctx.env, &cluster, args).await?;
        if k.node(node).await?.is_some_and(|n| n.unschedulable) {
            k.cordon(node, false).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl AzureStep for OutOfService {
    const SPEC: &'static ActionSpec = &OUT_OF_SERVICE_SPEC;
    const INTENT: &'static [&'static str] = &["cluster_id", "node", "instance_id"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let node = p.args.display("node");
        Ok(Description {
            summary: format!("mark node {node} out of service, once Azure reports its machine off"),
            changes: vec![node_change(
                &node,
                &format!("taint {OUT_OF_SERVICE}={TAINT_VALUE}:{TAINT_EFFECT}"),
            )],
            calls: vec![
                "GET INSTANCE?$expand=instanceView (must be stopped or deallocated)".into(),
                "GET /api/v1/nodes/NODE, PATCH /api/v1/nodes/NODE".into(),
            ],
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let cluster = cluster_id_arg(args)?;
        let node = str_arg(args, "node")?;
        let instance = ResourceId::parse(str_arg(args, "instance_id")?)?;
        let vm = ctx.env.azure()?.read_vm(&instance, true).await?;
        let power = vm.as_ref().and_then(|v| v.power.clone());
        // Gone counts as off: a machine that no longer exists writes nothing.
        if let Some(p) = power
            .as_deref()
            .filter(|p| !matches!(*p, "stopped" | "deallocated"))
        {
            return Err(ActionError::fatal(format!(
                "Azure reports {} {p}: the out-of-service taint is only for a machine that is off",
                instance.name
            ))
            .with_hint(
                "power it off first (the workflow's power-off step), then `rescue resume`",
            ));
        }
        let k = connect(&ctx.env, &cluster, args).await?;
        if k.node(node).await?.is_some() {
            k.taint(node, OUT_OF_SERVICE, TAINT_VALUE, TAINT_EFFECT)
                .await?;
        }
        Ok(output(
            "taint",
            json!(format!("{OUT_OF_SERVICE}={TAINT_VALUE}:{TAINT_EFFECT}")),
        ))
    }
}
