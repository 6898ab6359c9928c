//! Helpers for the emulator tests: a started emulator (HTTPS), raw HTTP with a token from its
//! Entra endpoint, operation polling as Azure documents it, and the real azure_mgmt_compute
//! client.

use std::sync::Arc;
use std::time::Duration;

use rescue::emulator::{self, Config, Handle};
use serde_json::Value;

pub const SUB: &str = "00000000-0000-0000-0000-000000000001";
pub const RG: &str = "MC_prod-rg_prod-aks_westeurope";
pub const BROKEN: &str = "aks-nodepool1-31415926-vm2";
pub const BROKEN_OS: &str = "aks-nodepool1-31415926-vm2_OsDisk_1_3a9f5c7e1d2b4a68e0f4b6d8c1a5e927";
pub const HEALTHY: &str = "aks-nodepool1-31415926-vm0";
pub const HEALTHY_OS: &str = "aks-nodepool1-31415926-vm0_OsDisk_1_0c6f8a3e2b7d4f19a5e1c3d7b9f20a41";
pub const PVC: &str = "pvc-8e2f4a61-93c7-4d0b-b5e8-2a7f1c9d3b40";
pub const RESCUE: &str = "rescue-vm";
pub const DISK_API: &str = "api-version=2024-03-02";
pub const VM_API: &str = "api-version=2024-07-01";

pub struct Emu {
    pub handle: Option<Handle>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub login: crate::support::Login,
}

pub fn config(dir: &std::path::Path, scale: f64) -> Config {
    Config {
        scenario: None,
        data_dir: dir.join("data"),
        port: 0,
        time_scale: scale,
        log: Some(dir.join("requests.jsonl")),
        tls: true,
    }
}

pub async fn start(scale: f64) -> Emu {
    let dir = tempfile::tempdir().unwrap();
    start_with(dir, config_for_scale(scale)).await
}

fn config_for_scale(scale: f64) -> impl FnOnce(&std::path::Path) -> Config {
    move |d| config(d, scale)
}

pub async fn start_with(
    dir: tempfile::TempDir,
    make: impl FnOnce(&std::path::Path) -> Config,
) -> Emu {
    let handle = emulator::start(make(dir.path()))
        .await
        .expect("emulator starts");
    let login = crate::support::Login::from_handle(&handle);
    let token = login.token().await;
    Emu {
        handle: Some(handle),
        dir,
        http: login.http(),
        base: login.url.clone(),
        token,
        login,
    }
}

pub fn disk(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/{name}")
}

pub fn snapshot(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/snapshots/{name}")
}

pub const NET_API: &str = "api-version=2024-03-01";

/// A Microsoft.Network resource of the incident's group (`virtualNetworks/NAME`, ...).
pub fn net(kind_and_name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Network/{kind_and_name}")
}

/// The subnet every incident VM's NIC is in.
pub fn scenario_subnet() -> String {
    net(&format!("virtualNetworks/{RG}-vnet/subnets/default"))
}

pub fn vm(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/{name}")
}

