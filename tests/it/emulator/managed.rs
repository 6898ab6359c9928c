//! Managed Run Command (`virtualMachines/{vm}/runCommands/{name}`) as the REST spec describes it
//! and RunCommandHandlerLinux runs it: named parameters in the environment, unnamed ones on the
//! command line, the instance view, at most one run per unchanged PUT.

use serde_json::{json, Value};

use super::support::*;

fn rc(vm_name: &str, name: &str) -> String {
    format!("{}/runCommands/{name}", vm(vm_name))
}

fn async_url(r: &reqwest::Response) -> String {
    r.headers()["azure-asyncoperation"]
        .to_str()
        .unwrap()
        .to_string()
}

impl Emu {
    async fn put_rc(&self, vm_name: &str, name: &str, properties: Value) -> reqwest::Response {
        self.send(
            "PUT",
            &format!("{}?{VM_API}", rc(vm_name, name)),
            Some(json!({"location": "westeurope", "properties": properties})),
        )
        .await
    }

    /// PUTs a run command and waits for its provisioning; returns the resource with its view.
    async fn run_rc(&self, vm_name: &str, name: &str, properties: Value) -> Value {
        let r = self.put_rc(vm_name, name, properties).await;
        assert!(
            matches!(r.status().as_u16(), 200 | 201),
            "{}",
            r.text().await.unwrap()
        );
        assert_eq!(
            self.wait_async(&async_url(&r)).await.0["status"],
            "Succeeded"
        );
        self.rc_view(vm_name, name).await
    }

