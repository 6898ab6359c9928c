//! Booting a VM: its OS disk's root filesystem is checked read-only, as the initramfs's fsck
//! would; the outcome decides whether the VM agent comes up Ready, and writes the serial log a
//! user reads through boot diagnostics.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootOutcome {
    pub ready: bool,
    pub serial_log: String,
}

enum Check {
    Clean,
    /// fsck found damage; its report.
    Damaged {
        fs: &'static str,
        report: String,
    },
    /// No filesystem the kernel recognizes.
    Unmountable,
}

/// Boots `vm` from the OS disk image (never written).
pub fn boot(vm: &str, image: &Path, data_dir: &Path) -> anyhow::Result<BootOutcome> {
    let parts = super::gpt::partitions(image)?;
    let (offset, size, partno) = match super::gpt::root_partition(&parts) {
        Some(p) => (p.offset, p.size, p.number),
        None => (0, std::fs::metadata(image)?.len(), 0),
    };
    let tmp = tempfile::Builder::new()
        .prefix("boot-")
        .tempdir_in(data_dir)?;
    let part = tmp.path().join("root.img");
    super::images::extract(image, offset, size, &part)?;
    let check = check(&part)?;
    let dev = if partno == 0 {
        "sda".to_string()
    } else {
        format!("sda{partno}")
    };
    Ok(BootOutcome {
        ready: matches!(check, Check::Clean),
        serial_log: serial_log(vm, &dev, &part, &check),
    })
}

fn check(part: &Path) -> anyhow::Result<Check> {
    let f = std::fs::File::open(part)?;
    let mut ext_magic = [0u8; 2];
    let mut xfs_magic = [0u8; 4];
    f.read_exact_at(&mut ext_magic, 1024 + 56)?;
    f.read_exact_at(&mut xfs_magic, 0)?;
    let (fs, mut cmd) = if u16::from_le_bytes(ext_magic) == 0xEF53 {
        let mut c = Command::new("e2fsck");
        c.arg("-fn").arg(part);
        ("ext4", c)
    } else if &xfs_magic == b"XFSB" {
        let mut c = Command::new("xfs_repair");
        c.args(["-n", "-f"]).arg(part);
        ("xfs", c)
    } else {
        return Ok(Check::Unmountable);
    };
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} for the boot check"))?;
    if out.status.success() {
        return Ok(Check::Clean);
    }
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(Check::Damaged { fs, report })
}

/// Where the damage is, as a path: the first inode e2fsck names, resolved with debugfs.
fn damaged_path(part: &Path, report: &str) -> Option<(u64, String)> {
    let inode = report
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect::<Vec<_>>()
        .windows(2)
        .find_map(|w| {
            (w[0].eq_ignore_ascii_case("inode"))
                .then(|| w[1].parse::<u64>().ok())
                .flatten()
        })?;
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("ncheck {inode}"))
        .arg(part)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))?;
    Some((
        inode,
        if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        },
    ))
}

