//! The azure.* actions and the Azure layer driven directly through the library, against the
//! emulator over HTTP: idempotence, resuming a checkpointed operation, refusals.

use std::sync::Arc;

use rescue::actions::{Args, Registry};
use rescue::azure::ids::{derived_name, Kind, ResourceId};
use serde_json::{json, Value};

use super::support::*;

fn args(v: Value) -> Args {
    v.as_object().unwrap().clone()
}

fn os_disk_id(r: &Rehearsal) -> String {
    r.vm(VM)
        .pointer("/properties/storageProfile/osDisk/managedDisk/id")
        .and_then(Value::as_str)
        .unwrap()
        .to_string()
}

#[test]
fn snapshot_is_created_once_tagged_and_progress_is_reported() {
    let r = Rehearsal::start(None);
    let action = Registry::builtin()
        .get("azure.snapshot.create")
        .unwrap()
        .clone();
    let a = args(json!({"disk_id": os_disk_id(&r)}));
    let intent = action.intent("run-1", "snapshot", &a).unwrap();
    assert_eq!(intent.creates.len(), 1);
    let host = Arc::new(TestHost::default());
    let first = r
        .runtime
        .block_on(action.execute(&r.step(&host, "run-1", "snapshot"), &a, &intent))
        .unwrap();
    assert_eq!(
        first["id"].as_str().unwrap(),
        intent.creates[0].id,
        "the snapshot is not the one journaled"
    );
    let again = r
        .runtime
        .block_on(action.execute(&r.step(&host, "run-1", "snapshot"), &a, &intent))
        .unwrap();
    assert_eq!(first, again);
    let snapshots = r.list(Kind::Snapshot);
    assert_eq!(
        snapshots.len(),
        1,
        "a second execute created another snapshot"
    );
    assert_eq!(snapshots[0]["tags"]["rescue-run"], "run-1");
    let puts = r.requests().iter().filter(|q| q["method"] == "PUT").count();
    assert_eq!(puts, 1, "the adopted snapshot was PUT again");
    let statuses = host.statuses.lock().unwrap().join("\n");
    assert!(
        statuses.contains("waiting for snapshot"),
        "no poll status reported:\n{statuses}"
    );

    // Resumed with the step found `running`: reconcile is the same converge loop, which finds
    // the finished snapshot of this run and adopts it without sending anything.
    let resumed = r.step(&host, "run-1", "snapshot");
    assert!(matches!(
        r.runtime
            .block_on(action.reconcile(&resumed, &a, &intent))
            .unwrap(),
        rescue::actions::Reconciled::Redo
    ));
    let adopted = r
        .runtime
        .block_on(action.execute(&resumed, &a, &intent))
        .unwrap();
    assert_eq!(adopted, first);
    let puts = r.requests().iter().filter(|q| q["method"] == "PUT").count();
    assert_eq!(puts, 1, "the resumed step PUT the snapshot again");
}

