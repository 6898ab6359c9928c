//! The ARM requests rescue makes, built by azure_mgmt_compute 0.21 and sent with `.send()`.
//! Reads come back typed ([`Resource`], [`Vm`]); writes come back as [`Started`] for the caller
//! to checkpoint and poll.

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{Error, Kind as ErrorKind, Result};
use super::ids::{Kind, ResourceId};
use super::lro::{collect, FinalVia, Started};
use super::model::{Resource, Vm};
use super::transport::header;
use super::Azure;

/// VM power actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmAction {
    Deallocate,
    Start,
    PowerOff,
}

impl VmAction {
    /// The `PowerState/` code a VM has once the action is done.
    pub fn target(self) -> &'static str {
        match self {
            VmAction::Deallocate => "deallocated",
            VmAction::Start => "running",
            VmAction::PowerOff => "stopped",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            VmAction::Deallocate => "deallocate",
            VmAction::Start => "start",
            VmAction::PowerOff => "power off",
        }
    }
}

/// A change to one resource.
#[derive(Clone, Debug)]
pub enum Write {
    /// PUT the whole body (disks and snapshots: create, or update in place).
    Put(Value),
    /// PATCH a VM (tags, the OS disk).
    PatchVm(Value),
    /// PATCH a disk (`DiskUpdate`: tags).
    PatchDisk(Value),
    Power(VmAction),
    /// `attachDetachDataDisks`: `{"dataDisksToAttach": [...], "dataDisksToDetach": [...]}`,
    /// which changes only the disks named, whatever else is attached meanwhile.
    AttachDetach(Value),
    /// An agent pool's `deleteMachines`: `{"machineNames": [...]}`.
    DeleteMachines(Value),
    Delete,
}

impl Write {
    /// Whether Azure takes `If-Match` on this request (ComputeRP does on VM PATCH and on a
    /// scale-set instance's PUT, its only update).
    fn takes_if_match(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Write::PatchVm(_), _) | (Write::Put(_), Kind::ScaleSetVm)
        )
    }
}

type Call = BoxFuture<'static, azure_core::Result<azure_core::Response>>;

fn model<T: DeserializeOwned>(body: Value, what: &str) -> Result<T> {
    serde_json::from_value(body).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            format!("build the {what} request"),
            format!("internal error: {e}"),
        )
    })
}

macro_rules! call {
    ($req:expr) => {{
        let req = $req;
        let call: Call = Box::pin(async move { req.send().await.map(Into::into) });
        call
    }};
}

impl Azure {
    /// Send one SDK request; an error carries the call's correlation id.
    async fn send(&self, call: Call, doing: &str) -> Result<azure_core::Response> {
        let (result, correlation) = super::transport::with_correlation(call).await;
        result.map_err(|e| Error::from_core(&e, doing).with_correlation(correlation))
    }

    fn get_call(&self, id: &ResourceId, instance_view: bool) -> Call {
        let c = self.client();
        let (s, rg, n) = (
            id.subscription.clone(),
            id.resource_group.clone(),
            id.name.clone(),
        );
        match id.kind {
            Kind::VirtualMachine => {
                let mut req = c.virtual_machines_client().get(rg, n, s);
                if instance_view {
                    req = req.expand("instanceView");
                }
                call!(req)
            }
            Kind::Disk => call!(c.disks_client().get(s, rg, n)),
            Kind::Snapshot => call!(c.snapshots_client().get(s, rg, n)),
            Kind::ScaleSetVm => {
                let (set, instance) = id.parent_and_child().unwrap_or_default();
                let mut req = c.virtual_machine_scale_set_v_ms_client().get(
                    rg,
                    set.to_string(),
                    instance.to_string(),
                    s,
                );
                if instance_view {
                    req = req.expand("instanceView");
                }
                call!(req)
            }
            rest => unreachable!("a {} is read through `rest`", rest.noun()),
        }
    }

