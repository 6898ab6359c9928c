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
    /// Seconds (already scaled) from the end of the start operation until the agent reports
    /// Ready: the guest still has to boot, longer when it waits for a device.
    #[serde(default)]
    pub ready_after: f64,
}

enum Check {
    Clean,
    /// fsck found damage; its report.
    Damaged {
        fs: String,
        report: String,
    },
    /// No filesystem the kernel recognizes.
    Unmountable,
}

/// Azure seconds from a running VM to its agent's first Ready report on a clean boot
/// (inferred: the serial logs of Azure's Ubuntu images show the agent starting about 6-10 s
/// into the boot, and it reports on its next goal-state poll).
const BOOT_TO_AGENT: f64 = 20.0;
/// systemd's default device timeout (`DefaultTimeoutStartSec=90s`, systemd-system.conf(5)):
/// how long a boot waits for an fstab device that never appears.
const DEVICE_TIMEOUT: f64 = 90.0;

/// A block device the boot can see: a partition, the whole disk, or an LVM logical volume.
struct Dev {
    /// The kernel's name: sda, sda1, dm-0.
    kernel: String,
    /// Names fstab or the kernel command line may use for it besides /dev/KERNEL.
    aliases: Vec<String>,
    fstype: String,
    uuid: String,
    label: String,
    extents: Vec<(u64, u64)>,
}

impl Dev {
    fn matches(&self, spec: &str) -> bool {
        let spec = spec.trim();
        let by = |prefix: &str, value: &str| {
            spec.strip_prefix(prefix).is_some_and(|v| {
                !value.is_empty() && v.trim_matches('"').eq_ignore_ascii_case(value)
            })
        };
        by("UUID=", &self.uuid)
            || by("LABEL=", &self.label)
            || by("/dev/disk/by-uuid/", &self.uuid)
            || by("/dev/disk/by-label/", &self.label)
            || spec == format!("/dev/{}", self.kernel)
            || self.aliases.iter().any(|a| a == spec)
    }
}

/// Boots `vm` from the OS disk image (never written): finds the root filesystem as GRUB and
/// the initramfs would (the `root=` of the disk's grub.cfg, by UUID, LABEL, device or LVM
/// path; without a grub.cfg the filesystem holding /etc/fstab), checks it read-only, then
/// checks every filesystem its /etc/fstab mounts, as systemd's fsck and mount units would, and
/// writes the serial log from what it found.
pub fn boot(vm: &str, image: &Path, data_dir: &Path) -> anyhow::Result<BootOutcome> {
    let tmp = tempfile::Builder::new()
        .prefix("boot-")
        .tempdir_in(data_dir)?;
    let devs = devices(image)?;
    let mut log = Log::new(image, &devs);
    let mut copies = Copies {
        image,
        dir: tmp.path(),
        made: Vec::new(),
    };
    let grub = devs.iter().find_map(|d| {
        let f = copies.get(d).ok()?;
        ["/boot/grub/grub.cfg", "/grub/grub.cfg"]
            .iter()
            .find_map(|p| read_file(&f, &d.fstype, p))
    });
    let root_spec = grub.as_deref().and_then(kernel_root);
    let root = match &root_spec {
        Some(spec) => devs.iter().find(|d| d.matches(spec)),
        None => devs.iter().find(|d| {
            copies
                .get(d)
                .ok()
                .and_then(|f| read_file(&f, &d.fstype, "/etc/fstab"))
                .is_some()
        }),
    };
    let spec = root_spec
        .clone()
        .unwrap_or_else(|| "(no grub.cfg: the filesystem with /etc/fstab)".into());
    log.line(format!("Command line: BOOT_IMAGE=/boot/vmlinuz-5.15.0-1075-azure root={spec} ro console=tty1 console=ttyS0 earlyprintk=ttyS0"));
    let Some(root) = root else {
        log.no_root(&spec);
        return Ok(log.outcome(false, 0.0));
    };
    let root_copy = copies.get(root)?;
    let check_root = check(&root_copy, &root.fstype)?;
    if !matches!(check_root, Check::Clean) {
        log.damaged(root, &root_copy, &check_root, true);
        return Ok(log.outcome(false, 0.0));
    }
    log.mounted(root, "/");
    let fstab = read_file(&root_copy, &root.fstype, "/etc/fstab").unwrap_or_default();
    let mut waited = 0.0;
    for entry in fstab_entries(&fstab) {
        let Some(dev) = devs.iter().find(|d| d.matches(&entry.spec)) else {
            if entry.nofail {
                log.line(format!(
                    "systemd[1]: {}: device {} not found; nofail, skipped.",
                    entry.mount, entry.spec
                ));
                continue;
            }
            waited += DEVICE_TIMEOUT;
            log.missing(&entry);
            return Ok(log.outcome(false, waited));
        };
        let copy = copies.get(dev)?;
        let c = check(&copy, &dev.fstype)?;
        if !matches!(c, Check::Clean) {
            log.damaged(dev, &copy, &c, false);
            log.emergency(&entry.mount);
            return Ok(log.outcome(false, waited));
        }
        log.mounted(dev, &entry.mount);
    }
    let text = |p: &str| read_file(&root_copy, &root.fstype, p).unwrap_or_default();
    log.ready(vm, &text("/etc/hostname"), &text("/etc/os-release"));
    Ok(log.outcome(true, waited))
}

