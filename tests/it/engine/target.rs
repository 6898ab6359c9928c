//! The run's target is journaled: a killed `--emulator` run resumes against the same emulator
//! state (restarted from `<run_dir>/emulator`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;

use super::run_support::*;

#[test]
fn killed_emulator_run_resumes_against_the_same_emulator_state() {
    let s = Scratch::new();
    let wf = s.workflow(
        "az.yaml",
        r#"
name: inspect-then-nap
steps:
  - id: vm
    uses: azure.vm.inspect
    with:
      resource_group: MC_prod-rg_prod-aks_westeurope
      vm: aks-nodepool1-31415926-vm2
  - id: nap
    uses: core.sleep
    with: { duration: 1s }
  - id: show
    uses: core.echo
    with: { message: "${{ steps.vm.outputs.power_state }}" }
outputs:
  disk: "${{ steps.vm.outputs.os_disk_name }}"
"#,
    );
    let child = s.spawn(&["run", "--emulator", wf.to_str().unwrap()]);
    let id = s.wait_for_step("nap", "running");
    signal(&child, libc::SIGKILL);
    assert_eq!(wait_output(child).status.signal(), Some(libc::SIGKILL));

    let journal = s.journal(&id);
    assert_eq!(journal["target"]["kind"], "in_process_emulator");
    let emulator_dir = s.run_dir(&id).join("emulator");
    assert_eq!(
        journal["target"]["data_dir"],
        emulator_dir.display().to_string()
    );
    assert_eq!(
        std::fs::metadata(&emulator_dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    let out = s.run(&["resume", &id]);
    assert_exit(&out, 0);
    let journal = s.journal(&id);
    assert_eq!(journal["steps"][2]["outputs"]["message"], "running");
    assert!(journal["outputs"]["disk"]
        .as_str()
        .unwrap()
        .starts_with("aks-nodepool1-31415926-vm2_OsDisk"));
}

const RG: &str = "MC_prod-rg_prod-aks_westeurope";

/// Every file under `dir`, read whole (to look for secrets).
fn all_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(all_bytes(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((path, bytes));
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The built-in repair, by name from outside the repository, on `--emulator`, interrupted by a
/// Ctrl-C right after a poll of an operation in flight (the documented test hook raising SIGINT
/// instead of SIGKILL). The restarted emulator binds the port again, so the checkpointed
/// operation URL answers, and resume finishes the repair. Target flags resume cannot honour are
/// refused first, changing nothing.
#[test]
fn an_in_process_emulator_run_interrupted_mid_operation_resumes_to_the_end() {
    let s = Scratch::new();
    let inputs = [
        "--input",
        &format!("resource_group={RG}"),
        "--input",
        "vm=aks-nodepool1-31415926-vm2",
        "--input",
        "rescue_vm=rescue-vm",
        "--input",
        "allow_aks_node=true",
    ];
    let out = s
        .rescue()
        .current_dir(s.dir.path())
        .args(["run", "os-disk-swap", "--emulator", "--yes"])
        .args(inputs)
        .env("RESCUE_TEST_KILL_AFTER_POLL", "3")
        .env("RESCUE_TEST_SIGNAL", "INT")
        .output()
        .unwrap();
    assert_exit(&out, 130);
    let id = s.run_id();
    assert!(
        stderr(&out).contains(&format!("rescue resume {id}")),
        "{}",
        stderr(&out)
    );

    let journal = s.journal(&id);
    let port = journal["target"]["port"]
        .as_u64()
        .expect("the port is journaled");
    let running = journal["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["status"] == "running")
        .expect("a step was interrupted in flight");
    let checkpoints = running["checkpoints"].to_string();
    let host = format!("127.0.0.1:{port}");
    assert!(
        checkpoints.contains(&host),
        "no operation URL on {host}: {checkpoints}"
    );
    let operation = checkpoints
        .split("/operations/")
        .nth(1)
        .and_then(|rest| rest.split(['?', '"']).next())
        .expect("an operation id")
        .to_string();
    let log = s.run_dir(&id).join("emulator/requests.jsonl");
    let polls = || {
        lines_of(&log)
            .iter()
            .filter(|l| l.contains(&operation))
            .count()
    };
    let polled_before = polls();

    // Flags for another target are refused, and nothing changes.
    let before = std::fs::read(s.run_dir(&id).join("journal.json")).unwrap();
    let scenario = s.workflow("other.yaml", "resource_groups: []\n");
    for (args, says) in [
        (
            vec!["--subscription", "11111111-1111-1111-1111-111111111111"],
            "--subscription: run ",
        ),
        (
            vec!["--emulator-url", "http://127.0.0.1:9"],
            "--emulator-url: run ",
        ),
        (
            vec![&*Box::leak(
                format!("--emulator={}", scenario.display()).into_boxed_str(),
            )],
            "a scenario only seeds a new run",
        ),
    ] {
        let out = s
            .rescue()
            .args(["resume", &id, "--yes"])
            .args(&args)
            .output()
            .unwrap();
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(
        std::fs::read(s.run_dir(&id).join("journal.json")).unwrap(),
        before
    );

    // An ambient subscription is noted and left aside; a new time scale is honoured.
    let out = s
        .rescue()
        .current_dir("/")
        .args(["resume", &id, "--yes", "--time-scale", "0.04"])
        .env(
            "AZURE_SUBSCRIPTION_ID",
            "22222222-2222-2222-2222-222222222222",
        )
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("note: AZURE_SUBSCRIPTION_ID is set"),
        "{}",
        stderr(&out)
    );
    let journal = s.journal(&id);
    assert_eq!(journal["status"], "succeeded");
    assert_eq!(journal["outputs"]["fsck_verdict"], "repaired");
    assert_eq!(
        journal["target"]["port"].as_u64(),
        Some(port),
        "restarted on another port"
    );
    assert_eq!(journal["target"]["time_scale"], 0.04);
    assert!(
        polls() > polled_before,
        "the checkpointed operation was not read again"
    );
}

/// A run on a `rescue emulator serve` that was restarted (new port) resumes with the new
/// endpoint. The token is a secret: never in the run's files or `status -o json`, so resume
/// needs it given again.
#[test]
fn a_moved_served_emulator_is_followed_and_its_token_never_journaled() {
    use crate::crash::support::Served;
    let s = Scratch::new();
    let data = s.path("emulator");
    let served = Served::start(&data, None);
    let wf = s.workflow(
        "wf.yaml",
        &format!(
            r#"
name: inspect-gate-inspect
steps:
  - id: before
    uses: azure.vm.inspect
    with: {{ resource_group: {RG}, vm: rescue-vm }}
  - id: gate
    uses: core.fail
    with: {{ times: 1 }}
  - id: after
    uses: azure.vm.inspect
    with: {{ resource_group: {RG}, vm: rescue-vm }}
"#
        ),
    );
    let with = |cmd: &mut std::process::Command, served: &Served| {
        served.login.apply(cmd);
    };
    let mut cmd = s.rescue();
    cmd.args(["run", wf.to_str().unwrap()]);
    with(&mut cmd, &served);
    assert_exit(&cmd.output().unwrap(), 1);
    let id = s.run_id();
    let first = served.login.url.clone();
    let secret = served.login.secret.clone();
    served.stop();

    let served = Served::start(&data, None);
    assert_ne!(
        served.login.url, first,
        "the restart kept its port; the test shows nothing"
    );
    // Without the service principal's secret: refused before any ARM request, saying how to
    // sign in (a secret, so never journaled).
    let mut cmd = s.rescue();
    cmd.args(["resume", &id]);
    with(&mut cmd, &served);
    let out = cmd.env_remove("AZURE_CLIENT_SECRET").output().unwrap();
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("AZURE_CLIENT_SECRET is not set")
            && stderr(&out).contains("rescue emulator serve"),
        "{}",
        stderr(&out)
    );
    let mut cmd = s.rescue();
    cmd.args(["resume", &id, "--emulator"]);
    with(&mut cmd, &served);
    assert_exit(&cmd.output().unwrap(), 2);

    let mut cmd = s.rescue();
    cmd.args(["resume", &id]);
    with(&mut cmd, &served);
    assert_exit(&cmd.output().unwrap(), 0);
    let journal = s.journal(&id);
    assert_eq!(journal["status"], "succeeded");
    assert_eq!(
        journal["target"]["endpoint"]
            .as_str()
            .unwrap()
            .trim_end_matches('/'),
        served.login.url.trim_end_matches('/')
    );

    let status = s.run(&["status", &id, "-o", "json"]);
    assert_exit(&status, 0);
    assert!(
        !contains(&status.stdout, &secret),
        "status -o json shows the secret"
    );
    for (path, bytes) in all_bytes(&s.run_dir(&id)) {
        assert!(
            !contains(&bytes, &secret),
            "the secret is in {}",
            path.display()
        );
    }
}
