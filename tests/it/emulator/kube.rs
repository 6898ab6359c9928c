//! The emulator's Kubernetes slice, driven by the real kubectl through the kubeconfig that
//! `listClusterAdminCredential` hands out: reads, cordon, taint, drain, delete, and the control
//! loops that decide what a dead node's StatefulSet pod and disk do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::support::{config, start_with, Emu, SUB};

const CLUSTER_RG: &str = "prod-rg";
const CLUSTER: &str = "prod-aks";
const NODE_RG: &str = "MC_prod-rg_prod-aks_westeurope";
const VMSS: &str = "aks-nodepool1-31415926-vmss";
const PV: &str = "pvc-8e2f4a61-93c7-4d0b-b5e8-2a7f1c9d3b40";

fn node(i: u32) -> String {
    format!("{VMSS}00000{i}")
}

fn provider_id(i: u32) -> String {
    format!("azure:///subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/virtualMachineScaleSets/{VMSS}/virtualMachines/{i}")
}

/// Four 2-CPU nodes; `extra` is YAML appended to each node by index (`ready: false`, ...).
fn scenario(extra: [&str; 4], workloads: &str) -> String {
    let mut nodes = String::new();
    for (i, e) in extra.iter().enumerate() {
        let i = i as u32;
        nodes.push_str(&format!(
            "      - {{name: {}, provider_id: \"{}\", cpu: \"2\", memory: 8Gi, zone: westeurope-1{e}}}\n",
            node(i),
            provider_id(i)
        ));
    }
    format!(
        "subscription: {SUB}\nlocation: westeurope\nresource_groups:\n  - name: {NODE_RG}\nkubernetes:\n  - cluster: /subscriptions/{SUB}/resourceGroups/{CLUSTER_RG}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}\n    nodes:\n{nodes}    workloads:\n{workloads}"
    )
}

fn postgres_on(node_name: &str) -> String {
    format!(
        "      - kind: StatefulSet\n        name: postgres\n        namespace: db\n        requests: {{cpu: 1500m, memory: 4Gi}}\n        nodes: [{node_name}]\n        volume: {{disk: /subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/disks/{PV}}}\n"
    )
}

fn web_on(nodes: &[String], cpu: &str) -> String {
    format!(
        "      - kind: Deployment\n        name: web\n        replicas: {}\n        requests: {{cpu: {cpu}, memory: 1Gi}}\n        nodes: [{}]\n        empty_dir: true\n",
        nodes.len(),
        nodes.join(", ")
    )
}

struct Kube {
    emu: Emu,
    kubeconfig: PathBuf,
    home: PathBuf,
}

async fn start(scenario_text: String, scale: f64) -> Kube {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aks.yaml");
    std::fs::write(&path, scenario_text).unwrap();
    let emu = start_with(dir, move |d| rescue::emulator::Config {
        scenario: Some(path),
        ..config(d, scale)
    })
    .await;
    with_credential(emu).await
}

