//! `azure.vm.lock` and `azure.vm.unlock`: claim a VM for one run in Azure itself, so that two
//! engineers (two machines, two journals) cannot both repair it. The claim is a `rescue-run` tag
//! on the VM ("RUN_ID host=HOST started=TIME") written with `If-Match: ETAG`: of two writers that
//! read the same ETag, Azure accepts one and answers the other 412, which then sees the winner.

use async_trait::async_trait;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::*;
use crate::actions::{ActionSpec, Description, Env, Intent, OutputSpec, Outputs};

pub struct Lock;
pub struct Unlock;

static LOCK: ActionSpec = vm_spec(
    "azure.vm.lock",
    "claim a VM for this run (a `rescue-run` tag written with If-Match); refused (exit 3) while another run holds it",
    &[OutputSpec { name: "holder", description: "the lock tag's value: RUN_ID host=HOST started=TIME" }],
);

static UNLOCK: ActionSpec = vm_spec(
    "azure.vm.unlock",
    "release this run's claim on a VM (nothing to do when it holds none)",
    &[OutputSpec {
        name: "released",
        description: "true when this run's lock tag was removed",
    }],
);

/// Who holds a VM, from its lock tag.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub run_id: String,
    pub host: String,
    pub started: String,
}

impl Holder {
    pub(crate) fn parse(value: &str) -> Holder {
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
                Some(("started", s)) | Some(("ended", s)) => holder.started = s.to_string(),
                _ => {}
            }
        }
        holder
    }

    pub(crate) fn tag_value(run_id: &str, word: &str) -> String {
        let host = gethostname::gethostname()
            .to_string_lossy()
            .replace(char::is_whitespace, "_");
        format!("{run_id} host={host} {word}={}", now_rfc3339())
    }
}

fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The tag the unlock leaves: which run last repaired the VM, and when it let go. A run that
/// started before that, and comes to claim the VM afterwards, was about a VM that has been
/// repaired since.
pub const LAST_RUN_TAG: &str = "rescue-last-run";

pub(crate) fn holder(vm: &Resource) -> Option<Holder> {
    vm.tag(RUN_TAG)
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

/// The VMs whose lock this run holds, in this process: every write of the run first checks
/// that each still carries this run's tag ([`super::fence`]).
#[derive(Debug, Default)]
pub struct HeldLocks(std::sync::Mutex<Vec<ResourceId>>);

impl HeldLocks {
    pub fn held(&self) -> Vec<ResourceId> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn add(&self, id: &ResourceId) {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !held.contains(id) {
            held.push(id.clone());
        }
    }

    fn remove(&self, id: &ResourceId) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|h| h != id);
    }
}

/// What comes next for "VM `vm_id` carries this run's lock tag `value`".
fn claimed(
    ctx: &StepContext,
    vm_id: &ResourceId,
    value: &str,
    now: Option<&Resource>,
) -> Result<Next, ActionError> {
    let vm = now.ok_or_else(|| ActionError::from(crate::azure::requests::not_found(vm_id)))?;
    match holder(vm) {
        Some(h) if h.run_id == ctx.run_id => return Ok(Next::Done),
        Some(h) if ctx.env.force_unlock.as_deref() == Some(h.run_id.as_str()) => {
            ctx.status(format!(
                "taking VM {} over from run {} (--force-unlock)",
                vm_id.name, h.run_id
            ));
        }
        Some(h) => return Err(refused(vm_id, &h)),
        None => {}
    }
    if let Some(last) = vm.tag(LAST_RUN_TAG).map(Holder::parse) {
        let ended = OffsetDateTime::parse(
            &last.started,
            &time::format_description::well_known::Rfc3339,
        )
        .ok();
        if last.run_id != ctx.run_id && ended.is_some_and(|t| t > ctx.run_started) {
            return Err(ActionError::locked(format!(
                "VM {} was repaired by run {} on {}, which finished at {}, after this run started: \
                 this run's view of the VM is out of date, and it stops before changing anything",
                vm_id.name, last.run_id, last.host, last.started
            ))
            .with_hint(format!(
                "see `rescue status {}` on {}; if the VM is broken again, start a new run (`rescue run ...`)",
                last.run_id, last.host
            )));
        }
    }
    set_claim(vm, vm_id, RUN_TAG, value)
}

/// The write that puts claim `tag` = `value` on the VM as read, conditional on its ETag: of two
/// claimants that read the same state, Azure takes one and answers the other 412.
pub(crate) fn set_claim(
    vm: &Resource,
    vm_id: &ResourceId,
    tag: &str,
    value: &str,
) -> Result<Next, ActionError> {
    if vm.etag.is_none() {
        return Err(ActionError::fatal(format!(
            "Azure returned VM {} without an ETag: rescue cannot claim it safely, and does not try",
            vm_id.name
        )));
    }
    let mut tags = vm.tags();
    tags.insert(tag.into(), json!(value));
    Ok(Next::Write(Write::PatchVm(json!({"tags": tags}))))
}

/// What comes next for "VM `vm_id` does not carry this run's lock tag" (another run's is left
/// alone), leaving word that this run was the last to repair it.
fn released(run_id: &str, now: Option<&Resource>) -> Next {
    let Some(vm) = now else { return Next::Done };
    if holder(vm).is_none_or(|h| h.run_id != run_id) {
        return Next::Done;
    }
    let mut tags = vm.tags();
    tags.remove(RUN_TAG);
    tags.insert(
        LAST_RUN_TAG.into(),
        json!(Holder::tag_value(run_id, "ended")),
    );
    Next::Write(Write::PatchVm(json!({"tags": tags})))
}

