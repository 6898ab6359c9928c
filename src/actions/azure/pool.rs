//! A fleet's claim on the rescue VMs it shares out: a `rescue-pool` tag on each
//! ("FLEET_ID host=HOST started=TIME"), written with `If-Match` as a run's VM lock is
//! ([`super::lock`]). The fleet counts each VM's free data-disk slots once and hands them to
//! its runs; a second fleet, or a run of no fleet, attaching beside it would take slots the
//! fleet counted as its own. So, while the tag stands:
//! - another fleet refuses to start (exit 3, nothing started);
//! - a run that is not the fleet's refuses the VM at pre-flight and before any write to it
//!   (exit 3), unless `--force-unlock FLEET_ID` says the fleet is dead.
//!
//! The fleet releases the tag when it ends; an interrupted or killed fleet keeps it, and its
//! `rescue fleet resume` finds it its own.

use serde_json::json;

use super::lock::Holder;
use super::*;
use crate::azure::converge::Hooks;

/// The tag a fleet claims a rescue VM with.
pub const POOL_TAG: &str = "rescue-pool";

/// The fleet whose pool a VM is in, from its tag.
fn pool_holder(vm: &Resource) -> Option<Holder> {
    vm.tag(POOL_TAG)
        .filter(|v| !v.trim().is_empty())
        .map(Holder::parse)
}

/// The refusal of a rescue VM that fleet `h` shares out, to a run or fleet that is not it.
pub(crate) fn in_another_pool(vm: &str, h: &Holder) -> ActionError {
    ActionError::locked(format!(
        "rescue VM {vm} is shared out by fleet {} on {} since {}: that fleet counts its data-disk \
         slots as its own, so nothing else attaches to it meanwhile",
        h.run_id, h.host, h.started
    ))
    .with_hint(format!(
        "pick another rescue VM, or wait for the fleet (`rescue fleet status {id}` on {host}); if \
         it died and nobody will resume it, take the VM over with `--force-unlock {id}`",
        id = h.run_id,
        host = h.host
    ))
}

/// Whether a run of fleet `fleet` (None: of no fleet) may attach to VM `name`, whose
/// `rescue-pool` tag is `claim`: `force_unlock` names a fleet whose claim is to be ignored.
pub(crate) fn may_use(
    claim: Option<&str>,
    name: &str,
    fleet: Option<&str>,
    force_unlock: Option<&str>,
) -> Result<(), ActionError> {
    match claim.filter(|v| !v.trim().is_empty()).map(Holder::parse) {
        Some(h) if Some(h.run_id.as_str()) != fleet && Some(h.run_id.as_str()) != force_unlock => {
            Err(in_another_pool(name, &h))
        }
        _ => Ok(()),
    }
}

/// A fleet's claim is made before its runs and again by its resume: nothing to checkpoint,
/// no run lock to fence.
struct FleetHooks;

#[async_trait]
impl Hooks<ActionError> for FleetHooks {
    fn pending(&self) -> Option<Operation> {
        None
    }
    async fn checkpoint(&self, _op: Option<&Operation>) -> Result<(), ActionError> {
        Ok(())
    }
    async fn before_write(&self, _now: Option<&Resource>) -> Result<(), ActionError> {
        Ok(())
    }
}

/// Claim rescue VM `id` for fleet `fleet_id`; `take_over` names a (dead) fleet whose claim may
/// be replaced. The VM as claimed.
pub async fn claim(
    azure: &Azure,
    id: &ResourceId,
    fleet_id: &str,
    take_over: Option<&str>,
) -> Result<Resource, ActionError> {
    let value = Holder::tag_value(fleet_id, "started");
    let not_found = || ActionError::from(crate::azure::requests::not_found(id));
    let desired = Want::new(
        id,
        format!("pool claim of rescue VM {}", id.name),
        VM_UPDATE_DEADLINE,
        |now| {
            let vm = now.ok_or_else(not_found)?;
            match pool_holder(vm) {
                Some(h) if h.run_id == fleet_id => return Ok(Next::Done),
                Some(h) if take_over != Some(h.run_id.as_str()) => {
                    return Err(in_another_pool(&id.name, &h))
                }
                _ => {}
            }
            super::lock::set_claim(vm, id, POOL_TAG, &value)
        },
    );
    converge::converge(azure, &desired, &FleetHooks)
        .await?
        .ok_or_else(not_found)
}

/// Release fleet `fleet_id`'s claim on rescue VM `id`; another fleet's is left alone.
pub async fn release(azure: &Azure, id: &ResourceId, fleet_id: &str) -> Result<(), ActionError> {
    let desired = Want::new(
        id,
        format!("pool release of rescue VM {}", id.name),
        VM_UPDATE_DEADLINE,
        |now| {
            let Some(vm) = now else { return Ok(Next::Done) };
            if pool_holder(vm).is_none_or(|h| h.run_id != fleet_id) {
                return Ok(Next::Done);
            }
            let mut tags = vm.tags();
            tags.remove(POOL_TAG);
            Ok(Next::Write(Write::PatchVm(json!({"tags": tags}))))
        },
    );
    converge::converge(azure, &desired, &FleetHooks).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_pools_own_fleet_or_a_named_take_over_may_use_a_claimed_vm() {
        let (free, claimed) = (None, Some("F1 host=h started=2026-12-02T10:00:00Z"));
        assert!(may_use(free, "r", None, None).is_ok());
        assert!(may_use(claimed, "r", Some("F1"), None).is_ok());
        assert!(may_use(claimed, "r", None, Some("F1")).is_ok());
        let refused = may_use(claimed, "r", Some("F2"), Some("R9")).unwrap_err();
        assert!(refused.locked);
        assert!(
            refused.message.contains("fleet F1 on h"),
            "{}",
            refused.message
        );
        assert!(refused.hint.unwrap().contains("--force-unlock F1"));
        assert!(may_use(claimed, "r", None, None).is_err());
    }
}