#[test]
fn a_checkpointed_operation_is_polled_not_sent_again() {
    let r = Rehearsal::start(None);
    let azure = r.azure();
    let source = ResourceId::parse(&os_disk_id(&r)).unwrap();
    let snap = ResourceId::new(
        &r.subscription,
        RG,
        Kind::Snapshot,
        &derived_name(&source.name, "snap", "run-2"),
    );
    // A first process sends the PUT and dies right after checkpointing the operation.
    let body = json!({"location": "westeurope", "tags": {"rescue-run": "run-2"}, "sku": {"name": "Standard_LRS"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": source.to_string()}, "incremental": true}});
    let started = r
        .runtime
        .block_on(azure.write(&snap, &rescue::azure::Write::Put(body), None, "snapshot"))
        .unwrap();
    let rescue::azure::Started::Pending(op) = started else {
        panic!("the emulator answered a disk PUT synchronously")
    };
    let host = Arc::new(TestHost::default());
    host.checkpoints
        .lock()
        .unwrap()
        .insert("operation".into(), serde_json::to_value(&op).unwrap());

    let action = Registry::builtin()
        .get("azure.snapshot.create")
        .unwrap()
        .clone();
    let a = args(json!({"disk_id": source.to_string()}));
    let intent = action.intent("run-2", "snapshot", &a).unwrap();
    let out = r
        .runtime
        .block_on(action.execute(&r.step(&host, "run-2", "snapshot"), &a, &intent))
        .unwrap();
    assert_eq!(out["name"], snap.name.as_str());
    let puts = r.requests().iter().filter(|q| q["method"] == "PUT").count();
    assert_eq!(puts, 1, "the resumed step sent the PUT again");
    assert!(host
        .statuses
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.contains("resuming")));
}

#[test]
fn swap_refuses_a_running_vm_and_says_what_to_do() {
    let r = Rehearsal::start(None);
    let action = Registry::builtin()
        .get("azure.vm.swap_os_disk")
        .unwrap()
        .clone();
    let original = os_disk_id(&r);
    let other = original.replace("vm2_OsDisk", "vm3_OsDisk");
    let a = args(
        json!({"resource_group": RG, "vm": VM, "disk_id": other, "original_disk_id": original}),
    );
    let host = Arc::new(TestHost::default());
    let err = r
        .runtime
        .block_on(action.execute(&r.step(&host, "run-3", "swap"), &a, &Default::default()))
        .unwrap_err();
    assert!(err.message.contains("must be deallocated"), "{err}");
    assert!(err.hint.unwrap_or_default().contains("deallocate"));
    assert_eq!(os_disk_id(&r), original);
    assert!(
        r.requests().iter().all(|q| q["method"] == "GET"),
        "a refused swap sent a mutation"
    );
}

#[test]
fn the_broken_vm_cannot_be_its_own_rescue_vm() {
    let r = Rehearsal::start(None);
    let action = Registry::builtin()
        .get("azure.check.compatible")
        .unwrap()
        .clone();
    let a =
        args(json!({"resource_group": RG, "vm": VM, "rescue_resource_group": RG, "rescue_vm": VM}));
    let host = Arc::new(TestHost::default());
    let err = r
        .runtime
        .block_on(action.execute(
            &r.step(&host, "run-4", "compatible"),
            &a,
            &Default::default(),
        ))
        .unwrap_err();
    assert!(err.message.contains("the broken VM itself"), "{err}");
}

#[test]
fn attach_takes_the_first_free_lun_and_detach_leaves_none() {
    let r = Rehearsal::start(None);
    let registry = Registry::builtin();
    let host = Arc::new(TestHost::default());
    let snapshot = registry.get("azure.snapshot.create").unwrap().clone();
    let a = args(json!({"disk_id": os_disk_id(&r)}));
    let snap = r
        .runtime
        .block_on(snapshot.execute(
            &r.step(&host, "run-5", "snap"),
            &a,
            &snapshot.intent("run-5", "snap", &a).unwrap(),
        ))
        .unwrap();
    let copy = registry
        .get("azure.disk.create_from_snapshot")
        .unwrap()
        .clone();
    let a = args(json!({"snapshot_id": snap["id"], "source_disk_id": os_disk_id(&r)}));
    let copied = r
        .runtime
        .block_on(copy.execute(
            &r.step(&host, "run-5", "copy"),
            &a,
            &copy.intent("run-5", "copy", &a).unwrap(),
        ))
        .unwrap();
    let made = r.get(Kind::Disk, copied["name"].as_str().unwrap());
    let source = r.get(
        Kind::Disk,
        &ResourceId::parse(&os_disk_id(&r)).unwrap().name,
    );
    for field in [
        "/zones",
        "/sku/name",
        "/properties/hyperVGeneration",
        "/properties/osType",
    ] {
        assert_eq!(
            made.pointer(field),
            source.pointer(field),
            "the copy's {field} differs from the source's"
        );
    }
    // vm2 holds the database disk at LUN 0, so the copy must go to LUN 1.

    let attach = registry.get("azure.vm.attach_disk").unwrap().clone();
    let a = args(json!({"resource_group": RG, "vm": VM, "disk_id": copied["id"]}));
    let out = r
        .runtime
        .block_on(attach.execute(&r.step(&host, "run-5", "attach"), &a, &Default::default()))
        .unwrap();
    assert_eq!(
        out["lun"], 1,
        "LUN 0 holds the database disk; the first free one is 1"
    );
    let detach = registry.get("azure.vm.detach_disk").unwrap().clone();
    let out = r
        .runtime
        .block_on(detach.execute(&r.step(&host, "run-5", "detach"), &a, &Default::default()))
        .unwrap();
    assert_eq!(out["detached"], true);
    let out = r
        .runtime
        .block_on(detach.execute(&r.step(&host, "run-5", "detach"), &a, &Default::default()))
        .unwrap();
    assert_eq!(out["detached"], false, "detaching twice is not a no-op");
    let data = r
        .vm(VM)
        .pointer("/properties/storageProfile/dataDisks")
        .cloned()
        .unwrap_or(json!([]));
    assert_eq!(
        data.as_array().unwrap().len(),
        1,
        "only the database disk is left: {data}"
    );
}

/// Runs `name` with `a` as run `run` through the registry, as the engine would.
fn run_action(
    r: &Rehearsal,
    host: &Arc<TestHost>,
    run: &str,
    name: &str,
    a: &Args,
) -> Result<rescue::actions::Outputs, rescue::actions::ActionError> {
    let action = Registry::builtin().get(name).unwrap().clone();
    let intent = action.intent(run, name, a)?;
    r.runtime
        .block_on(action.execute(&r.step(host, run, name), a, &intent))
}

#[test]
fn a_vm_that_does_not_come_up_fails_with_its_serial_log_and_undo_swaps_the_original_back() {
    if !super::images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let r = Rehearsal::start(None);
    let host = Arc::new(TestHost::default());
    let original = os_disk_id(&r);
    let vm = json!({"resource_group": RG, "vm": VM});
    run_action(&r, &host, "run-6", "azure.vm.deallocate", &args(vm.clone())).unwrap();
    let snap = run_action(
        &r,
        &host,
        "run-6",
        "azure.snapshot.create",
        &args(json!({"disk_id": original})),
    )
    .unwrap();
    let copy = run_action(
        &r,
        &host,
        "run-6",
        "azure.disk.create_from_snapshot",
        &args(json!({"snapshot_id": snap["id"], "source_disk_id": original})),
    )
    .unwrap();
    // Swap in the copy WITHOUT repairing it: the VM cannot boot from it.
    let swap_args = args(
        json!({"resource_group": RG, "vm": VM, "disk_id": copy["id"], "original_disk_id": original}),
    );
    let swapped = run_action(&r, &host, "run-6", "azure.vm.swap_os_disk", &swap_args).unwrap();
    run_action(&r, &host, "run-6", "azure.vm.start", &args(vm.clone())).unwrap();
    let mut wait = args(vm.clone());
    wait.insert("timeout_seconds".into(), json!(1));
    let err = run_action(&r, &host, "run-6", "azure.vm.wait_healthy", &wait).unwrap_err();
    assert!(
        err.message.contains("not healthy") && err.message.contains("Serial log tail"),
        "{err}"
    );
    assert!(
        err.message.contains("] Linux version "),
        "the serial log (kernel lines) was not fetched: {err}"
    );

    let swap = Registry::builtin()
        .get("azure.vm.swap_os_disk")
        .unwrap()
        .clone();
    r.runtime
        .block_on(swap.undo(&r.step(&host, "run-6", "swap"), &swap_args, &swapped))
        .unwrap();
    assert_eq!(
        os_disk_id(&r),
        original,
        "undo did not swap the original disk back"
    );
    assert_eq!(
        r.vm(VM)
            .pointer("/properties/instanceView/statuses")
            .map(|s| s.to_string().contains("PowerState/running")),
        Some(true)
    );
}

#[test]
fn undo_never_deletes_a_disk_this_run_did_not_create() {
    let r = Rehearsal::start(None);
    let host = Arc::new(TestHost::default());
    let original = os_disk_id(&r);
    let copy = Registry::builtin()
        .get("azure.disk.create_from_snapshot")
        .unwrap()
        .clone();
    let mut outputs = rescue::actions::Outputs::new();
    outputs.insert("id".into(), json!(original));
    let err = r
        .runtime
        .block_on(copy.undo(&r.step(&host, "run-7", "copy"), &Args::new(), &outputs))
        .unwrap_err();
    assert!(err.message.contains("refusing to delete"), "{err}");
    assert!(
        r.requests().iter().all(|q| q["method"] == "GET"),
        "undo sent a DELETE for the original disk"
    );
}