async fn claim(ctx: &StepContext, id: &ResourceId, value: &str) -> Result<String, ActionError> {
    let desired = Want::new(
        id,
        format!("lock of VM {}", id.name),
        VM_UPDATE_DEADLINE,
        |now| claimed(ctx, id, value, now),
    );
    let vm = ensure(ctx, &desired, OPERATION).await?;
    ctx.env.locks.add(id);
    Ok(vm
        .as_ref()
        .and_then(|v| v.tag(RUN_TAG))
        .unwrap_or(value)
        .to_string())
}

/// Release this run's lock; true when it held one.
async fn release(ctx: &StepContext, id: &ResourceId, key: &str) -> Result<bool, ActionError> {
    let azure = azure(ctx)?;
    let held = azure
        .read(id)
        .await?
        .and_then(|vm| holder(&vm))
        .is_some_and(|h| h.run_id == ctx.run_id);
    let desired = Want::new(
        id,
        format!("release of VM {}", id.name),
        VM_UPDATE_DEADLINE,
        |now| Ok(released(&ctx.run_id, now)),
    );
    ensure(ctx, &desired, key).await?;
    ctx.env.locks.remove(id);
    Ok(held)
}

/// The calls of a lock or unlock, for the plan.
const TAG_CALLS: &[&str] = &[
    "GET {vm} (its ETag and tags)",
    "PATCH {vm} If-Match: ETAG (tags)",
    "GET <Azure-AsyncOperation> until Succeeded",
];

#[async_trait]
impl AzureStep for Lock {
    const SPEC: &'static ActionSpec = &LOCK;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let (mut notes, mut warnings) = (Vec::new(), Vec::new());
        if let Some(id) = p.vm() {
            match plan_read(ctx, &id).await {
                Ok(Some(vm)) => match holder(&vm) {
                    Some(h) => warnings.push(format!(
                        "VM {} is held now by run {} on {} since {}: the run would stop here (exit 3)",
                        id.name, h.run_id, h.host, h.started
                    )),
                    None => notes.push("free now".into()),
                },
                Ok(None) => warnings.push(format!("VM {} does not exist now", id.name)),
                Err(e) => notes.push(e),
            }
        }
        let summary = format!(
            "claim VM {} for this run (tag {RUN_TAG}={} host=... started=...)",
            args.display("vm"),
            ctx.run_id
        );
        let what = format!("tag {RUN_TAG} = {} (the run's lock)", ctx.run_id);
        Ok(Description {
            notes,
            warnings,
            ..p.vm_change(ChangeKind::Update, what, summary, TAG_CALLS)
        })
    }

    fn intent(&self, run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "tag": Holder::tag_value(run_id, "started")}),
            creates: Vec::new(),
            scaffolding: false,
        })
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, intent } = *r;
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        let value = intent
            .detail
            .get("tag")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| Holder::tag_value(&ctx.run_id, "started"));
        let holder = claim(ctx, &id, &value).await?;
        Ok(output("holder", json!(holder)))
    }

    /// A resumed run holds the lock it took before it stopped: its writes are fenced again.
    fn resumed(&self, env: &Env, args: &Args, _outputs: &Outputs) {
        if let Some(id) = env_vm(env, args) {
            env.locks.add(&id);
        }
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        Some(format!(
            "release this run's lock on VM {}",
            opt_str(args, "vm").unwrap_or("?")
        ))
    }

    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        let Undo { ctx, args, .. } = *u;
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        release(ctx, &id, "undo_operation").await.map(|_| ())
    }
}

#[async_trait]
impl AzureStep for Unlock {
    const SPEC: &'static ActionSpec = &UNLOCK;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let summary = format!("release this run's claim on VM {}", p.args.display("vm"));
        let what = format!("remove tag {RUN_TAG}, set {LAST_RUN_TAG}");
        Ok(p.vm_change(ChangeKind::Update, what, summary, TAG_CALLS))
    }

    const INTENT: &'static [&'static str] = &["vm"];

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        let released = release(ctx, &id, OPERATION).await?;
        Ok(output("released", json!(released)))
    }

    fn resumed(&self, env: &Env, args: &Args, _outputs: &Outputs) {
        if let Some(id) = env_vm(env, args) {
            env.locks.remove(&id);
        }
    }

    fn describe_undo(&self, args: &Args, _outputs: &Outputs) -> Option<String> {
        Some(format!(
            "claim VM {} again while the rollback works on it",
            opt_str(args, "vm").unwrap_or("?")
        ))
    }

    /// Rolling back a finished run changes the VM again: hold it meanwhile (the lock step's undo,
    /// which runs last, releases it).
    async fn undo(&self, u: &Undo<'_>) -> Result<(), ActionError> {
        let Undo { ctx, args, .. } = *u;
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        claim(ctx, &id, &Holder::tag_value(&ctx.run_id, "started"))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_run_host_and_start() {
        let value = Holder::tag_value("20261126-170000-abcd", "started");
        let h = Holder::parse(&value);
        assert_eq!(h.run_id, "20261126-170000-abcd");
        assert_ne!(h.host, "?");
        assert!(h.started.starts_with("20"), "{value}");
        assert_eq!(Holder::parse("r1").host, "?");
    }
}
