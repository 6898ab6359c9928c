//! `azure.vm.deallocate` and `azure.vm.start`: idempotent power changes.

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs};

/// `azure.vm.deallocate` (`to: Deallocate`) and `azure.vm.start` (`to: Start`): one action that
/// brings a VM to a power state, two names.
pub struct SetPower {
    pub to: VmAction,
}

static DEALLOCATE: ActionSpec = vm_spec(
    "azure.vm.deallocate",
    "stop a VM and release its compute (needed before its OS disk can be swapped)",
    &[OutputSpec {
        name: "power_state",
        description: "the power state afterwards (deallocated)",
    }],
);

static START: ActionSpec = vm_spec(
    "azure.vm.start",
    "start a VM",
    &[OutputSpec {
        name: "power_state",
        description: "the power state afterwards (running)",
    }],
);

/// Power states a VM passes through on its way somewhere: wait, do not send another action.
fn transitional(state: &str) -> bool {
    matches!(state, "starting" | "stopping" | "deallocating")
}

async fn describe_power(p: &Plan<'_>, action: VmAction) -> Description {
    let mut notes = Vec::new();
    if let (Some(id), Some(azure)) = (p.vm(), &p.ctx.env.azure) {
        match azure.read_vm(&id, true).await {
            Ok(Some(vm)) => notes.push(format!(
                "now {}",
                vm.power.unwrap_or_else(|| "unknown".into())
            )),
            Ok(None) => notes.push(format!("VM {} does not exist now", id.name)),
            Err(e) => notes.push(format!("cannot read it now: {e}")),
        }
    }
    let path = match action {
        VmAction::Deallocate => "deallocate",
        VmAction::Start => "start",
        VmAction::PowerOff => "powerOff",
    };
    let post = format!("POST {{vm}}/{path}");
    let calls = [
        "GET {vm}?$expand=instanceView",
        post.as_str(),
        "GET <Azure-AsyncOperation> until Succeeded",
    ];
    let summary = format!("{} VM {}", action.verb(), p.args.display("vm"));
    Description {
        notes,
        ..p.vm_change(
            ChangeKind::Action,
            action.verb().to_string(),
            summary,
            &calls,
        )
    }
}

/// Bring the VM to the action's power state; a VM already there is left alone.
pub(crate) async fn set_power(
    ctx: &StepContext,
    id: &ResourceId,
    action: VmAction,
    key: &str,
) -> Result<Outputs, ActionError> {
    let desired = Want::new(
        id,
        format!("{} {}", action.verb(), id.name),
        POWER_DEADLINE,
        |now| {
            let power = existing_vm(now, id)?
                .power
                .unwrap_or_else(|| "unknown".into());
            Ok(if power == action.target() {
                Next::Done
            } else if transitional(&power) {
                Next::Wait(power)
            } else {
                Next::Write(Write::Power(action))
            })
        },
    )
    .with_instance_view();
    ensure(ctx, &desired, key).await?;
    Ok(output("power_state", json!(action.target())))
}

#[async_trait]
impl AzureStep for SetPower {
    // One action, two names: the spec depends on the power state it brings the VM to.
    const SPEC: &'static ActionSpec = &DEALLOCATE;

    fn spec(&self) -> &'static ActionSpec {
        match self.to {
            VmAction::Deallocate => &DEALLOCATE,
            VmAction::Start | VmAction::PowerOff => &START,
        }
    }

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        Ok(describe_power(p, self.to).await)
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "to": self.to.target()}),
            creates: Vec::new(),
            scaffolding: false,
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        set_power(ctx, &id, self.to, OPERATION).await
    }

    /// A deallocate is undone by starting the VM again; a start is left as it is (rollback
    /// ends by starting the VM anyway).
    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        (self.to == VmAction::Deallocate)
            .then(|| format!("start VM {} again", opt_str(args, "vm").unwrap_or("?")))
    }

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        let Undo { ctx, args, .. } = *u;
        if self.to != VmAction::Deallocate {
            return Ok(());
        }
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        set_power(ctx, &id, VmAction::Start, "undo_operation")
            .await
            .map(|_| ())
    }
}

/// `azure.vm.power_off`: a VM or a scale-set instance (an AKS node) stopped, named by its id;
/// its disks stay attached, unlike a deallocation, so that what holds them is visible.
pub struct PowerOff;

static POWER_OFF: ActionSpec = ActionSpec {
    name: "azure.vm.power_off",
    summary:
        "power off a VM or scale-set instance (stopped, not deallocated: its disks stay attached)",
    params: &[Param {
        name: "vm_id",
        ty: ParamType::String,
        required: true,
        description: "the VM's or scale-set instance's ARM id",
    }],
    outputs: &[OutputSpec {
        name: "power_state",
        description: "the power state afterwards (stopped, or deallocated if it already was)",
    }],
    mutates: true,
};

fn machine_id(args: &Args) -> Result<ResourceId, ActionError> {
    let id = ResourceId::parse(str_arg(args, "vm_id")?)?;
    match id.kind {
        Kind::VirtualMachine | Kind::ScaleSetVm => Ok(id),
        other => Err(ActionError::fatal(format!(
            "argument `vm_id` must be a VM or scale-set instance id, got a {} id",
            other.noun()
        ))),
    }
}

#[async_trait]
impl AzureStep for PowerOff {
    const SPEC: &'static ActionSpec = &POWER_OFF;
    const INTENT: &'static [&'static str] = &["vm_id"];

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let id = p.args.str("vm_id").and_then(|i| ResourceId::parse(i).ok());
        let name = id
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or_else(|| p.args.display("vm_id"));
        let kind = id.as_ref().map(|i| i.kind).unwrap_or(Kind::ScaleSetVm);
        let mut notes = Vec::new();
        if let (Some(id), Some(azure)) = (&id, &p.ctx.env.azure) {
            if let Ok(Some(vm)) = azure.read_vm(id, true).await {
                notes.push(format!(
                    "now {}",
                    vm.power.unwrap_or_else(|| "unknown".into())
                ));
            }
        }
        Ok(Description {
            summary: format!("power off {name}"),
            changes: vec![change(
                ChangeKind::Action,
                kind,
                id.as_ref(),
                &name,
                "power off",
            )],
            calls: vec![
                "GET {vm}?$expand=instanceView".into(),
                "POST {vm}/powerOff".into(),
                "GET <Azure-AsyncOperation> until Succeeded".into(),
            ],
            notes,
            ..Default::default()
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let id = machine_id(r.args)?;
        // Deallocated is off too: starting it only to stop it would be wrong.
        let now = azure(r.ctx)?.read_vm(&id, true).await?;
        if now.as_ref().and_then(|v| v.power.as_deref()) == Some("deallocated") {
            return Ok(output("power_state", json!("deallocated")));
        }
        set_power(r.ctx, &id, VmAction::PowerOff, OPERATION).await
    }
}