/// Each device's bytes as a file of its own, made once (sparse copies).
struct Copies<'a> {
    image: &'a Path,
    dir: &'a Path,
    made: Vec<(String, std::path::PathBuf)>,
}

impl Copies<'_> {
    fn get(&mut self, d: &Dev) -> anyhow::Result<std::path::PathBuf> {
        if let Some((_, p)) = self.made.iter().find(|(k, _)| *k == d.kernel) {
            return Ok(p.clone());
        }
        let path = self.dir.join(format!("{}.img", d.kernel));
        let to = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let from = std::fs::File::open(self.image)?;
        let mut at = 0;
        for (offset, len) in &d.extents {
            super::images::copy_range(&from, *offset, *len, &to, at)?;
            at += len;
        }
        to.set_len(at)?;
        self.made.push((d.kernel.clone(), path.clone()));
        Ok(path)
    }
}

/// A device before probing: kernel name, aliases, extents.
type Found = (String, Vec<String>, Vec<(u64, u64)>);

/// The partitions (or the whole disk) and the LVM logical volumes on them, probed by blkid.
fn devices(image: &Path) -> anyhow::Result<Vec<Dev>> {
    let len = std::fs::metadata(image)?.len();
    let parts = super::gpt::table(image)?;
    let mut raw: Vec<Found> = if parts.is_empty() {
        vec![("sda".into(), Vec::new(), vec![(0, len)])]
    } else {
        parts
            .iter()
            .map(|p| {
                (
                    format!("sda{}", p.number),
                    Vec::new(),
                    vec![(p.offset, p.size)],
                )
            })
            .collect()
    };
    let mut lvs = Vec::new();
    for (_, _, ext) in &raw {
        for lv in super::lvm::volumes(image, ext[0].0)? {
            if !lv.incomplete {
                lvs.push(lv);
            }
        }
    }
    for (i, lv) in lvs.into_iter().enumerate() {
        let aliases = vec![
            format!("/dev/mapper/{}", lv.mapper_name()),
            format!("/dev/{}/{}", lv.vg, lv.name),
        ];
        raw.push((format!("dm-{i}"), aliases, lv.extents));
    }
    Ok(raw
        .into_iter()
        .map(|(kernel, aliases, extents)| {
            let probe = blkid(image, extents[0]);
            let get = |k: &str| probe.get(k).cloned().unwrap_or_default();
            Dev {
                kernel,
                aliases,
                fstype: get("TYPE"),
                uuid: get("UUID"),
                label: get("LABEL"),
                extents,
            }
        })
        .collect())
}

fn blkid(image: &Path, (offset, size): (u64, u64)) -> std::collections::BTreeMap<String, String> {
    Command::new("blkid")
        .args([
            "-p",
            "-o",
            "export",
            "-O",
            &offset.to_string(),
            "-S",
            &size.to_string(),
        ])
        .arg(image)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The `root=` of the first `linux` line GRUB would boot.
fn kernel_root(cfg: &str) -> Option<String> {
    cfg.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("linux"))
        .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("root=")))
        .map(str::to_string)
}

struct FstabEntry {
    spec: String,
    mount: String,
    nofail: bool,
}

