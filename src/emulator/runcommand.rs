//! Run Command, run for real, as Azure's Linux agents run it: the script runs as root on this
//! machine in a private mount namespace where `/dev/disk/azure/scsi1/lunN[-partK]` point at loop
//! devices of the VM's data disks (the paths an Azure Linux VM's udev rules create), and the VM's
//! own `/var/lib`, `/var/log` and `/tmp` are directories under the emulator's data dir.
//!
//! Two flavours, each after its agent's source:
//! - action Run Command (`POST .../runCommand`, RunShellScript), executed by RunCommandLinux
//!   (github.com/Azure/run-command-extension-linux, v1.0.12): see [`action_script`] and
//!   [`Launch::Action`];
//! - managed Run Command (`.../runCommands/{name}`, see `resources::vm_run_commands`), executed
//!   by RunCommandHandlerLinux (github.com/Azure/run-command-handler-linux, v1.3.28): see
//!   [`Launch::Managed`].

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// RunCommandLinux and RunCommandHandlerLinux keep only the tail of each stream
/// (`maxTailLen = 4 * 1024` in both cmds.go).
pub const TAIL: usize = 4 * 1024;

/// The environment the agent gives an extension, as a script sees it (Azure/azure-cli#9596:
/// `printenv` in a RunShellScript prints only PATH, PWD, LANG, SHLVL and `_`).
const AGENT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";
const AGENT_LANG: &str = "en_US.UTF-8";

/// Where each agent keeps a run's script and output on the VM: RunCommandLinux's
/// `/var/lib/waagent/run-command/download/<seqnum>` (main.go `dataDir`, `downloadDir`) and
/// RunCommandHandlerLinux's `/var/lib/waagent/run-command-handler/download/<name>/<seqnum>`
/// (constants.go `DataDir`, `DownloadFolder`).
pub fn action_dir(seq: u64) -> String {
    format!("/var/lib/waagent/run-command/download/{seq}")
}

pub fn managed_dir(name: &str, seq: u64) -> String {
    format!("/var/lib/waagent/run-command-handler/download/{name}/{seq}")
}

/// The script file action Run Command runs. CRP adds the parameters as shell lines
/// (`export name=value ...` then `set -- value ...`, unquoted: koralski in Azure/azure-cli#10400,
/// "These parameters are parsed and added at the top of your script in the format:
/// export arg1=hello arg2=world / set -- hello world"). When the first `script` entry is a
/// shebang line they go right after it: Azure/azure-powershell#14415 shows bash failing on
/// "script.sh: line 2: export: -=: invalid option" for a script whose line 1 was `#!/bin/bash`,
/// and a script sent as one entry that begins with a shebang loses its parameters because they
/// land after the whole script (Azure/azure-cli#9596 and #10400: `az --scripts @file` sends the
/// file as one entry). RunCommandLinux then strips a UTF-8 BOM and turns CRLF into LF
/// (files.go `postProcessFile`, preprocess/bom.go, preprocess/dos.go).
pub fn action_script(lines: &[String], params: &[(String, String)]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut rest = lines;
    if let Some(first) = lines.first().filter(|l| l.starts_with("#!")) {
        out.push(first.clone());
        rest = &lines[1..];
    }
    if !params.is_empty() {
        let exports: Vec<String> = params.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let values: Vec<&str> = params.iter().map(|(_, v)| v.as_str()).collect();
        out.push(format!("export {}", exports.join(" ")));
        out.push(format!("set -- {}", values.join(" ")));
    }
    out.extend(rest.iter().cloned());
    let text = out.join("\n");
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    text.replace("\r\n", "\n")
}

/// RunCommandLinux refuses a script whose settings value (base64) is longer than this
/// (cmds.go `maxScriptSize`, checked in `writeTempScript` on the encoded script).
pub const MAX_ENCODED_SCRIPT: usize = 256 * 1024;

pub fn encoded_len(script: &str) -> usize {
    script.len().div_ceil(3) * 4
}