    async fn read_with(&self, id: &ResourceId, instance_view: bool) -> Result<Option<Resource>> {
        let doing = format!("read {} {}", id.kind.noun(), id.name);
        let sent = if id.kind.is_rest() {
            self.rest(azure_core::Method::Get, id, None, &doing).await
        } else {
            self.send(self.get_call(id, instance_view), &doing).await
        };
        match sent {
            Ok(response) => {
                let (_, headers, body) = collect(response, &doing).await?;
                let etag = header(&headers, "etag").map(str::to_string);
                let raw = serde_json::from_slice(&body).map_err(|e| {
                    Error::protocol(&doing, format!("Azure sent invalid JSON ({e})"))
                })?;
                Ok(Some(Resource::new(raw, etag)))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a resource; None when it does not exist.
    pub async fn read(&self, id: &ResourceId) -> Result<Option<Resource>> {
        self.read_with(id, false).await
    }

    /// GET a resource that must exist.
    pub async fn read_existing(&self, id: &ResourceId) -> Result<Resource> {
        self.read(id).await?.ok_or_else(|| not_found(id))
    }

    /// GET a VM, with its instance view (power state, VM agent) when asked.
    pub async fn read_vm(&self, id: &ResourceId, instance_view: bool) -> Result<Option<Vm>> {
        Ok(self.read_with(id, instance_view).await?.map(Vm::parse))
    }

    /// GET a VM that must exist.
    pub async fn read_existing_vm(&self, id: &ResourceId, instance_view: bool) -> Result<Vm> {
        self.read_vm(id, instance_view)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Every resource of one kind in a resource group (follows `nextLink`).
    pub async fn list(
        &self,
        subscription: &str,
        resource_group: &str,
        kind: Kind,
    ) -> Result<Vec<Resource>> {
        let mut url = self.endpoint().clone();
        url.set_path(&format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/{}/{}",
            kind.provider(),
            kind.segment()
        ));
        url.set_query(Some(&format!("api-version={}", kind.api_version())));
        let doing = format!("list the {}s of {resource_group}", kind.noun());
        let mut next = Some(url.to_string());
        let mut all = Vec::new();
        while let Some(url) = next.take() {
            let (_, _, page) = self.get_url(&url, &doing).await?;
            all.extend(
                page.get("value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|v| Resource::new(v.clone(), None)),
            );
            next = page
                .get("nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(all)
    }

    /// Send a change. `if_match` is honoured where Azure takes it; a 412 comes back as
    /// `PreconditionFailed` for the caller to re-read.
    pub async fn write(
        &self,
        id: &ResourceId,
        write: &Write,
        if_match: Option<&str>,
        label: &str,
    ) -> Result<Started> {
        let c = self.client();
        let (s, rg, n) = (
            id.subscription.clone(),
            id.resource_group.clone(),
            id.name.clone(),
        );
        if id.kind.is_rest() {
            return self.write_rest(id, write, label).await;
        }
        let if_match = if_match
            .filter(|_| write.takes_if_match(id.kind))
            .map(str::to_string);
        let vms = || c.virtual_machines_client();
        let (call, final_via) = match (write, id.kind) {
            (Write::Put(body), Kind::Snapshot) => (
                call!(c.snapshots_client().create_or_update(
                    s,
                    rg,
                    n,
                    model::<azure_mgmt_compute::models::Snapshot>(body.clone(), "snapshot")?
                )),
                FinalVia::Resource,
            ),
            (Write::Put(body), Kind::Disk) => (
                call!(c.disks_client().create_or_update(
                    s,
                    rg,
                    n,
                    model::<azure_mgmt_compute::models::Disk>(body.clone(), "disk")?
                )),
                FinalVia::Resource,
            ),
            (Write::Put(body), Kind::VirtualMachine) => (
                call!(vms().create_or_update(
                    rg,
                    n,
                    model::<azure_mgmt_compute::models::VirtualMachine>(body.clone(), "VM")?,
                    s
                )),
                FinalVia::Resource,
            ),
            (Write::PatchDisk(body), Kind::Disk) => (
                call!(c.disks_client().update(
                    s,
                    rg,
                    n,
                    model::<azure_mgmt_compute::models::DiskUpdate>(body.clone(), "disk update")?
                )),
                FinalVia::Resource,
            ),
            (Write::PatchVm(body), Kind::VirtualMachine) => {
                let update: azure_mgmt_compute::models::VirtualMachineUpdate =
                    model(body.clone(), "VM update")?;
                let mut req = vms().update(rg, n, update, s);
                if let Some(etag) = if_match {
                    req = req.if_match(etag);
                }
                (call!(req), FinalVia::Resource)
            }
            (Write::Power(action), Kind::VirtualMachine) => (
                match action {
                    VmAction::Deallocate => call!(vms().deallocate(rg, n, s)),
                    VmAction::Start => call!(vms().start(rg, n, s)),
                    VmAction::PowerOff => call!(vms().power_off(rg, n, s)),
                },
                FinalVia::Resource,
            ),
            (Write::AttachDetach(body), Kind::VirtualMachine) => (
                call!(vms().attach_detach_data_disks(
                    rg,
                    n,
                    model::<azure_mgmt_compute::models::AttachDetachDataDisksRequest>(
                        body.clone(),
                        "attachDetachDataDisks"
                    )?,
                    s
                )),
                // Its result (the storage profile) is read from the VM anyway.
                FinalVia::Resource,
            ),
            (Write::Put(body), Kind::ScaleSetVm) => {
                let (set, instance) = id.parent_and_child().unwrap_or_default();
                let body: azure_mgmt_compute::models::VirtualMachineScaleSetVm =
                    model(body.clone(), "scale-set instance")?;
                let mut req = c.virtual_machine_scale_set_v_ms_client().update(
                    rg,
                    set.to_string(),
                    instance.to_string(),
                    body,
                    s,
                );
                if let Some(etag) = if_match {
                    req = req.if_match(etag);
                }
                (call!(req), FinalVia::Resource)
            }
            (Write::Power(VmAction::PowerOff), Kind::ScaleSetVm) => {
                let (set, instance) = id.parent_and_child().unwrap_or_default();
                let req = c.virtual_machine_scale_set_v_ms_client().power_off(
                    rg,
                    set.to_string(),
                    instance.to_string(),
                    s,
                );
                (call!(req), FinalVia::Resource)
            }
            (Write::Delete, Kind::Snapshot) => (
                call!(c.snapshots_client().delete(s, rg, n)),
                FinalVia::Resource,
            ),
            (Write::Delete, Kind::Disk) => {
                (call!(c.disks_client().delete(s, rg, n)), FinalVia::Resource)
            }
            (Write::Delete, Kind::VirtualMachine) => {
                (call!(vms().delete(rg, n, s)), FinalVia::Resource)
            }
            (other, kind) => {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    label,
                    format!(
                        "internal error: rescue never sends {other:?} to a {}",
                        kind.noun()
                    ),
                ))
            }
        };
        let response = self.send(call, label).await?;
        self.started(response, label, final_via).await
    }

    /// Send a change and wait for it, with no checkpoint: for one-off commands that are simply
    /// run again when interrupted (cleanup). Steps use [`super::converge`].
    pub async fn apply(
        &self,
        id: &ResourceId,
        write: &Write,
        label: &str,
        deadline: std::time::Duration,
    ) -> Result<Value> {
        let deadline = std::time::Instant::now() + deadline;
        let started = match self.write(id, write, None, label).await {
            Err(e) if matches!(write, Write::Delete) && e.is_not_found() => return Ok(Value::Null),
            other => other?,
        };
        match started {
            Started::Done(body) => Ok(body),
            Started::Pending(op) => match self.poll(&op, deadline).await? {
                super::lro::Ended::Succeeded(body) => Ok(body),
                super::lro::Ended::Gone => Ok(Value::Null),
                super::lro::Ended::Failed(e) => Err(e),
            },
        }
    }

    /// A managed Run Command of `vm` (`virtualMachines/{vm}/runCommands/{name}`) with its
    /// instance view; None when there is none of that name.
    pub async fn read_run_command(&self, vm: &ResourceId, name: &str) -> Result<Option<Resource>> {
        let doing = format!("read Run Command {name} of VM {}", vm.name);
        let req = self
            .client()
            .virtual_machine_run_commands_client()
            .get_by_virtual_machine(&vm.resource_group, &vm.name, name, &vm.subscription)
            .expand("instanceView");
        match self.send(call!(req), &doing).await {
            Ok(response) => {
                let (_, headers, body) = collect(response, &doing).await?;
                let raw = serde_json::from_slice(&body).map_err(|e| {
                    Error::protocol(&doing, format!("Azure sent invalid JSON ({e})"))
                })?;
                Ok(Some(Resource::new(
                    raw,
                    header(&headers, "etag").map(str::to_string),
                )))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create a managed Run Command (which runs its script once, on creation).
    pub async fn create_run_command(
        &self,
        vm: &ResourceId,
        name: &str,
        body: Value,
        label: &str,
    ) -> Result<Started> {
        let command: azure_mgmt_compute::models::VirtualMachineRunCommand =
            model(body, "Run Command")?;
        let req = self
            .client()
            .virtual_machine_run_commands_client()
            .create_or_update(
                &vm.resource_group,
                &vm.name,
                name,
                command,
                &vm.subscription,
            );
        let response = self.send(call!(req), &format!("run {label}")).await?;
        self.started(response, label, FinalVia::Resource).await
    }

    /// Delete a managed Run Command resource (its script is not affected once it has run).
    pub async fn delete_run_command(
        &self,
        vm: &ResourceId,
        name: &str,
        label: &str,
    ) -> Result<Started> {
        let req = self.client().virtual_machine_run_commands_client().delete(
            &vm.resource_group,
            &vm.name,
            name,
            &vm.subscription,
        );
        match self.send(call!(req), label).await {
            Ok(response) => self.started(response, label, FinalVia::Resource).await,
            Err(e) if e.is_not_found() => Ok(Started::Done(Value::Null)),
            Err(e) => Err(e),
        }
    }

    /// The VM's boot-diagnostics serial log, when Azure has one (managed boot diagnostics give
    /// a SAS URL, which carries its own authorization: our token is never sent there).
    pub async fn serial_log(&self, id: &ResourceId) -> Option<String> {
        let req = self
            .client()
            .virtual_machines_client()
            .retrieve_boot_diagnostics_data(&id.resource_group, &id.name, &id.subscription);
        let response = self.send(call!(req), "read boot diagnostics").await.ok()?;
        let (_, _, body) = collect(response, "read boot diagnostics").await.ok()?;
        let body: Value = serde_json::from_slice(&body).ok()?;
        let uri = url::Url::parse(body.get("serialConsoleLogBlobUri")?.as_str()?).ok()?;
        let request = azure_core::Request::new(uri, azure_core::Method::Get);
        let response = azure_core::HttpClient::execute_request(self.transport().as_ref(), &request)
            .await
            .ok()?;
        let (status, _, text) = collect(response, "read the serial log").await.ok()?;
        status
            .is_success()
            .then(|| String::from_utf8_lossy(&text).into_owned())
    }
}

pub(crate) fn not_found(id: &ResourceId) -> Error {
    let mut e = Error::new(
        ErrorKind::NotFound,
        format!("read {} {}", id.kind.noun(), id.name),
        format!(
            "{} {} does not exist in resource group {}",
            id.kind.noun(),
            id.name,
            id.resource_group
        ),
    );
    e.status = Some(404);
    e
}
