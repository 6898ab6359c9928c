//! One loop that brings one resource to a desired state, as Terraform's apply does:
//! read it (with its ETag) → compare → write with `If-Match` → poll the operation → read again.
//!
//! The loop, not each caller, owns the hard parts:
//! - it adopts a state only once `provisioningState` is settled: a resource still Updating
//!   (our own request whose answer was lost, or someone else's) is waited for, then re-read;
//! - a 412 (someone changed it first) means re-read and compare again;
//! - a 409 while an operation is in flight means wait; a 409 on a settled resource, twice, is
//!   Azure's refusal and is returned as it is;
//! - a write whose answer was lost (5xx, dropped connection) is never re-sent blind: the
//!   re-read says whether it took effect;
//! - the operation of every write is checkpointed by the caller before it is polled, so a
//!   process that died resumes by polling, not by writing again; an operation URL that expired
//!   (404/410) is dropped and the resource re-read;
//! - every resource kind has a deadline.
//!
//! Reconcile after a crash is the same call as the first attempt: the first read tells.
//! Errors of the caller (a journal write, a lock lost) travel as the caller's own type `E`.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::error::{Error, Kind};
use super::ids::ResourceId;
use super::lro::{unhinted, Ended, Operation, Started};
use super::model::Resource;
use super::requests::Write;
use super::{disk_batch, human, progress, Azure};

/// What comes next for the resource as it is now.
#[derive(Debug)]
pub enum Next {
    /// It is as wanted.
    Done,
    /// Send this change.
    Write(Write),
    /// Something outside this loop has to happen first (say why); read again later.
    Wait(String),
}

/// The desired state of one resource, stated by a step.
pub trait Desired<E>: Send + Sync {
    fn id(&self) -> &ResourceId;
    /// "snapshot aks-vm2-snap-…", for progress and errors.
    fn label(&self) -> String;
    /// Read VMs with their instance view (power state, agent).
    fn instance_view(&self) -> bool {
        false
    }
    /// Compare what Azure has now (None: it does not exist) with what is wanted. Only called
    /// on a settled resource.
    fn next(&self, now: Option<&Resource>) -> Result<Next, E>;
    /// How long this may take in all, waits included.
    fn deadline(&self) -> Duration;
}

/// The caller's side: durable checkpoints, and a check before every write.
#[async_trait]
pub trait Hooks<E>: Send + Sync {
    /// The operation an earlier attempt or process left in flight.
    fn pending(&self) -> Option<Operation>;
    /// Record (or with None, clear) the operation in flight, durably, before it is polled.
    async fn checkpoint(&self, op: Option<&Operation>) -> Result<(), E>;
    /// Right before a write: may stop the loop (the run no longer holds its lock, say).
    async fn before_write(&self, now: Option<&Resource>) -> Result<(), E>;
}

/// Writes to one resource before the loop gives up on converging.
const MAX_WRITES: u32 = 4;