fn serial_log(vm: &str, dev: &str, part: &Path, check: &Check) -> String {
    let mut log = vec![
        "[    0.000000] Linux version 5.15.0-1075-azure (buildd@lcy02-amd64-045) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #84-Ubuntu SMP Mon Oct 21 16:04:37 UTC 2024 (Ubuntu 5.15.0-1075.84-azure 5.15.167)".to_string(),
        "[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-5.15.0-1075-azure root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0 earlyprintk=ttyS0".to_string(),
        "[    0.000000] DMI: Microsoft Corporation Virtual Machine/Virtual Machine, BIOS Hyper-V UEFI Release v4.1 08/23/2024".to_string(),
        "[    0.000000] Hypervisor detected: Microsoft Hyper-V".to_string(),
        format!("[    1.342118] sd 0:0:0:0: [{}] 268435456 512-byte logical blocks: (137 GB/128 GiB)", &dev[..3]),
        format!("[    1.351207]  {}: {}14 {}15 {}1", &dev[..3], &dev[..3], &dev[..3], &dev[..3]),
    ];
    match check {
        Check::Clean => {
            log.push(format!("[    1.912044] EXT4-fs ({dev}): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none."));
            log.push(
                "[    4.201551] systemd[1]: Started Docker Application Container Engine.".into(),
            );
            log.push(
                "[    5.884310] systemd[1]: Started kubelet: The Kubernetes Node Agent.".into(),
            );
            log.push("[    6.120377] WALinuxAgent[1022]: INFO Daemon Azure Linux Agent is running: ProvisioningState: Ready".into());
            log.push(String::new());
            log.push("Ubuntu 22.04.5 LTS".to_string() + &format!(" {vm} ttyS0"));
            log.push(String::new());
            log.push(format!("{vm} login: "));
        }
        Check::Damaged { fs, report } => {
            log.push(format!(
                "[    1.901833] /dev/{dev} contains a file system with errors, check forced."
            ));
            for line in report.lines().filter(|l| !l.trim().is_empty()).take(12) {
                log.push(format!(
                    "[    1.9{:05}] {dev}: {}",
                    3000 + log.len() * 731,
                    line.trim()
                ));
            }
            log.push(format!(
                "[    1.989113] {dev}: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY."
            ));
            log.push("[    1.989120] \t(i.e., without -a or -p options)".into());
            if *fs == "ext4" {
                let (inode, path) = damaged_path(part, report)
                    .unwrap_or_else(|| (2, "/var/lib/docker/overlay2".into()));
                log.push(format!("[    2.013422] EXT4-fs ({dev}): mounted filesystem with ordered data mode. Opts: (null). Quota mode: none."));
                log.push(format!("[    5.334901] EXT4-fs error (device {dev}): htree_dirblock_to_tree:1082: inode #{inode}: comm dockerd: bad entry in directory: rec_len is smaller than minimal - offset=0, inode=0, rec_len=0, size=4096 fake=0"));
                log.push(format!("[    5.341877] dockerd[1187]: failed to start daemon: error initializing graphdriver: lstat {path}: structure needs cleaning"));
            } else {
                log.push(format!("[    2.013422] XFS ({dev}): Metadata corruption detected at xfs_dir3_block_read_verify+0x10a/0x120 [xfs], xfs_dir3_block block 0x2a8f0"));
                log.push("[    5.341877] dockerd[1187]: failed to start daemon: error initializing graphdriver: lstat /var/lib/docker/overlay2: structure needs cleaning".into());
            }
            log.push("[    5.352010] systemd[1]: docker.service: Main process exited, code=exited, status=1/FAILURE".into());
            log.push(
                "[    5.352233] systemd[1]: docker.service: Failed with result 'exit-code'.".into(),
            );
            log.push(
                "[   11.602117] systemd[1]: docker.service: Start request repeated too quickly."
                    .into(),
            );
            log.push(
                "[   11.602158] systemd[1]: docker.service: Failed with result 'start-limit-hit'."
                    .into(),
            );
            log.push(
                "[   11.602511] systemd[1]: Failed to start Docker Application Container Engine."
                    .into(),
            );
            log.push("[   12.004420] kubelet[1544]: E1126 18:41:07.004 run.go:74] \"command failed\" err=\"failed to run Kubelet: failed to get docker version: Cannot connect to the Docker daemon at unix:///var/run/docker.sock\"".into());
            log.push("[   62.118003] WALinuxAgent[1022]: WARNING Daemon VM agent is not ready: provisioning did not complete".into());
        }
        Check::Unmountable => {
            log.push(format!(
                "[    1.904211] EXT4-fs ({dev}): VFS: Can't find ext4 filesystem"
            ));
            log.push(format!(
                "[    1.904455] XFS ({dev}): Invalid superblock magic number"
            ));
            log.push("Gave up waiting for root file system device.  Common problems:".into());
            log.push(" - Boot args (cat /proc/cmdline)".into());
            log.push(" - Check rootdelay= (did the system wait long enough?)".into());
            log.push("ALERT!  LABEL=cloudimg-rootfs does not exist.  Dropping to a shell!".into());
            log.push(String::new());
            log.push("BusyBox v1.30.1 (Ubuntu 1:1.30.1-7ubuntu3) built-in shell (ash)".into());
            log.push("(initramfs) ".into());
        }
    }
    log.join("\n") + "\n"
}
