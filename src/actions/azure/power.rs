//! `azure.vm.deallocate` and `azure.vm.start`: idempotent power changes.

use async_trait::async_trait;
use serde_json::json;

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs, Reconciled};
use crate::azure::VmAction;

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

fn verb(action: VmAction) -> (&'static str, &'static str, &'static str) {
    match action {
        VmAction::Deallocate => ("deallocate", "deallocate", "deallocated"),
        VmAction::Start => ("start", "start", "running"),
    }
}

async fn describe_power(ctx: &PlanContext, args: &PlanArgs, action: VmAction) -> Description {
    let (word, path, target) = verb(action);
    let id = plan_vm_id(ctx, args, "resource_group", "vm");
    let mut notes = Vec::new();
    if let (Some(id), Some(azure)) = (&id, &ctx.env.azure) {
        match azure.get_vm_with_instance_view(id).await {
            Ok(vm) if power_state(&vm) == target => {
                notes.push(format!("already {target}: nothing to do"))
            }
            Ok(vm) => notes.push(format!("now {}", power_state(&vm))),
            Err(e) => notes.push(format!("cannot read it now: {}", e.message)),
        }
    }
    Description {
        summary: format!("{word} VM {}", args.display("vm")),
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
    }
}

/// Bring the VM to the action's power state; a VM already there is left alone.
pub(crate) async fn set_power(
    ctx: &StepContext,
    azure: &Azure,
    id: &ResourceId,
    action: VmAction,
) -> Result<Outputs, ActionError> {
    let (word, _, target) = verb(action);
    let key = format!("{OPERATION}_{word}");
    if let Some(result) = resume_pending(ctx, azure, &key).await {
        result?;
    }
    when_idle(ctx, azure, &format!("{word} {}", id.name), || async {
        let vm = azure.get_vm_with_instance_view(id).await?;
        if power_state(&vm) != target {
            ctx.status(format!("{word} {} (now {})", id.name, power_state(&vm)));
            let started = azure
                .vm_action(id, action, &format!("{word} {}", id.name))
                .await?;
            finish(ctx, azure, started, &key).await?;
        }
        Ok(())
    })
    .await?;
    Ok(power_output(target))
}

fn power_output(state: &str) -> Outputs {
    let mut out = Outputs::new();
    out.insert("power_state".into(), json!(state));
    out
}

/// Adopt when the VM already is where the step takes it and no operation of ours is in flight.
async fn reconcile_power(
    ctx: &StepContext,
    args: &Args,
    action: VmAction,
) -> Result<Reconciled, ActionError> {
    let azure = azure(ctx)?;
    let id = vm_id(azure, args, "resource_group", "vm")?;
    let (word, _, target) = verb(action);
    if pending_operation(ctx, &format!("{OPERATION}_{word}")).is_some() {
        return Ok(Reconciled::Redo);
    }
    let vm = azure.get_vm_with_instance_view(&id).await?;
    Ok(adopt_if(
        (power_state(&vm) == target).then(|| power_output(target)),
    ))
}

#[async_trait]
impl Action for SetPower {
    fn spec(&self) -> &'static ActionSpec {
        match self.to {
            VmAction::Deallocate => &DEALLOCATE,
            VmAction::Start => &START,
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
        let (_, _, target) = verb(self.to);
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "to": target}),
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
        with_progress(ctx, set_power(ctx, azure, &id, self.to)).await
    }

    async fn reconcile(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Reconciled, ActionError> {
        reconcile_power(ctx, args, self.to).await
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
        with_progress(ctx, set_power(ctx, azure, &id, VmAction::Start))
            .await
            .map(|_| ())
    }
}
