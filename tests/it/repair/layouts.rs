//! The disk-layout corpus of issue 10: the incident's node repaired (or, rightly, not) on each
//! layout a broken OS disk really has, each case driving the real binary against the emulator
//! on a generated or tool-built image with the real e2fsck/xfs_repair. One checking function
//! holds what every case must show: the verdict, the exit code, swapped or not, the original
//! disk's bytes, a read-only fsck of every filesystem in the swapped disk's fstab, agent Ready.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::images;
use super::support::*;

/// What a case expects of a repair run.
struct Expect {
    verdict: &'static str,
    exit: i32,
    swapped: bool,
    /// Words the run's output must contain (the message naming the partition and why).
    says: &'static [&'static str],
}

const SWAPPED: Expect = Expect {
    verdict: "repaired",
    exit: 0,
    swapped: true,
    says: &[],
};

/// Repairs the incident's node whose OS disk content is `content` (None: the incident's own
/// GPT layout) with `--yes` and `extra`, and checks `expect` against the run and the emulator;
/// the rehearsal, for a case's own further checks (None: skipped without root).
fn case(content: Option<&str>, extra: &[&str], expect: Expect) -> Option<Rehearsal> {
    if !images::is_root() {
        eprintln!("skipped: needs root for loop devices");
        return None;
    }
    let r = Rehearsal::start(content);
    let original = os_disk(&r.vm(VM));
    let before = sha256(&r.image("disks", &original));
    if expect.verdict == "repaired" {
        // The same check that must pass after the swap finds this damage before it.
        let checks = fstab_fsck(&r.image("disks", &original));
        assert!(
            checks.iter().any(|c| c.exit.is_some_and(|e| e != 0)),
            "the broken disk passes the fstab check: {checks:?}"
        );
    }
    let mut args = vec!["--yes"];
    args.extend_from_slice(extra);
    let out = r.repair(&args);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(expect.exit), "{all}");
    assert_eq!(verdict(&all).as_deref(), Some(expect.verdict), "{all}");
    // A passing step shows only its verdict; the partitions' notes are in its full log.
    let log = run_dirs(&r)
        .first()
        .and_then(|d| std::fs::read_to_string(d.join("fsck.log")).ok())
        .unwrap_or_default();
    for word in expect.says {
        assert!(
            all.contains(word) || log.contains(word),
            "no `{word}` in the output nor fsck.log:\n{all}\n--- fsck.log\n{log}"
        );
    }
    assert_eq!(
        sha256(&r.image("disks", &original)),
        before,
        "the original disk was modified"
    );
    let vm = r.vm(VM);
    let now = os_disk(&vm);
    if !expect.swapped {
        assert_eq!(
            now, original,
            "swapped despite verdict {}:\n{all}",
            expect.verdict
        );
        return Some(r);
    }
    assert_ne!(now, original, "not swapped:\n{all}");
    assert_eq!(
        vm.pointer("/properties/instanceView/vmAgent/statuses/0/displayStatus")
            .and_then(Value::as_str),
        Some("Ready"),
        "the VM's agent after the swap: {vm}"
    );
    let checks = fstab_fsck(&r.image("disks", &now));
    assert!(
        checks.iter().any(|c| c.mount == "/"),
        "the swapped disk's fstab names no root: {checks:?}"
    );
    for c in &checks {
        assert_eq!(
            c.exit,
            Some(0),
            "{} ({}) on the swapped disk: read-only fsck exit (None: not found); all: {checks:?}",
            c.spec,
            c.mount
        );
    }
    Some(r)
}

