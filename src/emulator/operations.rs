//! Long-running operations: recorded with their due time, completed lazily by the next request.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::arm::{self, ArmError};
use super::state::{Power, State};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// Disk RP: `.../locations/{loc}/DiskOperations/{id}` (api-version 2024-03-02).
    Disk,
    /// Compute RP: `.../locations/{loc}/operations/{id}` (api-version 2024-07-01).
    Compute,
    /// Network RP: `.../Microsoft.Network/locations/{loc}/operations/{id}`.
    Network,
    /// AKS: `.../Microsoft.ContainerService/locations/{loc}/operations/{id}`, Location
    /// `.../operationresults/{id}`.
    ContainerService,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    InProgress,
    Succeeded,
    Failed,
    Canceled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OpKind {
    VolumeCreate {
        snapshot: bool,
        key: String,
    },
    VolumeDelete {
        snapshot: bool,
        key: String,
    },
    VmUpdate {
        vm: String,
    },
    AttachDetach {
        vm: String,
    },
    VmPower {
        vm: String,
        target: Power,
        boot: Option<super::boot::BootOutcome>,
    },
    /// Action Run Command: done once the agent's result is in.
    RunCommand {
        vm: String,
        result: Option<Result<Value, ArmError>>,
    },
    /// PUT of a managed Run Command: done once its provisioning is (the script ended, or started
    /// under `asyncExecution`).
    ManagedRunCommand {
        vm: String,
        name: String,
        done: bool,
    },
    /// DELETE of a managed Run Command.
    ManagedRunCommandDelete {
        vm: String,
        name: String,
    },
    /// Deletes the VM; its disks stay (deleteOption Detach) and become Unattached.
    VmDelete {
        vm: String,
    },
    /// PUT of a VNet, subnet (`key|subnet`), NIC or NSG: settles it.
    NetworkWrite {
        kind: super::resources::network::NetKind,
        key: String,
    },
    NetworkDelete {
        kind: super::resources::network::NetKind,
        key: String,
    },
    /// An agent pool's scale (PUT of `count`) or `deleteMachines`: `added` instances (with their
    /// boot outcome) come up, `removed` ones are deleted with their OS disks.
    PoolScale {
        cluster: String,
        pool: String,
        added: Vec<(String, super::boot::BootOutcome)>,
        removed: Vec<String>,
    },
    /// A scale-set-wide action over `instanceIds`: one operation per instance, done when they are.
    Batch {
        ops: Vec<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub family: Family,
    pub kind: OpKind,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub end: Option<OffsetDateTime>,
    pub status: Status,
    pub error: Option<ArmError>,
    /// Set by an `lro_failed` fault: the operation ends Failed with this error, effect undone.
    pub fail_with: Option<ArmError>,
    /// The final body (`properties.output` and the Location answer).
    pub output: Option<Value>,
    /// The api-version of the request that started it: Azure's operation URLs carry it.
    #[serde(default)]
    pub api_version: Option<String>,
    /// When the real work it waits for (a script, a boot check) finished, if after its due
    /// time: it ends then, as Azure's `endTime` of a Run Command comes after the script's end.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub worked_until: Option<OffsetDateTime>,
}

impl Operation {
    pub fn new(family: Family, kind: OpKind, seconds: f64) -> Self {
        let start = arm::now();
        let due = start + time::Duration::seconds_f64(seconds.max(0.0));
        Operation {
            id: arm::guid(),
            family,
            kind,
            start,
            due,
            end: None,
            status: Status::InProgress,
            error: None,
            fail_with: None,
            output: None,
            api_version: None,
            worked_until: None,
        }
    }

    pub fn vm_key(&self) -> Option<&str> {
        match &self.kind {
            OpKind::VmUpdate { vm }
            | OpKind::AttachDetach { vm }
            | OpKind::VmPower { vm, .. }
            | OpKind::RunCommand { vm, .. }
            | OpKind::ManagedRunCommand { vm, .. }
            | OpKind::ManagedRunCommandDelete { vm, .. }
            | OpKind::VmDelete { vm } => Some(vm),
            _ => None,
        }
    }

    fn ready(&self, now: OffsetDateTime) -> bool {
        self.status == Status::InProgress
            && self.due <= now
            && !matches!(
                self.kind,
                OpKind::RunCommand { result: None, .. }
                    | OpKind::VmPower { boot: None, .. }
                    | OpKind::ManagedRunCommand { done: false, .. }
            )
    }

    /// The operation-status body (what the Azure-AsyncOperation URL answers).
    pub fn status_body(&self) -> Value {
        let mut body = json!({
            "startTime": arm::rfc3339(self.start),
            "status": match self.status {
                Status::InProgress => "InProgress",
                Status::Succeeded => "Succeeded",
                Status::Failed => "Failed",
                Status::Canceled => "Canceled",
            },
            "name": self.id,
        });
        if let Some(end) = self.end {
            body["endTime"] = json!(arm::rfc3339(end));
        }
        if let (Status::Succeeded, Some(out)) = (self.status, &self.output) {
            body["properties"] = json!({ "output": out });
        }
        if let Some(e) = &self.error {
            body["error"] = e.object();
        }
        body
    }

    /// The operation's URL path and query, without the monitor flag.
    pub fn status_path(&self, state: &State) -> String {
        let (provider, segment, default) = match self.family {
            Family::Disk => ("Microsoft.Compute", "DiskOperations", arm::DISK_API),
            Family::Compute => ("Microsoft.Compute", "operations", arm::COMPUTE_API),
            Family::Network => (
                "Microsoft.Network",
                "operations",
                super::resources::network::NETWORK_API,
            ),
            Family::ContainerService => (
                "Microsoft.ContainerService",
                "operations",
                super::resources::aks::AKS_API,
            ),
        };
        let api = self.api_version.as_deref().unwrap_or(default);
        format!(
            "/subscriptions/{}/providers/{provider}/locations/{}/{segment}/{}?p={}&api-version={api}",
            state.subscription, state.location, self.id, self.id
        )
    }
}

/// Completes every operation that is due, in due order; returns whether anything changed.
pub fn complete_due(state: &mut State, images: &std::path::Path, now: OffsetDateTime) -> bool {
    let mut due: Vec<(OffsetDateTime, String)> = state
        .operations
        .values()
        .filter(|op| op.ready(now))
        .map(|op| (op.due, op.id.clone()))
        .collect();
    due.sort();
    for (_, id) in &due {
        complete(state, images, id);
    }
    let mut booted = false;
    for vm in state.vms.values_mut() {
        if let Some(at) = vm.agent_ready_at.filter(|at| *at <= now) {
            vm.agent_ready_at = None;
            vm.agent_ready = vm.power == Power::Running;
            vm.agent_ready_since = vm.agent_ready.then_some(at);
            booted = true;
        }
    }
    !due.is_empty() || booted
}

fn complete(state: &mut State, images: &std::path::Path, id: &str) {
    let Some(mut op) = state.operations.remove(id) else {
        return;
    };
    let end = op
        .due
        .max(op.start)
        .max(op.worked_until.unwrap_or(op.start));
    let failure = op.fail_with.clone();
    match &op.kind {
        OpKind::VolumeCreate { snapshot, key } => {
            let map = if *snapshot {
                &mut state.snapshots
            } else {
                &mut state.disks
            };
            if let Some(v) = map.get_mut(key) {
                v.provisioning_state = if failure.is_some() {
                    "Failed"
                } else {
                    "Succeeded"
                }
                .into();
            }
            if failure.is_none() {
                op.output = super::resources::render_volume(state, key, *snapshot);
            }
        }
        OpKind::VolumeDelete { snapshot, key } => {
            if failure.is_none() {
                let map = if *snapshot {
                    &mut state.snapshots
                } else {
                    &mut state.disks
                };
                if let Some(v) = map.remove(key) {
                    let _ = std::fs::remove_file(images.join(&v.image));
                }
            } else {
                let map = if *snapshot {
                    &mut state.snapshots
                } else {
                    &mut state.disks
                };
                if let Some(v) = map.get_mut(key) {
                    v.provisioning_state = "Succeeded".into();
                }
            }
        }
        OpKind::VmUpdate { vm } | OpKind::AttachDetach { vm } => {
            let attach_detach = matches!(op.kind, OpKind::AttachDetach { .. });
            if let Some(v) = state.vms.get_mut(vm) {
                v.provisioning_state = "Succeeded".into();
            }
            if attach_detach && failure.is_none() {
                op.output = state
                    .vms
                    .get(vm)
                    .map(|v| super::resources::vm::storage_profile(state, v));
            }
        }
        OpKind::VmPower { vm, target, boot } => {
            if let Some(v) = state.vms.get_mut(vm) {
                v.provisioning_state = "Succeeded".into();
                if failure.is_none() {
                    v.power = *target;
                    match (target, boot) {
                        (Power::Running, Some(b)) => {
                            v.agent_ready = false;
                            v.agent_ready_at = b
                                .ready
                                .then(|| end + time::Duration::seconds_f64(b.ready_after.max(0.0)));
                            v.serial_log = b.serial_log.clone();
                        }
                        _ => {
                            v.agent_ready = false;
                            v.agent_ready_at = None;
                        }
                    }
                }
            }
        }
        OpKind::VmDelete { vm } => {
            if failure.is_none() {
                state.vms.remove(vm);
            } else if let Some(v) = state.vms.get_mut(vm) {
                v.provisioning_state = "Succeeded".into();
            }
        }
        OpKind::RunCommand { vm, result } => {
            match result {
                Some(Ok(out)) => op.output = Some(out.clone()),
                Some(Err(e)) => op.error = Some(e.clone()),
                None => {}
            }
            if let Some(v) = state.vms.get_mut(vm) {
                if v.run_command.as_deref() == Some(id) {
                    v.run_command = None;
                }
            }
        }
        OpKind::ManagedRunCommand { .. } => {}
        OpKind::NetworkWrite { kind, key } => {
            super::resources::network::complete(state, *kind, key, false, failure.is_some())
        }
        OpKind::NetworkDelete { kind, key } => {
            super::resources::network::complete(state, *kind, key, true, failure.is_some())
        }
        OpKind::ManagedRunCommandDelete { vm, name } => {
            if let Some(v) = state.vms.get_mut(vm) {
                v.run_commands.remove(name);
            }
        }
        OpKind::PoolScale {
            cluster,
            pool,
            added,
            removed,
        } => super::resources::aks::scaled(
            state,
            images,
            (cluster, pool),
            (added, removed),
            end,
            failure.is_some(),
        ),
        OpKind::Batch { ops } => {
            op.error = ops
                .iter()
                .filter_map(|id| state.operations.get(id))
                .find_map(|o| o.error.clone().filter(|_| o.status == Status::Failed));
        }
    }
    let vm_level = matches!(
        op.kind,
        OpKind::VmUpdate { .. }
            | OpKind::AttachDetach { .. }
            | OpKind::VmPower { .. }
            | OpKind::VmDelete { .. }
    );
    if let Some(vm) = op.vm_key().filter(|_| vm_level).map(str::to_string) {
        state.released(&vm);
        if let Some(v) = state.vms.get_mut(&vm) {
            if v.busy.as_deref() == Some(id) {
                v.busy = None;
            }
        }
    }
    op.end = Some(end);
    if let Some(e) = failure {
        op.status = Status::Failed;
        op.error = Some(e);
        op.output = None;
    } else if op.error.is_some() {
        op.status = Status::Failed;
    } else {
        op.status = Status::Succeeded;
    }
    state.operations.insert(op.id.clone(), op);
}

/// After a restart, the scripts that were executing have lost their process, as on a VM whose
/// agent restarted. RunCommandLinux, enabled again for a sequence number it already processed
/// with no process left, reports success with "Last script execution didn't finish."
/// (cmds.go `enablePre`). RunCommandHandlerLinux keeps no outcome for such a run; its own text
/// for a run it cannot account for is executionState Unknown, "The script has been executed.
/// However, the instanceView's execution state, output, error are unknown." (cmds.go
/// `createDummyStatusFilesIfNeeded`). Returns how many runs were interrupted.
pub fn interrupted(state: &mut State) -> usize {
    let mut count = 0;
    for op in state.operations.values_mut() {
        match &mut op.kind {
            OpKind::RunCommand {
                result: result @ None,
                ..
            } => {
                count += 1;
                *result = Some(Ok(super::runcommand::action_result(
                    "Last script execution didn't finish.",
                )));
            }
            OpKind::ManagedRunCommand { vm, name, done } if !*done => {
                count += 1;
                *done = true;
                if let Some(rc) = state
                    .vms
                    .get_mut(vm.as_str())
                    .and_then(|v| v.run_commands.get_mut(name.as_str()))
                {
                    rc.provisioning_state = "Succeeded".into();
                    rc.execution = None;
                    rc.view.execution_state = "Unknown".into();
                    rc.view.execution_message = "The script has been executed. However, the instanceView's execution state, output, error are unknown.".into();
                }
            }
            _ => {}
        }
    }
    for vm in state.vms.values_mut() {
        for rc in vm
            .run_commands
            .values_mut()
            .filter(|rc| rc.execution.is_some())
        {
            count += 1;
            rc.execution = None;
            rc.view.execution_state = "Unknown".into();
            rc.view.execution_message = "The script has been executed. However, the instanceView's execution state, output, error are unknown.".into();
        }
    }
    count
}

/// CRP lets a newer operation on a VM preempt the one in flight, which ends Canceled with
/// `OperationPreempted` (Azure/azure-sdk-for-java#1783: "status": "Canceled", "error":
/// {"code": "OperationPreempted", ...}; osbuild/osbuild-composer#1447 and
/// Azure/azure-rest-api-specs#22434 quote today's text, "Operation execution has been preempted
/// by a more recent operation."). Its effect stands as far as it got: here, as if it had
/// finished, since the newer operation then changes the VM from there.
pub fn preempt(state: &mut State, images: &std::path::Path, vm_key: &str) {
    let Some(id) = state.vms.get(vm_key).and_then(|v| v.busy.clone()) else {
        return;
    };
    if !state
        .operations
        .get(&id)
        .is_some_and(|op| op.status == Status::InProgress)
    {
        return;
    }
    complete(state, images, &id);
    if let Some(op) = state.operations.get_mut(&id) {
        op.status = Status::Canceled;
        op.end = Some(arm::now());
        op.output = None;
        op.error = Some(ArmError::new(
            200,
            "OperationPreempted",
            "Operation execution has been preempted by a more recent operation.",
        ));
    }
}

/// Finished operations older than the retention are forgotten: their URLs answer 404.
pub fn forget_expired(state: &mut State, retention_seconds: f64, now: OffsetDateTime) {
    let keep = time::Duration::seconds_f64(retention_seconds.max(0.0));
    state
        .operations
        .retain(|_, op| op.end.is_none_or(|end| end + keep > now));
}

/// Start operations still waiting for their boot check: (operation id, VM key).
pub fn awaiting_boot(state: &State) -> Vec<(String, String)> {
    state
        .operations
        .values()
        .filter(|op| op.status == Status::InProgress)
        .filter_map(|op| match &op.kind {
            OpKind::VmPower { vm, boot: None, .. } => Some((op.id.clone(), vm.clone())),
            _ => None,
        })
        .collect()
}
