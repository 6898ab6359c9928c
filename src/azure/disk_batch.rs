//! One client's `attachDetachDataDisks` changes to one VM: those that meet go out as one
//! request, and none goes out while our previous one on that VM is still running.
//!
//! CRP runs one operation per VM: a newer one preempts the one in flight (`OperationPreempted`,
//! see the emulator's `operations::preempt`). Runs that share a rescue VM, a fleet's, would
//! otherwise attach their copies one operation after another, each waiting for the VM to settle
//! before the next, so a copy's hold of its place grew with the queue in front of it (4 copies:
//! 4 operations to attach, 4 to detach). The request takes lists ("the list of managed data
//! disks to be attached" / "detached", AttachDetachDataDisksRequest in the Compute spec), so
//! the changes waiting together are sent together and share one operation.
//!
//! A change waits while a loop on the same VM is still between reading it and deciding what to
//! write (it may be about to join), and for [`GATHER`] besides, for changes that arrive a
//! moment apart. An operation that fails, or a request refused, for several changes at once
//! says nothing certain of each: the loops then send theirs alone ([`Refused::shared`]).
//! Each change is sent under its own run's halt key: a run that lost its lease meanwhile gets
//! the halt error, and the others go on without it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use super::error::{Error, Kind};
use super::ids::{Kind as IdKind, ResourceId};
use super::lro::Started;
use super::requests::Write;
use super::{calls, halt, Azure};

/// How long a change waits for others: VM operations take seconds (10 s and more on Azure), so
/// this costs little and lets the copies released by one detach attach in one operation.
const GATHER: Duration = Duration::from_millis(50);

#[derive(Default)]
pub(crate) struct Batches {
    vms: Mutex<HashMap<String, Arc<Gate>>>,
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Notify,
}

#[derive(Default)]
struct GateState {
    /// A request of ours is being gathered or sent, or its operation is running.
    busy: bool,
    /// Loops on this VM between reading it and deciding what to write.
    deciding: usize,
    queue: Vec<Queued>,
}

struct Queued {
    change: Value,
    label: String,
    alone: bool,
    halt_key: Option<String>,
    /// Where its run keeps the evidence of its requests: the shared one is each member's.
    recorder: Option<calls::Recorder>,
    reply: oneshot::Sender<Reply>,
}

type Reply = Result<(Started, Option<Ticket>), Refused>;

/// A request that was not accepted.
#[derive(Debug)]
pub struct Refused {
    pub error: Box<Error>,
    /// It carried other loops' changes too: the error may be theirs.
    pub shared: bool,
}

/// Held while our operation on the VM runs: the last holder's drop lets the next batch go.
#[derive(Clone)]
pub struct Ticket {
    inner: Arc<TicketInner>,
}

struct TicketInner {
    gate: Arc<Gate>,
    shared: bool,
}

impl Ticket {
    /// The operation carries other loops' changes too.
    pub fn shared(&self) -> bool {
        self.inner.shared
    }
}

impl Drop for TicketInner {
    fn drop(&mut self) {
        self.gate.lock().busy = false;
        self.gate.changed.notify_waiters();
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A converge loop's place at a VM's gate.
pub struct Member {
    gate: Arc<Gate>,
    deciding: bool,
}

impl Member {
    /// Whether the loop is between reading the VM and deciding: a batch waits for it.
    pub fn deciding(&mut self, yes: bool) {
        if self.deciding == yes {
            return;
        }
        self.deciding = yes;
        {
            let mut state = self.gate.lock();
            if yes {
                state.deciding += 1;
            } else {
                state.deciding = state.deciding.saturating_sub(1);
            }
        }
        if !yes {
            self.gate.changed.notify_waiters();
        }
    }

    /// Our own operation on the VM is running: the future ends with it.
    pub fn ours_running(&self) -> Option<impl std::future::Future<Output = ()> + '_> {
        self.gate.lock().busy.then_some(async {
            loop {
                // Registered before looking: a release in between is not missed.
                let changed = self.gate.changed.notified();
                if !self.gate.lock().busy {
                    return;
                }
                changed.await;
            }
        })
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.deciding(false);
    }
}

impl Batches {
    /// A loop's place at `id`'s gate, for VMs (the only resource with `attachDetachDataDisks`).
    pub fn member(&self, id: &ResourceId) -> Option<Member> {
        if id.kind != IdKind::VirtualMachine {
            return None;
        }
        let key = id.to_string().to_ascii_lowercase();
        let gate = self
            .vms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        Some(Member {
            gate,
            deciding: false,
        })
    }
}

/// Leadership of one batch: given up on drop, whatever happened to the request.
struct Leading<'a> {
    gate: &'a Gate,
    operation: bool,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if !self.operation {
            self.gate.lock().busy = false;
            self.gate.changed.notify_waiters();
        }
    }
}

