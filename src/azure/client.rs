//! ARM calls rescue makes, built by azure_mgmt_compute and sent with `.send()`.
//! Reads return JSON; mutations return [`Started`] for the poller.

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::errors;
use super::ids::{Kind, ResourceId};
use super::lro::{FinalVia, Started};
use super::Azure;
use crate::actions::ActionError;

/// VM power actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmAction {
    Deallocate,
    Start,
}

fn model<T: DeserializeOwned>(body: Value, what: &str) -> Result<T, ActionError> {
    serde_json::from_value(body)
        .map_err(|e| ActionError::fatal(format!("internal error: bad {what} request body: {e}")))
}

type Call = BoxFuture<'static, azure_core::Result<azure_core::Response>>;

async fn sent(fut: Call, doing: &str) -> Result<azure_core::Response, ActionError> {
    fut.await.map_err(|e| errors::translate(e, doing))
}

async fn json_body(response: azure_core::Response, doing: &str) -> Result<Value, ActionError> {
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| errors::translate(e, doing))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ActionError::fatal(format!("cannot {doing}: Azure sent invalid JSON ({e})")))
}

impl Azure {
    /// The URL of a resource on this endpoint, with the api-version the SDK uses.
    pub fn resource_url(&self, id: &ResourceId) -> String {
        let mut url = self.endpoint().clone();
        url.set_path(&id.to_string());
        url.set_query(Some(&format!("api-version={}", id.kind.api_version())));
        url.to_string()
    }

    fn get_request(&self, id: &ResourceId, expand: Option<&str>) -> Call {
        let c = self.client();
        let (s, rg, n) = (
            id.subscription.clone(),
            id.resource_group.clone(),
            id.name.clone(),
        );
        match id.kind {
            Kind::VirtualMachine => {
                let mut req = c.virtual_machines_client().get(rg, n, s);
                if let Some(expand) = expand {
                    req = req.expand(expand);
                }
                Box::pin(async move { req.send().await.map(Into::into) })
            }
            Kind::Disk => {
                let req = c.disks_client().get(s, rg, n);
                Box::pin(async move { req.send().await.map(Into::into) })
            }
            Kind::Snapshot => {
                let req = c.snapshots_client().get(s, rg, n);
                Box::pin(async move { req.send().await.map(Into::into) })
            }
        }
    }

    /// GET a resource; None when it does not exist.
    pub async fn find(&self, id: &ResourceId) -> Result<Option<Value>, ActionError> {
        let doing = format!("read {} {}", id.kind.noun(), id.name);
        match self.get_request(id, None).await {
            Ok(response) => json_body(response, &doing).await.map(Some),
            Err(e) if errors::is_not_found(&e) => Ok(None),
            Err(e) => Err(errors::translate(e, &doing)),
        }
    }