/// What systemd-fstab-generator mounts at boot: local filesystems, not swap, not `noauto`.
fn fstab_entries(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (spec, mount, ty, opts) = (
                *f.first()?,
                *f.get(1)?,
                *f.get(2)?,
                f.get(3).copied().unwrap_or(""),
            );
            let opts: Vec<&str> = opts.split(',').collect();
            let local = !matches!(
                ty,
                "swap" | "proc" | "sysfs" | "tmpfs" | "devpts" | "nfs" | "nfs4" | "cifs"
            ) && !opts.contains(&"_netdev");
            (mount != "/" && local && !opts.contains(&"noauto")).then(|| FstabEntry {
                spec: spec.to_string(),
                mount: mount.to_string(),
                nofail: opts.contains(&"nofail"),
            })
        })
        .collect()
}

/// A file of a filesystem image, read without mounting it: ext* through debugfs, XFS through
/// xfs_db (the file's extents from `bmap`, its size from `core.size`).
fn read_file(image: &Path, fstype: &str, path: &str) -> Option<String> {
    let out = |cmd: &mut Command| {
        cmd.output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    match fstype {
        "ext2" | "ext3" | "ext4" => {
            let text = out(Command::new("debugfs")
                .arg("-R")
                .arg(format!("cat {path}"))
                .arg(image))?;
            (!text.is_empty()).then_some(text)
        }
        "xfs" => {
            let geometry = out(Command::new("xfs_db")
                .args(["-r", "-c", "sb 0", "-c", "p blocksize agblocks"])
                .arg(image))?;
            let num = |t: &str, k: &str| -> Option<u64> {
                t.lines().find_map(|l| {
                    l.strip_prefix(k)?
                        .trim()
                        .strip_prefix('=')?
                        .trim()
                        .parse()
                        .ok()
                })
            };
            let (bs, agblocks) = (num(&geometry, "blocksize")?, num(&geometry, "agblocks")?);
            let info = out(Command::new("xfs_db")
                .args([
                    "-r",
                    "-c",
                    &format!("path {path}"),
                    "-c",
                    "p core.size",
                    "-c",
                    "bmap",
                ])
                .arg(image))?;
            let size = num(&info, "core.size")?;
            let f = std::fs::File::open(image).ok()?;
            let mut data = Vec::new();
            for l in info.lines().filter(|l| l.starts_with("data offset")) {
                // "data offset 0 startblock 12345 (0/12345) count 1 flag 0"
                let w: Vec<&str> = l.split_whitespace().collect();
                let (ag, agbno) = w.get(5)?.trim_matches(['(', ')']).split_once('/')?;
                let count: u64 = w.get(7)?.parse().ok()?;
                let at = (ag.parse::<u64>().ok()? * agblocks + agbno.parse::<u64>().ok()?) * bs;
                let mut buf = vec![0u8; (count * bs) as usize];
                f.read_exact_at(&mut buf, at).ok()?;
                data.extend_from_slice(&buf);
            }
            data.truncate(size as usize);
            Some(String::from_utf8_lossy(&data).into_owned())
        }
        _ => None,
    }
}

fn check(part: &Path, fstype: &str) -> anyhow::Result<Check> {
    let mut cmd = match fstype {
        "ext2" | "ext3" | "ext4" => {
            // The kernel replays a journal at mount; the check works on a copy, so it may too.
            let _ = Command::new("e2fsck")
                .args(["-E", "journal_only", "-y"])
                .arg(part)
                .output();
            let mut c = Command::new("e2fsck");
            c.arg("-fn").arg(part);
            c
        }
        "xfs" => {
            if let Some(report) = xfs_mount_fails(part) {
                return Ok(Check::Damaged {
                    fs: "xfs".into(),
                    report,
                });
            }
            let mut c = Command::new("xfs_repair");
            c.args(["-n", "-f"]).arg(part);
            c
        }
        "vfat" => {
            let mut c = Command::new("fsck.vfat");
            c.arg("-n").arg(part);
            c
        }
        _ => return Ok(Check::Unmountable),
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
    Ok(Check::Damaged {
        fs: fstype.to_string(),
        report,
    })
}

/// Mounting is how the kernel replays an XFS log, and xfs_repair may not see a log that cannot
/// be replayed; so, where this process may mount (root), the copy is mounted in a private mount
/// namespace. The failure's text, when it does not mount.
fn xfs_mount_fails(part: &Path) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount -o loop,nouuid \"$1\" \"$2\" && umount \"$2\"",
            "sh",
        ])
        .arg(part)
        .arg(dir.path())
        .output()
        .ok()?;
    (!out.status.success()).then(|| {
        format!(
            "XFS: log mount failed ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
        )
    })
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

