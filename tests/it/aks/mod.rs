//! The AKS workflows on the incident as it would be today (examples/emulator/aks-incident.yaml),
//! on a served emulator: the real `rescue` binary runs them, the real kubectl and plain ARM
//! GETs judge the end state.

mod node_replace;
mod stuck_disk;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::crash::support::{only_run, repo, text, Served};

pub const CLUSTER_RG: &str = "prod-rg";
pub const CLUSTER: &str = "prod-aks";
pub const NODE_RG: &str = "MC_prod-rg_prod-aks_westeurope";
pub const PV_DISK: &str = "pvc-8e2f4a61-93c7-4d0b-b5e8-2a7f1c9d3b40";

/// A served AKS emulator, its kubeconfig (from listClusterAdminCredential) and a state dir.
pub struct Aks {
    pub served: Served,
    pub state: PathBuf,
    kubeconfig: PathBuf,
    home: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl Aks {
    /// The incident scenario, or `scenario` text, seeded fresh in `dir/name`.
    pub fn start(dir: &Path, name: &str, scenario: Option<&str>) -> Aks {
        Self::start_scaled(dir, name, scenario, crate::crash::support::TIME_SCALE)
    }

    /// [`Aks::start`] on another time scale.
    pub fn start_scaled(dir: &Path, name: &str, scenario: Option<&str>, scale: &str) -> Aks {
        let file = match scenario {
            Some(text) => {
                let f = dir.join(format!("{name}.yaml"));
                std::fs::write(&f, text).unwrap();
                f
            }
            None => repo("examples/emulator/aks-incident.yaml"),
        };
        Self::attach(
            Served::start_scaled(&dir.join(name), scale, Some(&file)),
            dir,
            name,
        )
    }

    /// A fresh emulator on a copy of `pristine` (a data dir seeded and stopped earlier).
    pub fn copy_of(pristine: &Path, dir: &Path, name: &str) -> Aks {
        Self::attach(Served::copy_of(pristine, &dir.join(name)), dir, name)
    }

    fn attach(served: Served, dir: &Path, name: &str) -> Aks {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let login = served.login.clone();
        // What `az aks get-credentials --admin` does.
        let kubeconfig_text = runtime.block_on(async {
            let r = login
                .http()
                .post(format!("{}/subscriptions/{}/resourceGroups/{CLUSTER_RG}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}/listClusterAdminCredential?api-version=2025-10-01", login.url, login.subscription))
                .bearer_auth(login.token().await)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(body["kubeconfigs"][0]["value"].as_str().unwrap())
                .unwrap()
        });
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&kubeconfig, kubeconfig_text).unwrap();
        let home = dir.join(format!("{name}-home"));
        std::fs::create_dir_all(&home).unwrap();
        Aks {
            served,
            state: dir.join(format!("{name}-state")),
            kubeconfig,
            home,
            runtime,
        }
    }

    /// `rescue ARGS` against this emulator with this state dir and `env` added.
    pub fn rescue(&self, args: &[&str], env: &[(&str, String)]) -> Output {
        self.served.rescue(&self.state, args, env)
    }

    /// `rescue run aks-node-replace --yes` for the broken node.
    pub fn replace(&self, env: &[(&str, String)]) -> Output {
        self.replace_with(&[], env)
    }

    /// [`Aks::replace`] with `extra` arguments.
    pub fn replace_with(&self, extra: &[&str], env: &[(&str, String)]) -> Output {
        let mut args = self.replacement("run");
        args.push("--yes".into());
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.rescue(&args, env)
    }

