//! A second process on a run in use is refused with exit 3, naming the holder.

use super::run_support::*;

#[test]
fn second_process_on_a_locked_run_exits_3_naming_the_holder() {
    let s = Scratch::new();
    let wf = s.workflow(
        "slow.yaml",
        "name: slow\nsteps:\n  - id: nap\n    uses: core.sleep\n    with: { duration: 20s }\n",
    );
    let child = s.spawn(&["run", wf.to_str().unwrap()]);
    let id = s.wait_for_step("nap", "running");

    let out = s.run(&["resume", &id]);
    signal(&child, libc::SIGTERM);
    let first = wait_output(child);
    assert_exit(&out, 3);
    let err = stderr(&out);
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    assert!(
        err.contains(&format!("process {}", first_pid(&s, &id))),
        "{err}"
    );
    assert!(err.contains(&host), "{err}");
    assert_exit(&first, 130);
}

/// The pid the lock file recorded.
fn first_pid(s: &Scratch, id: &str) -> u64 {
    let text = std::fs::read_to_string(s.run_dir(id).join("lock")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["pid"]
        .as_u64()
        .unwrap()
}