/// The serial console as the boot wrote it, with kernel timestamps that advance per line.
struct Log {
    lines: Vec<String>,
    clock: f64,
}

impl Log {
    fn new(image: &Path, devs: &[Dev]) -> Log {
        let mut log = Log {
            lines: Vec::new(),
            clock: 0.0,
        };
        log.line("Linux version 5.15.0-1075-azure (buildd@lcy02-amd64-045) (gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0, GNU ld (GNU Binutils for Ubuntu) 2.38) #84-Ubuntu SMP Mon Oct 21 16:04:37 UTC 2024 (Ubuntu 5.15.0-1075.84-azure 5.15.167)");
        log.line("Hypervisor detected: Microsoft Hyper-V");
        let sectors = std::fs::metadata(image).map(|m| m.len() / 512).unwrap_or(0);
        log.clock = 1.34;
        log.line(format!(
            "sd 0:0:0:0: [sda] {sectors} 512-byte logical blocks: ({:.1} GB/{} MiB)",
            sectors as f64 * 512.0 / 1e9,
            sectors / 2048
        ));
        let mut parts: Vec<&str> = devs
            .iter()
            .filter(|d| d.kernel.starts_with("sda") && d.kernel != "sda")
            .map(|d| d.kernel.as_str())
            .collect();
        parts.sort_by_key(|k| k[3..].parse::<u32>().unwrap_or(0));
        log.line(format!(" sda: {}", parts.join(" ")));
        for d in devs.iter().filter(|d| d.kernel.starts_with("dm-")) {
            log.line(format!(
                "lvm[312]: 1 logical volume(s) in volume group now active: {} is {}",
                d.aliases[0], d.kernel
            ));
        }
        log
    }

    fn line(&mut self, text: impl AsRef<str>) {
        self.clock += 0.0137;
        self.lines
            .push(format!("[{:>12.6}] {}", self.clock, text.as_ref()));
    }

    fn plain(&mut self, text: &str) {
        self.lines.push(text.to_string());
    }

    fn mounted(&mut self, d: &Dev, at: &str) {
        let dev = &d.kernel;
        match d.fstype.as_str() {
            "xfs" => {
                self.line(format!("XFS ({dev}): Mounting V5 Filesystem {}", d.uuid));
                self.line(format!("XFS ({dev}): Ending clean mount"));
            }
            "vfat" => self.line(format!("systemd-fsck[402]: /dev/{dev}: clean")),
            fs => self.line(format!("EXT4-fs ({dev}): mounted filesystem {} with ordered data mode. Opts: (null). Quota mode: none.", fs.to_ascii_uppercase().replace("EXT", "ext"))),
        }
        let unit = if at == "/" {
            "Root filesystem".to_string()
        } else {
            at.to_string()
        };
        self.line(format!("systemd[1]: Mounted {unit}."));
    }

    fn no_root(&mut self, spec: &str) {
        self.clock = 31.9;
        self.plain("Gave up waiting for root file system device.  Common problems:");
        self.plain(" - Boot args (cat /proc/cmdline)");
        self.plain("   - Check rootdelay= (did the system wait long enough?)");
        self.plain(" - Missing modules (cat /proc/modules; ls /dev)");
        self.plain(&format!(
            "ALERT!  {spec} does not exist.  Dropping to a shell!"
        ));
        self.plain("");
        self.plain("BusyBox v1.30.1 (Ubuntu 1:1.30.1-7ubuntu3) built-in shell (ash)");
        self.plain("(initramfs) ");
    }

    fn missing(&mut self, e: &FstabEntry) {
        self.clock += DEVICE_TIMEOUT;
        self.line(format!(
            "systemd[1]: {}: Job {}.device/start timed out.",
            e.spec, e.spec
        ));
        self.line(format!(
            "systemd[1]: Timed out waiting for device {}.",
            e.spec
        ));
        self.line(format!("systemd[1]: Dependency failed for {}.", e.mount));
        self.emergency(&e.mount);
    }

    fn emergency(&mut self, mount: &str) {
        self.line(format!(
            "systemd[1]: Dependency failed for Local File Systems (needed by {mount})."
        ));
        self.line("systemd[1]: Started Emergency Shell.");
        self.line("systemd[1]: Reached target Emergency Mode.");
        self.plain("You are in emergency mode. After logging in, type \"journalctl -xb\" to view");
        self.plain(
            "system logs, \"systemctl reboot\" to reboot, \"systemctl default\" or \"exit\"",
        );
        self.plain("to boot into default mode.");
        self.plain("Give root password for maintenance");
        self.plain("(or press Control-D to continue): ");
    }

