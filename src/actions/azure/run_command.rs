//! `azure.vm.run_command`: run a shell script on a VM through Run Command and read its verdict.
//!
//! Run Command returns only the last 4 KiB of stdout/stderr and reports "succeeded" whatever the
//! script's exit status, so scripts end with one status line (`RESCUE-STATUS {json}`) that this
//! action parses; a verdict listed in `fail_on` fails the step.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::{ActionSpec, Description, Intent, OutputSpec, Outputs};

pub struct RunCommand;

static SPEC: ActionSpec = ActionSpec {
    name: "azure.vm.run_command",
    summary:
        "run a shell script on a VM (Run Command); parameters are passed as positional arguments",
    params: &[
        P_RESOURCE_GROUP,
        P_VM,
        Param {
            name: "script",
            ty: ParamType::File,
            required: true,
            description: "script file, relative to the workflow file",
        },
        Param {
            name: "parameters",
            ty: ParamType::List,
            required: false,
            description: "values given to the script as $1, $2, ... (never spliced into its text)",
        },
        Param {
            name: "status_prefix",
            ty: ParamType::String,
            required: false,
            description: "marker of the script's status line (default RESCUE-STATUS)",
        },
        Param {
            name: "fail_on",
            ty: ParamType::List,
            required: false,
            description:
                "verdicts that fail the step (default [failed]); a missing status line always fails",
        },
        P_SUBSCRIPTION,
    ],
    outputs: &[
        OutputSpec {
            name: "verdict",
            description: "the status line's verdict, e.g. repaired / clean / failed",
        },
        OutputSpec {
            name: "status",
            description: "the whole parsed status line (object)",
        },
        OutputSpec {
            name: "stdout",
            description: "the last 4 KiB of standard output (all Azure returns)",
        },
        OutputSpec {
            name: "stderr",
            description: "the last 4 KiB of standard error",
        },
    ],
    mutates: true,
};

/// Azure's limit on a Run Command script.
const MAX_SCRIPT: usize = 256 * 1024;
const DEFAULT_PREFIX: &str = "RESCUE-STATUS";

/// stdout and stderr from a RunCommandResult (Linux: one message with [stdout]/[stderr] sections;
/// Windows: separate StdOut/StdErr entries).
pub(crate) fn split_output(result: &Value) -> (String, String) {
    let entries = result
        .get("value")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let message = |pred: &dyn Fn(&str) -> bool| {
        entries
            .iter()
            .find(|e| e.get("code").and_then(Value::as_str).is_some_and(pred))
            .and_then(|e| e.get("message").and_then(Value::as_str))
            .map(str::to_string)
    };
    if let (Some(out), err) = (
        message(&|c| c.contains("StdOut")),
        message(&|c| c.contains("StdErr")),
    ) {
        return (out, err.unwrap_or_default());
    }
    let text = entries
        .first()
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let after_stdout = text
        .split_once("[stdout]\n")
        .map(|(_, rest)| rest)
        .unwrap_or(text);
    match after_stdout.split_once("[stderr]\n") {
        Some((out, err)) => (out.trim_end_matches('\n').to_string(), err.to_string()),
        None => (after_stdout.to_string(), String::new()),
    }
}

/// The JSON after the last `PREFIX ` line of stdout.
pub(crate) fn parse_status(stdout: &str, prefix: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|rest| serde_json::from_str(rest.trim()).ok())
}

