//! `rescue plan` on the real binary: resolved arguments, "(known after step X)", conditions,
//! confirmations; text and JSON; nothing is created.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{json, Value};

fn rescue(state_dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("rescue").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("RESCUE_STATE_DIR", state_dir);
    cmd
}

/// Runs `cmd`, which must exit 0 (else its stderr is shown); its stdout.
fn succeeded(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `rescue run WORKFLOW -o json`, which must succeed: its events, one JSON value per line.
fn run_events(state_dir: &Path, workflow: &str) -> Vec<Value> {
    String::from_utf8(succeeded(
        rescue(state_dir).args(["run", workflow, "--output", "json"]),
    ))
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str::<Value>(l).unwrap())
    .collect()
}

/// The run's `run_finished` event.
fn finished(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["event"] == "run_finished")
        .expect("a run_finished event")
}

fn plan_json(state_dir: &Path, args: &[&str]) -> Value {
    serde_json::from_slice(&succeeded(
        rescue(state_dir)
            .args(["plan", "--output", "json"])
            .args(args),
    ))
    .unwrap()
}

#[test]
fn text_plan_of_the_demo() {
    let state = tempfile::tempdir().unwrap();
    let out = succeeded(rescue(state.path()).args([
        "plan",
        "workflows/demo.yaml",
        "--input",
        "patient=vm2",
    ]));
    insta::assert_snapshot!(String::from_utf8(out).unwrap());
}

#[test]
fn json_plan_marks_unknown_values_conditions_and_confirmations() {
    let state = tempfile::tempdir().unwrap();
    let plan = plan_json(
        state.path(),
        &[
            "workflows/demo.yaml",
            "--input",
            "patient=vm2",
            "--input",
            "wait=3",
        ],
    );
    assert_eq!(plan["format_version"], 2);
    assert_eq!(plan["workflow"]["name"], "demo");
    assert_eq!(plan["workflow"]["sha256"].as_str().unwrap().len(), 64);
    let steps = plan["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["greet", "notes", "fsck", "check", "sign_off"]);
    assert_eq!(
        steps[0]["args"]["message"],
        json!({"value": "rescuing vm2 (run RUN_ID)"})
    );
    assert_eq!(
        steps[0]["effect"]["summary"],
        "echo rescuing vm2 (run RUN_ID)"
    );
    assert_eq!(steps[1]["args"]["content"], json!({"known_after": "greet"}));
    assert_eq!(
        steps[2]["args"]["duration"],
        json!({"value": 3}),
        "a lone expression keeps its type"
    );
    assert_eq!(steps[2]["max_attempts"], 2);
    assert_eq!(steps[2]["timeout"], "1m");
    assert_eq!(steps[4]["if"]["decision"], "at_run_time");
    assert_eq!(steps[4]["if"]["known_after"], "check");
    assert_eq!(steps[4]["confirm"], "Sign off the rescue of this patient?");
    assert_eq!(plan["mutating_steps"], 2);
    assert_eq!(
        plan["totals"],
        json!({"add": 0, "change": 0, "destroy": 0, "actions": 2}),
        "a core step that writes a file is an action"
    );
}

#[test]
fn conditions_on_inputs_are_decided_in_the_plan() {
    let state = tempfile::tempdir().unwrap();
    let wf = "tests/it/engine/fixtures/valid/conditions.yaml";
    let plan = plan_json(state.path(), &[wf, "--input", "loud=false"]);
    assert_eq!(plan["steps"][1]["if"]["decision"], "skipped");
    assert!(
        plan["steps"][1].get("effect").is_none(),
        "a skipped step has no effect"
    );
    assert_eq!(plan["steps"][2]["if"]["decision"], "runs");
    let plan = plan_json(state.path(), &[wf, "--input", "loud=true"]);
    assert_eq!(plan["steps"][1]["if"]["decision"], "runs");
    assert_eq!(plan["steps"][1]["effect"]["summary"], "echo HELLO");

    let out = rescue(state.path())
        .args(["plan", wf, "--input", "loud=false", "-v"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("skipped (if ${{ inputs.loud }}: false now)"),
        "{text}"
    );
    assert!(text.contains("if not inputs.loud: true now"), "{text}");
}

#[test]
fn plan_and_dry_run_change_nothing() {
    let state = tempfile::tempdir().unwrap();
    let notes = state.path().join("notes.txt");
    let notes_arg = format!("notes={}", notes.display());
    let args = [
        "workflows/demo.yaml",
        "--input",
        "patient=vm2",
        "--input",
        &notes_arg,
    ];
    let plan = rescue(state.path())
        .arg("plan")
        .args(args)
        .output()
        .unwrap();
    let dry_run = rescue(state.path())
        .args(["run", "--dry-run"])
        .args(args)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0));
    assert_eq!(
        dry_run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry_run.stderr)
    );
    assert_eq!(plan.stdout, dry_run.stdout, "run --dry-run is the plan");
    assert!(!notes.exists(), "the plan wrote the notes file");
    assert_eq!(
        std::fs::read_dir(state.path()).unwrap().count(),
        0,
        "the plan created something in the state dir"
    );
}

