//! `rescue run` / `status` / `runs` on core actions: outputs flow, failures, retries, confirm.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use super::run_support::*;

const FLOW: &str = r#"
name: flow
inputs:
  who:
    type: string
steps:
  - id: greet
    uses: core.echo
    with:
      message: "hello ${{ inputs.who }}"
  - id: shout
    name: Shout the greeting
    uses: core.echo
    with:
      message: "${{ steps.greet.outputs.message }}!"
  - id: never
    uses: core.echo
    if: "${{ inputs.who == 'nobody' }}"
    with:
      message: unreachable
  - id: save
    uses: core.write_file
    with:
      path: "{dir}/greeting.txt"
      content: "${{ steps.shout.outputs.message }}"
outputs:
  greeting: "${{ steps.shout.outputs.message }}"
  file: "${{ steps.save.outputs.path }}"
"#;

#[test]
fn outputs_flow_between_steps_and_status_shows_them() {
    let s = Scratch::new();
    let wf = s.workflow("flow.yaml", FLOW);
    let out = s.run(&[
        "run",
        wf.to_str().unwrap(),
        "--input",
        "who=world",
        "--output",
        "json",
    ]);
    assert_exit(&out, 0);
    assert_eq!(s.read("greeting.txt"), "hello world!");

    // Every stdout line is one JSON event; the last one carries the workflow outputs.
    let events: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert!(kinds.contains(&"step_skipped"), "{kinds:?}");
    // The engine's last event; the CLI adds the run's summary (its report) after it.
    assert_eq!(events.last().unwrap()["event"], "run_summary");
    let last = events
        .iter()
        .rev()
        .find(|e| e["event"] == "run_finished")
        .unwrap();
    assert_eq!(last["outputs"]["greeting"], "hello world!");

    let id = s.run_id();
    let status = s.run(&["status", &id]);
    assert_exit(&status, 0);
    let text = stdout(&status);
    assert!(
        text.contains("succeeded") && text.contains("message = hello world!"),
        "{text}"
    );
    assert!(
        text.contains("greeting = hello world!") && text.contains("never"),
        "{text}"
    );

    let journal: Value =
        serde_json::from_str(&stdout(&s.run(&["status", &id, "--output", "json"]))).unwrap();
    assert_eq!(journal["status"], "succeeded");
    assert_eq!(step_field(&journal, "never", "status"), "skipped");
    assert_eq!(journal["steps"][1]["args"]["message"], "hello world!");
    // The file the step creates was recorded as a resource before it existed.
    assert_eq!(
        journal["resources"][0]["id"],
        s.path("greeting.txt").display().to_string()
    );

    let runs: Value = serde_json::from_str(&stdout(&s.run(&["runs", "--output", "json"]))).unwrap();
    assert_eq!(runs["runs"][0]["id"], id);
    assert_eq!(runs["runs"][0]["status"], "succeeded");
    assert!(stdout(&s.run(&["runs"])).contains(&id));
}

#[test]
fn state_files_are_owner_only() {
    let s = Scratch::new();
    let wf = s.workflow("flow.yaml", FLOW);
    assert_exit(
        &s.run(&["run", wf.to_str().unwrap(), "--input", "who=me"]),
        0,
    );
    let dir = s.run_dir(&s.run_id());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("journal.json")), 0o600);
    assert_eq!(mode(&dir.join("lock")), 0o600);
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn failed_step_exits_1_and_resume_after_fixing_succeeds() {
    let s = Scratch::new();
    let wf = s.workflow(
        "fail.yaml",
        r#"
name: fail-once
steps:
  - id: first
    uses: core.write_file
    with: { path: "{dir}/count", content: "first\n", append: true }
  - id: flaky
    uses: core.fail
    with: { times: 1, message: "the disk is busy" }
  - id: last
    uses: core.echo
    with: { message: "after ${{ steps.flaky.outputs.failures }} failure" }
"#,
    );
    let out = s.run(&["run", wf.to_str().unwrap(), "--output", "json"]);
    assert_exit(&out, 1);
    let id = s.run_id();
    let err = stderr(&out);
    assert!(err.contains(&format!("rescue resume {id}")), "{err}");
    let last: Value = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rev()
        .find(|e| e["event"] == "run_finished")
        .unwrap();
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["status"], "failed");
    assert_eq!(last["resume_command"], format!("rescue resume {id}"));
    let failed = stdout(&out)
        .lines()
        .find(|l| l.contains("\"step_failed\""))
        .unwrap()
        .to_string();
    assert!(failed.contains("the disk is busy"), "{failed}");
    let status = stdout(&s.run(&["status", &id]));
    assert!(
        status.contains("failed") && status.contains("the disk is busy"),
        "{status}"
    );

    let out = s.run(&["resume", &id]);
    assert_exit(&out, 0);
    let journal = s.journal(&id);
    assert_eq!(journal["status"], "succeeded");
    assert_eq!(journal["steps"][2]["outputs"]["message"], "after 1 failure");
    assert_eq!(step_field(&journal, "flaky", "attempts"), "2");
    // The step that had succeeded was not run again.
    assert_eq!(lines_of(&s.path("count")), ["first"]);
}