/// What `az aks get-credentials --admin` does: listClusterAdminCredential, the kubeconfig
/// decoded into a file.
async fn with_credential(emu: Emu) -> Kube {
    let r = emu
        .send(
            "POST",
            &format!("/subscriptions/{SUB}/resourceGroups/{CLUSTER_RG}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}/listClusterAdminCredential?api-version=2025-10-01"),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["kubeconfigs"][0]["name"], "clusterAdmin");
    let text = base64::engine::general_purpose::STANDARD
        .decode(body["kubeconfigs"][0]["value"].as_str().unwrap())
        .unwrap();
    let home = emu.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = emu.dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, text).unwrap();
    Kube {
        emu,
        kubeconfig,
        home,
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Kube {
    /// Runs the real kubectl against the slice; its only server is the kubeconfig's loopback
    /// URL, and HOME is the test's own (kubectl's discovery cache lives there).
    async fn kubectl(&self, args: &[&str]) -> Out {
        kubectl_with(&self.kubeconfig, &self.home, args).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert_eq!(
            out.code, 0,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a).await).unwrap()
    }

    /// Polls (kubectl get -o json) until `done` holds; the waits are the emulator's scaled ones.
    async fn until(&self, args: &[&str], what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            let v = self.json(args).await;
            if done(&v) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Non-graceful node shutdown's taint, as an operator adds it.
    async fn out_of_service(&self, node: &str) {
        self.ok(&[
            "taint",
            "nodes",
            node,
            "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
        ])
        .await;
    }

    /// Polls until the pod is Terminating (has a deletionTimestamp); returns it.
    async fn until_terminating(&self, namespace: &str, pod: &str) -> Value {
        self.until(
            &["get", "pod", "-n", namespace, pod],
            &format!("{pod} Terminating"),
            |p| p["metadata"]["deletionTimestamp"].is_string(),
        )
        .await
    }

    async fn attachments(&self) -> Vec<Value> {
        self.json(&["get", "volumeattachments"]).await["items"]
            .as_array()
            .cloned()
            .unwrap()
    }
}

async fn kubectl_with(kubeconfig: &Path, home: &Path, args: &[&str]) -> Out {
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("kubectl runs (.ci/setup installs kubernetes-client)");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn pod_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_describes_cordons_taints_drains_and_deletes() {
    let k = start(
        scenario(
            ["", "", "", ""],
            &(postgres_on(&node(1)) + &web_on(&[node(1), node(2)], "500m")),
        ),
        0.002,
    )
    .await;

    let nodes = k.json(&["get", "nodes"]).await;
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for (i, n) in items.iter().enumerate() {
        assert_eq!(n["spec"]["providerID"], provider_id(i as u32).as_str());
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(n["status"]["allocatable"]["cpu"], "2");
    }

    let described = k.ok(&["describe", "node", &node(1)]).await;
    assert!(
        described.contains(&format!("ProviderID:                   {}", provider_id(1))),
        "{described}"
    );
    assert!(
        described.contains("Taints:             <none>"),
        "{described}"
    );
    assert!(described.contains("Ready            True"), "{described}");
    assert!(described.contains("postgres-0"), "{described}");
    assert!(
        described.contains("cpu                2 (100%)"),
        "{described}"
    );

    let missing = k.kubectl(&["get", "pod", "-n", "db", "nope"]).await;
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains(r#"Error from server (NotFound): pods "nope" not found"#),
        "{}",
        missing.stderr
    );

    let out = k.ok(&["cordon", &node(3)]).await;
    assert_eq!(out.trim(), format!("node/{} cordoned", node(3)));
    let n = k.json(&["get", "node", &node(3)]).await;
    assert_eq!(n["spec"]["unschedulable"], true);
    assert_eq!(
        n["spec"]["taints"][0]["key"],
        "node.kubernetes.io/unschedulable"
    );
    let table = k.ok(&["get", "nodes"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&node(3)) && l.contains("Ready,SchedulingDisabled")),
        "{table}"
    );

    let out = k
        .ok(&[
            "taint",
            "nodes",
            &node(3),
            "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute",
        ])
        .await;
    assert_eq!(out.trim(), format!("node/{} tainted", node(3)));
    let taints = k.json(&["get", "node", &node(3)]).await["spec"]["taints"].clone();
    assert!(taints
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "node.kubernetes.io/out-of-service"
            && t["value"] == "nodeshutdown"
            && t["effect"] == "NoExecute"));

    let va = k.ok(&["get", "volumeattachments"]).await;
    let header: Vec<&str> = va.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"]
    );
    assert!(
        va.lines()
            .any(|l| l.contains(PV) && l.contains(&node(1)) && l.contains("true")),
        "{va}"
    );

    // A disruption budget holds the drain back, as the eviction API does. (kubectl's own
    // generators send protobuf, which the slice does not read: the budget goes as JSON; no
    // OpenAPI is served for client-side validation.)
    let pdb = k.emu.dir.path().join("pdb.json");
    std::fs::write(
        &pdb,
        r#"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"pg","namespace":"db"},"spec":{"minAvailable":1,"selector":{"matchLabels":{"app":"postgres"}}}}"#,
    )
    .unwrap();
    k.ok(&["create", "--validate=false", "-f", pdb.to_str().unwrap()])
        .await;
    let pdbs = k.ok(&["get", "pdb", "-n", "db"]).await;
    let rows: Vec<Vec<&str>> = pdbs
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ]
    );
    assert_eq!(rows[1][..4], ["pg", "1", "N/A", "0"]);
    let held = k
        .kubectl(&[
            "drain",
            &node(1),
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=1s",
        ])
        .await;
    assert_eq!(held.code, 1, "{}\n{}", held.stdout, held.stderr);
    assert!(
        held.stderr
            .contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        held.stderr
    );
    assert!(
        k.json(&["get", "pod", "-n", "db", "postgres-0"]).await["metadata"]["deletionTimestamp"]
            .is_null()
    );
    k.ok(&["delete", "pdb", "pg", "-n", "db"]).await;

    // Draining node 1 evicts postgres-0 and a web pod; web is replaced at once, postgres-0 is
    // recreated and (fitting only on node 0) its disk moves there.
    let drained = k
        .kubectl(&[
            "drain",
            &node(1),
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=60s",
        ])
        .await;
    assert_eq!(drained.code, 0, "{}\n{}", drained.stdout, drained.stderr);
    assert!(
        drained.stdout.contains("pod/postgres-0 evicted"),
        "{}",
        drained.stdout
    );
    assert!(
        drained
            .stdout
            .contains(&format!("node/{} drained", node(1))),
        "{}",
        drained.stdout
    );
    let on_drained = k
        .json(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            &format!("spec.nodeName={}", node(1)),
        ])
        .await;
    assert!(pod_names(&on_drained).is_empty(), "{on_drained}");
    let pg = k
        .until(
            &["get", "pod", "-n", "db", "postgres-0"],
            "postgres-0 Running on node 0",
            |p| p["status"]["phase"] == "Running",
        )
        .await;
    assert_eq!(pg["spec"]["nodeName"], node(0).as_str());
    let vas = k.attachments().await;
    assert_eq!(vas.len(), 1, "{vas:?}");
    assert_eq!(vas[0]["spec"]["nodeName"], node(0).as_str());
    assert_eq!(vas[0]["status"]["attached"], true);

    let web = k.json(&["get", "pods", "-l", "app=web"]).await;
    let victim = pod_names(&web)[0].clone();
    let out = k.ok(&["delete", "pod", &victim]).await;
    assert_eq!(out.trim(), format!("pod \"{victim}\" deleted"));
    let gone = k.kubectl(&["get", "pod", &victim]).await;
    assert_eq!(gone.code, 1, "{}", gone.stdout);
    let web = k
        .until(
            &["get", "pods", "-l", "app=web"],
            "two web pods again",
            |l| l["items"].as_array().unwrap().len() == 2,
        )
        .await;
    assert!(!pod_names(&web).contains(&victim));

    // A wrong token is refused as the API server refuses it.
    let text = std::fs::read_to_string(&k.kubeconfig).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap();
    let forged = k.emu.dir.path().join("forged");
    std::fs::write(&forged, text.replace(token, "forged")).unwrap();
    let denied = kubectl_with(&forged, &k.home, &["get", "nodes"]).await;
    assert_eq!(denied.code, 1);
    assert!(denied.stderr.contains("Unauthorized"), "{}", denied.stderr);

    // The cluster lives in the data dir: a restarted emulator (a new port) hands out the same
    // admin token, and the cordon and taint are still there.
    let Kube { mut emu, .. } = k;
    emu.stop().await;
    let dir = std::mem::replace(&mut emu.dir, tempfile::tempdir().unwrap());
    let k = with_credential(start_with(dir, |d| config(d, 0.002)).await).await;
    assert!(std::fs::read_to_string(&k.kubeconfig)
        .unwrap()
        .contains(token));
    let n = k.json(&["get", "node", &node(3)]).await;
    assert_eq!(n["spec"]["unschedulable"], true);
    assert!(n["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "node.kubernetes.io/out-of-service"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_statefulset_pod_and_disk_stay_until_out_of_service() {
    // Node 2 is silent; nodes 0 and 1 are half full, node 3 cordoned: postgres (1.5 CPU) fits
    // nowhere until node 3 is uncordoned.
    let k = start(
        scenario(
            ["", "", ", ready: false", ""],
            &(postgres_on(&node(2)) + &web_on(&[node(0), node(1)], "1000m")),
        ),
        0.005,
    )
    .await;
    k.ok(&["cordon", &node(3)]).await;
    let described = k.ok(&["describe", "node", &node(2)]).await;
    assert!(
        described.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{described}"
    );
    assert!(
        described.contains("Kubelet stopped posting node status."),
        "{described}"
    );

    // The unreachable taint's 300 s toleration runs out: Terminating, and it stays so.
    let pg = k.until_terminating("db", "postgres-0").await;
    let uid = pg["metadata"]["uid"].clone();
    // Past the attach-detach controller's 6 minutes (scaled): nothing is released while the
    // pod is Terminating on the silent node.
    tokio::time::sleep(Duration::from_secs_f64(400.0 * 0.005)).await;
    let pg = k.json(&["get", "pod", "-n", "db", "postgres-0"]).await;
    assert_eq!(pg["metadata"]["uid"], uid);
    assert_eq!(pg["spec"]["nodeName"], node(2).as_str());
    let table = k.ok(&["get", "pods", "-n", "db"]).await;
    assert!(table.contains("Terminating"), "{table}");
    let vas = k.attachments().await;
    assert_eq!(vas.len(), 1);
    assert_eq!(vas[0]["spec"]["nodeName"], node(2).as_str());
    assert_eq!(vas[0]["status"]["attached"], true);
    assert!(vas[0]["metadata"]["deletionTimestamp"].is_null());

    // Non-graceful node shutdown: the pod is force-deleted and the disk detached at once; the
    // StatefulSet recreates postgres-0, Pending because it fits nowhere.
    k.out_of_service(&node(2)).await;
    let pg = k
        .until(
            &["get", "pod", "-n", "db", "postgres-0"],
            "a new postgres-0",
            |p| p["metadata"]["uid"] != uid,
        )
        .await;
    assert_eq!(pg["status"]["phase"], "Pending");
    assert!(pg["spec"]["nodeName"].is_null());
    let scheduled = &pg["status"]["conditions"][0];
    assert_eq!(scheduled["reason"], "Unschedulable");
    assert!(
        scheduled["message"]
            .as_str()
            .unwrap()
            .contains("Insufficient cpu"),
        "{scheduled}"
    );
    k.until(
        &["get", "volumeattachments"],
        "the old attachment gone",
        |l| l["items"].as_array().unwrap().is_empty(),
    )
    .await;

    // Room appears: it is scheduled there, its disk attached there, and it runs.
    k.ok(&["uncordon", &node(3)]).await;
    let pg = k
        .until(
            &["get", "pod", "-n", "db", "postgres-0"],
            "postgres-0 Running",
            |p| p["status"]["phase"] == "Running",
        )
        .await;
    assert_eq!(pg["spec"]["nodeName"], node(3).as_str());
    let vas = k.attachments().await;
    assert_eq!(vas.len(), 1);
    assert_eq!(vas[0]["spec"]["nodeName"], node(3).as_str());
    assert_eq!(vas[0]["spec"]["source"]["persistentVolumeName"], PV);
    assert_eq!(vas[0]["status"]["attached"], true);
    let web = k.json(&["get", "pods", "-l", "app=web"]).await;
    assert!(web["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"]["phase"] == "Running"));
}

