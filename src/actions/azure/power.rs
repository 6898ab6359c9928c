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

static DEALLOCATE: ActionSpec = ActionSpec {
    name: "azure.vm.deallocate",
    summary: "stop a VM and release its compute (needed before its OS disk can be swapped)",
    params: &[P_RESOURCE_GROUP, P_VM, P_SUBSCRIPTION],
    outputs: &[OutputSpec {
        name: "power_state",
        description: "the power state afterwards (deallocated)",
    }],
    mutates: true,
};

static START: ActionSpec = ActionSpec {
    name: "azure.vm.start",
    summary: "start a VM",
    params: &[P_RESOURCE_GROUP, P_VM, P_SUBSCRIPTION],
    outputs: &[OutputSpec {
        name: "power_state",
        description: "the power state afterwards (running)",
    }],
    mutates: true,
};

/// Power states a VM passes through on its way somewhere: wait, do not send another action.
fn transitional(state: &str) -> bool {
    matches!(state, "starting" | "stopping" | "deallocating")
}

async fn describe_power(ctx: &PlanContext, args: &PlanArgs, action: VmAction) -> Description {
    let id = plan_vm_id(ctx, args, "resource_group", "vm");
    let mut notes = Vec::new();
    if let (Some(id), Some(azure)) = (&id, &ctx.env.azure) {
        match azure.read_vm(id, true).await {
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
    Description {
        summary: format!("{} VM {}", action.verb(), args.display("vm")),
        changes: vec![change(
            ChangeKind::Action,
            Kind::VirtualMachine,
            id.as_ref(),
            &args.display("vm"),
            action.verb(),
        )],
        calls: vec![
            call(
                "GET",
                id.as_ref(),
                "?$expand=instanceView",
                ".../virtualMachines/VM",
            ),
            call(
                "POST",
                id.as_ref(),
                &format!("/{path}"),
                ".../virtualMachines/VM",
            ),
            "GET <Azure-AsyncOperation> until Succeeded".into(),
        ],
        notes,
        ..Default::default()
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
    let mut out = Outputs::new();
    out.insert("power_state".into(), json!(action.target()));
    Ok(out)
}

#[async_trait]
impl Action for SetPower {
    fn spec(&self) -> &'static ActionSpec {
        match self.to {
            VmAction::Deallocate => &DEALLOCATE,
            VmAction::Start | VmAction::PowerOff => &START,
        }
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        Ok(describe_power(ctx, args, self.to).await)
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "to": self.to.target()}),
            creates: Vec::new(),
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        with_progress(ctx, set_power(ctx, &id, self.to, OPERATION)).await
    }

    /// A deallocate is undone by starting the VM again; a start is left as it is (rollback
    /// ends by starting the VM anyway).
    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        (self.to == VmAction::Deallocate)
            .then(|| format!("start VM {} again", opt_str(args, "vm").unwrap_or("?")))
    }

    async fn undo(
        &self,
        ctx: &StepContext,
        args: &Args,
        _outputs: &Outputs,
    ) -> Result<(), ActionError> {
        if self.to != VmAction::Deallocate {
            return Ok(());
        }
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        with_progress(ctx, set_power(ctx, &id, VmAction::Start, "undo_operation"))
            .await
            .map(|_| ())
    }
}