/// Bring `desired` about; the resource as finally read (None: it is, as wanted, absent).
pub async fn converge<E>(
    azure: &Azure,
    desired: &dyn Desired<E>,
    hooks: &dyn Hooks<E>,
) -> Result<Option<Resource>, E>
where
    E: From<Error> + Send,
{
    let label = desired.label();
    let id = desired.id();
    let started = Instant::now();
    let deadline = started + desired.deadline();
    let mut writes = 0u32;
    let mut failed: Option<Error> = None;
    let mut conflicts = 0u32;
    // A VM's attach/detach changes share requests with other loops' (see `disk_batch`).
    let mut member = azure.disk_batch_member(id);
    let mut ticket: Option<disk_batch::Ticket> = None;
    // A shared request failed: whose change failed it is unknown, so ours goes alone.
    let mut alone = false;
    if let Some(op) = hooks.pending() {
        progress::report(format!("resuming: polling {} again", op.label));
    }
    loop {
        if let Some(m) = &mut member {
            m.deciding(true);
        }
        // The resource as the finished operation returned it (DiskRP's `properties.output`):
        // as good as a read, and one request fewer.
        let mut returned = None;
        if let Some(op) = hooks.pending() {
            match azure.poll(&op, deadline).await? {
                Ended::Succeeded(output) => {
                    returned = the_resource(output, id, desired.instance_view())
                }
                Ended::Gone => progress::report(format!(
                    "{label}: its operation has expired; reading the resource instead"
                )),
                Ended::Failed(e) if ticket.as_ref().is_some_and(disk_batch::Ticket::shared) => {
                    progress::report(format!(
                        "{label}: the request it shared failed ({}); sending it alone",
                        e.code
                    ));
                    alone = true;
                }
                Ended::Failed(e) => failed = Some(e),
            }
            // Our operation is over: the VM's next batch may go.
            ticket = None;
            hooks.checkpoint(None).await?;
        }
        let now = match returned {
            Some(resource) => Some(resource),
            None => read(azure, id, desired.instance_view()).await?,
        };
        if let Some(r) = &now {
            if let super::model::Provisioning::InProgress(state) = &r.provisioning {
                // A refusal while an operation was in flight is explained by it.
                conflicts = 0;
                if let Some(ours) = member.as_ref().and_then(disk_batch::Member::ours_running) {
                    // Our own request's operation: its end is known here, no need to poll.
                    let left = deadline.saturating_duration_since(Instant::now());
                    if tokio::time::timeout(left, ours).await.is_ok() {
                        azure.time_passes();
                        continue;
                    }
                }
                if let Some(m) = &mut member {
                    m.deciding(false);
                }
                pause(
                    azure,
                    &label,
                    &format!("{state}, waiting for it to settle"),
                    started,
                    deadline,
                )
                .await?;
                continue;
            }
        }
        match desired.next(now.as_ref())? {
            Next::Done => return Ok(now),
            Next::Wait(why) => {
                if let Some(m) = &mut member {
                    m.deciding(false);
                }
                pause(azure, &label, &why, started, deadline).await?;
            }
            Next::Write(write) => {
                // The operation we sent failed and the resource is still not as wanted: that
                // failure is the answer, not a reason to send the same change again.
                if let Some(e) = failed.take() {
                    return Err(e.into());
                }
                if writes == MAX_WRITES {
                    return Err(Error::new(
                        Kind::Protocol,
                        format!("bring {label} about"),
                        format!("still not as wanted after {MAX_WRITES} changes"),
                    )
                    .into());
                }
                hooks.before_write(now.as_ref()).await?;
                writes += 1;
                let etag = now.as_ref().and_then(|r| r.etag.as_deref());
                let sent = match (&write, &mut member) {
                    (Write::AttachDetach(change), Some(m)) => {
                        match azure.attach_detach(m, id, change, alone, &label).await {
                            Ok((started, t)) => {
                                ticket = t;
                                Ok(started)
                            }
                            Err(refused) if refused.shared && !refused.error.is_transient() => {
                                progress::report(format!(
                                    "{label}: Azure refused the request it shared ({}); sending it alone",
                                    answer(&refused.error)
                                ));
                                alone = true;
                                continue;
                            }
                            Err(refused) => Err(*refused.error),
                        }
                    }
                    _ => azure.write(id, &write, etag, &label).await,
                };
                match sent {
                    Ok(Started::Done(_)) => conflicts = 0,
                    Ok(Started::Pending(op)) => {
                        conflicts = 0;
                        hooks.checkpoint(Some(&op)).await?;
                    }
                    Err(e) => {
                        match e.kind {
                            Kind::PreconditionFailed => progress::report(format!(
                                "{label}: changed by someone else meanwhile; reading it again"
                            )),
                            Kind::Conflict if conflicts == 0 => {
                                conflicts += 1;
                                progress::report(format!("{label}: Azure refused the change for now ({}); reading it again", e.code));
                            }
                            // The answer was lost: whether the change happened, the next read says.
                            Kind::Transient => progress::report(format!(
                                "{label}: {}; reading the resource to see whether it took effect",
                                answer(&e)
                            )),
                            _ => return Err(e.into()),
                        }
                    }
                }
            }
        }
    }
}

/// An operation's output when it is the resource itself, settled (not, say, the storage profile
/// an attachDetachDataDisks returns); a VM read needs its instance view, which no output has.
fn the_resource(
    output: serde_json::Value,
    id: &ResourceId,
    instance_view: bool,
) -> Option<Resource> {
    let same = output
        .get("id")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|i| super::model::same_id(i, &id.to_string()));
    let resource = Resource::new(output, None);
    (same && !instance_view && resource.provisioning.is_settled()).then_some(resource)
}

/// "Azure answered 503 (ServiceUnavailable)", or what went wrong on the way.
fn answer(e: &Error) -> String {
    match e.status {
        Some(status) if e.code.is_empty() => format!("Azure answered {status}"),
        Some(status) => format!("Azure answered {status} ({})", e.code),
        None => e.message.clone(),
    }
}

async fn read(
    azure: &Azure,
    id: &ResourceId,
    instance_view: bool,
) -> Result<Option<Resource>, Error> {
    if instance_view {
        Ok(azure.read_vm(id, true).await?.map(|vm| vm.resource))
    } else {
        azure.read(id).await
    }
}

async fn pause(
    azure: &Azure,
    label: &str,
    why: &str,
    started: Instant,
    deadline: Instant,
) -> Result<(), Error> {
    let delay = unhinted(started.elapsed());
    if Instant::now() + delay > deadline {
        return Err(Error::new(
            Kind::Deadline,
            format!("bring {label} about"),
            format!("{why} for {}, past its deadline", human(started.elapsed())),
        ));
    }
    progress::report(format!("{label}: {why} ({})", human(started.elapsed())));
    azure.wait(delay).await;
    Ok(())
}