/// The rehearsal's run directories.
fn run_dirs(r: &Rehearsal) -> Vec<PathBuf> {
    std::fs::read_dir(r.dir.path().join("state/runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn os_disk(vm: &Value) -> String {
    vm.pointer("/properties/storageProfile/osDisk/managedDisk/id")
        .and_then(Value::as_str)
        .and_then(|id| id.rsplit('/').next())
        .expect("the VM has an OS disk")
        .to_string()
}

/// The fsck verdict the run shows: on the step's progress line when it passed, in the step's
/// error when it stopped the run.
fn verdict(all: &str) -> Option<String> {
    let word = |rest: &str| {
        rest.split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .map(str::to_string)
    };
    all.split("(verdict: ")
        .nth(1)
        .or_else(|| all.split(": verdict ").nth(1))
        .and_then(word)
}

/// One filesystem the swapped disk's /etc/fstab names and its read-only check's exit code
/// (None: no filesystem on the disk matches the entry).
#[derive(Debug)]
struct FstabCheck {
    spec: String,
    mount: String,
    exit: Option<i32>,
}

/// Reads /etc/fstab from the disk's root filesystem and runs `e2fsck -fn` / `xfs_repair -n` /
/// `fsck.vfat -n` on every filesystem it names, each on a read-only loop device of its
/// partition (or of the whole disk when there is no table). Entries the boot may lack
/// (`nofail`, `auto`: Azure's resource disk) are left out.
fn fstab_fsck(image: &Path) -> Vec<FstabCheck> {
    let out = Command::new("bash")
        .arg("-cu")
        .arg(format!(
            r#"img={i}
            loops=(); mnt=$(mktemp -d)
            trap 'umount $mnt 2>/dev/null; rmdir $mnt; for l in "${{loops[@]}}"; do losetup -d $l; done' EXIT
            parts="$(sfdisk -d "$img" 2>/dev/null | sed -n 's/.*start= *\([0-9]*\), size= *\([0-9]*\).*/\1 \2/p')"
            [ -n "$parts" ] || parts="0 $(( $(stat -c %s "$img") / 512 ))"
            declare -A uuid label type
            while read start size; do
              L=$(losetup -r -f --show -o $((start*512)) --sizelimit $((size*512)) "$img"); loops+=($L)
              type[$L]=$(blkid -p -o value -s TYPE $L || true)
              uuid[$L]=$(blkid -p -o value -s UUID $L || true)
              label[$L]=$(blkid -p -o value -s LABEL $L || true)
            done <<<"$parts"
            fstab=""
            for L in "${{loops[@]}}"; do
              case "${{type[$L]}}" in
                ext4) fstab="$(debugfs -R 'cat /etc/fstab' $L 2>/dev/null)" ;;
                xfs) mount -o ro,norecovery,nouuid $L $mnt 2>/dev/null && {{ fstab="$(cat $mnt/etc/fstab 2>/dev/null)"; umount $mnt; }} ;;
              esac
              grep -qE '^[^#]+[[:space:]]/[[:space:]]' <<<"$fstab" && break
            done
            while read spec mountpoint fs opts rest; do
              case "$spec" in ''|'#'*) continue ;; esac
              case "$fs,$opts" in auto,*|*nofail*) continue ;; esac
              rc=none
              for L in "${{loops[@]}}"; do
                if [ "$spec" = "UUID=${{uuid[$L]}}" ] || [ "$spec" = "LABEL=${{label[$L]}}" ]; then
                  case "${{type[$L]}}" in
                    ext4) e2fsck -fn $L >/dev/null 2>&1 ;;
                    xfs) xfs_repair -n $L >/dev/null 2>&1 ;;
                    vfat) fsck.vfat -n $L >/dev/null 2>&1 ;;
                    *) false ;;
                  esac
                  rc=$?
                fi
              done
              echo "$spec $mountpoint $rc"
            done <<<"$fstab""#,
            i = image.display()
        ))
        .output()
        .expect("bash");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            FstabCheck {
                spec: f[0].to_string(),
                mount: f[1].to_string(),
                exit: f[2].parse().ok(),
            }
        })
        .collect()
}

fn generated(layout: &str, corrupt: &str, fs: &str) -> String {
    let layout = if layout.is_empty() {
        String::new()
    } else {
        format!(", layout: {layout}")
    };
    let corrupt = if corrupt.is_empty() {
        String::new()
    } else {
        format!(", corrupt: {corrupt}")
    };
    format!("{{ generate: {{ fs: {fs}{layout}{corrupt} }} }}")
}

/// A root filesystem built by `make` with real tools, on Azure's GPT layout, as the scenario's
/// `image:` (and the directory holding it, kept until the emulator has copied it); None
/// without root, which loop devices need.
fn built(make: fn(&Path) -> PathBuf) -> Option<(tempfile::TempDir, String)> {
    if !images::is_root() {
        eprintln!("skipped: needs root for loop devices");
        return None;
    }
    let build = tempfile::tempdir().unwrap();
    let disk = images::gpt_disk(build.path(), &make(build.path()));
    let content = format!("{{ image: {} }}", disk.display());
    Some((build, content))
}

#[test]
fn azure_ubuntu_gpt_layout_is_repaired_and_swapped() {
    case(None, &[], SWAPPED);
}

#[test]
fn mbr_layout_is_repaired_and_swapped() {
    case(
        Some(&generated("mbr", "overlay2-init", "ext4")),
        &[],
        SWAPPED,
    );
}

#[test]
fn bare_filesystem_is_repaired_and_swapped() {
    case(
        Some(&generated("bare", "overlay2-init", "ext4")),
        &[],
        SWAPPED,
    );
}

#[test]
fn damage_on_a_separate_var_is_repaired_and_swapped() {
    let Some(r) = case(
        Some(&generated("var", "overlay2-init", "ext4")),
        &[],
        SWAPPED,
    ) else {
        return;
    };
    let checks = fstab_fsck(&r.image("disks", &os_disk(&r.vm(VM))));
    assert!(
        checks.iter().any(|c| c.mount == "/var"),
        "the fstab check did not reach /var: {checks:?}"
    );
}

/// This machine has no device-mapper: the root LV cannot be reached, which must stop the run
/// with the partition named and why.
const LVM_UNCHECKED: Expect = Expect {
    verdict: "incomplete",
    exit: 1,
    swapped: false,
    says: &["partition 1", "LVM volume group rootvg", "device-mapper"],
};