/// How an agent starts the script file.
#[derive(Debug, Clone)]
pub enum Launch {
    /// RunCommandLinux: `/bin/sh -c <dir>/script.sh` in the run's dir (exec.go `Exec`), so the
    /// kernel honours a shebang and a script without one runs under /bin/sh.
    Action,
    /// RunCommandHandlerLinux: named parameters set in its environment, unnamed ones appended to
    /// the command line unquoted, empty values dropped, run as `/bin/bash -c "<path> <args>"`
    /// (exec.go `Exec` and `SetEnvironmentVariables`).
    Managed {
        env: Vec<(String, String)>,
        args: String,
    },
}

impl Launch {
    /// The handler's split of parameters (public first, then protected).
    pub fn managed(params: &[(String, String)]) -> Self {
        let mut env = Vec::new();
        let mut args = String::new();
        for (name, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
            if name.is_empty() {
                args.push(' ');
                args.push_str(value);
            } else {
                env.push((name.clone(), value.clone()));
            }
        }
        Launch::Managed { env, args }
    }
}

/// One script run on a VM.
#[derive(Debug, Clone)]
pub struct Job {
    /// The VM's own files (`/var/lib`, `/var/log`, `/tmp`) under the data dir.
    pub vm_root: PathBuf,
    /// The run's directory as the VM sees it, e.g. [`action_dir`].
    pub dir: String,
    pub script: String,
    pub launch: Launch,
    pub timeout: Option<Duration>,
    /// (LUN, image) of the VM's data disks.
    pub disks: Vec<(i32, PathBuf)>,
    /// An NVMe-controller VM: its data disks appear where azure-vm-utils' udev rules put them
    /// (`/dev/disk/azure/data/by-lun/N` and `N-partK`, 80-azure-disk.rules), not under scsi1.
    pub nvme: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The script's exit status; `None` when it was killed at its timeout.
    pub exit: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A managed Run Command resource (`Microsoft.Compute/virtualMachines/runCommands`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Managed {
    pub name: String,
    pub location: String,
    pub tags: serde_json::Map<String, Value>,
    /// `properties` as given, without `protectedParameters` and `runAsPassword` (GET never
    /// returns those: see the REST spec's VirtualMachineRunCommand_Get example).
    pub properties: Value,
    /// What the handler's settings are made of, public and protected; a PUT that leaves it
    /// unchanged starts no new run.
    pub settings: Value,
    /// The handler's sequence number for this run command.
    pub seq: u64,
    pub provisioning_state: String,
    pub view: InstanceView,
    /// The operation of the latest PUT.
    pub operation: Option<String>,
    /// The execution in flight (for a re-PUT or a DELETE to stop it).
    #[serde(default)]
    pub execution: Option<String>,
}

/// The handler's instance view (types/instanceview.go `RunCommandInstanceView`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InstanceView {
    pub execution_state: String,
    pub execution_message: String,
    pub exit_code: i32,
    pub output: String,
    pub error: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
}

impl InstanceView {
    pub fn render(&self) -> Value {
        let mut v = serde_json::json!({
            "executionState": self.execution_state,
            "executionMessage": self.execution_message,
            "exitCode": self.exit_code,
            "output": self.output,
            "error": self.error,
        });
        if let Some(t) = &self.start_time {
            v["startTime"] = serde_json::json!(t);
        }
        if let Some(t) = &self.end_time {
            v["endTime"] = serde_json::json!(t);
        }
        v
    }
}

/// Root and loop devices are needed; say so plainly when they are missing.
pub fn environment() -> anyhow::Result<()> {
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

/// The VM's own directories, bind-mounted over the host's inside the script's namespace so that
/// nothing a script writes to them lands outside the data dir.
const VM_DIRS: [&str; 3] = ["var/lib", "var/log", "tmp"];

/// The shell that prepares the namespace: `/dev/disk/azure/scsi1` (a tmpfs over `/dev/disk`, or,
/// where the host has no `/dev/disk` to mount over, a private copy of `/dev`), the VM's
/// directories, then the run's working dir; it then execs its arguments.
fn namespace_setup(links: &[(String, String)]) -> String {
    let mut sh = String::from(
        r#"set -e
vm="$1"; dir="$2"; shift 2
if [ -d /dev/disk ]; then
    mount -t tmpfs -o mode=0755 azure-disks /dev/disk
else
    mkdir -p "$vm/.dev"
    mount --bind /dev "$vm/.dev"
    mount -t tmpfs -o mode=0755 vm-dev /dev
    for e in "$vm"/.dev/*; do
        n="/dev/${e##*/}"
        if [ -L "$e" ]; then cp -P "$e" "$n"
        elif [ -d "$e" ]; then mkdir "$n" && mount --rbind "$e" "$n"
        else : > "$n" && mount --bind "$e" "$n"
        fi
    done
    mkdir /dev/disk
fi
mkdir -p /dev/disk/azure/scsi1 /dev/disk/azure/data/by-lun
"#,
    );
    for (name, dev) in links {
        sh.push_str(&format!("ln -s '{dev}' '/dev/disk/azure/{name}'\n"));
    }
    for d in VM_DIRS {
        sh.push_str(&format!("mount --bind \"$vm/{d}\" /{d}\n"));
    }
    sh.push_str("cd \"$dir\"\nset +e\nexec \"$@\"\n");
    sh
}

/// Creates a directory and its parents with mode 0700 (the data dir holds disk images and what
/// root scripts wrote).
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

fn private_file(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

/// Runs a job to its end (or its timeout) and returns the tails of its streams.
pub async fn execute(job: Job) -> anyhow::Result<Outcome> {
    for d in VM_DIRS {
        private_dir(&job.vm_root.join(d))?;
    }
    let host_dir = job.vm_root.join(job.dir.trim_start_matches('/'));
    private_dir(&host_dir)?;
    let images = job.disks.clone();
    let nvme = job.nvme;
    let (loops, links) =
        tokio::task::spawn_blocking(move || -> anyhow::Result<(Loops, Vec<(String, String)>)> {
            let mut loops = Loops(Vec::new());
            let mut links = Vec::new();
            for (lun, image) in &images {
                let disk = if nvme {
                    format!("data/by-lun/{lun}")
                } else {
                    format!("scsi1/lun{lun}")
                };
                links.push((disk.clone(), loops.attach(image, None)?));
                for p in super::gpt::table(image)? {
                    links.push((
                        format!("{disk}-part{}", p.number),
                        loops.attach(image, Some((p.offset, p.size)))?,
                    ));
                }
            }
            Ok((loops, links))
        })
        .await??;
    // Both agents write the script with mode 0500 (cmds.go `writeTempScript`, files.go
    // `SaveScriptFile`) and the streams to ./stdout and ./stderr with 0600 (exec.go).
    let script_in_vm = format!("{}/script.sh", job.dir);
    {
        use std::io::Write;
        let mut f = private_file(&host_dir.join("script.sh"), 0o500)?;
        f.write_all(job.script.as_bytes())?;
    }
    let setup = host_dir.join(".namespace.sh");
    std::fs::write(&setup, namespace_setup(&links))?;
    let stdout = private_file(&host_dir.join("stdout"), 0o600)?;
    let stderr = private_file(&host_dir.join("stderr"), 0o600)?;
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh"])
        .arg(&setup)
        .arg(&job.vm_root)
        .arg(&job.dir)
        .args(["env", "-i"])
        .arg(format!("PATH={AGENT_PATH}"))
        .arg(format!("LANG={AGENT_LANG}"));
    match &job.launch {
        Launch::Action => {
            cmd.args(["/bin/sh", "-c", &script_in_vm]);
        }
        Launch::Managed { env, args } => {
            cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
            cmd.args(["/bin/bash", "-c", &format!("{script_in_vm}{args}")]);
        }
    }
    cmd.current_dir(&job.vm_root)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting the script with unshare")?;
    // Dropped before `loops`: the script's whole process group dies before its devices go.
    let group = child.id().map(|pid| ProcessGroup(pid as i32));
    let waited = match job.timeout {
        Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
        None => Some(child.wait().await),
    };
    let exit = match waited {
        Some(status) => Some(status?.code().unwrap_or(-1)),
        None => None,
    };
    drop(group);
    let _ = child.wait().await;
    drop(loops);
    let _ = std::fs::remove_file(&setup);
    Ok(Outcome {
        exit,
        stdout: tail(&host_dir.join("stdout"))?,
        stderr: tail(&host_dir.join("stderr"))?,
    })
}

/// The last 4 KiB of a stream, as the agents keep (files/logtail.go `TailFile`).
fn tail(path: &Path) -> anyhow::Result<String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let start = bytes.len().saturating_sub(TAIL);
    Ok(String::from_utf8_lossy(&bytes[start..]).into_owned())
}

/// The RunCommandResult of a finished RunShellScript: RunCommandLinux's status message is
/// "Enable succeeded: " (status.go `statusMsg`) followed by
/// "\n[stdout]\n%s\n[stderr]\n%s" (cmds.go `enable`), reported as succeeded whatever the
/// script's exit status ("extension should not fail if script throws error"); Azure/azure-cli
/// #9923 shows one: "Enable succeeded: \n[stdout]\n\n\n[stderr]\n".
pub fn action_result(message: &str) -> Value {
    serde_json::json!({
        "value": [{
            "code": "ProvisioningState/succeeded",
            "level": "Info",
            "displayStatus": "Provisioning succeeded",
            "message": format!("Enable succeeded: {message}"),
        }]
    })
}

pub fn streams(out: &Outcome) -> String {
    format!("\n[stdout]\n{}\n[stderr]\n{}", out.stdout, out.stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn parameters_are_prepended_unquoted() {
        let p = vec![
            ("arg1".into(), "hello".into()),
            ("arg2".into(), "world".into()),
        ];
        assert_eq!(
            action_script(&lines(&["echo $1 $arg2"]), &p),
            "export arg1=hello arg2=world\nset -- hello world\necho $1 $arg2"
        );
    }

    #[test]
    fn a_shebang_entry_keeps_line_one_and_a_shebang_script_in_one_entry_loses_them() {
        let p = vec![("arg1".into(), "x".into())];
        assert_eq!(
            action_script(&lines(&["#!/bin/bash", "echo $1"]), &p),
            "#!/bin/bash\nexport arg1=x\nset -- x\necho $1"
        );
        assert_eq!(
            action_script(&lines(&["#!/bin/bash\r\necho $1"]), &p),
            "#!/bin/bash\necho $1\nexport arg1=x\nset -- x"
        );
        assert_eq!(action_script(&lines(&["\u{feff}true"]), &[]), "true");
    }

    #[test]
    fn managed_parameters_split_into_environment_and_arguments() {
        let l = Launch::managed(&[
            ("LUN".into(), "0".into()),
            (String::new(), "a b".into()),
            ("EMPTY".into(), String::new()),
            (String::new(), "c".into()),
        ]);
        match l {
            Launch::Managed { env, args } => {
                assert_eq!(env, vec![("LUN".to_string(), "0".to_string())]);
                assert_eq!(args, " a b c");
            }
            Launch::Action => unreachable!(),
        }
    }

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
        let sh = namespace_setup(&[
            ("scsi1/lun0".into(), "/dev/loop3".into()),
            ("scsi1/lun0-part1".into(), "/dev/loop4".into()),
        ]);
        assert!(sh.contains("ln -s '/dev/loop4' '/dev/disk/azure/scsi1/lun0-part1'"));
        assert!(sh.contains("mount --bind \"$vm/var/log\" /var/log"));
    }
}