/// "partition 1 (ext4): failed - errors left uncorrected (exit 8)" per partition that matters.
fn partition_lines(status: &Value) -> Vec<String> {
    status
        .get("partitions")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter(|p| p.get("result").and_then(Value::as_str) != Some("skipped"))
                .map(|p| {
                    let s = |k: &str| {
                        p.get(k)
                            .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
                            .unwrap_or_default()
                    };
                    let note = s("note");
                    format!(
                        "partition {} ({}): {}{}",
                        s("partition"),
                        s("fstype"),
                        s("result"),
                        if note.is_empty() {
                            String::new()
                        } else {
                            format!(" - {note}")
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Script parameters: scalars become `argN`, `{name, value}` objects stay named; values are strings.
fn parameters(args: &Args) -> Result<Vec<Value>, ActionError> {
    let list = args
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let text = |v: &Value| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(v.to_string()),
                other => Err(ActionError::fatal(format!("script parameter {} must be a string or number, got {other}", i + 1))),
            };
            match p {
                Value::Object(o) => Ok(json!({
                    "name": o.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or(format!("arg{}", i + 1)),
                    "value": text(o.get("value").unwrap_or(&Value::Null))?,
                })),
                v => Ok(json!({"name": format!("arg{}", i + 1), "value": text(v)?})),
            }
        })
        .collect()
}

fn read_script(
    ctx_env: &crate::actions::Env,
    args: &Args,
) -> Result<(String, Vec<String>), ActionError> {
    let file = ctx_env.read_file(str_arg(args, "script")?)?;
    if file.text.len() > MAX_SCRIPT {
        return Err(ActionError::fatal(format!(
            "script {} is {} KiB; Run Command accepts at most 256 KiB",
            file.origin,
            file.text.len() / 1024
        )));
    }
    Ok((file.origin, file.text.lines().map(str::to_string).collect()))
}

#[async_trait]
impl Action for RunCommand {
    fn spec(&self) -> &'static ActionSpec {
        &SPEC
    }

    async fn describe(
        &self,
        ctx: &PlanContext,
        args: &PlanArgs,
    ) -> Result<Description, ActionError> {
        let id = plan_vm_id(ctx, args, "resource_group", "vm");
        let mut notes = Vec::new();
        if let Some(script) = args.str("script") {
            match ctx.env.read_file(script) {
                Ok(f) => notes.push(format!("script {} ({} bytes)", f.origin, f.text.len())),
                Err(e) => notes.push(format!("script {script} cannot be read: {}", e.message)),
            }
        }
        Ok(Description {
            summary: format!(
                "run {} on VM {} with parameters {}",
                args.display("script"),
                args.display("vm"),
                args.display("parameters")
            ),
            calls: vec![
                call(
                    "POST",
                    id.as_ref(),
                    "/runCommand (RunShellScript)",
                    ".../virtualMachines/VM",
                ),
                "GET <Location> until the result arrives".into(),
            ],
            notes,
        })
    }

    fn intent(&self, _run_id: &str, _step_id: &str, args: &Args) -> Result<Intent, ActionError> {
        Ok(Intent {
            detail: json!({"vm": args.get("vm"), "script": args.get("script"), "parameters": args.get("parameters")}),
            creates: Vec::new(),
        })
    }

    async fn execute(
        &self,
        ctx: &StepContext,
        args: &Args,
        _intent: &Intent,
    ) -> Result<Outputs, ActionError> {
        let azure = azure(ctx)?;
        let vm = vm_id(azure, args, "resource_group", "vm")?;
        let prefix = opt_str(args, "status_prefix").unwrap_or(DEFAULT_PREFIX);
        let fail_on: Vec<String> = args
            .get("fail_on")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_else(|| vec!["failed".into()]);
        let (script_path, lines) = read_script(&ctx.env, args)?;
        let script_name = std::path::Path::new(&script_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = with_progress(ctx, async {
            if let Some(result) = resume_pending(ctx, azure, OPERATION).await {
                return result;
            }
            let input = json!({"commandId": "RunShellScript", "script": lines, "parameters": parameters(args)?});
            let started = azure.run_command(&vm, input, &format!("{script_name} on {}", vm.name)).await?;
            finish(ctx, azure, started, OPERATION).await
        })
        .await?;
        let (stdout, stderr) = split_output(&result);
        let Some(status) = parse_status(&stdout, prefix) else {
            return Err(ActionError::fatal(format!(
                "{script_name} on {} printed no `{prefix}` line (killed, timed out, or not a rescue script); last output:\n{}\n{}",
                vm.name,
                tail(&stdout, 15),
                tail(&stderr, 5)
            ))
            .with_hint(format!("look at the script's log on {} (/var/log/rescue/), then `rescue resume RUN_ID` to run it again", vm.name)));
        };
        let verdict = status
            .get("verdict")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string();
        if fail_on.contains(&verdict) {
            let reason = status
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let log = status
                .get("log")
                .and_then(Value::as_str)
                .unwrap_or("/var/log/rescue/");
            let details = partition_lines(&status);
            return Err(ActionError::fatal(format!(
                "{script_name} on {}: verdict {verdict}: {reason}{}{}",
                vm.name,
                if details.is_empty() { "" } else { "\n  " },
                details.join("\n  ")
            ))
            .with_hint(format!(
                "nothing was swapped: the VM keeps its original disk. The full log is on {} at {log}; `rescue rollback RUN_ID` detaches and cleans up the copy",
                vm.name
            )));
        }
        ctx.status(format!("verdict: {verdict}"));
        let mut out = Outputs::new();
        out.insert("verdict".into(), json!(verdict));
        out.insert("status".into(), status);
        out.insert("stdout".into(), json!(stdout));
        out.insert("stderr".into(), json!(stderr));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_output_is_split_and_the_last_status_line_wins() {
        let result = json!({"value":[{"code":"ProvisioningState/succeeded",
            "message":"Enable succeeded: \n[stdout]\nfdisk ...\nRESCUE-STATUS {\"verdict\":\"clean\"}\nRESCUE-STATUS {\"verdict\":\"repaired\"}\n\n[stderr]\nwarn\n"}]});
        let (out, err) = split_output(&result);
        assert!(out.starts_with("fdisk"), "{out}");
        assert_eq!(err, "warn\n");
        assert_eq!(
            parse_status(&out, DEFAULT_PREFIX).unwrap()["verdict"],
            "repaired"
        );
        assert!(parse_status("no marker here", DEFAULT_PREFIX).is_none());
    }

    #[test]
    fn parameters_become_positional_strings() {
        let mut args = Args::new();
        args.insert(
            "parameters".into(),
            json!([0, "x y", {"name": "n", "value": "v"}]),
        );
        let p = parameters(&args).unwrap();
        assert_eq!(p[0], json!({"name":"arg1","value":"0"}));
        assert_eq!(p[1], json!({"name":"arg2","value":"x y"}));
        assert_eq!(p[2], json!({"name":"n","value":"v"}));
    }
}