#[test]
fn a_bad_kubernetes_section_is_refused_naming_the_value() {
    let good = scenario(["", "", "", ""], &web_on(&[node(0)], "500m"));
    for (bad, says) in [
        (
            good.replace(
                "cpu: \"2\", memory: 8Gi, zone: westeurope-1}",
                "cpu: \"two\", memory: 8Gi, zone: westeurope-1}",
            ),
            "`two` is not a CPU quantity",
        ),
        (
            good.replace(&format!("nodes: [{}]", node(0)), "nodes: [aks-ghost]"),
            "node `aks-ghost` is not one of the cluster's nodes",
        ),
        (
            good.replace("empty_dir: true", "empty_dir: true\n        colour: blue"),
            "unknown field `colour`",
        ),
        (
            good.replace("managedClusters/prod-aks", "managedClusters"),
            "is not a managed cluster id",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, bad).unwrap();
        let data = dir.path().join("data");
        let out = assert_cmd::Command::cargo_bin("rescue")
            .unwrap()
            .args(["emulator", "serve", "--scenario"])
            .arg(&file)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "wanted {says:?} in: {stderr}");
        assert!(!data.join("state.json").exists());
    }
}

// aks-incident.yaml: the AKS cluster declared once, its nodes the pool's instances.

const AKS_INCIDENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/emulator/aks-incident.yaml"
);
const VMSS_API: &str = "api-version=2024-11-01";
const AKS_API: &str = "api-version=2026-06-01";