    /// Every disk or snapshot of a resource group (follows `nextLink`).
    pub async fn list(
        &self,
        subscription: &str,
        resource_group: &str,
        kind: Kind,
    ) -> Result<Vec<Value>, ActionError> {
        let mut url = self.endpoint().clone();
        url.set_path(&format!("/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Compute/{}", kind.segment()));
        url.set_query(Some(&format!("api-version={}", kind.api_version())));
        let mut next = Some(url.to_string());
        let mut all = Vec::new();
        while let Some(url) = next.take() {
            let (_, _, page) = self.get_raw(&url).await?;
            all.extend(
                page.get("value")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            next = page
                .get("nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(all)
    }

    /// GET a resource that must exist.
    pub async fn get(&self, id: &ResourceId) -> Result<Value, ActionError> {
        let doing = format!("read {} {}", id.kind.noun(), id.name);
        let response = sent(self.get_request(id, None), &doing).await?;
        json_body(response, &doing).await
    }

    /// GET a VM with its instance view (power state, VM agent status).
    pub async fn get_vm_with_instance_view(&self, id: &ResourceId) -> Result<Value, ActionError> {
        let doing = format!("read VM {}", id.name);
        let response = sent(self.get_request(id, Some("instanceView")), &doing).await?;
        json_body(response, &doing).await
    }

    /// PUT a snapshot or a disk (create; the same body again is a no-op).
    pub async fn put(
        &self,
        id: &ResourceId,
        body: Value,
        label: &str,
    ) -> Result<Started, ActionError> {
        let c = self.client();
        let doing = format!("create {} {}", id.kind.noun(), id.name);
        let (s, rg, n) = (
            id.subscription.clone(),
            id.resource_group.clone(),
            id.name.clone(),
        );
        let fut: Call = match id.kind {
            Kind::Snapshot => {
                let req = c.snapshots_client().create_or_update(
                    s,
                    rg,
                    n,
                    model::<azure_mgmt_compute::models::Snapshot>(body, "snapshot")?,
                );
                Box::pin(async move { req.send().await.map(Into::into) })
            }
            Kind::Disk => {
                let req = c.disks_client().create_or_update(
                    s,
                    rg,
                    n,
                    model::<azure_mgmt_compute::models::Disk>(body, "disk")?,
                );
                Box::pin(async move { req.send().await.map(Into::into) })
            }
            Kind::VirtualMachine => {
                return Err(ActionError::fatal(
                    "internal error: rescue never creates VMs",
                ))
            }
        };
        let response = sent(fut, &doing).await?;
        self.begin(
            response,
            label,
            Some(self.resource_url(id)),
            FinalVia::Resource,
        )
        .await
    }

    /// PATCH a VM (attach/detach data disks, swap the OS disk).
    pub async fn patch_vm(
        &self,
        id: &ResourceId,
        body: Value,
        label: &str,
    ) -> Result<Started, ActionError> {
        let doing = format!("update VM {}", id.name);
        let update: azure_mgmt_compute::models::VirtualMachineUpdate = model(body, "VM update")?;
        let req = self.client().virtual_machines_client().update(
            &id.resource_group,
            &id.name,
            update,
            &id.subscription,
        );
        let response = sent(
            Box::pin(async move { req.send().await.map(Into::into) }),
            &doing,
        )
        .await?;
        self.begin(
            response,
            label,
            Some(self.resource_url(id)),
            FinalVia::Resource,
        )
        .await
    }

    /// PATCH a VM only if it is still at `etag` (`If-Match`): None when someone else changed it
    /// first (412 PreconditionFailed), so exactly one of several writers wins.
    pub async fn patch_vm_if_match(
        &self,
        id: &ResourceId,
        body: Value,
        etag: &str,
        label: &str,
    ) -> Result<Option<Started>, ActionError> {
        let doing = format!("update VM {}", id.name);
        let update: azure_mgmt_compute::models::VirtualMachineUpdate = model(body, "VM update")?;
        let req = self
            .client()
            .virtual_machines_client()
            .update(&id.resource_group, &id.name, update, &id.subscription)
            .if_match(etag);
        match req.send().await {
            Ok(response) => self
                .begin(
                    response.into(),
                    label,
                    Some(self.resource_url(id)),
                    FinalVia::Resource,
                )
                .await
                .map(Some),
            Err(e) if errors::is_precondition_failed(&e) => Ok(None),
            Err(e) => Err(errors::translate(e, &doing)),
        }
    }

    /// Deallocate or start a VM.
    pub async fn vm_action(
        &self,
        id: &ResourceId,
        action: VmAction,
        label: &str,
    ) -> Result<Started, ActionError> {
        let vms = self.client().virtual_machines_client();
        let (rg, n, s) = (
            id.resource_group.clone(),
            id.name.clone(),
            id.subscription.clone(),
        );
        let (fut, doing): (Call, String) = match action {
            VmAction::Deallocate => {
                let req = vms.deallocate(rg, n, s);
                (
                    Box::pin(async move { req.send().await.map(Into::into) }),
                    format!("deallocate VM {}", id.name),
                )
            }
            VmAction::Start => {
                let req = vms.start(rg, n, s);
                (
                    Box::pin(async move { req.send().await.map(Into::into) }),
                    format!("start VM {}", id.name),
                )
            }
        };
        let response = sent(fut, &doing).await?;
        self.begin(response, label, None, FinalVia::Nothing).await
    }

    /// Run a shell script on a VM (RunShellScript); the result arrives at Location.
    pub async fn run_command(
        &self,
        id: &ResourceId,
        input: Value,
        label: &str,
    ) -> Result<Started, ActionError> {
        let doing = format!("run a command on VM {}", id.name);
        let input: azure_mgmt_compute::models::RunCommandInput = model(input, "run command")?;
        let req = self.client().virtual_machines_client().run_command(
            &id.resource_group,
            &id.name,
            input,
            &id.subscription,
        );
        let response = sent(
            Box::pin(async move { req.send().await.map(Into::into) }),
            &doing,
        )
        .await?;
        self.begin(response, label, None, FinalVia::Location).await
    }

    /// DELETE a disk or a snapshot that rescue created (never called on an original disk).
    pub async fn delete(&self, id: &ResourceId, label: &str) -> Result<Started, ActionError> {
        let c = self.client();
        let doing = format!("delete {} {}", id.kind.noun(), id.name);
        let (s, rg, n) = (
            id.subscription.clone(),
            id.resource_group.clone(),
            id.name.clone(),
        );
        let fut: Call = match id.kind {
            Kind::Snapshot => {
                let req = c.snapshots_client().delete(s, rg, n);
                Box::pin(async move { req.send().await.map(Into::into) })
            }
            Kind::Disk => {
                let req = c.disks_client().delete(s, rg, n);
                Box::pin(async move { req.send().await.map(Into::into) })
            }
            Kind::VirtualMachine => {
                return Err(ActionError::fatal(
                    "internal error: rescue never deletes VMs",
                ))
            }
        };
        match fut.await {
            Ok(response) => self.begin(response, label, None, FinalVia::Nothing).await,
            Err(e) if errors::is_not_found(&e) => Ok(Started::Done(Value::Null)),
            Err(e) => Err(errors::translate(e, &doing)),
        }
    }

    /// The tail of the VM's boot-diagnostics serial log, when Azure has one.
    pub async fn serial_log_tail(&self, id: &ResourceId, max_lines: usize) -> Option<String> {
        let req = self
            .client()
            .virtual_machines_client()
            .retrieve_boot_diagnostics_data(&id.resource_group, &id.name, &id.subscription);
        let response = req.send().await.ok()?;
        let body = json_body(response.into(), "read boot diagnostics")
            .await
            .ok()?;
        let uri = body.get("serialConsoleLogBlobUri")?.as_str()?;
        // A SAS URL on a storage account (or on the emulator): it carries its own authorization.
        // Our client, so that an emulator target's CA is trusted here too.
        let text = self
            .http()
            .get(uri)
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .text()
            .await
            .ok()?;
        let lines: Vec<&str> = text.lines().collect();
        Some(lines[lines.len().saturating_sub(max_lines)..].join("\n"))
    }
}