impl Azure {
    /// Send `change` (an `attachDetachDataDisks` body) for the loop `member` on VM `id`, with
    /// the changes of other loops waiting at the same gate. `alone`: in a request of its own.
    pub async fn attach_detach(
        &self,
        member: &mut Member,
        id: &ResourceId,
        change: &Value,
        alone: bool,
        label: &str,
    ) -> Reply {
        let gate = member.gate.clone();
        let (reply, mut answer) = oneshot::channel();
        {
            let mut state = gate.lock();
            state.queue.push(Queued {
                change: change.clone(),
                label: label.to_string(),
                alone,
                halt_key: halt::key(),
                recorder: calls::current(),
                reply,
            });
        }
        member.deciding(false);
        gate.changed.notify_waiters();
        loop {
            let changed = gate.changed.notified();
            let lead = {
                let mut state = gate.lock();
                let ready = !state.busy && state.deciding == 0 && !state.queue.is_empty();
                if ready {
                    state.busy = true;
                }
                ready
            };
            if lead {
                self.lead(&gate, id).await;
            }
            tokio::select! {
                biased;
                answer = &mut answer => {
                    // The leader's task was dropped before it answered: nothing is known to
                    // have been sent; the loop reads the VM again.
                    return answer.unwrap_or_else(|_| Err(Refused {
                        error: Box::new(Error::new(Kind::Transient, format!("send {label}"), "the batch it waited in was abandoned")),
                        shared: true,
                    }));
                }
                _ = changed => {}
            }
        }
    }

    /// Gather, send and answer one batch: the gate is ours (`busy`) until its operation ends.
    async fn lead(&self, gate: &Arc<Gate>, id: &ResourceId) {
        let mut leading = Leading {
            gate,
            operation: false,
        };
        tokio::time::sleep(GATHER).await;
        let batch: Vec<Queued> = {
            let mut state = gate.lock();
            if state.queue.first().is_some_and(|q| q.alone) {
                vec![state.queue.remove(0)]
            } else {
                let (alone, together) = std::mem::take(&mut state.queue)
                    .into_iter()
                    .partition(|q| q.alone);
                state.queue = alone;
                together
            }
        };
        let (live, halted): (Vec<Queued>, Vec<Queued>) = batch
            .into_iter()
            .partition(|q| halt::reason_for(q.halt_key.as_deref()).is_none());
        for q in halted {
            let why = halt::reason_for(q.halt_key.as_deref()).unwrap_or_default();
            let _ = q.reply.send(Err(Refused {
                error: Box::new(Error::new(Kind::Halted, "send the request", why)),
                shared: false,
            }));
        }
        if live.is_empty() {
            return;
        }
        let shared = live.len() > 1;
        let merged = merge(live.iter().map(|q| &q.change));
        let label = if shared {
            format!("attach/detach of {} disks on {}", live.len(), id.name)
        } else {
            live[0].label.clone()
        };
        let write = Write::AttachDetach(merged);
        let recorders: Vec<calls::Recorder> =
            live.iter().filter_map(|q| q.recorder.clone()).collect();
        let every_member: calls::Recorder = Arc::new(move |call: calls::Call| {
            for record in &recorders {
                record(call.clone());
            }
        });
        let send = calls::scope(every_member, self.write(id, &write, None, &label));
        let sent = match live[0].halt_key.clone() {
            Some(key) => halt::scope(key, send).await,
            None => send.await,
        };
        let ticket = match &sent {
            Ok(Started::Pending(_)) => {
                leading.operation = true;
                Some(Ticket {
                    inner: Arc::new(TicketInner {
                        gate: gate.clone(),
                        shared,
                    }),
                })
            }
            _ => None,
        };
        for q in live {
            let answer = match &sent {
                Ok(Started::Pending(op)) => {
                    let mut op = op.clone();
                    op.label = q.label.clone();
                    Ok((Started::Pending(op), ticket.clone()))
                }
                Ok(Started::Done(body)) => Ok((Started::Done(body.clone()), None)),
                Err(e) => Err(Refused {
                    error: Box::new(e.clone()),
                    shared,
                }),
            };
            let _ = q.reply.send(answer);
        }
        // Our own ticket goes: the members' copies keep the gate until their polls end.
        drop(ticket);
    }
}

/// One request body with every change's disks.
fn merge<'a>(changes: impl Iterator<Item = &'a Value>) -> Value {
    let mut attach = Vec::new();
    let mut detach = Vec::new();
    for change in changes {
        for (list, key) in [
            (&mut attach, "dataDisksToAttach"),
            (&mut detach, "dataDisksToDetach"),
        ] {
            if let Some(items) = change.get(key).and_then(Value::as_array) {
                list.extend(items.iter().cloned());
            }
        }
    }
    let mut body = serde_json::Map::new();
    if !attach.is_empty() {
        body.insert("dataDisksToAttach".into(), Value::Array(attach));
    }
    if !detach.is_empty() {
        body.insert("dataDisksToDetach".into(), Value::Array(detach));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_merge_into_one_body() {
        let a = json!({"dataDisksToAttach": [{"diskId": "/a"}]});
        let b = json!({"dataDisksToDetach": [{"diskId": "/b"}]});
        let c = json!({"dataDisksToAttach": [{"diskId": "/c", "lun": 3}]});
        assert_eq!(
            merge([&a, &b, &c].into_iter()),
            json!({
                "dataDisksToAttach": [{"diskId": "/a"}, {"diskId": "/c", "lun": 3}],
                "dataDisksToDetach": [{"diskId": "/b"}],
            })
        );
    }
}
