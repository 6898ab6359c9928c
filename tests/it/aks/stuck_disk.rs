//! release-stuck-disk: the database's disk let go by its dead node, and a running Ready node's
//! disk left alone.

use super::*;
use crate::crash::support::is_mutation;

fn release(aks: &Aks) -> Output {
    let cluster = format!(
        "{}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}",
        aks.rg_path(CLUSTER_RG)
    );
    aks.rescue(
        &[
            "run",
            "release-stuck-disk",
            "--input",
            &format!("disk_id={}", aks.pv_disk_path()),
            "--input",
            &format!("cluster_id={cluster}"),
            "--yes",
        ],
        &[],
    )
}

#[test]
fn the_database_disk_is_released_from_its_dead_node() {
    let dir = tempfile::tempdir().unwrap();
    let aks = Aks::start(dir.path(), "emu", None);
    let node = aks.node_of_instance(2);
    let (_, disk) = aks.arm(&aks.pv_disk_path(), "2024-03-02");
    assert!(
        disk["managedBy"]
            .as_str()
            .is_some_and(|m| m.ends_with("/virtualMachines/2")),
        "{disk:#}"
    );

    let out = release(&aks);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (_, disk) = aks.arm(&aks.pv_disk_path(), "2024-03-02");
    let holder = disk["managedBy"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        !holder.ends_with("/virtualmachines/2"),
        "still on the dead instance: {disk:#}"
    );
    let attachments = aks.kubectl(&["get", "volumeattachments"]);
    let stale: Vec<&Value> = attachments["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["spec"]["nodeName"] == node.as_str())
        .collect();
    assert!(
        stale.is_empty(),
        "Kubernetes still attaches it to {node}: {stale:#?}"
    );
    let dead = aks.kubectl(&["get", "node", &node]);
    assert!(
        dead["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/out-of-service"),
        "{dead:#}"
    );
}

#[test]
fn a_disk_on_a_running_ready_node_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = std::fs::read_to_string(repo("examples/emulator/aks-incident.yaml"))
        .unwrap()
        .replace("broken_instances: [2]", "broken_instances: []");
    let aks = Aks::start(dir.path(), "emu", Some(&healthy));
    let out = release(&aks);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("in use, not stuck"), "{}", text(&out));
    let requests = aks.served.requests();
    let writes: Vec<&Value> = requests
        .iter()
        .filter(|r| {
            is_mutation(r) && r["operation"] != "managedClusters.listClusterAdminCredentials"
        })
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
}
