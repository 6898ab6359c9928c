//! Running a script on a VM at most once, through managed Run Command
//! (`virtualMachines/{vm}/runCommands/{name}`).
//!
//! A script run is not a state that can be converged: running fsck twice can lose a verdict.
//! So its name is the idempotency key. Every look starts with a GET of that name: if it exists,
//! its instance view is followed to the end; only when it does not exist is it created (the
//! create runs the script). A lost answer, a retry or a resumed process therefore never sends
//! the script again. The caller chooses the name (and keeps it durably before calling).
//!
//! Managed Run Command passes named parameters as environment variables only (unnamed ones are
//! appended to the command line unquoted), so values always travel named.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{Error, Kind, Result};
use super::ids::ResourceId;
use super::lro::{unhinted, Ended, Started};
use super::{human, progress, Azure};

/// A script to run, named.
#[derive(Clone, Debug)]
pub struct Script {
    /// The Run Command resource name: unique per run of the script.
    pub name: String,
    /// For progress lines: "fsck-disk.sh on rescue-vm".
    pub label: String,
    pub text: String,
    /// (name, value): environment variables of the script.
    pub parameters: Vec<(String, String)>,
    /// Azure stops the script after this long (`timeoutInSeconds`).
    pub timeout: Duration,
}

/// How the script ended, from the Run Command's instance view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptResult {
    /// Succeeded, Failed, TimedOut or Canceled.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The last 4 KiB of stdout and stderr (all the instance view keeps).
    pub output: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn terminal(state: &str) -> bool {
    matches!(
        state.to_ascii_lowercase().as_str(),
        "succeeded" | "failed" | "timedout" | "canceled" | "cancelled"
    )
}

fn result_of(view: &Value) -> ScriptResult {
    let s = |k: &str| {
        view.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ScriptResult {
        state: s("executionState"),
        exit_code: view.get("exitCode").and_then(Value::as_i64),
        output: s("output"),
        error: s("error"),
        message: s("executionMessage"),
    }
}

impl Azure {
    /// Run `script` on `vm` unless a Run Command of its name exists already, and follow it to
    /// its end: its result, whatever the script's exit status (that is the caller's to judge).
    pub async fn run_script_once(&self, vm: &ResourceId, script: &Script) -> Result<ScriptResult> {
        let started = Instant::now();
        // Azure's own limit, plus time for the agent to pick it up and report.
        let deadline = started + script.timeout + Duration::from_secs(10 * 60);
        let mut created = false;
        loop {
            match self.read_run_command(vm, &script.name).await? {
                None if created => {
                    return Err(Error::protocol(
                        format!("follow {}", script.label),
                        format!(
                            "Run Command {} was created but cannot be read back",
                            script.name
                        ),
                    ))
                }
                None => {
                    let location = self.read_existing(vm).await?.location().to_string();
                    let parameters: Vec<Value> = script
                        .parameters
                        .iter()
                        .map(|(name, value)| json!({"name": name, "value": value}))
                        .collect();
                    let body = json!({
                        "location": location,
                        "properties": {
                            "source": {"script": script.text},
                            "parameters": parameters,
                            "asyncExecution": false,
                            "timeoutInSeconds": script.timeout.as_secs(),
                            "treatFailureAsDeploymentFailure": false,
                        }
                    });
                    created = true;
                    match self
                        .create_run_command(vm, &script.name, body, &script.label)
                        .await
                    {
                        Ok(Started::Pending(op)) => {
                            // The creation ends when the script does; its failure is read below.
                            if let Ended::Failed(e) = self.poll(&op, deadline).await? {
                                progress::report(format!("{}: {}", script.label, e.message));
                            }
                        }
                        Ok(Started::Done(_)) => {}
                        // The answer was lost; the next GET tells whether it was created.
                        Err(e) if e.kind == Kind::Transient => created = false,
                        Err(e) => return Err(e),
                    }
                }
                Some(command) => {
                    let view = command
                        .raw
                        .pointer("/properties/instanceView")
                        .cloned()
                        .unwrap_or(Value::Null);
                    let state = view
                        .get("executionState")
                        .and_then(Value::as_str)
                        .unwrap_or("Pending");
                    if terminal(state) {
                        return Ok(result_of(&view));
                    }
                    if command.provisioning == super::model::Provisioning::Failed && view.is_null()
                    {
                        return Err(Error::new(
                            Kind::OperationFailed,
                            format!("run {}", script.label),
                            "the Run Command failed to provision and reports no execution",
                        ));
                    }
                    let delay = unhinted(started.elapsed());
                    if Instant::now() + delay > deadline {
                        return Err(Error::new(
                            Kind::Deadline,
                            format!("wait for {}", script.label),
                            format!("still {state} after {}", human(started.elapsed())),
                        ));
                    }
                    progress::report(format!(
                        "{}: {state}, {}",
                        script.label,
                        human(started.elapsed())
                    ));
                    self.wait(delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_view_gives_the_result() {
        let view = json!({"executionState": "Succeeded", "exitCode": 1, "output": "RESCUE-STATUS {}", "error": "", "executionMessage": "Execution completed"});
        let r = result_of(&view);
        assert_eq!(r.state, "Succeeded");
        assert_eq!(r.exit_code, Some(1));
        assert!(terminal("TimedOut") && !terminal("Running"));
    }
}
