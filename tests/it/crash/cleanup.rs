//! `rescue cleanup` after a successful repair: lists the snapshot and the old disk, deletes the
//! snapshot on --yes, the old disk only when named, never the disk the VM now boots from.

use rescue::azure::ids::Kind;

use super::support::*;

#[test]
fn cleanup_lists_what_the_run_left_and_deletes_the_old_disk_only_by_name() {
    let Some(f) = Fixture::new(None) else { return };
    let run = f.repaired();
    let (emulator, state, original) = (&f.emulator, &f.state, f.original.as_str());
    let copy = os_disk(&emulator.vm(VM));
    let snapshot = tagged(&emulator.list(Kind::Snapshot), &run)[0]["name"]
        .as_str()
        .unwrap()
        .to_string();

    let listed = emulator.rescue(state, &["cleanup", &run], &[]);
    assert_eq!(
        listed.status.code(),
        Some(2),
        "no terminal, no --yes: list only\n{}",
        text(&listed)
    );
    let list = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        list.contains(&snapshot)
            && list.contains(original)
            && list.contains(&format!("--delete-old-disk {original}")),
        "{list}"
    );
    assert!(
        list.contains(&copy) && list.contains("in use"),
        "the VM's new OS disk is listed as in use: {list}"
    );

    let wrong = emulator.rescue(
        state,
        &["cleanup", &run, "--yes", "--delete-old-disk", &copy],
        &[],
    );
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "only the swapped-out disk may be named\n{}",
        text(&wrong)
    );

    let out = emulator.rescue(state, &["cleanup", &run, "--yes"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        tagged(&emulator.list(Kind::Snapshot), &run).is_empty(),
        "the snapshot was not deleted"
    );
    let disks = emulator.list(Kind::Disk);
    assert!(
        disks.iter().any(|d| d["name"] == original),
        "the old disk was deleted without being named"
    );
    assert!(disks.iter().any(|d| d["name"] == copy.as_str()));

    let out = emulator.rescue(
        state,
        &["cleanup", &run, "--yes", "--delete-old-disk", original],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let disks = emulator.list(Kind::Disk);
    assert!(
        !disks.iter().any(|d| d["name"] == original),
        "the named old disk is still there"
    );
    assert_eq!(os_disk(&emulator.vm(VM)), copy);
}