#[test]
fn retryable_errors_are_retried_with_backoff() {
    let s = Scratch::new();
    let wf = s.workflow(
        "retry.yaml",
        r#"
name: retry
steps:
  - id: flaky
    uses: core.fail
    with: { times: 2 }
    retry: { max_attempts: 3, backoff: 10ms }
"#,
    );
    let out = s.run(&["run", wf.to_str().unwrap(), "--output", "json"]);
    assert_exit(&out, 0);
    let retries = stdout(&out)
        .lines()
        .filter(|l| l.contains("\"step_retrying\""))
        .count();
    assert_eq!(retries, 2);
    assert_eq!(
        step_field(&s.journal(&s.run_id()), "flaky", "attempts"),
        "3"
    );
}

#[test]
fn confirm_step_without_a_terminal_is_refused_before_the_run_starts() {
    let s = Scratch::new();
    let wf = s.workflow(
        "confirm.yaml",
        r#"
name: confirm
steps:
  - id: before
    uses: core.echo
    with: { message: ready }
  - id: swap
    uses: core.write_file
    confirm: "Swap the OS disk?"
    with: { path: "{dir}/swapped", content: "yes" }
"#,
    );
    // A run never stops midway for want of an answer: it does not start.
    let out = s.run(&["run", wf.to_str().unwrap()]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(stderr(&out).contains("step swap"), "{}", stderr(&out));
    assert!(
        !s.path("swapped").exists(),
        "the confirm step ran without confirmation"
    );
    assert!(
        !s.state().join("runs").exists()
            || std::fs::read_dir(s.state().join("runs")).unwrap().count() == 0,
        "a refused run is not recorded"
    );

    assert_exit(&s.run(&["run", wf.to_str().unwrap(), "--yes"]), 0);
    assert_eq!(s.read("swapped"), "yes");
}

#[test]
fn old_journal_format_still_loads() {
    let s = Scratch::new();
    let id = "20250301-101500-0a1b";
    let dir = s.run_dir(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("journal.json"),
        include_str!("fixtures/journal-v1.json"),
    )
    .unwrap();

    let out = s.run(&["status", id]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("greeting must be polite") && text.contains("hello.yaml"),
        "{text}"
    );
    let journal: Value =
        serde_json::from_str(&stdout(&s.run(&["status", id, "--output", "json"]))).unwrap();
    assert_eq!(journal["format_version"], 3);
    assert_eq!(step_field(&journal, "check", "attempts"), "2");
    assert!(stdout(&s.run(&["runs"])).contains(id));
}

#[test]
fn a_step_over_its_timeout_fails_with_exit_1() {
    let s = Scratch::new();
    let wf = s.workflow(
        "slow.yaml",
        "name: slow\nsteps:\n  - id: nap\n    uses: core.sleep\n    timeout: 200ms\n    with: { duration: 30s }\n",
    );
    let out = s.run(&["run", wf.to_str().unwrap()]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("timed out after 200ms"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        step_field(&s.journal(&s.run_id()), "nap", "status"),
        "failed"
    );
}
