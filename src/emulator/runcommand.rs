//! Run Command (RunShellScript), run for real: the script runs as root on this machine in a
//! private mount namespace where `/dev/disk/azure/scsi1/lunN[-partK]` point at loop devices of
//! the VM's data disks, exactly the paths an Azure Linux VM's udev rules create. Like Azure's
//! Linux agent it returns the last 4 KiB of stdout and stderr and reports success whatever the
//! script's exit status.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::arm::{self, ArmError, ArmResult};
use super::http::{Call, Reply};
use super::latency::*;
use super::operations::{Family, OpKind};
use super::resources::field;
use super::rules;
use super::server::Emu;

/// Azure's limit on a script.
const MAX_SCRIPT: usize = 256 * 1024;
/// Azure's agent keeps only the tail of each stream.
const TAIL: usize = 4 * 1024;
/// Azure's Run Command timeout.
const TIMEOUT: Duration = Duration::from_secs(90 * 60);

pub async fn handle(emu: &Arc<Emu>, call: &Call, rg: &str, name: &str) -> ArmResult<Reply> {
    let body = call.json()?;
    let command = field(&body, &["commandId"])
        .and_then(Value::as_str)
        .unwrap_or("");
    if command != "RunShellScript" {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "commandId '{command}' is not available on this Linux VM: use 'RunShellScript'."
            ),
        ));
    }
    let script: String = match field(&body, &["script"]) {
        Some(Value::Array(lines)) => lines
            .iter()
            .map(|l| l.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                "Required parameter 'script' is missing (null).",
            ))
        }
    };
    if script.len() > MAX_SCRIPT {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "The script's length ({}) exceeded the maximum allowed length of {MAX_SCRIPT}.",
                script.len()
            ),
        ));
    }
    let params: Vec<(String, String)> = field(&body, &["parameters"])
        .and_then(Value::as_array)
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
        .unwrap_or_default();
    let (op, disks, work) = {
        let mut state = emu.lock();
        let rgname = super::resources::group(&state, rg)?.to_string();
        let key = arm::key(&rgname, name);
        let vm = state
            .vms
            .get(&key)
            .ok_or_else(|| ArmError::not_found("virtualMachines", &rgname, name))?
            .clone();
        rules::run_command_allowed(&state, &vm)?;
        environment()
            .map_err(|e| ArmError::new(500, "EmulatorRunCommandUnavailable", format!("{e:#}")))?;
        let disks: Vec<(i32, PathBuf)> = vm
            .data_disks
            .iter()
            .map(|d| (d.lun, emu.images.join(&state.disks[&d.disk].image)))
            .collect();
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
        state.vms.get_mut(&key).expect("found").busy = Some(op.id.clone());
        emu.save(&state)?;
        let work = emu.data_dir.join("runcommand").join(&op.id);
        (op, disks, work)
    };
    let task_emu = emu.clone();
    let op_id = op.id.clone();
    let failed = call.lro_failed();
    let task = tokio::spawn(async move {
        let result = execute(&script, &params, &disks, &work).await.map_err(|e| {
            ArmError::new(
                500,
                "VMExtensionProvisioningError",
                format!("Run Command could not run the script: {e:#}"),
            )
        });
        let _ = std::fs::remove_dir_all(&work);
        let mut state = task_emu.lock();
        if let Some(OpKind::RunCommand { result: slot, .. }) =
            state.operations.get_mut(&op_id).map(|o| &mut o.kind)
        {
            *slot = Some(if failed {
                Err(ArmError::internal("lro_failed"))
            } else {
                result
            });
        }
        let _ = task_emu.save(&state);
    });
    let mut tasks = emu.tasks.lock().expect("task lock");
    tasks.retain(|t| !t.is_finished());
    tasks.push(task);
    drop(tasks);
    let state = emu.lock();
    Ok(emu.lro_headers(&state, &op, Reply::empty(202), true))
}

/// Root and loop devices are needed; say so plainly when they are missing.
fn environment() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the rescue emulator runs Run Command scripts as root with loop devices, and this process is not root: \
             run `rescue emulator serve` (or the tests) as root on Linux"
        );
    }
    if !Path::new("/dev/loop-control").exists() {
        bail!("/dev/loop-control is missing: this machine has no loop devices (load the `loop` module, or run in a container with --privileged)");
    }
    Ok(())
}

/// Loop devices this run attached; detached on drop, also on error paths and when the task is
/// aborted. Only our own devices: other processes use loop devices concurrently.
struct Loops(Vec<String>);

impl Loops {
    fn attach(&mut self, image: &Path, range: Option<(u64, u64)>) -> anyhow::Result<String> {
        let mut cmd = std::process::Command::new("losetup");
        cmd.args(["-f", "--show"]);
        if let Some((offset, size)) = range {
            cmd.args(["-o", &offset.to_string(), "--sizelimit", &size.to_string()]);
        }
        let out = cmd.arg(image).output().context("running losetup")?;
        if !out.status.success() {
            bail!(
                "losetup {} failed: {}",
                image.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        self.0.push(dev.clone());
        Ok(dev)
    }
}

impl Drop for Loops {
    fn drop(&mut self) {
        for dev in self.0.drain(..).rev() {
            let _ = std::process::Command::new("losetup")
                .arg("-d")
                .arg(&dev)
                .status();
        }
    }
}

/// Kills a script's process group (its background children too) when the run ends or is
/// aborted, so nothing keeps using the VM's disks afterwards.
struct ProcessGroup(i32);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: signals a process group this emulator created; no memory is involved.
        unsafe {
            libc::kill(-self.0, libc::SIGKILL);
        }
    }
}

