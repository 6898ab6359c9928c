//! Run Command on a VM: the action (`POST .../runCommand`, RunShellScript) and managed Run
//! Command resources (`.../virtualMachines/{vm}/runCommands/{name}`, ComputeRP runCommand.json
//! 2024-07-01: PUT, GET with `$expand=instanceView`, DELETE, list), executed by `runcommand` as
//! the Linux agents execute them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::super::arm::{self, ArmError, ArmResult};
use super::super::http::{Call, Reply};
use super::super::latency::*;
use super::super::operations::{Family, OpKind, Operation, Status};
use super::super::rules;
use super::super::runcommand::{self, InstanceView, Job, Launch, Managed, Outcome};
use super::super::server::Emu;
use super::super::state::{self, State, Vm};
use super::vm::find;
use super::{field, tags};

/// Executions in flight by id, so that a new PUT or a DELETE of their run command stops them
/// ("If the script execution is still in progress, execution will be terminated", Microsoft's
/// run-command-managed.md; the handler kills the previous run's process, cmds.go `runCmd`).
static EXECUTIONS: Mutex<Option<HashMap<String, tokio::task::AbortHandle>>> = Mutex::new(None);

fn track(id: &str, handle: tokio::task::AbortHandle) {
    EXECUTIONS
        .lock()
        .expect("executions")
        .get_or_insert_with(HashMap::new)
        .insert(id.to_string(), handle);
}

fn untrack(id: &str) -> Option<tokio::task::AbortHandle> {
    EXECUTIONS.lock().expect("executions").as_mut()?.remove(id)
}