#[test]
fn lvm_root_is_incomplete_and_not_swapped() {
    case(
        Some(&generated("lvm", "overlay2-init", "ext4")),
        &[],
        LVM_UNCHECKED,
    );
}

#[test]
fn lvm_root_next_to_a_clean_boot_is_incomplete_never_clean() {
    case(
        Some(&generated("lvm-boot", "overlay2-init", "ext4")),
        &[],
        LVM_UNCHECKED,
    );
}

#[test]
fn xfs_directory_needing_two_passes_is_repaired_and_swapped() {
    let Some((_build, content)) = built(images::xfs_needing_two_passes) else {
        return;
    };
    case(
        Some(&content),
        &[],
        Expect {
            says: &["errors corrected in 2 passes"],
            ..SWAPPED
        },
    );
}

#[test]
fn xfs_unreplayable_log_names_xfs_repair_l_and_never_runs_it() {
    let Some(r) = case(
        Some(&generated("", "unreplayable-log", "xfs")),
        &[],
        Expect {
            verdict: "failed",
            exit: 1,
            swapped: false,
            says: &[
                "`xfs_repair -L /dev/disk/azure/scsi1/lun0-part1`",
                "discard the log",
            ],
        },
    ) else {
        return;
    };
    let logs = rescue_vm_logs(&r);
    assert!(!logs.is_empty(), "no fsck log on the rescue VM");
    for (path, log) in &logs {
        assert!(
            !log.lines().any(|l| l.starts_with("$ xfs_repair -L")),
            "{} shows xfs_repair -L was run:\n{log}",
            path.display()
        );
    }
}

#[test]
fn dirty_journal_only_is_replayed_not_repaired() {
    // The boot replays the journal as the kernel's mount does, so the VM comes up Ready and
    // looks healthy: the repair is forced.
    case(
        Some(&generated("", "dirty-log", "ext4")),
        &["--force-healthy"],
        Expect {
            verdict: "replayed",
            ..SWAPPED
        },
    );
}

#[test]
fn clean_disk_is_refused_as_healthy_then_forced_and_clean() {
    if !images::is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    // A healthy VM is not deallocated on --yes alone: the pre-flight asks for force_healthy.
    let r = Rehearsal::start(Some(&generated("", "", "ext4")));
    let original = os_disk(&r.vm(VM));
    let out = r.repair(&["--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("force_healthy=true"), "{}", text(&out));
    let writes: Vec<Value> = r
        .requests()
        .into_iter()
        .filter(|q| q["method"] != "GET")
        .filter(|q| q["operation"] != "virtualMachines.retrieveBootDiagnosticsData")
        .collect();
    assert!(writes.is_empty(), "refused, yet changed: {writes:?}");
    assert_eq!(os_disk(&r.vm(VM)), original);
    drop(r);

    // Forced, the run goes through: fsck finds nothing, and the clean copy is swapped in.
    case(
        Some(&generated("", "", "ext4")),
        &["--force-healthy"],
        Expect {
            verdict: "clean",
            ..SWAPPED
        },
    );
}

/// The fsck logs the script kept on the rescue VM (its /var/log/rescue, which the emulator
/// keeps under the VM's own directory in its data dir).
fn rescue_vm_logs(r: &Rehearsal) -> Vec<(PathBuf, String)> {
    let data = r.dir.path().join("emulator");
    let state: Value =
        serde_json::from_slice(&std::fs::read(data.join("state.json")).unwrap()).unwrap();
    let vm = state["vms"]
        .as_object()
        .unwrap()
        .values()
        .find(|v| v["name"] == RESCUE_VM)
        .expect("the rescue VM in the emulator state");
    let dir = data
        .join("vms")
        .join(vm["vm_id"].as_str().unwrap())
        .join("var/log/rescue");
    std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| (e.path(), std::fs::read_to_string(e.path()).unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_long_fsck_log_is_kept_whole_in_the_run_directory() {
    let Some((_build, content)) = built(images::ext4_with_many_orphans) else {
        return;
    };
    let Some(r) = case(Some(&content), &[], SWAPPED) else {
        return;
    };
    let logs = rescue_vm_logs(&r);
    assert_eq!(logs.len(), 1, "one fsck run, one log: {logs:?}");
    let on_vm = &logs[0].1;
    let runs = run_dirs(&r);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let kept = std::fs::read_to_string(runs[0].join("fsck.log")).expect("fsck.log in the run dir");
    assert!(
        on_vm.len() > 4096,
        "the log on the rescue VM is only {} bytes",
        on_vm.len()
    );
    assert!(
        kept == *on_vm,
        "fsck.log ({} bytes) differs from the rescue VM's log ({} bytes)",
        kept.len(),
        on_vm.len()
    );
    eprintln!("fsck.log: {} bytes, as on the rescue VM", kept.len());
    let report: Value =
        serde_json::from_slice(&std::fs::read(runs[0].join("report.json")).unwrap()).unwrap();
    assert!(
        report.to_string().contains("fsck.log"),
        "the report does not point at fsck.log: {report}"
    );
}
