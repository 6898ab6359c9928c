//! The real azure_mgmt_compute 0.21 client against the emulator: every model it reads
//! deserializes, mutations go out with `.send()` (the crate's LRO futures are broken, see the
//! wire contract) and are polled the way Azure documents.

use azure_mgmt_compute::models;
use futures::StreamExt;
use serde_json::Value;

use super::support::*;

/// Sends a request built with the generated client (never its broken LRO future) and returns
/// the raw response, headers included.
macro_rules! sent {
    ($request:expr) => {
        $request.send().await.unwrap().into_raw_response()
    };
}

/// Every item of a pageable list.
async fn all<P: Send + 'static, T>(
    mut pages: azure_core::Pageable<P, azure_core::error::Error>,
    items: impl Fn(P) -> Vec<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        out.extend(items(page.expect("a page")));
    }
    out
}

async fn async_url(r: &azure_core::Response) -> String {
    r.headers()
        .get_optional_str(&azure_core::headers::HeaderName::from_static(
            "azure-asyncoperation",
        ))
        .expect("Azure-AsyncOperation header")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_deserializes_with_the_generated_client() {
    let emu = start(0.002).await;
    let c = emu.client();

    let os: models::Disk = c.disks_client().get(SUB, RG, BROKEN_OS).await.unwrap();
    let props = os.properties.as_ref().unwrap();
    assert_eq!(props.disk_state, Some(models::DiskState::Attached));
    assert_eq!(os.managed_by.as_deref(), Some(vm(BROKEN).as_str()));
    assert_eq!(os.zones, vec!["1"]);
    assert!(props.time_created.is_some());

    let disks = all(
        c.disks_client()
            .list_by_resource_group(SUB, RG)
            .into_stream(),
        |p| p.value,
    )
    .await;
    assert_eq!(disks.len(), 6, "the incident's six disks");

    let v: models::VirtualMachine = c
        .virtual_machines_client()
        .get(RG, BROKEN, SUB)
        .expand("instanceView")
        .await
        .unwrap();
    let view = v
        .properties
        .as_ref()
        .unwrap()
        .instance_view
        .as_ref()
        .unwrap();
    assert!(view
        .statuses
        .iter()
        .any(|s| s.code.as_deref() == Some("PowerState/running")));
    assert_eq!(
        v.properties
            .as_ref()
            .unwrap()
            .storage_profile
            .as_ref()
            .unwrap()
            .data_disks
            .len(),
        1
    );
    let iv: models::VirtualMachineInstanceView = c
        .virtual_machines_client()
        .instance_view(RG, RESCUE, SUB)
        .await
        .unwrap();
    assert_eq!(
        iv.vm_agent.unwrap().statuses[0].display_status.as_deref(),
        Some("Ready")
    );

    let vms = all(
        c.virtual_machines_client().list(RG, SUB).into_stream(),
        |p| p.value,
    )
    .await;
    assert_eq!(vms.len(), 5);

    // Snapshot of the broken OS disk, sent with .send() and polled by hand.
    let mut props = models::SnapshotProperties::new(models::CreationData::new(
        models::creation_data::CreateOption::Copy,
    ));
    props.creation_data.source_resource_id = Some(disk(BROKEN_OS));
    props.incremental = Some(true);
    let mut snap = models::Snapshot::new(models::Resource::new("westeurope".into()));
    snap.properties = Some(props);
    let r = sent!(c
        .snapshots_client()
        .create_or_update(SUB, RG, "snap-client", snap));
    assert_eq!(u16::from(r.status()), 202);
    let (done, _) = emu.wait_async(&async_url(&r).await).await;
    let out: models::Snapshot =
        serde_json::from_value(done["properties"]["output"].clone()).unwrap();
    assert_eq!(
        out.properties.unwrap().provisioning_state.as_deref(),
        Some("Succeeded")
    );
    let got: models::Snapshot = c
        .snapshots_client()
        .get(SUB, RG, "snap-client")
        .await
        .unwrap();
    assert_eq!(got.resource.name.as_deref(), Some("snap-client"));
    let snaps = all(
        c.snapshots_client()
            .list_by_resource_group(SUB, RG)
            .into_stream(),
        |p| p.value,
    )
    .await;
    assert_eq!(snaps.len(), 1);

    // Detach the database disk with a PATCH built from the VM the client read.
    let mut vp = v.properties.clone().unwrap();
    vp.instance_view = None;
    vp.storage_profile.as_mut().unwrap().data_disks[0].to_be_detached = Some(true);
    let mut update = models::VirtualMachineUpdate::new();
    update.properties = Some(vp);
    let r = sent!(c.virtual_machines_client().update(RG, BROKEN, update, SUB));
    assert_eq!(u16::from(r.status()), 200);
    let url = async_url(&r).await;
    let body: models::VirtualMachine =
        serde_json::from_slice(&r.into_body().collect().await.unwrap()).unwrap();
    assert_eq!(
        body.properties.unwrap().provisioning_state.as_deref(),
        Some("Updating")
    );
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");
    let pvc: models::Disk = c.disks_client().get(SUB, RG, PVC).await.unwrap();
    assert_eq!(
        pvc.properties.unwrap().disk_state,
        Some(models::DiskState::Unattached)
    );
    assert!(pvc.managed_by.is_none());

    // Boot diagnostics: a SAS-like URL serving the serial log without a bearer token.
    let bd: models::RetrieveBootDiagnosticsDataResult = c
        .virtual_machines_client()
        .retrieve_boot_diagnostics_data(RG, BROKEN, SUB)
        .await
        .unwrap();
    let log = emu
        .http
        .get(bd.serial_console_log_blob_uri.unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(log.contains("structure needs cleaning"), "{log}");

    // Deallocate, sent with .send(): 202 and an operation to poll.
    let r = sent!(c.virtual_machines_client().deallocate(RG, BROKEN, SUB));
    assert_eq!(u16::from(r.status()), 202);
    assert_eq!(
        emu.wait_async(&async_url(&r).await).await.0["status"],
        "Succeeded"
    );
    let os: models::Disk = c.disks_client().get(SUB, RG, BROKEN_OS).await.unwrap();
    assert_eq!(
        os.properties.unwrap().disk_state,
        Some(models::DiskState::Reserved),
        "owner deallocated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_errors_reach_the_client_with_their_code() {
    let emu = start(0.002).await;
    let c = emu.client();
    let err = c
        .disks_client()
        .delete(SUB, RG, BROKEN_OS)
        .send()
        .await
        .unwrap_err();
    match err.kind() {
        azure_core::error::ErrorKind::HttpResponse { status, error_code } => {
            assert_eq!(u16::from(*status), 409);
            assert_eq!(error_code.as_deref(), Some("OperationNotAllowed"));
        }
        other => panic!("unexpected error kind {other:?}"),
    }
    let raw = emu
        .send("GET", &format!("{}?{DISK_API}", disk("nope")), None)
        .await;
    let body: models::CloudError = raw.json().await.unwrap();
    assert_eq!(
        body.error.unwrap().code.as_deref(),
        Some("ResourceNotFound")
    );
    let err = c.disks_client().get(SUB, RG, "nope").await.unwrap_err();
    assert!(
        matches!(err.kind(), azure_core::error::ErrorKind::HttpResponse { error_code: Some(code), .. } if code == "ResourceNotFound")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_result_deserializes_from_the_location_answer() {
    let emu = start(0.002).await;
    let c = emu.client();
    let mut input = models::RunCommandInput::new("RunShellScript".into());
    input.script = vec![
        "echo \"hello $1 $2\"".into(),
        "echo oops >&2".into(),
        "exit 3".into(),
    ];
    input.parameters = vec![
        models::RunCommandInputParameter::new("first".into(), "brave".into()),
        models::RunCommandInputParameter::new("second".into(), "world".into()),
    ];
    let r = sent!(c
        .virtual_machines_client()
        .run_command(RG, RESCUE, input, SUB));
    assert_eq!(u16::from(r.status()), 202);
    let location = r
        .headers()
        .get_optional_str(&azure_core::headers::LOCATION)
        .unwrap()
        .to_string();
    let body = emu.location_result(&location).await;
    let result: models::RunCommandResult = serde_json::from_slice(&body).unwrap();
    let status = &result.value[0];
    assert_eq!(
        status.code.as_deref(),
        Some("ProvisioningState/succeeded"),
        "succeeded although the script exited 3"
    );
    assert_eq!(
        status.message.as_deref(),
        Some("Enable succeeded: \n[stdout]\nhello brave world\n\n[stderr]\noops\n")
    );
    let _: Value = serde_json::from_slice(&body).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_detach_result_is_a_storage_profile() {
    // Slow enough (a 10 s detach takes 0.5 s) to attach elsewhere while it runs.
    let emu = start(0.05).await;
    let c = emu.client();
    let mut request = models::AttachDetachDataDisksRequest::new();
    let mut detach = models::DataDisksToDetach::new(disk(PVC));
    detach.detach_option = Some(models::DetachOption::ForceDetach);
    request.data_disks_to_detach = vec![detach];
    let r = sent!(c
        .virtual_machines_client()
        .attach_detach_data_disks(RG, BROKEN, request, SUB));
    assert_eq!(u16::from(r.status()), 202);
    let mut request = models::AttachDetachDataDisksRequest::new();
    request.data_disks_to_attach = vec![models::DataDisksToAttach::new(disk(PVC))];
    let busy = c
        .virtual_machines_client()
        .attach_detach_data_disks(RG, RESCUE, request.clone(), SUB)
        .send()
        .await;
    let err = busy.expect_err("the disk stays vm2's until the detach completes, as on Azure");
    assert!(
        matches!(err.kind(), azure_core::error::ErrorKind::HttpResponse { error_code: Some(c), .. } if c == "ConflictingUserInput")
    );
    let location = r
        .headers()
        .get_optional_str(&azure_core::headers::LOCATION)
        .unwrap()
        .to_string();
    let body = emu.location_result(&location).await;
    let profile: models::StorageProfile = serde_json::from_slice(&body).unwrap();
    assert!(profile.data_disks.is_empty());
    assert!(profile.os_disk.unwrap().managed_disk.is_some());
    let r = c
        .virtual_machines_client()
        .attach_detach_data_disks(RG, RESCUE, request, SUB)
        .send()
        .await
        .expect("free once the detach completed")
        .into_raw_response();
    let location = r
        .headers()
        .get_optional_str(&azure_core::headers::LOCATION)
        .unwrap()
        .to_string();
    let profile: models::StorageProfile =
        serde_json::from_slice(&emu.location_result(&location).await).unwrap();
    assert_eq!(profile.data_disks[0].lun, 0, "the first free LUN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_run_command_round_trips_through_the_generated_client() {
    let emu = start(0.002).await;
    let c = emu.client();
    let mut source = models::VirtualMachineRunCommandScriptSource::new();
    source.script = Some("echo \"lun=$LUN\"".into());
    let mut props = models::VirtualMachineRunCommandProperties::new();
    props.source = Some(source);
    props.parameters = vec![models::RunCommandInputParameter::new(
        "LUN".into(),
        "0".into(),
    )];
    let mut command =
        models::VirtualMachineRunCommand::new(models::Resource::new("westeurope".into()));
    command.properties = Some(props);
    let r = sent!(c
        .virtual_machine_run_commands_client()
        .create_or_update(RG, RESCUE, "fsck-1", command, SUB));
    assert_eq!(u16::from(r.status()), 201);
    let created: models::VirtualMachineRunCommand =
        serde_json::from_slice(&r.into_body().collect().await.unwrap()).unwrap();
    assert_eq!(
        created.properties.unwrap().provisioning_state.as_deref(),
        Some("Creating")
    );
    let mut view = None;
    for _ in 0..300 {
        let got: models::VirtualMachineRunCommand = c
            .virtual_machine_run_commands_client()
            .get_by_virtual_machine(RG, RESCUE, "fsck-1", SUB)
            .expand("instanceView")
            .await
            .unwrap();
        let p = got.properties.unwrap();
        if p.provisioning_state.as_deref() == Some("Succeeded") {
            view = p.instance_view;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let view = view.expect("provisioned");
    assert_eq!(view.output.as_deref(), Some("lun=0\n"));
    assert_eq!(view.exit_code, Some(0));
    assert!(view.start_time.is_some() && view.end_time.is_some());
    let list = all(
        c.virtual_machine_run_commands_client()
            .list_by_virtual_machine(RG, RESCUE, SUB)
            .into_stream(),
        |p| p.value,
    )
    .await;
    assert_eq!(list.len(), 1);
}