/// `name`/`value` pairs of a parameter list.
fn pairs(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let s = |k| {
                        field(p, &[k])
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    };
                    (s("name"), s("value"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The data disks a script sees, as (LUN, image).
fn disks_of(emu: &Emu, state: &State, vm: &Vm) -> Vec<(i32, std::path::PathBuf)> {
    vm.data_disks
        .iter()
        .map(|d| (d.lun, emu.images.join(&state.disks[&d.disk].image)))
        .collect()
}

/// An agent that does not report makes CRP fail the operation after a long wait, with
/// `VMAgentStatusCommunicationError` "VM '{name}' has not reported status for VM agent or
/// extensions. Please verify the VM has a running VM agent, and can establish outbound
/// connections to Azure storage." (Azure/azure-powershell#5741, Azure/azure-xplat-cli#2794:
/// the operation's error after ~25 minutes, not a synchronous refusal).
fn agent_silent(emu: &Emu, state: &mut State, vm: &Vm, op: &Operation, call: &Call) {
    let e = ArmError::new(
        409,
        "VMAgentStatusCommunicationError",
        format!(
            "VM '{}' has not reported status for VM agent or extensions. Please verify the VM has a running VM agent, \
             and can establish outbound connections to Azure storage.",
            vm.name
        ),
    );
    let due = op.start + time::Duration::seconds_f64(emu.scaled(AGENT_STATUS_TIMEOUT, call));
    if let Some(o) = state.operations.get_mut(&op.id) {
        o.due = due;
        o.fail_with = Some(e);
        match &mut o.kind {
            OpKind::RunCommand { result, .. } => *result = Some(Ok(Value::Null)),
            OpKind::ManagedRunCommand { done, .. } => *done = true,
            _ => {}
        }
    }
}

/// The emulator needs root and loop devices to run scripts; a machine without them gets a 500
/// that says so (an emulator limit, not an Azure answer).
fn can_run_scripts() -> ArmResult<()> {
    runcommand::environment().map_err(|e| ArmError::internal(format!("{e:#}")))
}

/// `POST .../runCommand`: 202 with Location and Azure-AsyncOperation, the RunCommandResult at
/// Location once done (the spec's `final-state-via: location`).
pub async fn action(emu: &Arc<Emu>, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let body = call.json()?;
    let command = field(&body, &["commandId"])
        .and_then(Value::as_str)
        .ok_or_else(|| rules::missing("commandId"))?;
    if command != "RunShellScript" {
        // "When you specify a value that isn't an available command, you receive this error:
        // The entity was not found in this Azure location" (Microsoft's linux/run-command.md).
        // Of the two Linux commands the emulator runs RunShellScript only.
        return Err(ArmError::entity_not_found());
    }
    let lines: Vec<String> = field(&body, &["script"])
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    let params = pairs(field(&body, &["parameters"]));
    let (op, job) = {
        let mut state = emu.lock();
        let (key, vm) = find(&state, rg, name)?;
        let vm = vm.clone();
        rules::run_command_allowed(&state, &vm)?;
        can_run_scripts()?;
        let op = emu.begin(
            &mut state,
            Family::Compute,
            OpKind::RunCommand {
                vm: key.clone(),
                result: None,
            },
            RUN_COMMAND_MIN,
            call,
        );
        let v = state.vms.get_mut(&key).expect("found");
        v.run_command = Some(op.id.clone());
        v.run_command_seq += 1;
        let seq = v.run_command_seq;
        let script = runcommand::action_script(&lines, &params);
        let job = if !vm.agent_ready {
            agent_silent(emu, &mut state, &vm, &op, call);
            None
        } else if runcommand::encoded_len(&script) > runcommand::MAX_ENCODED_SCRIPT {
            // RunCommandLinux's writeTempScript fails ("The script's length (%d) exceeded the
            // maximum allowed length of %d!"), which `enable` only logs: the result is an empty
            // success (cmds.go `enable`: "Always report nil for error").
            set_action_result(&mut state, &op.id, Ok(empty_streams()));
            None
        } else {
            Some(Job {
                vm_root: state::vm_root(&emu.data_dir, &vm),
                dir: runcommand::action_dir(seq),
                script,
                launch: Launch::Action,
                timeout: Some(Duration::from_secs_f64(
                    emu.scaled(RUN_COMMAND_TIMEOUT, call),
                )),
                disks: disks_of(emu, &state, &vm),
                nvme: vm.settings.nvme(),
            })
        };
        emu.save(&state)?;
        (op, job)
    };
    if let Some(job) = job {
        let task_emu = emu.clone();
        let (op_id, vm_key) = (op.id.clone(), op.vm_key().unwrap_or_default().to_string());
        spawn(emu, async move {
            count_run(&task_emu, &vm_key, "RunShellScript");
            let result = match runcommand::execute(job).await {
                Ok(out @ Outcome { exit: Some(_), .. }) => Ok(runcommand::action_result(
                    &runcommand::streams(&out),
                )),
                // Azure/azure-sdk-for-python#4369: "VMExtensionProvisioningTimeout ... Provisioning
                // of VM extension 'RunCommandLinux' has timed out. Extension installation may be
                // taking too long, or extension status could not be obtained."
                Ok(Outcome { exit: None, .. }) => Err(ArmError::new(
                    500,
                    "VMExtensionProvisioningTimeout",
                    "Provisioning of VM extension 'RunCommandLinux' has timed out. Extension installation may be \
                     taking too long, or extension status could not be obtained.",
                )),
                Err(e) => Err(extension_failure("RunCommandLinux", &format!("Enable failed: {e:#}"))),
            };
            let mut state = task_emu.lock();
            set_action_result(&mut state, &op_id, result);
            let _ = task_emu.save(&state);
        });
    }
    let state = emu.lock();
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}

fn empty_streams() -> Value {
    runcommand::action_result(&runcommand::streams(&Outcome {
        exit: Some(0),
        stdout: String::new(),
        stderr: String::new(),
    }))
}

fn set_action_result(state: &mut State, op_id: &str, result: Result<Value, ArmError>) {
    if let Some(op) = state.operations.get_mut(op_id) {
        if let OpKind::RunCommand { result: slot, .. } = &mut op.kind {
            *slot = Some(result);
            op.worked_until = Some(arm::now());
        }
    }
}

/// An extension that reported failure: `VMExtensionProvisioningError` "VM has reported a failure
/// when processing extension '{name}'. Error message: '{message}'. More information on
/// troubleshooting is available at https://aka.ms/vmextensionlinuxtroubleshoot." (as
/// microsoft/vsts-azurevm-extension#237 quotes it, without the publisher clause).
fn extension_failure(extension: &str, message: &str) -> ArmError {
    ArmError::new(
        500,
        "VMExtensionProvisioningError",
        format!(
            "VM has reported a failure when processing extension '{extension}'. Error message: '{message}'. \
             More information on troubleshooting is available at https://aka.ms/vmextensionlinuxtroubleshoot."
        ),
    )
}

fn count_run(emu: &Emu, vm_key: &str, what: &str) {
    let mut state = emu.lock();
    if let Some(v) = state.vms.get_mut(vm_key) {
        v.scripts_run += 1;
        v.scripts.push(what.to_string());
    }
    let _ = emu.save(&state);
}

fn spawn(
    emu: &Emu,
    fut: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::AbortHandle {
    let task = tokio::spawn(fut);
    let handle = task.abort_handle();
    let mut tasks = emu.tasks.lock().expect("task lock");
    tasks.retain(|t| !t.is_finished());
    tasks.push(task);
    handle
}

/// The id of a managed Run Command.
fn rc_id(state: &State, vm: &Vm, name: &str) -> String {
    format!("{}/runCommands/{name}", state.vm_id(vm))
}

/// A managed Run Command as GET answers it (the spec's VirtualMachineRunCommand_Get example:
/// `asyncExecution` and `treatFailureAsDeploymentFailure` false and `timeoutInSeconds` 0 unless
/// given, as `az vm run-command show` prints them; no `protectedParameters`, no `runAsPassword`;
/// `instanceView` only with `$expand=instanceView`).
fn render(state: &State, vm: &Vm, rc: &Managed, expand: bool) -> Value {
    let mut props = rc.properties.clone();
    for (k, default) in [
        ("asyncExecution", json!(false)),
        ("treatFailureAsDeploymentFailure", json!(false)),
        ("timeoutInSeconds", json!(0)),
    ] {
        if props.get(k).is_none() {
            props[k] = default;
        }
    }
    props["provisioningState"] = json!(rc.provisioning_state);
    if expand {
        props["instanceView"] = rc.view.render();
    }
    let mut body = json!({
        "name": rc.name,
        "id": rc_id(state, vm, &rc.name),
        "type": "Microsoft.Compute/virtualMachines/runCommands",
        "location": rc.location,
        "properties": props,
    });
    if !rc.tags.is_empty() {
        body["tags"] = json!(rc.tags);
    }
    body
}

fn expand(call: &Call) -> bool {
    call.query("$expand")
        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
}

/// (inferred) CRP's 404 for a run command the VM does not have, in ARM's ResourceNotFound
/// shape with the child type.
fn rc_not_found(rg: &str, vm: &str, name: &str) -> ArmError {
    ArmError::not_found(&format!("virtualMachines/{vm}/runCommands"), rg, name)
}

pub fn get(emu: &Emu, call: &Call, rg: &str, vm_name: &str, name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = find(&state, rg, vm_name)?;
    let rc = vm
        .run_commands
        .get(&name.to_ascii_lowercase())
        .ok_or_else(|| rc_not_found(&vm.resource_group, &vm.name, name))?;
    Ok(Reply::json(200, render(&state, vm, rc, expand(call))))
}

pub fn list(emu: &Emu, call: &Call, rg: &str, vm_name: &str) -> ArmResult<Reply> {
    let state = emu.lock();
    let (_, vm) = find(&state, rg, vm_name)?;
    let value: Vec<Value> = vm
        .run_commands
        .values()
        .map(|rc| render(&state, vm, rc, expand(call)))
        .collect();
    Ok(Reply::json(200, json!({ "value": value })))
}

/// The handler's settings: everything in `properties` a client sets. A PUT that leaves them as
/// they are is not a new goal state, so the script does not run again
/// (Azure/azure-sdk-for-net#47307: "running CreateOrUpdateAsync again does not re-execute the
/// command"; the handler runs once per sequence number, cmds.go `enablePre`).
fn settings_of(props: &Value) -> Value {
    let mut s = props.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("provisioningState");
        o.remove("instanceView");
    }
    s
}

fn public_properties(props: &Value) -> Value {
    let mut p = settings_of(props);
    if let Some(o) = p.as_object_mut() {
        o.remove("protectedParameters");
        o.remove("runAsPassword");
    }
    p
}

/// `PUT .../runCommands/{name}`: 201 (created) or 200 with `provisioningState` Creating or
/// Updating and an Azure-AsyncOperation (the spec's VirtualMachineRunCommand_CreateOrUpdate
/// example), provisioning ending Succeeded once the script ended (or started, with
/// `asyncExecution`), Failed only under `treatFailureAsDeploymentFailure`.
pub async fn put(
    emu: &Arc<Emu>,
    call: &Call,
    rg: &str,
    vm_name: &str,
    name: &str,
) -> ArmResult<Reply> {
    let body = call.json()?;
    let props = field(&body, &["properties"]).cloned().unwrap_or(json!({}));
    let location = field(&body, &["location"])
        .and_then(Value::as_str)
        .map(String::from)
        // (inferred) ARM's text for a tracked resource without a location, as for disks.
        .ok_or_else(|| {
            ArmError::bad_request(
                "LocationRequired",
                "The location property is required for this definition.",
            )
        })?;
    let lname = name.to_ascii_lowercase();
    let mut state = emu.lock();
    let (key, vm) = find(&state, rg, vm_name)?;
    let vm = vm.clone();
    rules::managed_run_command_available(&vm)?;
    rules::extensions_modifiable(&vm)?;
    let settings = settings_of(&props);
    let existing = vm.run_commands.get(&lname).cloned();
    let new_tags = tags(&body)?;
    if let Some(rc) = existing.as_ref().filter(|rc| rc.settings == settings) {
        let rc_op = rc.operation.clone();
        let in_flight = rc_op
            .as_ref()
            .and_then(|id| state.operations.get(id))
            .filter(|op| op.status == Status::InProgress)
            .cloned();
        let op = match in_flight {
            Some(op) => op,
            None => emu.begin(
                &mut state,
                Family::Compute,
                OpKind::ManagedRunCommand {
                    vm: key.clone(),
                    name: lname.clone(),
                    done: true,
                },
                NO_OP,
                call,
            ),
        };
        let rc = state
            .vms
            .get_mut(&key)
            .and_then(|v| v.run_commands.get_mut(&lname))
            .expect("found above");
        if let Some(t) = new_tags {
            rc.tags = t;
        }
        rc.operation = Some(op.id.clone());
        emu.save(&state)?;
        let vm = &state.vms[&key];
        let reply = Reply::json(200, render(&state, vm, &vm.run_commands[&lname], false));
        return Ok(emu.lro_headers(&state, &op, reply, false));
    }
    can_run_scripts()?;
    if let Some(previous) = existing.as_ref().and_then(|rc| rc.execution.clone()) {
        if let Some(h) = untrack(&previous) {
            h.abort();
        }
    }
    let seq = existing.as_ref().map_or(0, |rc| rc.seq + 1);
    let op = emu.begin(
        &mut state,
        Family::Compute,
        OpKind::ManagedRunCommand {
            vm: key.clone(),
            name: lname.clone(),
            done: false,
        },
        MANAGED_PICKUP,
        call,
    );
    let execution = arm::guid();
    let created = existing.is_none();
    let rc = Managed {
        name: existing
            .as_ref()
            .map_or(name.to_string(), |rc| rc.name.clone()),
        location,
        tags: new_tags
            .or_else(|| existing.as_ref().map(|rc| rc.tags.clone()))
            .unwrap_or_default(),
        properties: public_properties(&props),
        settings,
        seq,
        provisioning_state: if created { "Creating" } else { "Updating" }.into(),
        view: InstanceView {
            execution_state: "Pending".into(),
            ..Default::default()
        },
        operation: Some(op.id.clone()),
        execution: Some(execution.clone()),
    };
    let params: Vec<(String, String)> = pairs(field(&props, &["parameters"]))
        .into_iter()
        .chain(pairs(field(&props, &["protectedParameters"])))
        .collect();
    let script = field(&props, &["source", "script"])
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let script_uri = field(&props, &["source", "scriptUri"])
        .and_then(Value::as_str)
        .map(String::from);
    let timeout = field(&props, &["timeoutInSeconds"])
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs_f64(emu.scaled(t as f64, call)));
    let plan = Plan {
        vm_key: key.clone(),
        name: lname.clone(),
        execution: execution.clone(),
        op_id: op.id.clone(),
        pickup: Duration::from_secs_f64(emu.scaled(MANAGED_PICKUP, call)),
        async_execution: field(&props, &["asyncExecution"])
            .and_then(Value::as_bool)
            .unwrap_or(false),
        treat_failure: field(&props, &["treatFailureAsDeploymentFailure"])
            .and_then(Value::as_bool)
            .unwrap_or(false),
        source: match (script.is_empty(), script_uri) {
            (false, None) => Ok(script),
            (true, Some(uri)) => Err(SourceProblem::Uri(uri)),
            _ => Err(SourceProblem::Neither),
        },
        job: Job {
            vm_root: state::vm_root(&emu.data_dir, &vm),
            dir: runcommand::managed_dir(&lname, seq),
            script: String::new(),
            launch: Launch::managed(&params),
            timeout,
            disks: disks_of(emu, &state, &vm),
            nvme: vm.settings.nvme(),
        },
    };
    let v = state.vms.get_mut(&key).expect("found");
    v.run_commands.insert(lname.clone(), rc);
    if !vm.agent_ready {
        agent_silent(emu, &mut state, &vm, &op, call);
    } else if call.lro_failed() {
        // The operation ends Failed (Emu::begin); the script never runs.
        if let Some(OpKind::ManagedRunCommand { done, .. }) =
            state.operations.get_mut(&op.id).map(|o| &mut o.kind)
        {
            *done = true;
        }
        if let Some(rc) = state
            .vms
            .get_mut(&key)
            .and_then(|v| v.run_commands.get_mut(&lname))
        {
            rc.provisioning_state = "Failed".into();
            rc.execution = None;
        }
    } else {
        let task_emu = emu.clone();
        let handle = spawn(emu, run_managed(task_emu, plan));
        track(&execution, handle);
    }
    emu.save(&state)?;
    let vm = &state.vms[&key];
    let reply = Reply::json(
        if created { 201 } else { 200 },
        render(&state, vm, &vm.run_commands[&lname], false),
    );
    Ok(emu.lro_headers(&state, &op, reply, false))
}

enum SourceProblem {
    Uri(String),
    Neither,
}

struct Plan {
    vm_key: String,
    name: String,
    execution: String,
    op_id: String,
    pickup: Duration,
    async_execution: bool,
    treat_failure: bool,
    source: Result<String, SourceProblem>,
    job: Job,
}

/// Applies `f` to the run command if this execution is still its current one.
fn with_rc(emu: &Emu, plan: &Plan, f: impl FnOnce(&mut State, &mut Managed)) {
    let mut state = emu.lock();
    let Some(mut rc) = state
        .vms
        .get_mut(&plan.vm_key)
        .and_then(|v| v.run_commands.remove(&plan.name))
    else {
        return;
    };
    if rc.execution.as_deref() == Some(plan.execution.as_str()) {
        f(&mut state, &mut rc);
    }
    if let Some(v) = state.vms.get_mut(&plan.vm_key) {
        v.run_commands.insert(plan.name.clone(), rc);
    }
    let _ = emu.save(&state);
}

fn mark_done(state: &mut State, op_id: &str, failure: Option<ArmError>) {
    if let Some(op) = state.operations.get_mut(op_id) {
        if let OpKind::ManagedRunCommand { done, .. } = &mut op.kind {
            *done = true;
            op.worked_until = Some(arm::now());
        }
        if failure.is_some() && op.fail_with.is_none() {
            op.fail_with = failure;
        }
    }
}

/// The handler's run (commandProcessor.go `ProcessHandlerCommandWithDetails`): Running with
/// "Execution in progress", then Succeeded "Execution completed" with exit code 0, or Failed
/// "Execution failed: <error>" with the script's exit code; a timeout kills the script, which
/// then reads as exit status -1 (exec.go: `exec.CommandContext` kills it and
/// `status.ExitStatus()` of a signalled process is -1). The Linux handler never reports
/// TimedOut, although the API's enum has it.
async fn run_managed(emu: Arc<Emu>, mut plan: Plan) {
    tokio::time::sleep(plan.pickup).await;
    let now = || arm::rfc3339(arm::now());
    let script = match std::mem::replace(&mut plan.source, Err(SourceProblem::Neither)) {
        Ok(script) => script,
        Err(problem) => {
            // cmds.go: settings without a source fail validation ("failed to get configuration:
            // invalid configuration: Either 'source.script' or 'source.scriptUri' has to be
            // specified", exit -202); a script URI must be downloaded, which a loopback emulator
            // cannot do ("File downloads failed. ...", exit -100).
            let (message, code) = match problem {
                SourceProblem::Neither => ("failed to get configuration: invalid configuration: Either 'source.script' or 'source.scriptUri' has to be specified".to_string(), -202),
                SourceProblem::Uri(uri) => (format!("File downloads failed. Use either a public script URI that points to .sh file, Azure storage blob SAS URI or storage blob accessible by a managed identity and retry.: failed to download file {uri}. : the rescue emulator does not download scripts (loopback only)"), -100),
            };
            finish(&emu, &plan, None, Some((message, code)));
            return;
        }
    };
    plan.job.script = script;
    let async_execution = plan.async_execution;
    with_rc(&emu, &plan, |state, rc| {
        rc.view = InstanceView {
            execution_state: "Running".into(),
            execution_message: "Execution in progress".into(),
            start_time: Some(now()),
            ..Default::default()
        };
        if async_execution {
            // "If set to true, provisioning will complete as soon as the script starts and will
            // not wait for script to complete." (the spec's asyncExecution)
            rc.provisioning_state = "Succeeded".into();
            mark_done(state, &plan.op_id, None);
        }
    });
    count_run(&emu, &plan.vm_key, &plan.name);
    let outcome = runcommand::execute(plan.job.clone()).await;
    match outcome {
        Ok(out) => finish(&emu, &plan, Some(out), None),
        Err(e) => finish(
            &emu,
            &plan,
            None,
            Some((format!("failed to execute command: {e:#}"), -204)),
        ),
    }
    untrack(&plan.execution);
}

/// Records the end of a run: its instance view, its provisioning state and operation.
fn finish(emu: &Emu, plan: &Plan, out: Option<Outcome>, failure: Option<(String, i32)>) {
    let end = arm::rfc3339(arm::now());
    with_rc(emu, plan, |state, rc| {
        let (exit, stdout, stderr) = match &out {
            Some(o) => (o.exit.unwrap_or(-1), o.stdout.clone(), o.stderr.clone()),
            None => (
                failure.as_ref().map_or(0, |f| f.1),
                String::new(),
                String::new(),
            ),
        };
        let error = match (&failure, &out) {
            (Some((m, _)), _) => Some(m.clone()),
            (None, Some(_)) if exit != 0 => Some(format!(
                "failed to execute command: command terminated with exit status={exit}"
            )),
            _ => None,
        };
        rc.view.output = stdout;
        rc.view.error = stderr;
        rc.view.exit_code = exit;
        rc.view.end_time = Some(end.clone());
        if rc.view.start_time.is_none() {
            rc.view.start_time = Some(end.clone());
        }
        match &error {
            None => {
                rc.view.execution_state = "Succeeded".into();
                rc.view.execution_message = "Execution completed".into();
            }
            Some(m) => {
                rc.view.execution_state = "Failed".into();
                rc.view.execution_message = format!("Execution failed: {m}");
            }
        }
        rc.execution = None;
        let deployment_failed = error.is_some() && plan.treat_failure;
        if !plan.async_execution || rc.provisioning_state != "Succeeded" {
            rc.provisioning_state = if deployment_failed {
                "Failed"
            } else {
                "Succeeded"
            }
            .into();
        }
        let failure = deployment_failed
            .then(|| extension_failure("RunCommandHandlerLinux", &rc.view.execution_message));
        mark_done(state, &plan.op_id, failure);
    });
}

/// `DELETE .../runCommands/{name}`: 202 with Location and Azure-AsyncOperation, 204 when there
/// is nothing to delete (the spec's 200/202/204); a running script is stopped.
pub fn delete(emu: &Emu, call: &Call, rg: &str, vm_name: &str, name: &str) -> ArmResult<Reply> {
    let lname = name.to_ascii_lowercase();
    let mut state = emu.lock();
    let (key, vm) = find(&state, rg, vm_name)?;
    let vm = vm.clone();
    let Some(rc) = vm.run_commands.get(&lname) else {
        return Ok(Reply::empty(204));
    };
    rules::extensions_modifiable(&vm)?;
    if let Some(h) = rc.execution.as_deref().and_then(untrack) {
        h.abort();
    }
    let op = emu.begin(
        &mut state,
        Family::Compute,
        OpKind::ManagedRunCommandDelete {
            vm: key.clone(),
            name: lname.clone(),
        },
        NO_OP,
        call,
    );
    if let Some(rc) = state
        .vms
        .get_mut(&key)
        .and_then(|v| v.run_commands.get_mut(&lname))
    {
        rc.provisioning_state = "Deleting".into();
        rc.execution = None;
    }
    emu.save(&state)?;
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}