    /// A filesystem fsck finds damaged: the root one stops the initramfs' fsck, others
    /// systemd-fsck; damage under /var/lib/docker is what the incident's node showed.
    fn damaged(&mut self, d: &Dev, copy: &Path, check: &Check, root: bool) {
        let dev = d.kernel.clone();
        let (fs, report) = match check {
            Check::Damaged { fs, report } => (fs.as_str(), report.as_str()),
            _ => ("", ""),
        };
        let who = if root { "" } else { "systemd-fsck[411]: " };
        if fs == "xfs" && report.starts_with("XFS: log mount failed") {
            self.line(format!("XFS ({dev}): Mounting V5 Filesystem {}", d.uuid));
            self.line(format!("XFS ({dev}): failed to locate log tail"));
            self.line(format!("XFS ({dev}): log mount/recovery failed: error -74"));
            self.line(format!("XFS ({dev}): log mount failed"));
            if root {
                self.no_root(&format!("/dev/{dev}"));
            }
            return;
        }
        self.line(format!(
            "{who}/dev/{dev} contains a file system with errors, check forced."
        ));
        for l in report.lines().filter(|l| !l.trim().is_empty()).take(12) {
            self.line(format!("{who}{dev}: {}", l.trim()));
        }
        self.line(format!(
            "{who}{dev}: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY."
        ));
        self.line(format!("{who}\t(i.e., without -a or -p options)"));
        if !root {
            return;
        }
        match damaged_path(copy, report) {
            Some((inode, path)) if fs.starts_with("ext") && path.contains("/docker/") => {
                self.mounted(d, "/");
                self.line(format!("EXT4-fs error (device {dev}): htree_dirblock_to_tree:1082: inode #{inode}: comm dockerd: bad entry in directory: rec_len is smaller than minimal - offset=0, inode=0, rec_len=0, size=4096 fake=0"));
                self.line(format!("dockerd[1187]: failed to start daemon: error initializing graphdriver: lstat {path}: structure needs cleaning"));
                self.line("systemd[1]: docker.service: Main process exited, code=exited, status=1/FAILURE");
                self.line("systemd[1]: docker.service: Failed with result 'exit-code'.");
                self.line("systemd[1]: docker.service: Start request repeated too quickly.");
                self.line("systemd[1]: docker.service: Failed with result 'start-limit-hit'.");
                self.line("systemd[1]: Failed to start Docker Application Container Engine.");
                self.line("kubelet[1544]: E1126 18:41:07.004 run.go:74] \"command failed\" err=\"failed to run Kubelet: failed to get docker version: Cannot connect to the Docker daemon at unix:///var/run/docker.sock\"");
                self.line("WALinuxAgent[1022]: WARNING Daemon VM agent is not ready: provisioning did not complete");
            }
            _ => {
                if fs == "xfs" {
                    self.line(format!("XFS ({dev}): Metadata corruption detected at xfs_dir3_block_read_verify+0x10a/0x120 [xfs]"));
                }
                self.line("fsck exited with status code 4");
                self.line(
                    "The root filesystem on /dev/".to_string() + &dev + " requires a manual fsck",
                );
                self.plain("");
                self.plain("BusyBox v1.30.1 (Ubuntu 1:1.30.1-7ubuntu3) built-in shell (ash)");
                self.plain("(initramfs) ");
            }
        }
    }

    fn ready(&mut self, vm: &str, hostname: &str, os_release: &str) {
        let pretty = os_release
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        let host = Some(hostname.trim())
            .filter(|h| !h.is_empty())
            .unwrap_or(vm);
        self.clock = self.clock.max(4.2);
        self.line("systemd[1]: Reached target Local File Systems.");
        self.line("WALinuxAgent[1022]: INFO Daemon Azure Linux Agent is running: ProvisioningState: Ready");
        self.plain("");
        self.plain(&format!("{pretty} {host} ttyS0"));
        self.plain("");
        self.plain(&format!("{host} login: "));
    }

    fn outcome(self, ready: bool, waited: f64) -> BootOutcome {
        BootOutcome {
            ready,
            serial_log: self.lines.join("\n") + "\n",
            ready_after: BOOT_TO_AGENT + waited,
        }
    }
}
