//! `azure.vm.run_command`: run a shell script on a VM once, through managed Run Command, and
//! read its verdict.
//!
//! At most once: the Run Command's name is chosen and journaled before it is created, and every
//! later look (a lost answer, a retry, a resumed process) finds it by that name instead of
//! sending the script again ([`crate::azure::script`]). Its verdict is journaled before the Run
//! Command resource is deleted, so even a process killed in between never runs it twice. Only
//! `--from-step` (which clears the step's checkpoints) runs it anew.
//!
//! Run Command keeps only the last 4 KiB of output and its status says nothing about the
//! script's own verdict, so scripts end with one status line (`RESCUE-STATUS {json}`) that this
//! action parses; a verdict listed in `fail_on` fails the step.

use async_trait::async_trait;
use serde_json::{json, Value};

use super::*;
use crate::actions::{ActionSpec, Description, OutputSpec, Outputs};
use crate::azure::script::{Script, ScriptResult};
use crate::azure::Started;

pub struct RunCommand;

static SPEC: ActionSpec = ActionSpec {
    name: "azure.vm.run_command",
    summary:
        "run a shell script on a VM once (managed Run Command); parameters arrive as environment variables",
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
            description: "{name, value} pairs given to the script as environment variables (never spliced into its text); a bare value is named ARGn",
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
) -> Result<(String, String), ActionError> {
    let file = ctx_env.read_file(str_arg(args, "script")?)?;
    if file.text.len() > MAX_SCRIPT {
        return Err(ActionError::fatal(format!(
            "script {} is {} KiB; Run Command accepts at most 256 KiB",
            file.origin,
            file.text.len() / 1024
        )));
    }
    Ok((file.origin, file.text))
}

#[async_trait]
impl AzureStep for RunCommand {
    const SPEC: &'static ActionSpec = &SPEC;

    async fn plan(&self, p: &Plan<'_>) -> Result<Description, ActionError> {
        let Plan { ctx, args } = *p;
        let mut notes = Vec::new();
        if let Some(script) = args.str("script") {
            match ctx.env.read_file(script) {
                Ok(f) => notes.push(format!("script {} ({} bytes)", f.origin, f.text.len())),
                Err(e) => notes.push(format!("script {script} cannot be read: {}", e.message)),
            }
        }
        let (script, parameters) = (args.display("script"), args.display("parameters"));
        let summary = format!(
            "run {script} on VM {} with parameters {parameters}",
            args.display("vm")
        );
        let what = format!("run {script} once (managed Run Command), parameters {parameters}");
        let calls = [
            "PUT {vm}/runCommands/NAME (managed Run Command, the script inline)",
            "GET {vm}/runCommands/NAME?$expand=instanceView until it ends",
        ];
        Ok(Description {
            notes,
            ..p.vm_change(ChangeKind::Action, what, summary, &calls)
        })
    }

    const INTENT: &'static [&'static str] = &["vm", "script", "parameters"];

    async fn run(&self, r: &Run<'_>) -> Result<Outputs, ActionError> {
        let Run { ctx, args, .. } = *r;
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
        let (script_path, text) = read_script(&ctx.env, args)?;
        let script_name = std::path::Path::new(&script_path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = match ctx.checkpoints.get(RESULT).cloned() {
            Some(recorded) => serde_json::from_value(recorded).map_err(|e| {
                ActionError::fatal(format!(
                    "the journal's recorded Run Command result is unreadable: {e}"
                ))
            })?,
            None => {
                let name = command_name(ctx).await?;
                let parameters = parameters(args)?
                    .into_iter()
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap_or_default().to_string(),
                            p["value"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                let script = Script {
                    name: name.clone(),
                    label: format!("{script_name} on {}", vm.name),
                    text,
                    parameters,
                    timeout: SCRIPT_TIMEOUT,
                };
                let result = with_progress(ctx, async {
                    fence::check(ctx, &vm, None).await?;
                    Ok::<_, ActionError>(azure.run_script_once(&vm, &script).await?)
                })
                .await?;
                // The verdict is durable before the Run Command (the proof it ran) goes away.
                ctx.checkpoint(
                    RESULT,
                    serde_json::to_value(&result).expect("a result serializes"),
                )
                .await?;
                if let Err(e) = delete_command(azure, &vm, &name).await {
                    ctx.status(format!(
                        "could not delete Run Command {name}: {e} (cleanup deletes it)"
                    ));
                }
                result
            }
        };
        verdict(&result, &vm, &script_name, prefix, &fail_on)
    }
}

/// Checkpoint keys: the Run Command's name (chosen before it exists) and its result.
const NAME: &str = "run_command_name";
const RESULT: &str = "run_command_result";
/// What the script may take (fsck of a large disk), within Azure's 90-minute limit.
const SCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90 * 60);

/// This run of the script's Run Command name: journaled before the Run Command is created, new
/// only when the step's checkpoints were cleared (`--from-step`).
async fn command_name(ctx: &StepContext) -> Result<String, ActionError> {
    if let Some(name) = ctx.checkpoints.get(NAME).and_then(Value::as_str) {
        return Ok(name.to_string());
    }
    let nonce = hex::encode(rand::random::<[u8; 4]>());
    let name = format!("rescue-{}-{}-{nonce}", ctx.run_id, ctx.step_id)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect::<String>();
    ctx.checkpoint(NAME, json!(name)).await?;
    Ok(name)
}

async fn delete_command(azure: &Azure, vm: &ResourceId, name: &str) -> Result<(), ActionError> {
    let label = format!("delete Run Command {name}");
    if let Started::Pending(op) = azure.delete_run_command(vm, name, &label).await? {
        azure
            .poll(&op, std::time::Instant::now() + DELETE_DEADLINE)
            .await?;
    }
    Ok(())
}

/// The step's outputs from the script's status line, or its failure.
fn verdict(
    result: &ScriptResult,
    vm: &ResourceId,
    script_name: &str,
    prefix: &str,
    fail_on: &[String],
) -> Result<Outputs, ActionError> {
    let (stdout, stderr) = (&result.output, &result.error);
    let Some(status) = parse_status(stdout, prefix) else {
        return Err(ActionError::fatal(format!(
            "{script_name} on {} ended {}{} and printed no `{prefix}` line (killed, timed out, or not a rescue script); last output:\n{}\n{}",
            vm.name,
            result.state,
            result.exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default(),
            tail(stdout, 15),
            tail(stderr, 5)
        ))
        .with_hint(format!("look at the script's log on {} (/var/log/rescue/); `rescue resume RUN_ID --from-step STEP` runs it again", vm.name)));
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
    let mut out = Outputs::new();
    out.insert("verdict".into(), json!(verdict));
    out.insert("status".into(), status);
    out.insert("stdout".into(), json!(stdout));
    out.insert("stderr".into(), json!(stderr));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_status_line_wins() {
        let out = "fdisk ...\nRESCUE-STATUS {\"verdict\":\"clean\"}\nRESCUE-STATUS {\"verdict\":\"repaired\"}\n";
        assert_eq!(
            parse_status(out, DEFAULT_PREFIX).unwrap()["verdict"],
            "repaired"
        );
        assert!(parse_status("no marker here", DEFAULT_PREFIX).is_none());
    }

    #[test]
    fn parameters_become_named_strings() {
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