#[test]
fn expressions_with_dashed_ids_and_nested_values_plan_and_run() {
    let state = tempfile::tempdir().unwrap();
    let wf = "tests/it/engine/fixtures/valid/expressions.yaml";
    let plan = plan_json(state.path(), &[wf]);
    assert_eq!(
        plan["steps"][0]["args"]["message"],
        json!({"value": {"nested": [4, "n=2"]}}),
        "lone expressions keep their type, mixed ones interpolate"
    );
    assert_eq!(
        plan["steps"][1]["args"]["message"],
        json!({"known_after": "first-step"})
    );
    assert_eq!(plan["steps"][1]["if"]["decision"], "runs");

    let events = run_events(state.path(), wf);
    assert_eq!(
        finished(&events)["outputs"],
        json!({"five": 5, "status": "succeeded"})
    );
}

#[test]
fn the_repair_workflow_validates_and_plans_without_azure() {
    let state = tempfile::tempdir().unwrap();
    rescue(state.path())
        .args(["validate", "workflows/os-disk-swap.yaml"])
        .assert()
        .code(0)
        .stdout("workflows/os-disk-swap.yaml: valid (16 steps)\n");
    let out = rescue(state.path())
        .env_remove("AZURE_SUBSCRIPTION_ID")
        .args([
            "plan",
            "workflows/os-disk-swap.yaml",
            "--inputs",
            "examples/incident-inputs.yaml",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("cannot read current state, so the plan shows the arguments only"),
        "{stderr}"
    );
    assert!(stdout.contains("(known after step inspect)"), "{stdout}");
    assert!(
        stdout.contains("Plan: 2 to add, 5 to change, 0 to destroy, 3 actions."),
        "{stdout}"
    );
    assert!(stdout.contains("To run it: rescue run workflows/os-disk-swap.yaml --inputs examples/incident-inputs.yaml"), "{stdout}");
    assert_eq!(std::fs::read_dir(state.path()).unwrap().count(), 0);
}

#[test]
fn target_flags_are_checked_before_anything_runs() {
    let state = tempfile::tempdir().unwrap();
    let demo = ["plan", "workflows/demo.yaml", "--input", "patient=vm2"];
    let out = rescue(state.path())
        .args(demo)
        .arg("--emulator")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("To run it: rescue run workflows/demo.yaml --input patient=vm2 --emulator"));
    let out = rescue(state.path())
        .args(demo)
        .arg("--emulator=no/such/scenario.yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--emulator=no/such/scenario.yaml: no such scenario file"));
    let out = rescue(state.path())
        .args(demo)
        .args(["--emulator", "--emulator-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--emulator and --emulator-url conflict"
    );
    let out = rescue(state.path())
        .args(demo)
        .args([
            "--emulator-url",
            "https://127.0.0.1:1",
            "--emulator-ca",
            "no/such/ca.pem",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--emulator-ca must exist");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--emulator-ca no/such/ca.pem: no such file")
    );
}

#[test]
fn a_step_reads_what_its_needs_lead_to_and_branches_run() {
    let state = tempfile::tempdir().unwrap();
    let wf = "tests/it/engine/fixtures/valid/needs.yaml";
    let events = run_events(state.path(), wf);
    assert_eq!(finished(&events)["outputs"], json!({"sum": 13}));
}

#[test]
fn steps_that_nothing_orders_run_side_by_side_and_a_join_waits_for_both() {
    let state = tempfile::tempdir().unwrap();
    let wf = "tests/it/engine/fixtures/valid/branches.yaml";
    let plan = plan_json(state.path(), &[wf]);
    assert!(plan["steps"][0].get("needs").is_none(), "{plan}");
    assert_eq!(plan["steps"][1]["needs"], json!(["start"]));
    assert_eq!(plan["steps"][3]["needs"], json!(["wait-a", "wait-b"]));
    // The order of events, not a clock: both waits start before either ends, and the join
    // starts only after both.
    let events: Vec<(String, String)> = run_events(state.path(), wf)
        .iter()
        .filter_map(|e| {
            let step = e["step"].as_str()?.to_string();
            Some((e["event"].as_str()?.to_string(), step))
        })
        .filter(|(event, _)| event == "step_started" || event == "step_succeeded")
        .collect();
    let at = |event: &str, step: &str| {
        events
            .iter()
            .position(|(e, s)| e == event && s == step)
            .unwrap_or_else(|| panic!("no {event} of {step} in {events:?}"))
    };
    let first_end = at("step_succeeded", "wait-a").min(at("step_succeeded", "wait-b"));
    assert!(
        at("step_started", "wait-a") < first_end && at("step_started", "wait-b") < first_end,
        "the waits ran one after the other: {events:?}"
    );
    let last_end = at("step_succeeded", "wait-a").max(at("step_succeeded", "wait-b"));
    assert!(at("step_started", "join") > last_end, "{events:?}");
}
