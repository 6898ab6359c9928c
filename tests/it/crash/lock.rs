//! The VM lock: two runs on one VM from two state dirs (two engineers, two journals) started
//! together, exactly one proceeds and the other exits 3 naming the holder; `--force-unlock`
//! takes the VM over from a holder that died.

use std::process::{Command, Stdio};

use rescue::azure::ids::Kind;

use super::support::*;

#[test]
fn two_runs_on_one_vm_exactly_one_proceeds() {
    let Some(f) = Fixture::new(None) else { return };
    let (emulator, dir) = (&f.emulator, &f.dir);
    let workflow = repo("workflows/os-disk-swap.yaml");
    let inputs = repo("examples/incident-inputs.yaml");
    let spawn = |state: &str| {
        emulator
            .login
            .apply(&mut Command::new(bin()))
            .args([
                "run",
                workflow.to_str().unwrap(),
                "--inputs",
                inputs.to_str().unwrap(),
                "--yes",
            ])
            .env("RESCUE_STATE_DIR", dir.path().join(state))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("alice"), spawn("bob"));
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let codes: Vec<_> = outs.iter().map(|o| o.status.code()).collect();
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(3)),
        "exactly one proceeds: {codes:?}\n{}\n{}",
        text(&outs[0]),
        text(&outs[1])
    );
    let (winner, loser, winner_state) = if codes[0] == Some(0) {
        (&outs[0], &outs[1], "alice")
    } else {
        (&outs[1], &outs[0], "bob")
    };
    let _ = winner;
    let winner_run = only_run(&dir.path().join(winner_state));
    let refusal = String::from_utf8_lossy(&loser.stderr);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    assert!(
        refusal.contains(&winner_run) && refusal.contains(&host) && refusal.contains("since 20"),
        "the refusal names the holder's run, host and start time:\n{refusal}"
    );
    assert_eq!(
        emulator.list(Kind::Snapshot).len(),
        1,
        "the refused run must not have touched anything"
    );
}

#[test]
fn force_unlock_takes_over_from_a_dead_holder() {
    let Some(f) = Fixture::new(None) else { return };
    let (emulator, dir) = (&f.emulator, &f.dir);
    // The holder dies right after claiming the VM (its machine is gone: never resumed).
    let dead = killed_after_mutation(emulator, &dir.path().join("dead"), mutation::LOCK);
    let state = dir.path().join("second");
    let out = emulator.repair(&state, &[], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("--force-unlock {dead}")),
        "{}",
        text(&out)
    );
    let run = only_run(&state);
    let out = emulator.rescue(
        &state,
        &["resume", &run, "--yes", "--force-unlock", &dead],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let vm = emulator.vm(VM);
    assert_eq!(agent(&vm), "Ready");
    assert_eq!(vm.pointer("/tags/rescue-run"), None, "released at the end");
}
