//! Under a pseudo-terminal, as an engineer sees it (expectrl): the go-ahead answered yes and
//! no, the swap prompt naming the VM, its OS disk, the repaired copy and the fsck verdict
//! (printed once), Ctrl-C at each prompt and mid-step (exit 130 at once, resumable), the
//! progress lines and the end summary.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::process::unix::WaitStatus;
use expectrl::{ControlCode, Expect, Session};

use super::support::*;

type Pty = expectrl::session::OsSession;

fn spawn(dir: &Path, args: &[&str]) -> Pty {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .env("RESCUE_STATE_DIR", dir.join("state"))
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("RESCUE_EMULATOR_URL")
        .env_remove("AZURE_SUBSCRIPTION_ID");
    let mut p = Session::spawn(cmd).expect("spawn under a pty");
    p.set_expect_timeout(Some(Duration::from_secs(60)));
    p
}

/// The exit code, waited for at most `within`.
fn exit_within(p: &Pty, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        match p.get_process().status() {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => panic!("killed by {sig:?}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "still running after {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn repair_args() -> Vec<&'static str> {
    let mut args = vec!["run", "os-disk-swap"];
    args.extend_from_slice(INCIDENT);
    args.push("--emulator");
    args
}

/// The repair started on the emulator and waiting at its go-ahead, with what it showed before
/// the question; None (skipped) without root, which loop devices need.
fn at_go_ahead() -> Option<(tempfile::TempDir, Pty, String)> {
    if !is_root() {
        eprintln!("skipped: needs root for loop devices");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut p = spawn(dir.path(), &repair_args());
    let shown = expect(&mut p, "Enter a value:");
    Some((dir, p, shown))
}

fn expect(p: &mut Pty, needle: &str) -> String {
    let found = p
        .expect(needle)
        .unwrap_or_else(|e| panic!("never saw {needle:?}: {e}"));
    String::from_utf8_lossy(found.before()).into_owned()
}

#[test]
fn go_ahead_answered_no_changes_nothing_and_keeps_no_run() {
    let Some((dir, mut p, before)) = at_go_ahead() else {
        return;
    };
    assert!(
        before.contains("Target: the emulator inside rescue"),
        "{before}"
    );
    assert!(before.contains("Plan: 2 to add, 5 to change"), "{before}");
    p.send_line("no").unwrap();
    expect(&mut p, "declined at the go-ahead");
    assert_eq!(exit_within(&p, Duration::from_secs(10)), 4);
    assert!(runs(&dir.path().join("state")).is_empty());
}

#[test]
fn ctrl_c_at_the_go_ahead_exits_130_at_once() {
    let Some((dir, mut p, _)) = at_go_ahead() else {
        return;
    };
    p.send(ControlCode::EndOfText).unwrap();
    assert_eq!(exit_within(&p, Duration::from_secs(5)), 130);
    assert!(runs(&dir.path().join("state")).is_empty());
}

#[test]
fn yes_then_the_swap_prompt_names_vm_and_disks_once_then_the_summary() {
    let Some((_dir, mut p, _)) = at_go_ahead() else {
        return;
    };
    p.send_line("yes").unwrap();
    // The progress display: finished steps stay on screen with their marks.
    let before = expect(&mut p, "[y/N]");
    assert!(before.contains("✔ deallocate"), "{before}");
    assert!(before.contains("verdict: repaired"), "{before}");
    for needle in [
        "VM aks-nodepool1-31415926-vm2: OS disk",
        ORIGINAL_DISK,
        "-fixed-",
        "step fsck verdict: repaired",
        "swap: Swap the OS disk",
    ] {
        assert!(
            before.contains(needle),
            "the swap prompt lacks {needle:?}:\n{before}"
        );
    }
    assert_eq!(
        before.matches("Swap the OS disk").count(),
        1,
        "the question is printed once:\n{before}"
    );
    p.send_line("y").unwrap();
    let end = expect(&mut p, "next: rescue cleanup");
    assert!(end.contains("✔ healthy"), "{end}");
    assert!(
        end.contains("downtime:") && end.contains("repaired copy"),
        "{end}"
    );
    assert_eq!(exit_within(&p, Duration::from_secs(20)), 0);
}

#[test]
fn ctrl_c_at_the_swap_prompt_exits_130_at_once_and_resumes() {
    let Some((dir, mut p, _)) = at_go_ahead() else {
        return;
    };
    p.send_line("yes").unwrap();
    expect(&mut p, "[y/N]");
    p.send(ControlCode::EndOfText).unwrap();
    assert_eq!(exit_within(&p, Duration::from_secs(5)), 130);
    // The run is saved where it stopped; resume asks again (or --yes answers).
    let out = run(dir.path(), &["resume", "last", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn ctrl_c_mid_step_exits_130_at_once_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let wf = dir.path().join("nap.yaml");
    std::fs::write(
        &wf,
        "name: nap\nsteps:\n  - id: nap\n    uses: core.sleep\n    with: { duration: 30s }\n  - id: after\n    uses: core.echo\n    with: { message: done }\n",
    )
    .unwrap();
    let mut p = spawn(dir.path(), &["run", wf.to_str().unwrap()]);
    expect(&mut p, "nap");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    p.send(ControlCode::EndOfText).unwrap();
    assert_eq!(exit_within(&p, Duration::from_secs(5)), 130);
    assert!(sent.elapsed() < Duration::from_secs(5));
    let journal = runs(&dir.path().join("state"))
        .pop()
        .unwrap()
        .join("journal.json");
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(journal).unwrap()).unwrap();
    assert_eq!(journal["status"], "interrupted");
}
