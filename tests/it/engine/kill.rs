//! SIGKILL at every step boundary, then resume: the same result, no step done twice.
//!
//! Uses the documented test hook RESCUE_TEST_KILL_AT=N (src/engine/recorder.rs): the process
//! SIGKILLs itself at its N-th crash point (every durable journal write, and every return from
//! an action before its result is recorded).

use std::os::unix::process::ExitStatusExt;

use serde_json::Value;

use super::run_support::*;

const WORKFLOW: &str = r#"
name: crash
inputs:
  tag:
    type: string
    default: x
steps:
  - id: a
    uses: core.write_file
    with: { path: "{dir}/count", content: "a\n", append: true }
  - id: b
    uses: core.echo
    with: { message: "b-${{ inputs.tag }}" }
  - id: c
    uses: core.fail
    with: { times: 1 }
    retry: { max_attempts: 2, backoff: 1ms }
  - id: d
    uses: core.write_file
    with: { path: "{dir}/file", content: "${{ steps.b.outputs.message }}" }
  - id: e
    uses: core.write_file
    with: { path: "{dir}/count", content: "e\n", append: true }
outputs:
  message: "${{ steps.b.outputs.message }}"
  failures: "${{ steps.c.outputs.failures }}"
"#;

fn outputs(s: &Scratch, id: &str) -> Value {
    s.journal(id)["outputs"].clone()
}

#[test]
fn killed_at_every_step_boundary_resumes_to_the_same_result() {
    let reference = Scratch::new();
    let wf = reference.workflow("wf.yaml", WORKFLOW);
    assert_exit(&reference.run(&["run", wf.to_str().unwrap()]), 0);
    let expected = outputs(&reference, &reference.run_id());
    assert_eq!(expected["message"], "b-x");

    let mut killed = 0;
    for point in 1.. {
        let s = Scratch::new();
        let wf = s.workflow("wf.yaml", WORKFLOW);
        let out = s
            .rescue()
            .args(["run", wf.to_str().unwrap()])
            .env("RESCUE_TEST_KILL_AT", point.to_string())
            .output()
            .unwrap();
        if out.status.success() {
            break; // past the last crash point
        }
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "point {point}: {}",
            stderr(&out)
        );
        killed += 1;
        let id = s.run_id();

        // The resume may itself be killed at the same point; a third process finishes.
        let again = s
            .rescue()
            .args(["resume", &id])
            .env("RESCUE_TEST_KILL_AT", point.to_string())
            .output()
            .unwrap();
        if !again.status.success() {
            assert_eq!(
                again.status.signal(),
                Some(libc::SIGKILL),
                "point {point}: {}",
                stderr(&again)
            );
            assert_exit(&s.run(&["resume", &id]), 0);
        }

        assert_eq!(outputs(&s, &id), expected, "point {point}");
        assert_eq!(
            lines_of(&s.path("count")),
            ["a", "e"],
            "point {point}: a step ran twice or not at all"
        );
        assert_eq!(s.read("file"), "b-x", "point {point}");
        let journal = s.journal(&id);
        assert!(
            journal["steps"]
                .as_array()
                .unwrap()
                .iter()
                .all(|st| st["status"] == "succeeded"),
            "point {point}"
        );
    }
    assert!(killed >= 15, "only {killed} crash points were exercised");
}

#[test]
fn killed_from_outside_mid_step_is_reconciled_on_resume() {
    let s = Scratch::new();
    let wf = s.workflow("nap.yaml", NAP);
    let child = s.spawn(&["run", wf.to_str().unwrap()]);
    let id = s.wait_for_step("nap", "running");
    signal(&child, libc::SIGKILL);
    let out = wait_output(child);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert_eq!(
        s.journal(&id)["status"],
        "running",
        "a killed run cannot have said goodbye"
    );

    let out = s.run(&["resume", &id, "--output", "json"]);
    assert_exit(&out, 0);
    let reconciled: Value = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "step_reconciled")
        .expect("the running step was reconciled");
    assert_eq!(reconciled["step"], "nap");
    assert_eq!(reconciled["adopted"], false);
    assert_eq!(lines_of(&s.path("count")), ["before", "after"]);
}
