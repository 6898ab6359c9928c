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
//!
//! A status line that names its full log (`"log": "/var/log/rescue/..."`) gets that log read
//! back after the verdict is journaled, by further Run Commands that only read (so they may be
//! repeated after a crash): gzip-compressed, a slice each, under Run Command's 4 KiB of output.
//! The run directory keeps it as `STEP.log`, checked against the VM's SHA-256 of it.

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
                "verdicts that fail the step (default [failed, incomplete]); a missing status line always fails",
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
        OutputSpec {
            name: "log_file",
            description: "the script's full log, read back into the run directory (empty when it names none or it could not be read)",
        },
    ],
    mutates: true,
};

/// Azure's limit on a Run Command script.
const MAX_SCRIPT: usize = 256 * 1024;
const DEFAULT_PREFIX: &str = "RESCUE-STATUS";
/// Verdicts that stop the run: a disk still damaged, and one not (fully) checked.
const DEFAULT_FAIL_ON: &[&str] = &["failed", "incomplete"];

/// The JSON after the last `PREFIX ` line of stdout.
pub(crate) fn parse_status(stdout: &str, prefix: &str) -> Option<Value> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|rest| serde_json::from_str(rest.trim()).ok())
}

/// The whole log when the script printed it inline (gzip, base64, on its RESCUE-LOG-GZ line)
/// and it arrived intact: the size and SHA-256 the status line gives, then the status line, as
/// the script appends it to the file on the VM.
fn inline_log(stdout: &str, prefix: &str, status: &Value) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let want = status.get("inline_log")?;
    let encoded = stdout
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("RESCUE-LOG-GZ "))?;
    let gz = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).ok()?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text));
    if want["sha256"].as_str() != Some(sha.as_str())
        || want["bytes"].as_u64() != Some(text.len() as u64)
    {
        return None;
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim().starts_with(prefix))?;
    text.extend_from_slice(line.trim().as_bytes());
    text.push(b'\n');
    Some(text)
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
            .unwrap_or_else(|| DEFAULT_FAIL_ON.iter().map(|v| v.to_string()).collect());
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
                let name = command_name(ctx, NAME, "").await?;
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
        let status = parse_status(&result.output, prefix);
        let log_file = match status
            .as_ref()
            .and_then(|s| s.get("log").and_then(Value::as_str).map(str::to_string))
        {
            Some(log) if !log.is_empty() => {
                let inline = status
                    .as_ref()
                    .and_then(|s| inline_log(&result.output, prefix, s));
                let fetched = match inline {
                    Some(text) => ctx.artifact(&format!("{}.log", ctx.step_id), &text),
                    None => with_progress(ctx, fetch_log(ctx, azure, &vm, &log)).await,
                };
                match fetched {
                    Ok(path) => path,
                    Err(e) => {
                        ctx.status(format!(
                            "the full log stays on {} at {log}: reading it back failed: {e}",
                            vm.name
                        ));
                        None
                    }
                }
            }
            _ => None,
        };
        let mut out = verdict(
            &result,
            &vm,
            &script_name,
            prefix,
            &fail_on,
            log_file.as_deref(),
        )?;
        out.insert(
            "log_file".into(),
            json!(log_file
                .map(|p| p.display().to_string())
                .unwrap_or_default()),
        );
        Ok(out)
    }
}

/// Checkpoint keys: the Run Command's name (chosen before it exists) and its result.
const NAME: &str = "run_command_name";
const LOG_NAME: &str = "log_reader_name";
const RESULT: &str = "run_command_result";
/// What the script may take (fsck of a large disk), within Azure's 90-minute limit.
const SCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90 * 60);

/// This run of the script's Run Command name (checkpointed under `key`): journaled before the
/// Run Command is created, new only when the step's checkpoints were cleared (`--from-step`).
async fn command_name(ctx: &StepContext, key: &str, suffix: &str) -> Result<String, ActionError> {
    if let Some(name) = ctx.checkpoints.get(key).and_then(Value::as_str) {
        return Ok(name.to_string());
    }
    let nonce = hex::encode(rand::random::<[u8; 4]>());
    let name = format!("rescue-{}-{}{suffix}-{nonce}", ctx.run_id, ctx.step_id)
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
    ctx.checkpoint(key, json!(name)).await?;
    Ok(name)
}

