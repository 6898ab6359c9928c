//! The VM-lock fence: before any write, a run checks that every VM it locked still carries its
//! lock tag. A run whose lock was taken over (`--force-unlock` by another engineer) or released
//! stops before its next change, with exit 3, naming the new holder, instead of working on a VM
//! that someone else now repairs.
//!
//! When the write is to the locked VM itself, the tag is checked in the state just read, and the
//! write carries that state's ETag (`If-Match`), so the check and the write cannot be split by
//! another writer. Other writes (the snapshot of its disk, the rescue VM) read the VM first.

use super::lock::holder;
use super::*;

pub(crate) async fn check(
    ctx: &StepContext,
    writing: &ResourceId,
    now: Option<&Resource>,
) -> Result<(), ActionError> {
    for vm in ctx.env.locks.held() {
        let current = if &vm == writing {
            now.cloned()
        } else {
            azure(ctx)?.read(&vm).await?
        };
        let holder = current.as_ref().and_then(holder);
        if holder.as_ref().is_some_and(|h| h.run_id == ctx.run_id) {
            continue;
        }
        let now_held = match &holder {
            Some(h) => format!(
                "is now held by run {} on {} since {}",
                h.run_id, h.host, h.started
            ),
            None => "no longer carries this run's lock".to_string(),
        };
        return Err(ActionError::locked(format!(
            "VM {} {now_held}: this run stopped before its next change to Azure",
            vm.name
        ))
        .with_hint(match holder {
            Some(h) => format!(
                "the VM is run {}'s now: follow it with `rescue status {}` on {}; this run changes nothing more",
                h.run_id, h.run_id, h.host
            ),
            None => "someone released this run's lock; check the VM, then start a new run if it still needs repair".into(),
        }));
    }
    Ok(())
}