impl Emu {
    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(m, self.url(path_and_query))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request reaches the emulator")
    }

    /// A GET without a token (metadata and Entra serve anyone): (status, JSON body).
    pub async fn get_anonymous(&self, path_and_query: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path_and_query))
            .send()
            .await
            .expect("request reaches the emulator");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let r = self.send("GET", path_and_query, None).await;
        assert_eq!(r.status(), 200, "GET {path_and_query}");
        r.json().await.unwrap()
    }

    /// An authenticated GET of an absolute URL (an operation's Location, say).
    pub async fn get_url(&self, url: &str) -> reqwest::Response {
        self.http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("request reaches the emulator")
    }

    /// Polls an operation's Location URL until it stops answering 202; returns the final body.
    pub async fn location_result(&self, url: &str) -> Vec<u8> {
        for _ in 0..600 {
            let resp = self.get_url(url).await;
            if resp.status() != 202 {
                assert_eq!(resp.status(), 200, "{url}");
                return resp.bytes().await.unwrap().to_vec();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{url} never finished");
    }

    /// Polls an Azure-AsyncOperation URL until the operation ends; returns its final body and
    /// the statuses seen on the way.
    pub async fn wait_async(&self, url: &str) -> (Value, Vec<String>) {
        let mut seen = Vec::new();
        for _ in 0..600 {
            let r = self.get_url(url).await;
            assert_eq!(r.status(), 200);
            let body: Value = r.json().await.unwrap();
            let status = body["status"].as_str().unwrap().to_string();
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if status != "InProgress" {
                return (body, seen);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("operation {url} never finished");
    }

    /// A NIC in `subnet`, created and settled.
    pub async fn create_nic(&self, name: &str, subnet: &str) -> String {
        let id = net(&format!("networkInterfaces/{name}"));
        let body = serde_json::json!({"location": "westeurope", "properties": {"ipConfigurations": [
            {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}});
        let done = self
            .run("PUT", &format!("{id}?{NET_API}"), Some(body))
            .await;
        assert_eq!(done["status"], "Succeeded", "{done}");
        id
    }

    /// Sends a mutation and waits for its operation; returns the final status body.
    pub async fn run(&self, method: &str, path_and_query: &str, body: Option<Value>) -> Value {
        let r = self.send(method, path_and_query, body).await;
        let status = r.status();
        let Some(url) = r
            .headers()
            .get("azure-asyncoperation")
            .map(|v| v.to_str().unwrap().to_string())
        else {
            panic!(
                "{method} {path_and_query}: {status} without Azure-AsyncOperation: {}",
                r.text().await.unwrap_or_default()
            );
        };
        self.wait_async(&url).await.0
    }

    pub fn client(&self) -> azure_mgmt_compute::Client {
        let credential: Arc<dyn azure_core::auth::TokenCredential> =
            Arc::new(FixedToken(self.token.clone()));
        azure_mgmt_compute::Client::builder(credential)
            .endpoint(azure_core::Url::parse(&self.base).unwrap())
            .retry(azure_core::RetryOptions::none())
            .transport(azure_core::TransportOptions::new(Arc::new(
                self.http.clone(),
            )))
            .build()
            .unwrap()
    }

    pub fn request_log(&self) -> Vec<Value> {
        crate::support::logged_requests(&self.dir.path().join("requests.jsonl"))
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        // Handle::shutdown is async; dropping the handle stops the server with the runtime.
        self.handle.take();
    }
}

/// A credential that hands out a token the emulator's Entra endpoint issued (never the default
/// Azure chain).
#[derive(Debug)]
pub struct FixedToken(pub String);

#[async_trait::async_trait]
impl azure_core::auth::TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
    ) -> azure_core::Result<azure_core::auth::AccessToken> {
        Ok(azure_core::auth::AccessToken::new(
            azure_core::auth::Secret::new(self.0.clone()),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

impl Emu {
    /// The image file behind a disk, from the saved state.
    pub fn image_of(&self, disk_name: &str) -> std::path::PathBuf {
        let data = self.dir.path().join("data");
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("state.json")).unwrap())
                .unwrap();
        let key = format!(
            "{}/{}",
            RG.to_ascii_lowercase(),
            disk_name.to_ascii_lowercase()
        );
        data.join("images").join(
            state["disks"][&key]["image"]
                .as_str()
                .expect("disk in state"),
        )
    }

    /// Snapshot `source` and create disk `name` from it (same zone, as Azure's procedure),
    /// naming the source's generation and OS type, which DiskRP does not copy on its own.
    pub async fn copy_disk(&self, source: &str, name: &str) {
        self.copy_disk_with(
            source,
            name,
            serde_json::json!({"hyperVGeneration": "V2", "osType": "Linux"}),
        )
        .await
    }

    /// `copy_disk` with these `properties` besides `creationData` on both copies.
    pub async fn copy_disk_with(&self, source: &str, name: &str, props: Value) {
        let snap = format!("{name}-snap");
        let with = |mut p: Value, extra: &Value| {
            for (k, v) in extra.as_object().unwrap() {
                p[k] = v.clone();
            }
            p
        };
        let body = serde_json::json!({"location": "westeurope", "sku": {"name": "Standard_LRS"},
            "properties": with(serde_json::json!({"creationData": {"createOption": "Copy", "sourceResourceId": disk(source)}, "incremental": true}), &props)});
        assert_eq!(
            self.run(
                "PUT",
                &format!("{}?{DISK_API}", snapshot(&snap)),
                Some(body)
            )
            .await["status"],
            "Succeeded"
        );
        let body = serde_json::json!({"location": "westeurope", "zones": ["1"], "sku": {"name": "Premium_LRS"},
            "properties": with(serde_json::json!({"creationData": {"createOption": "Copy", "sourceResourceId": snapshot(&snap)}}), &props)});
        assert_eq!(
            self.run("PUT", &format!("{}?{DISK_API}", disk(name)), Some(body))
                .await["status"],
            "Succeeded"
        );
    }

    /// Attaches an existing disk to a VM at `lun` with a PATCH of its data disks.
    pub async fn attach(&self, vm_name: &str, disk_name: &str, lun: i32) -> reqwest::Response {
        let current = self.get_json(&format!("{}?{VM_API}", vm(vm_name))).await;
        let mut disks = current["properties"]["storageProfile"]["dataDisks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        disks.push(serde_json::json!({"lun": lun, "createOption": "Attach", "managedDisk": {"id": disk(disk_name)}}));
        let body = serde_json::json!({"properties": {"storageProfile": {"dataDisks": disks}}});
        self.send("PATCH", &format!("{}?{VM_API}", vm(vm_name)), Some(body))
            .await
    }

    /// Runs a RunShellScript and returns the result message.
    pub async fn run_script(&self, vm_name: &str, lines: &[&str]) -> String {
        self.run_script_at(&vm(vm_name), lines).await
    }

    /// Runs a RunShellScript on the VM at `vm_path` and returns the result message.
    pub async fn run_script_at(&self, vm_path: &str, lines: &[&str]) -> String {
        self.run_script_on(vm_path, lines, Value::Array(Vec::new()))
            .await
    }

    async fn run_script_on(&self, vm_path: &str, lines: &[&str], parameters: Value) -> String {
        let body = serde_json::json!({"commandId": "RunShellScript", "script": lines, "parameters": parameters});
        let r = self
            .send(
                "POST",
                &format!("{vm_path}/runCommand?{VM_API}"),
                Some(body),
            )
            .await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        let url = r.headers()["azure-asyncoperation"]
            .to_str()
            .unwrap()
            .to_string();
        let (done, _) = self.wait_async(&url).await;
        assert_eq!(done["status"], "Succeeded", "{done}");
        done["properties"]["output"]["value"][0]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Deallocates a VM and waits for it.
    pub async fn deallocate(&self, vm_path: &str) {
        let done = self
            .run("POST", &format!("{vm_path}/deallocate?{VM_API}"), None)
            .await;
        assert_eq!(done["status"], "Succeeded", "{done}");
    }

    /// The saved state (what a restarted emulator would read).
    pub fn state(&self) -> Value {
        let data = self.dir.path().join("data");
        serde_json::from_str(&std::fs::read_to_string(data.join("state.json")).unwrap()).unwrap()
    }

    fn vm_state(&self, vm_name: &str) -> Value {
        let key = format!(
            "{}/{}",
            RG.to_ascii_lowercase(),
            vm_name.to_ascii_lowercase()
        );
        self.state()["vms"][&key].clone()
    }

    /// How many scripts (action and managed Run Command) the VM has run.
    pub fn scripts_run(&self, vm_name: &str) -> u64 {
        self.vm_state(vm_name)["scripts_run"].as_u64().unwrap_or(0)
    }

    /// The VM's own files (its /var/lib, /var/log, /tmp) in the data dir.
    pub fn vm_root(&self, vm_name: &str) -> std::path::PathBuf {
        let id = self.vm_state(vm_name)["vm_id"]
            .as_str()
            .unwrap()
            .to_string();
        self.dir.path().join("data").join("vms").join(id)
    }

    /// Runs a RunShellScript with parameters and returns the result message.
    pub async fn run_script_with(
        &self,
        vm_name: &str,
        lines: &[&str],
        parameters: Value,
    ) -> String {
        self.run_script_on(&vm(vm_name), lines, parameters).await
    }

    /// The VM agent's status once the guest has had time to boot: Ready, or what it still says
    /// after 10 s (the emulator makes the agent Ready a scaled boot time after a start).
    pub async fn await_ready(&self, vm_name: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let now = self.agent_status(vm_name).await;
            if now == "Ready" || std::time::Instant::now() > deadline {
                return now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn agent_status(&self, vm_name: &str) -> String {
        let v = self
            .get_json(&format!("{}/instanceView?{VM_API}", vm(vm_name)))
            .await;
        v["vmAgent"]["statuses"][0]["displayStatus"]
            .as_str()
            .unwrap_or("absent")
            .to_string()
    }
}

/// e2fsck -fn on the root partition (partition 1) of a GPT image; returns its exit code.
pub fn fsck_image(image: &std::path::Path) -> i32 {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("sfdisk")
        .arg("-J")
        .arg(image)
        .output()
        .unwrap();
    let table: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p1 = table["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["node"].as_str().unwrap().ends_with("img1"))
        .unwrap()
        .clone();
    let part = dir.path().join("p1.img");
    let status = std::process::Command::new("dd")
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", part.display()))
        .args(["bs=512", "conv=sparse", "status=none"])
        .arg(format!("skip={}", p1["start"]))
        .arg(format!("count={}", p1["size"]))
        .status()
        .unwrap();
    assert!(status.success());
    std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(&part)
        .output()
        .unwrap()
        .status
        .code()
        .unwrap()
}

/// The check error of `scenario` with its first `from` replaced by `to` (which must be there).
pub fn scenario_error(scenario: &str, from: &str, to: &str) -> String {
    let base = std::fs::read_to_string(scenario).unwrap();
    assert!(base.contains(from), "{from}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    std::fs::write(&path, base.replacen(from, to, 1)).unwrap();
    format!("{:#}", rescue::emulator::check_scenario(&path).unwrap_err())
}