async fn start_aks_incident(scale: f64) -> Kube {
    let dir = tempfile::tempdir().unwrap();
    let emu = start_with(dir, |d| rescue::emulator::Config {
        scenario: Some(AKS_INCIDENT.into()),
        ..config(d, scale)
    })
    .await;
    with_credential(emu).await
}

/// The pool's scale set id and its instances, as ARM lists them.
async fn arm_instances(emu: &Emu) -> (String, Vec<Value>) {
    let list = emu
        .get_json(&format!("/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/virtualMachineScaleSets?{VMSS_API}"))
        .await;
    let ss = list["value"][0]["id"].as_str().unwrap().to_string();
    let instances = emu
        .get_json(&format!("{ss}/virtualMachines?{VMSS_API}"))
        .await;
    (ss, instances["value"].as_array().unwrap().clone())
}

fn computer_name(instance: &Value) -> String {
    instance["properties"]["osProfile"]["computerName"]
        .as_str()
        .unwrap()
        .to_string()
}

fn node_ready(n: &Value) -> bool {
    n["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap()
}

fn cluster_path(tail: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{CLUSTER_RG}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}{tail}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aks_clusters_nodes_are_its_instances_and_follow_its_scaling() {
    let k = start_aks_incident(0.002).await;
    let (_, instances) = arm_instances(&k.emu).await;
    let nodes = items(&k.json(&["get", "nodes"]).await);
    assert_eq!(nodes.len(), 4);
    for (inst, n) in instances.iter().zip(&nodes) {
        let name = computer_name(inst);
        assert_eq!(n["metadata"]["name"], name.as_str());
        // AKS's providerID: the instance's id with the node group in lowercase.
        let id = inst["id"].as_str().unwrap().replace(
            &format!("/resourceGroups/{NODE_RG}/"),
            &format!("/resourceGroups/{}/", NODE_RG.to_ascii_lowercase()),
        );
        assert_eq!(n["spec"]["providerID"], format!("azure://{id}"));
        let labels = &n["metadata"]["labels"];
        assert_eq!(labels["agentpool"], "nodepool1");
        assert_eq!(labels["kubernetes.azure.com/agentpool"], "nodepool1");
        assert_eq!(labels["topology.kubernetes.io/zone"], "westeurope-1");
        assert_eq!(
            labels["node.kubernetes.io/instance-type"],
            "Standard_D4s_v3"
        );
        assert_eq!(labels["kubernetes.io/hostname"], name.as_str());
        assert_eq!(n["status"]["capacity"]["cpu"], "4");
        assert_eq!(n["status"]["allocatable"]["cpu"], "3860m");
        assert_eq!(n["status"]["allocatable"]["memory"], "16009216Ki");
        assert_eq!(n["status"]["nodeInfo"]["kubeletVersion"], "v1.29.9");
        // Instance 2 boots the corrupted OS disk: its agent, so its node, is down.
        assert_eq!(node_ready(n), inst["instanceId"] != "2", "{name}");
    }

    // A scale-out through ARM: the new instance's node registers once its agent is Ready, and
    // the two api pods the broken node's loss left Pending run there.
    let done = k
        .emu
        .run(
            "PUT",
            &cluster_path(&format!("/agentPools/nodepool1?{AKS_API}")),
            Some(serde_json::json!({"properties": {"count": 5}})),
        )
        .await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let (_, instances) = arm_instances(&k.emu).await;
    assert_eq!(instances.len(), 5);
    let new = computer_name(&instances[4]);
    let node = k
        .until(&["get", "nodes"], "the fifth node Ready", |l| {
            items(l)
                .iter()
                .any(|n| n["metadata"]["name"] == new.as_str() && node_ready(n))
        })
        .await;
    assert_eq!(items(&node).len(), 5);
    let table = k.ok(&["get", "nodes"]).await;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&new) && l.split_whitespace().nth(1) == Some("Ready")),
        "{table}"
    );
    let on_new = |l: &Value| {
        items(l)
            .iter()
            .filter(|p| p["spec"]["nodeName"] == new.as_str() && p["status"]["phase"] == "Running")
            .count()
    };
    k.until(
        &["get", "pods", "-n", "prod", "-l", "app=api"],
        "two api pods running on the new node",
        |l| on_new(l) == 2,
    )
    .await;

    // deleteMachines removes the node; its pods go with it (orphans) and are Pending again.
    let r = k
        .emu
        .send(
            "POST",
            &cluster_path(&format!("/agentPools/nodepool1/deleteMachines?{AKS_API}")),
            Some(serde_json::json!({"machineNames": [new]})),
        )
        .await;
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    k.emu.location_result(&location).await;
    let nodes = k
        .until(&["get", "nodes"], "the new node gone", |l| {
            items(l)
                .iter()
                .all(|n| n["metadata"]["name"] != new.as_str())
        })
        .await;
    assert_eq!(items(&nodes).len(), 4);
    // The pod GC's quarantine (40 s, scaled) passes before they go.
    let pending = |l: &Value| {
        items(l)
            .iter()
            .filter(|p| p["status"]["phase"] == "Pending" && p["spec"]["nodeName"].is_null())
            .count()
    };
    let api = k
        .until(
            &["get", "pods", "-n", "prod", "-l", "app=api"],
            "the removed node's api pods Pending again",
            |l| pending(l) == 2,
        )
        .await;
    assert!(
        items(&api)
            .iter()
            .all(|p| p["spec"]["nodeName"] != new.as_str()),
        "{api}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_postgres_moves_with_its_disk_in_arm_once_out_of_service() {
    let k = start_aks_incident(0.002).await;
    let (ss, instances) = arm_instances(&k.emu).await;
    let broken = computer_name(&instances[2]);
    let node = k.json(&["get", "node", &broken]).await;
    assert!(!node_ready(&node), "{node}");
    let pg = k.json(&["get", "pod", "-n", "prod", "postgres-0"]).await;
    assert_eq!(pg["spec"]["nodeName"], broken.as_str());
    let uid = pg["metadata"]["uid"].clone();
    let disk_path = format!(
        "/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/disks/{PV}?{}",
        super::support::DISK_API
    );
    let disk = k.emu.get_json(&disk_path).await;
    assert_eq!(disk["managedBy"], instances[2]["id"]);
    assert_eq!(disk["properties"]["diskState"], "Attached");
    assert_eq!(
        instances[2]["properties"]["storageProfile"]["dataDisks"][0]["lun"],
        0
    );

    // Stopped through ARM, the node stays NotReady and postgres-0 Terminating on it, its disk
    // on the instance.
    let done = k
        .emu
        .run(
            "POST",
            &format!("{ss}/virtualMachines/2/powerOff?{VMSS_API}"),
            None,
        )
        .await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let pg = k.until_terminating("prod", "postgres-0").await;
    assert_eq!(pg["metadata"]["uid"], uid);
    assert_eq!(
        k.emu.get_json(&disk_path).await["managedBy"],
        instances[2]["id"]
    );

    // Out of service: the pod is force-deleted, the disk detached from instance 2 in ARM,
    // postgres-0 recreated where its requests fit, and the disk attached to that instance.
    k.out_of_service(&broken).await;
    let pg = k
        .until(
            &["get", "pod", "-n", "prod", "postgres-0"],
            "a new postgres-0 Running",
            |p| p["metadata"]["uid"] != uid && p["status"]["phase"] == "Running",
        )
        .await;
    let moved_to = pg["spec"]["nodeName"].as_str().unwrap().to_string();
    assert_ne!(moved_to, broken);
    let (_, instances) = arm_instances(&k.emu).await;
    let target = instances
        .iter()
        .find(|i| computer_name(i) == moved_to)
        .unwrap();
    let disk = k.emu.get_json(&disk_path).await;
    assert_eq!(disk["managedBy"], target["id"], "{disk}");
    assert_eq!(disk["properties"]["diskState"], "Attached");
    let data = &target["properties"]["storageProfile"]["dataDisks"];
    assert_eq!(data[0]["lun"], 0, "{data}");
    assert_eq!(data[0]["caching"], "ReadOnly", "{data}");
    assert_eq!(
        instances[2]["properties"]["storageProfile"]["dataDisks"],
        serde_json::json!([])
    );
    let vas = k.attachments().await;
    assert_eq!(vas.len(), 1, "{vas:?}");
    assert_eq!(vas[0]["spec"]["nodeName"], moved_to.as_str());
    assert_eq!(vas[0]["status"]["attached"], true);
    assert_eq!(vas[0]["status"]["attachmentMetadata"]["LUN"], "0");
}

#[test]
fn a_derived_cluster_names_the_cluster_and_the_bad_value() {
    for (from, to, says) in [
        (
            "nodes: [nodepool1/2]",
            "nodes: [nodepool1/9]",
            "node `nodepool1/9`",
        ),
        ("nodes: [nodepool1/2]", "nodes: [pool9/2]", "node `pool9/2`"),
        (
            "vm_size: Standard_D4s_v3",
            "vm_size: Standard_Q9",
            "vm_size `Standard_Q9`",
        ),
        (
            "managedClusters/prod-aks\n",
            "managedClusters/other-aks\n",
            "declares no `nodes:`",
        ),
    ] {
        let err = super::support::scenario_error(AKS_INCIDENT, from, to);
        assert!(err.contains(says), "{says}: {err}");
        assert!(err.contains("managedClusters/"), "names the cluster: {err}");
    }
}