    /// `rescue COMMAND aks-node-replace` for the broken node (instance 2).
    pub fn replacement(&self, command: &str) -> Vec<String> {
        let node = self.node_of_instance(2);
        [
            command,
            "aks-node-replace",
            "-g",
            CLUSTER_RG,
            "--cluster-name",
            CLUSTER,
            "--node",
            &node,
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn run_id(&self) -> String {
        only_run(&self.state)
    }

    /// `kubectl ARGS -o json` through the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Value {
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .args(["-o", "json"])
            .env("HOME", &self.home)
            .env_remove("KUBECONFIG")
            .output()
            .expect("run kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A plain ARM GET (our client left out): status and body.
    pub fn arm(&self, path: &str, api_version: &str) -> (u16, Value) {
        let login = &self.served.login;
        self.runtime.block_on(async {
            let sep = if path.contains('?') { '&' } else { '?' };
            let r = login
                .http()
                .get(format!("{}{path}{sep}api-version={api_version}", login.url))
                .bearer_auth(login.token().await)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        })
    }

    pub fn rg_path(&self, rg: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{rg}",
            self.served.subscription
        )
    }

    /// The node whose providerID names scale-set instance `id`.
    pub fn node_of_instance(&self, id: u32) -> String {
        let nodes = self.kubectl(&["get", "nodes"]);
        nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| {
                n["spec"]["providerID"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/virtualMachines/{id}")))
            })
            .and_then(|n| n["metadata"]["name"].as_str())
            .unwrap_or_else(|| panic!("no node of instance {id}: {nodes:#}"))
            .to_string()
    }

    pub fn pv_disk_path(&self) -> String {
        format!(
            "{}/providers/Microsoft.Compute/disks/{PV_DISK}",
            self.rg_path(NODE_RG)
        )
    }

    /// What the replacement must end with, read through kubectl and ARM, in a form two runs
    /// can compare (pod names left out: a ReplicaSet names its pods at random).
    pub fn end_state(&self, run: &str) -> AksEnd {
        let nodes = self.kubectl(&["get", "nodes"]);
        let mut node_names: Vec<String> = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        node_names.sort();
        let instance_of = |node: &str| -> String {
            nodes["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["metadata"]["name"] == node)
                .and_then(|n| n["spec"]["providerID"].as_str())
                .map(|p| p.trim_start_matches("azure://").to_ascii_lowercase())
                .unwrap_or_default()
        };
        let pods = self.kubectl(&["get", "pods", "-n", "prod"]);
        let pods = pods["items"].as_array().unwrap();
        let serving = pods
            .iter()
            .filter(|p| {
                p["status"]["phase"] == "Running"
                    && p["metadata"]["deletionTimestamp"].is_null()
                    && p["status"]["conditions"].as_array().is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            })
            .count();
        let postgres = pods
            .iter()
            .find(|p| p["metadata"]["name"] == "postgres-0")
            .and_then(|p| p["spec"]["nodeName"].as_str())
            .unwrap_or_default()
            .to_string();
        let (_, disk) = self.arm(&self.pv_disk_path(), "2024-03-02");
        let disk_holder = disk["managedBy"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let (_, pools) = self.arm(
            &format!(
                "{}/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}/agentPools/nodepool1",
                self.rg_path(CLUSTER_RG)
            ),
            "2025-10-01",
        );
        let (_, vmss) = self.arm(
            &format!(
                "{}/providers/Microsoft.Compute/virtualMachineScaleSets",
                self.rg_path(NODE_RG)
            ),
            "2024-07-01",
        );
        let scale_set = vmss["value"][0]["name"].as_str().unwrap().to_string();
        let (broken, _) = self.arm(
            &format!(
                "{}/providers/Microsoft.Compute/virtualMachineScaleSets/{scale_set}/virtualMachines/2",
                self.rg_path(NODE_RG)
            ),
            "2024-07-01",
        );
        let (_, snapshots) = self.arm(
            &format!(
                "{}/providers/Microsoft.Compute/snapshots",
                self.rg_path(NODE_RG)
            ),
            "2024-03-02",
        );
        let kept = snapshots["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["tags"]["rescue-run"] == run)
            .count();
        AksEnd {
            nodes: node_names,
            pods: pods.len(),
            serving,
            postgres_disk_on_its_node: !postgres.is_empty()
                && disk_holder == instance_of(&postgres),
            pool_count: pools["properties"]["count"].as_u64().unwrap_or(0),
            broken_instance_status: broken,
            snapshots_kept: kept,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct AksEnd {
    pub nodes: Vec<String>,
    pub pods: usize,
    pub serving: usize,
    pub postgres_disk_on_its_node: bool,
    pub pool_count: u64,
    pub broken_instance_status: u16,
    pub snapshots_kept: usize,
}

/// The end every replacement of the incident's node reaches: every pod of the workload (8 api,
/// 1 postgres) Running and Ready, none left elsewhere, postgres with its disk attached to its
/// node's instance, the broken instance gone, its snapshot kept, the pool back at 4.
pub fn assert_restored(end: &AksEnd, label: &str) {
    assert_eq!(end.pods, 9, "{label}: pods in prod: {end:?}");
    assert_eq!(end.serving, 9, "{label}: not every pod serves: {end:?}");
    assert!(
        end.postgres_disk_on_its_node,
        "{label}: postgres's disk is not on its node: {end:?}"
    );
    assert_eq!(end.pool_count, 4, "{label}: {end:?}");
    assert_eq!(
        end.broken_instance_status, 404,
        "{label}: the broken instance is still there"
    );
    assert_eq!(
        end.snapshots_kept, 1,
        "{label}: the forensic snapshot: {end:?}"
    );
    assert_eq!(end.nodes.len(), 4, "{label}: nodes {end:?}");
}