/// Reads a slice of a log the step's script left in /var/log/rescue (named parameters only):
/// the whole file gzip-compressed, `RESCUE_LENGTH` bytes of it from `RESCUE_OFFSET`, in base64,
/// with the file's size and SHA-256 so the copy can be checked. Read-only: it may run again.
const LOG_READER: &str = r#"set -u -o pipefail
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
f="${RESCUE_LOG:-}"; off="${RESCUE_OFFSET:-0}"; len="${RESCUE_LENGTH:-0}"
fail() { printf 'RESCUE-LOG {"error":"%s"}
' "$1"; exit 1; }
case "$f" in /var/log/rescue/*.log) ;; *) fail "not a log rescue keeps" ;; esac
case "$f" in *..*|*[!A-Za-z0-9/._-]*) fail "not a log rescue keeps" ;; esac
[[ "$off" =~ ^[0-9]+$ && "$len" =~ ^[0-9]+$ ]] || fail "bad slice"
[ -f "$f" ] || fail "no such log"
z="$(mktemp)"; trap 'rm -f "$z"' EXIT
gzip -9 -n -c "$f" >"$z" || fail "gzip failed"
printf 'RESCUE-LOG {"bytes":%s,"sha256":"%s","gzip_bytes":%s,"offset":%s,"data":"%s"}
'     "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$z")" "$off"     "$(tail -c +$((off + 1)) "$z" | head -c "$len" | base64 -w0)"
"#;
/// Compressed bytes per read: their base64 and the line around it stay under Run Command's
/// 4 KiB of output (`maxTailLen = 4 * 1024` in both Linux agents).
const LOG_SLICE: usize = 2800;
/// A log of more than this many compressed bytes is left on the VM (a runaway script).
const LOG_MAX_SLICES: usize = 64;
const LOG_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Reads `log` back from `vm` into the run directory as `STEP.log`; where it was kept.
async fn fetch_log(
    ctx: &StepContext,
    azure: &Azure,
    vm: &ResourceId,
    log: &str,
) -> Result<Option<std::path::PathBuf>, ActionError> {
    use base64::Engine as _;
    let base = command_name(ctx, LOG_NAME, "-log").await?;
    let mut gz = Vec::new();
    let mut want = (String::new(), 0u64);
    for slice in 0..LOG_MAX_SLICES {
        let name = format!("{base}-{slice}");
        let script = Script {
            name: name.clone(),
            label: format!(
                "reading the full log back from {} ({} KiB so far)",
                vm.name,
                gz.len() / 1024
            ),
            text: LOG_READER.to_string(),
            parameters: vec![
                ("RESCUE_LOG".into(), log.to_string()),
                ("RESCUE_OFFSET".into(), gz.len().to_string()),
                ("RESCUE_LENGTH".into(), LOG_SLICE.to_string()),
            ],
            timeout: LOG_READ_TIMEOUT,
        };
        let result = azure.run_script_once(vm, &script).await?;
        let _ = delete_command(azure, vm, &name).await;
        let line = parse_status(&result.output, "RESCUE-LOG").ok_or_else(|| {
            ActionError::fatal(format!(
                "the log reader printed no RESCUE-LOG line: {}",
                tail(&result.output, 3)
            ))
        })?;
        if let Some(e) = line.get("error").and_then(Value::as_str) {
            return Err(ActionError::fatal(format!("the log reader says: {e}")));
        }
        let data = base64::engine::general_purpose::STANDARD
            .decode(line["data"].as_str().unwrap_or_default())
            .map_err(|e| ActionError::fatal(format!("the log reader's data is not base64: {e}")))?;
        want = (
            line["sha256"].as_str().unwrap_or_default().to_string(),
            line["bytes"].as_u64().unwrap_or_default(),
        );
        gz.extend_from_slice(&data);
        let total = line["gzip_bytes"].as_u64().unwrap_or_default() as usize;
        if gz.len() >= total || data.is_empty() {
            break;
        }
    }
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).map_err(
        |e| {
            ActionError::fatal(format!(
                "the log read back does not decompress: {e} (more than {LOG_MAX_SLICES} slices?)"
            ))
        },
    )?;
    let got = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&text));
    if got != want.0 || text.len() as u64 != want.1 {
        return Err(ActionError::fatal(format!(
            "the log read back ({} bytes, sha256 {got}) differs from the VM's ({} bytes, sha256 {})",
            text.len(),
            want.1,
            want.0
        )));
    }
    ctx.artifact(&format!("{}.log", ctx.step_id), &text)
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
    log_file: Option<&std::path::Path>,
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
            "nothing was swapped: the VM keeps its original disk. The full log is {}; `rescue rollback RUN_ID` detaches and cleans up the copy",
            match log_file {
                Some(kept) => format!("in {} (and on {} at {log})", kept.display(), vm.name),
                None => format!("on {} at {log}", vm.name),
            }
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