    async fn rc_view(&self, vm_name: &str, name: &str) -> Value {
        self.get_json(&format!(
            "{}?$expand=instanceView&{VM_API}",
            rc(vm_name, name)
        ))
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_parameters_are_environment_and_unnamed_ones_the_command_line() {
    let emu = start(0.002).await;
    let script =
        r#"echo "LUN=${LUN:-} SECRET=${SECRET:-} args=$* X=${X-unset} 1=${1:-}"; echo oops >&2"#;
    let props = json!({
        "source": {"script": script},
        "parameters": [{"name": "LUN", "value": "0"}, {"name": "", "value": "a b"}, {"name": "X", "value": ""}],
        "protectedParameters": [{"name": "SECRET", "value": "s3"}],
    });
    let r = emu.put_rc(RESCUE, "show", props.clone()).await;
    assert_eq!(r.status(), 201);
    let url = async_url(&r);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["properties"]["provisioningState"], "Creating");
    assert_eq!(
        created["type"],
        "Microsoft.Compute/virtualMachines/runCommands"
    );
    assert!(
        created["properties"]["protectedParameters"].is_null(),
        "secrets are never returned"
    );
    assert_eq!(emu.wait_async(&url).await.0["status"], "Succeeded");
    let got = emu.rc_view(RESCUE, "show").await;
    let view = &got["properties"]["instanceView"];
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
    assert_eq!(view["executionState"], "Succeeded", "{got}");
    assert_eq!(view["executionMessage"], "Execution completed");
    assert_eq!(view["exitCode"], 0);
    assert_eq!(
        view["output"], "LUN=0 SECRET=s3 args=a b X=unset 1=a\n",
        "named in the environment (empty values dropped), unnamed appended unquoted"
    );
    assert_eq!(view["error"], "oops\n");
    assert!(view["startTime"].is_string() && view["endTime"].is_string());
    let plain = emu
        .get_json(&format!("{}?{VM_API}", rc(RESCUE, "show")))
        .await;
    assert!(
        plain["properties"]["instanceView"].is_null(),
        "only with $expand"
    );
    assert_eq!(plain["properties"]["asyncExecution"], false);
    assert_eq!(plain["properties"]["timeoutInSeconds"], 0);
    assert_eq!(emu.scripts_run(RESCUE), 1);

    // The same PUT again is no new goal state: nothing runs, the result stays.
    let again = emu.run_rc(RESCUE, "show", props.clone()).await;
    assert_eq!(
        again["properties"]["instanceView"]["startTime"],
        view["startTime"]
    );
    assert_eq!(
        emu.scripts_run(RESCUE),
        1,
        "an unchanged PUT re-ran the script"
    );
    // A changed one runs again.
    let mut changed = props;
    changed["parameters"][0]["value"] = json!("1");
    let rerun = emu.run_rc(RESCUE, "show", changed).await;
    assert!(rerun["properties"]["instanceView"]["output"]
        .as_str()
        .unwrap()
        .starts_with("LUN=1 "));
    assert_eq!(emu.scripts_run(RESCUE), 2);

    let list = emu
        .get_json(&format!("{}/runCommands?{VM_API}", vm(RESCUE)))
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let r = emu
        .send("DELETE", &format!("{}?{VM_API}", rc(RESCUE, "show")), None)
        .await;
    assert_eq!(r.status(), 202);
    emu.wait_async(&async_url(&r)).await;
    assert_eq!(
        emu.send("GET", &format!("{}?{VM_API}", rc(RESCUE, "show")), None)
            .await
            .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_timeouts_and_long_output_show_in_the_instance_view() {
    let emu = start(0.01).await;
    let failed = emu
        .run_rc(
            RESCUE,
            "fails",
            json!({"source": {"script": "seq 1 3000; exit 3"}}),
        )
        .await;
    let view = &failed["properties"]["instanceView"];
    assert_eq!(
        failed["properties"]["provisioningState"], "Succeeded",
        "the script's failure is not the deployment's"
    );
    assert_eq!(view["executionState"], "Failed");
    assert_eq!(view["exitCode"], 3);
    assert_eq!(
        view["executionMessage"],
        "Execution failed: failed to execute command: command terminated with exit status=3"
    );
    let out = view["output"].as_str().unwrap();
    assert_eq!(out.len(), 4096, "the last 4 KiB");
    assert!(out.ends_with("2999\n3000\n"));

    // timeoutInSeconds is Azure time: 300 s at time scale 0.01 is 3 s (room for the script to
    // start on a loaded machine).
    let timed = emu
        .run_rc(
            RESCUE,
            "slow",
            json!({"source": {"script": "echo started; sleep 30"}, "timeoutInSeconds": 300}),
        )
        .await;
    let view = &timed["properties"]["instanceView"];
    assert_eq!(view["executionState"], "Failed", "{timed}");
    assert_eq!(view["exitCode"], -1);
    assert_eq!(view["output"], "started\n");

    // treatFailureAsDeploymentFailure turns a failed script into a failed deployment.
    let r = emu
        .put_rc(
            RESCUE,
            "strict",
            json!({"source": {"script": "exit 2"}, "treatFailureAsDeploymentFailure": true}),
        )
        .await;
    let (done, _) = emu.wait_async(&async_url(&r)).await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "VMExtensionProvisioningError");
    assert_eq!(
        emu.rc_view(RESCUE, "strict").await["properties"]["provisioningState"],
        "Failed"
    );

    // No source: the handler's configuration error.
    let empty = emu.run_rc(RESCUE, "empty", json!({"source": {}})).await;
    assert_eq!(empty["properties"]["instanceView"]["exitCode"], -202);
    assert_eq!(empty["properties"]["instanceView"]["executionMessage"], "Execution failed: failed to get configuration: invalid configuration: Either 'source.script' or 'source.scriptUri' has to be specified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_run_in_parallel_and_async_execution_provisions_at_the_start() {
    let emu = start(0.01).await;
    let wait_for = "for i in $(seq 1 200); do [ -e /tmp/go ] && break; sleep 0.05; done";
    let a = emu
        .put_rc(
            RESCUE,
            "a",
            json!({"source": {"script": format!("touch /tmp/a; {wait_for}; echo a")}}),
        )
        .await;
    let b = emu
        .put_rc(
            RESCUE,
            "b",
            json!({"source": {"script": format!("touch /tmp/b; {wait_for}; echo b")}, "asyncExecution": true}),
        )
        .await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (201, 201));
    let tmp = emu.vm_root(RESCUE).join("tmp");
    let mut both = false;
    for _ in 0..400 {
        if tmp.join("a").exists() && tmp.join("b").exists() {
            both = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(both, "the two scripts run at the same time");
    assert_eq!(
        emu.wait_async(&async_url(&b)).await.0["status"],
        "Succeeded",
        "asyncExecution: provisioned once started"
    );
    assert_eq!(
        emu.rc_view(RESCUE, "b").await["properties"]["instanceView"]["executionState"],
        "Running"
    );
    assert_eq!(
        emu.rc_view(RESCUE, "a").await["properties"]["provisioningState"],
        "Creating"
    );
    std::fs::write(tmp.join("go"), "").unwrap();
    assert_eq!(
        emu.wait_async(&async_url(&a)).await.0["status"],
        "Succeeded"
    );
    let view = emu.rc_view(RESCUE, "a").await;
    assert_eq!(view["properties"]["instanceView"]["output"], "a\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_run_command_is_refused_where_azure_refuses_it() {
    let emu = start(0.002).await;
    emu.deallocate(&vm(HEALTHY)).await;
    let r = emu
        .put_rc(HEALTHY, "x", json!({"source": {"script": "true"}}))
        .await;
    assert_eq!(r.status(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "OperationNotAllowed");
    assert_eq!(
        e["error"]["message"],
        "Cannot modify extensions in the VM when the VM is not running."
    );
}