/// Detaches loop devices still backed by this emulator's images (left by a killed emulator
/// during a Run Command). Devices of other files are never touched.
pub fn detach_stale(images: &Path) {
    let Ok(entries) = std::fs::read_dir(images) else {
        return;
    };
    for image in entries.flatten().map(|e| e.path()) {
        let Ok(out) = std::process::Command::new("losetup")
            .arg("-j")
            .arg(&image)
            .output()
        else {
            return;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(dev) = line
                .split(':')
                .next()
                .filter(|d| d.starts_with("/dev/loop"))
            {
                let _ = std::process::Command::new("losetup")
                    .arg("-d")
                    .arg(dev)
                    .status();
            }
        }
    }
}

/// The shell lines that build `/dev/disk/azure/scsi1` inside the namespace.
fn device_links(links: &[(String, String)]) -> String {
    let mut sh = String::from(
        "set -e\nmkdir -p /dev/disk\nmount -t tmpfs -o mode=0755 azure-disks /dev/disk\nmkdir -p /dev/disk/azure/scsi1\n",
    );
    for (name, dev) in links {
        sh.push_str(&format!("ln -s '{dev}' '/dev/disk/azure/scsi1/{name}'\n"));
    }
    sh
}

async fn execute(
    script: &str,
    params: &[(String, String)],
    disks: &[(i32, PathBuf)],
    work: &Path,
) -> anyhow::Result<Value> {
    std::fs::create_dir_all(work)?;
    let images: Vec<(i32, PathBuf)> = disks.to_vec();
    let (loops, links) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Loops, Vec<(String, String)>)> {
            let mut loops = Loops(Vec::new());
            let mut links = Vec::new();
            for (lun, image) in &images {
                links.push((format!("lun{lun}"), loops.attach(image, None)?));
                for p in super::gpt::partitions(image)? {
                    links.push((
                        format!("lun{lun}-part{}", p.number),
                        loops.attach(image, Some((p.offset, p.size)))?,
                    ));
                }
            }
            Ok((loops, links))
        })
        .await??;
    let script_path = work.join("script.sh");
    std::fs::write(&script_path, script)?;
    std::fs::set_permissions(
        &script_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    let setup = work.join("setup.sh");
    // Positional arguments, in order, as Azure's agent passes them; named ones also as
    // environment variables when the name is a valid shell identifier.
    let runner = if script.starts_with("#!") {
        "exec \"$@\""
    } else {
        "exec /bin/bash \"$@\""
    };
    std::fs::write(
        &setup,
        format!(
            "{}set +e\ncd '{}'\n{runner}\n",
            device_links(&links),
            work.display()
        ),
    )?;
    let stdout = std::fs::File::create(work.join("stdout"))?;
    let stderr = std::fs::File::create(work.join("stderr"))?;
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh"])
        .arg(&setup)
        .arg(&script_path)
        .args(params.iter().map(|(_, v)| v))
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    for (name, value) in params {
        if !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
        {
            cmd.env(name, value);
        }
    }
    let mut child = cmd.spawn().context("starting the script with unshare")?;
    // Dropped before `loops`: the script's whole process group dies before its devices go.
    let _group = child.id().map(|pid| ProcessGroup(pid as i32));
    match tokio::time::timeout(TIMEOUT, child.wait()).await {
        Ok(status) => {
            status?;
        }
        Err(_) => {
            let _ = child.kill().await;
            bail!("the script ran longer than Run Command's 90-minute limit and was stopped");
        }
    }
    drop(loops);
    let out = tail(&work.join("stdout"))?;
    let err = tail(&work.join("stderr"))?;
    Ok(result(&out, &err))
}

/// The last 4 KiB of a stream, as Azure's agent keeps.
fn tail(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)?;
    let start = bytes.len().saturating_sub(TAIL);
    Ok(String::from_utf8_lossy(&bytes[start..]).into_owned())
}

/// The RunCommandResult Azure returns for a finished RunShellScript.
fn result(stdout: &str, stderr: &str) -> Value {
    json!({
        "value": [{
            "code": "ProvisioningState/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": format!("Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n{stderr}\n"),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_4_kib() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        std::fs::write(&p, format!("{}END", "x".repeat(10_000))).unwrap();
        let t = tail(&p).unwrap();
        assert_eq!(t.len(), 4096);
        assert!(t.ends_with("END"));
    }

    #[test]
    fn links_name_luns_and_partitions() {
        let sh = device_links(&[
            ("lun0".into(), "/dev/loop3".into()),
            ("lun0-part1".into(), "/dev/loop4".into()),
        ]);
        assert!(sh.contains("ln -s '/dev/loop4' '/dev/disk/azure/scsi1/lun0-part1'"));
    }
}
