//! `rescue resume`: a changed workflow blocks it, `--force` and `--from-step`, Ctrl-C.

use std::time::{Duration, Instant};

use super::run_support::*;

#[test]
fn changed_workflow_blocks_resume_unless_forced() {
    let s = Scratch::new();
    let wf = s.workflow("wf.yaml", TWO_STEPS);
    assert_exit(&s.run(&["run", wf.to_str().unwrap()]), 1);
    let id = s.run_id();

    s.workflow("wf.yaml", &TWO_STEPS.replace("try again", "try once more"));
    let out = s.run(&["resume", &id]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("changed"), "{err}");
    assert!(
        err.contains("- ") && err.contains("try again") && err.contains("try once more"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        lines_of(&s.path("count")),
        ["one"],
        "a refused resume ran something"
    );

    assert_exit(&s.run(&["resume", &id, "--force"]), 0);
    assert_eq!(lines_of(&s.path("count")), ["one", "three"]);
    assert_eq!(s.journal(&id)["status"], "succeeded");
}

#[test]
fn from_step_runs_that_step_and_later_ones_again() {
    let s = Scratch::new();
    let wf = s.workflow("wf.yaml", &TWO_STEPS.replace("times: 1", "times: 0"));
    assert_exit(&s.run(&["run", wf.to_str().unwrap()]), 0);
    let id = s.run_id();
    let out = s.run(&["resume", &id]);
    assert_exit(&out, 0);
    assert_eq!(
        lines_of(&s.path("count")),
        ["one", "three"],
        "resuming a finished run re-ran steps"
    );

    assert_exit(&s.run(&["resume", &id, "--from-step", "nope"]), 2);
    assert_exit(&s.run(&["resume", &id, "--from-step", "two"]), 0);
    // `three` appends again (its reconcile only matters for a step found running).
    assert_eq!(lines_of(&s.path("count")), ["one", "three", "three"]);
}

#[test]
fn ctrl_c_exits_130_with_the_resume_command_and_resume_finishes() {
    let s = Scratch::new();
    let wf = s.workflow("nap.yaml", NAP);
    let child = s.spawn(&["run", wf.to_str().unwrap()]);
    let id = s.wait_for_step("nap", "running");
    let start = Instant::now();
    signal(&child, libc::SIGINT);
    let out = wait_output(child);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "Ctrl-C took {:?}",
        start.elapsed()
    );
    assert_exit(&out, 130);
    assert!(
        stderr(&out).contains(&format!("rescue resume {id}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(s.journal(&id)["status"], "interrupted");

    assert_exit(&s.run(&["resume", &id]), 0);
    assert_eq!(lines_of(&s.path("count")), ["before", "after"]);
}
