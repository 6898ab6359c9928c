//! `azure.vm.lock` and `azure.vm.unlock`: claim a VM for one run in Azure itself, so that two
//! engineers (two machines, two journals) cannot both repair it. The claim is a `rescue-run` tag
//! on the VM ("RUN_ID host=HOST started=TIME") written with `If-Match: ETAG`: of two writers that
//! read the same ETag, Azure accepts one and answers the other 412, which then sees the winner.

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs};

pub struct Lock;
pub struct Unlock;

static LOCK: ActionSpec = ActionSpec {
    name: "azure.vm.lock",
    summary: "claim a VM for this run (a `rescue-run` tag written with If-Match); refused (exit 3) while another run holds it",
    params: &[P_RESOURCE_GROUP, P_VM, P_SUBSCRIPTION],
    outputs: &[OutputSpec { name: "holder", description: "the lock tag's value: RUN_ID host=HOST started=TIME" }],
    mutates: true,
};

static UNLOCK: ActionSpec = ActionSpec {
    name: "azure.vm.unlock",
    summary: "release this run's claim on a VM (nothing to do when it holds none)",
    params: &[P_RESOURCE_GROUP, P_VM, P_SUBSCRIPTION],
    outputs: &[OutputSpec {
        name: "released",
        description: "true when this run's lock tag was removed",
    }],
    mutates: true,
};

/// Writers that lose an If-Match race re-read and try again this often before giving up.
const RACES: u32 = 5;

/// Who holds a VM, from its lock tag.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub run_id: String,
    pub host: String,
    pub started: String,
}

impl Holder {
    fn parse(value: &str) -> Holder {
        let mut words = value.split_whitespace();
        let run_id = words.next().unwrap_or_default().to_string();
        let mut holder = Holder {
            run_id,
            host: "?".into(),
            started: "?".into(),
        };
        for word in words {
            match word.split_once('=') {
                Some(("host", h)) => holder.host = h.to_string(),
                Some(("started", s)) => holder.started = s.to_string(),
                _ => {}
            }
        }
        holder
    }

    fn tag_value(run_id: &str) -> String {
        let host = gethostname::gethostname()
            .to_string_lossy()
            .replace(char::is_whitespace, "_");
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        let started = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        format!("{run_id} host={host} started={started}")
    }
}

pub(crate) fn holder(vm: &Value) -> Option<Holder> {
    tag_of(vm, RUN_TAG)
        .filter(|v| !v.trim().is_empty())
        .map(Holder::parse)
}

fn refused(vm: &ResourceId, h: &Holder) -> ActionError {
    ActionError::locked(format!(
        "VM {} is being repaired by run {} on {} since {}: refusing to start a second repair",
        vm.name, h.run_id, h.host, h.started
    ))
    .with_hint(format!(
        "wait for that run to finish (or roll it back with `rescue rollback {id}` on {host}); if it died and nobody will resume it, \
         take the VM over with `--force-unlock {id}`",
        id = h.run_id,
        host = h.host
    ))
}

