//! os-disk-swap without `rescue_vm`: the run creates its rescue VM (and network), repairs, and
//! deletes exactly what it created; a rollback does the same, and deletes nothing that does not
//! carry the run's tag. Checked by listing the resource group (ARM's generic resource list).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::support::*;

/// Every resource id of the incident's group, as `az resource list -g RG` lists them.
fn group(r: &Rehearsal) -> BTreeSet<String> {
    let path = format!(
        "/subscriptions/{}/resourceGroups/{RG}/resources?api-version=2024-11-01",
        r.subscription
    );
    let body: Value = r.runtime.block_on(async {
        let token = r.login.token().await;
        r.login.get_json(&r.login.http(), &token, &path).await
    });
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_ascii_lowercase())
        .collect()
}

/// os-disk-swap on the incident, no `rescue_vm` given.
fn repair_creating(r: &Rehearsal, extra: &[&str]) -> std::process::Output {
    let inputs = r.dir.path().join("inputs.yaml");
    std::fs::write(
        &inputs,
        format!("resource_group: {RG}\nvm: {VM}\nallow_aks_node: true\n"),
    )
    .unwrap();
    r.repair_with(&inputs, &[&["--yes"], extra].concat())
}

fn journal(r: &Rehearsal) -> Value {
    let state = r.dir.path().join("state");
    crate::crash::support::journal(&state, &crate::crash::support::only_run(&state))
}

fn journaled_creations(journal: &Value) -> Vec<String> {
    journal["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["step"] == "rescue-vm")
        .map(|r| r["id"].as_str().unwrap().to_ascii_lowercase())
        .collect()
}

fn ids_of(journal: &Value, step: &str, output: &str) -> String {
    let steps = journal["steps"].as_array().unwrap();
    let s = steps.iter().find(|s| s["id"] == step).unwrap();
    s["outputs"][output].as_str().unwrap().to_string()
}

/// PUT the NSG back with its `rescue-run` tag set to `run` (as another engineer might).
fn tag_nsg(r: &Rehearsal, nsg: &str, run: &str) {
    let body = json!({"location": "westeurope", "tags": {"rescue-run": run}, "properties": {"securityRules": []}});
    let status = r.runtime.block_on(async {
        let token = r.login.token().await;
        let url = format!("{}{nsg}?api-version=2024-03-01", r.login.url);
        let sent = r
            .login
            .http()
            .put(url)
            .bearer_auth(token)
            .json(&body)
            .send();
        sent.await.unwrap().status()
    });
    assert!(status.is_success(), "{status}");
}

#[test]
fn without_a_rescue_vm_the_group_ends_as_it_was_plus_the_snapshot_and_the_repaired_disk() {
    let r = Rehearsal::start(None);
    let before = group(&r);
    let out = repair_creating(&r, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let after = group(&r);
    let j = journal(&r);
    let added: BTreeSet<String> = after.difference(&before).cloned().collect();
    let expected: BTreeSet<String> = [ids_of(&j, "snapshot", "id"), ids_of(&j, "copy", "id")]
        .map(|id| id.to_ascii_lowercase())
        .into();
    assert_eq!(
        added, expected,
        "only the snapshot and the repaired disk are new"
    );
    assert!(
        before.is_subset(&after),
        "nothing that was there is gone (the old OS disk is kept): {:?}",
        before.difference(&after).collect::<Vec<_>>()
    );

    // It did create a rescue VM, its OS disk, NIC, VNet and NSG: journaled before they existed,
    // and each of them deleted.
    let created = journaled_creations(&j);
    let kinds: Vec<&str> = created
        .iter()
        .map(|id| id.split('/').nth_back(1).unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "virtualmachines",
            "disks",
            "networkinterfaces",
            "virtualnetworks",
            "networksecuritygroups"
        ]
    );
    let log = r.requests();
    for id in &created {
        let path = |m: &str| {
            log.iter().position(|q| {
                q["method"] == m && q["path"].as_str().unwrap().eq_ignore_ascii_case(id)
            })
        };
        if !id.contains("/disks/") {
            assert!(path("PUT").is_some(), "{id} was created");
        }
        assert!(path("DELETE").is_some(), "{id} was deleted");
    }
    // The copy went to the rescue VM only after its agent reported Ready (the VM's create, then
    // a read of its instance view, then the attach).
    let vm_id = &created[0];
    let at = |pred: &dyn Fn(&Value) -> bool| log.iter().position(pred).unwrap();
    let put =
        at(&|q| q["method"] == "PUT" && q["path"].as_str().unwrap().eq_ignore_ascii_case(vm_id));
    let attach = at(&|q| q["operation"] == "virtualMachines.attachDetachDataDisks");
    assert!(put < attach);
    let vm_name = vm_id.rsplit('/').next().unwrap();
    let steps = j["steps"].as_array().unwrap();
    let fsck = steps.iter().find(|s| s["id"] == "fsck").unwrap();
    assert_eq!(
        fsck["args"]["vm"].as_str().unwrap().to_ascii_lowercase(),
        vm_name,
        "fsck ran on the created VM"
    );
    assert_eq!(fsck["outputs"]["verdict"], "repaired");
    let copy = ids_of(&j, "copy", "name");
    assert!(
        e2fsck_partitions(&r.image("disks", &copy))
            .iter()
            .all(|c| *c == 0),
        "the swapped-in copy is clean"
    );
}

#[test]
fn rollback_after_the_rescue_vm_was_created_deletes_exactly_what_the_run_created() {
    // Every attach fails: the run stops after creating its rescue VM, deallocating the VM,
    // snapshotting and copying its disk.
    let r = Rehearsal::with_faults(None, &["{ operation: vm.attachDetach, kind: lro_failed }"]);
    let before = group(&r);
    let out = repair_creating(&r, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let j = journal(&r);
    let created = journaled_creations(&j);
    let during = group(&r);
    for id in &created {
        assert!(during.contains(id), "{id} exists before the rollback");
    }

    // Someone retags the rescue NSG: rollback deletes the rest, but not it.
    let nsg = created
        .iter()
        .find(|id| id.contains("/networksecuritygroups/"))
        .unwrap()
        .clone();
    tag_nsg(&r, &nsg, "someone-else");
    let run = j["run_id"].as_str().unwrap().to_string();
    let out = r.rescue(&[
        "rollback",
        &run,
        "--delete-created",
        "--include-snapshot",
        "--yes",
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("refusing to delete nsg"),
        "{}",
        text(&out)
    );
    let left: BTreeSet<String> = group(&r).difference(&before).cloned().collect();
    assert_eq!(
        left,
        [nsg.clone()].into(),
        "all the run created is gone but the NSG it no longer owns"
    );

    // Once it is the run's again, the rollback (resumed) finishes: the group is as it was.
    tag_nsg(&r, &nsg, &run);
    let out = r.rescue(&[
        "rollback",
        &run,
        "--delete-created",
        "--include-snapshot",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        group(&r),
        before,
        "exactly what the run created was deleted"
    );
    let vm = r.vm(VM);
    assert_eq!(
        vm.pointer("/properties/instanceView/statuses/1/code")
            .and_then(Value::as_str),
        Some("PowerState/running")
    );
}
