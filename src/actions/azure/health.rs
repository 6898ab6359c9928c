//! `azure.vm.wait_healthy`: wait for the VM agent to report Ready; otherwise fail with the tail of
//! the boot-diagnostics serial log, which is where a VM that does not boot says why.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::{ActionSpec, Description, OutputSpec, Outputs};
use crate::azure::human;

pub struct WaitHealthy;

static SPEC: ActionSpec = ActionSpec {
    name: "azure.vm.wait_healthy",
    summary: "wait until the VM is running and its VM agent reports Ready",
    params: &[
        P_RESOURCE_GROUP,
        P_VM,
        Param {
            name: "timeout_seconds",
            ty: ParamType::Number,
            required: false,
            description: "give up after this long (default 600)",
        },
        P_SUBSCRIPTION,
    ],
    outputs: &[
        OutputSpec {
            name: "agent_status",
            description: "Ready",
        },
        OutputSpec {
            name: "power_state",
            description: "running",
        },
    ],
    mutates: false,
};

#[async_trait]
impl AzureStep for WaitHealthy {
    const SPEC: &'static ActionSpec = &SPEC;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let summary = format!(
            "wait until VM {} runs and its agent is Ready",
            p.args.display("vm")
        );
        let calls = [
            "GET {vm}?$expand=instanceView (repeated until Ready)",
            "POST {vm}/retrieveBootDiagnosticsData (only if it never gets Ready)",
        ];
        Ok(p.vm_calls(summary, &calls))
    }

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
        let azure = azure(ctx)?;
        let id = vm_id(azure, args, "resource_group", "vm")?;
        let timeout = Duration::from_secs_f64(
            args.get("timeout_seconds")
                .and_then(Value::as_f64)
                .unwrap_or(600.0)
                .max(0.0),
        );
        let last = std::sync::Mutex::new(String::new());
        // The timeout is this step's own; the loop's deadline only guards against a stuck read.
        let healthy = Want::new(
            &id,
            format!("health of {}", id.name),
            timeout + timeout,
            |now| {
                let vm = existing_vm(now, &id)?;
                let power = vm.power.unwrap_or_else(|| "unknown".into());
                let agent = vm.agent.unwrap_or_else(|| "unknown".into());
                Ok(
                    if power == "running" && agent.eq_ignore_ascii_case("ready") {
                        Next::Done
                    } else {
                        let seen = format!("power {power}, agent {agent}");
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = seen.clone();
                        Next::Wait(seen)
                    },
                )
            },
        )
        .with_instance_view();
        let waited = tokio::time::timeout(
            timeout,
            with_progress(ctx, ensure(ctx, &healthy, OPERATION)),
        )
        .await;
        match waited {
            Ok(Ok(_)) => {
                let mut out = Outputs::new();
                out.insert("agent_status".into(), json!("Ready"));
                out.insert("power_state".into(), json!("running"));
                Ok(out)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                let log = azure
                    .serial_log(&id)
                    .await
                    .map(|text| tail(&text, 30))
                    .unwrap_or_else(|| "(no boot diagnostics available)".into());
                let seen = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
                Err(ActionError::fatal(format!(
                    "VM {} is not healthy after {}: {seen}. Serial log tail:\n{log}",
                    id.name,
                    human(timeout),
                ))
                .with_hint("the VM did not come up on the repaired disk; `rescue rollback RUN_ID` swaps the original disk back"))
            }
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