fn tags(vm: &Value) -> Map<String, Value> {
    vm.get("tags")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// PATCH the VM's tags if it is still at the ETag it was read with; false when another writer
/// came first.
async fn write_tags(
    ctx: &StepContext,
    azure: &Azure,
    id: &ResourceId,
    vm: &Value,
    tags: Map<String, Value>,
    label: &str,
    key: &str,
) -> Result<bool, ActionError> {
    let etag = vm.get("etag").and_then(Value::as_str).unwrap_or("*");
    let body = json!({"tags": tags});
    match when_idle(ctx, azure, label, || {
        azure.patch_vm_if_match(id, body.clone(), etag, label)
    })
    .await?
    {
        None => Ok(false),
        Some(started) => finish(ctx, azure, started, key).await.map(|_| true),
    }
}

/// Claim `id` for `ctx.run_id` with the tag value `value`; idempotent.
pub(crate) async fn claim(
    ctx: &StepContext,
    azure: &Azure,
    id: &ResourceId,
    value: &str,
) -> Result<String, ActionError> {
    let key = OPERATION;
    if let Some(result) = resume_pending(ctx, azure, key).await {
        result?;
    }
    for _ in 0..RACES {
        let vm = azure.get(id).await?;
        match holder(&vm) {
            Some(h) if h.run_id == ctx.run_id => {
                return Ok(tag_of(&vm, RUN_TAG).unwrap_or(value).to_string())
            }
            Some(h) if ctx.env.force_unlock.as_deref() == Some(h.run_id.as_str()) => {
                ctx.status(format!(
                    "taking VM {} over from run {} (--force-unlock)",
                    id.name, h.run_id
                ));
            }
            Some(h) => return Err(refused(id, &h)),
            None => {}
        }
        let mut tags = tags(&vm);
        tags.insert(RUN_TAG.into(), json!(value));
        // Won or lost, the next read says who holds it.
        write_tags(
            ctx,
            azure,
            id,
            &vm,
            tags,
            &format!("lock of VM {}", id.name),
            key,
        )
        .await?;
    }
    Err(ActionError::retryable(format!(
        "VM {} kept changing while rescue tried to claim it",
        id.name
    )))
}

/// Remove this run's claim on `id`; false when it held none. Never removes another run's.
pub(crate) async fn release(
    ctx: &StepContext,
    azure: &Azure,
    id: &ResourceId,
    key: &str,
) -> Result<bool, ActionError> {
    if let Some(result) = resume_pending(ctx, azure, key).await {
        result?;
    }
    let mut released = false;
    for _ in 0..RACES {
        let vm = azure.get(id).await?;
        match holder(&vm) {
            Some(h) if h.run_id == ctx.run_id => {}
            _ => return Ok(released),
        }
        let mut tags = tags(&vm);
        tags.remove(RUN_TAG);
        released |= write_tags(
            ctx,
            azure,
            id,
            &vm,
            tags,
            &format!("unlock of VM {}", id.name),
            key,
        )
        .await?;
    }
    Err(ActionError::retryable(format!(
        "VM {} kept changing while rescue tried to release it",
        id.name
    )))
}

fn describe_calls(ctx: &PlanContext, args: &PlanArgs, what: &str) -> Vec<String> {
    let id = plan_vm_id(ctx, args, "resource_group", "vm");
    vec![
        call(
            "GET",
            id.as_ref(),
            " (its ETag and tags)",
            ".../virtualMachines/VM",
        ),
        call(
            "PATCH",
            id.as_ref(),
            &format!(" If-Match: ETAG (tags.{RUN_TAG} {what})"),
            ".../virtualMachines/VM",
        ),
        "GET <Azure-AsyncOperation> until Succeeded".into(),
    ]
}

#[async_trait]
impl Action for Lock {
    fn spec(&self) -> &'static ActionSpec {
        &LOCK
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        let mut notes = Vec::new();
        if let Some(id) = plan_vm_id(ctx, args, "resource_group", "vm") {
            match plan_read(ctx, &id).await {
                Ok(Some(vm)) => notes.push(match holder(&vm) {
                    Some(h) => format!(
                        "held now by run {} on {} since {}: the run would be refused",
                        h.run_id, h.host, h.started
                    ),
                    None => "free now".into(),
                }),
                Ok(None) => notes.push(format!("VM {} does not exist now", id.name)),
                Err(e) => notes.push(e),
            }
        }
        Ok(Description {
            summary: format!(
                "claim VM {} for this run (tag {RUN_TAG}={} host=... started=...)",
                args.display("vm"),
                ctx.run_id
            ),
            calls: describe_calls(ctx, args, "= this run"),
            notes,
        })
    }

    fn intent(&self, run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "tag": Holder::tag_value(run_id)}),
            creates: Vec::new(),
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        let value = intent
            .detail
            .get("tag")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| Holder::tag_value(&ctx.run_id));
        let holder = with_progress(ctx, claim(ctx, azure, &id, &value)).await?;
        let mut out = Outputs::new();
        out.insert("holder".into(), json!(holder));
        Ok(out)
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        Some(format!(
            "release this run's lock on VM {}",
            opt_str(args, "vm").unwrap_or("?")
        ))
    }

    async fn undo(
        &self,
        ctx: &StepContext,
        args: &Args,
        _outputs: &Outputs,
    ) -> Result<(), ActionError> {
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        with_progress(ctx, release(ctx, azure, &id, "undo_operation"))
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Action for Unlock {
    fn spec(&self) -> &'static ActionSpec {
        &UNLOCK
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        Ok(Description {
            summary: format!("release this run's claim on VM {}", args.display("vm")),
            calls: describe_calls(ctx, args, "removed"),
            notes: Vec::new(),
        })
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm")}),
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
        let released = with_progress(ctx, release(ctx, azure, &id, OPERATION)).await?;
        let mut out = Outputs::new();
        out.insert("released".into(), json!(released));
        Ok(out)
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        Some(format!(
            "claim VM {} again while the rollback works on it",
            opt_str(args, "vm").unwrap_or("?")
        ))
    }

    /// Rolling back a finished run changes the VM again: hold it meanwhile (the lock step's undo,
    /// which runs last, releases it).
    async fn undo(
        &self,
        ctx: &StepContext,
        args: &Args,
        _outputs: &Outputs,
    ) -> Result<(), ActionError> {
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        with_progress(ctx, claim(ctx, azure, &id, &Holder::tag_value(&ctx.run_id)))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_run_host_and_start() {
        let value = Holder::tag_value("20261126-170000-abcd");
        let h = Holder::parse(&value);
        assert_eq!(h.run_id, "20261126-170000-abcd");
        assert_ne!(h.host, "?");
        assert!(h.started.starts_with("20"), "{value}");
        assert_eq!(Holder::parse("r1").host, "?");
    }
}
