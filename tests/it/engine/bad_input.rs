//! Bad input never crashes or exhausts memory: YAML alias bombs are refused quickly and small.

use std::path::Path;

use super::run_support::*;

const BOMB: &str = include_str!("fixtures/bomb.yaml");
/// Peak memory the refusal may take (the whole process: runtime, binary, parse).
const MAX_RSS: u64 = 50 * 1024 * 1024;

const ONE_INPUT: &str = r#"
name: one-input
inputs:
  vm:
    type: string
steps:
  - id: hello
    uses: core.echo
    with: { message: "${{ inputs.vm }}" }
"#;

#[track_caller]
fn assert_bomb_refused(s: &Scratch, args: &[&str], file: &Path) {
    let mut cmd = s.rescue();
    cmd.args(args).env("NO_COLOR", "1");
    let started = std::time::Instant::now();
    let (out, rss) = output_with_peak_rss(cmd);
    let took = started.elapsed();
    assert_exit(&out, 2);
    let err = stderr(&out);
    // Located at the alias where the expansion crosses the limit, saying which limit.
    let at = format!("{}:6:", file.display());
    assert!(err.contains(&at), "no location {at}:\n{err}");
    assert!(err.contains("more than 100000 nodes"), "{err}");
    assert!(err.contains("alias"), "{err}");
    assert!(rss < MAX_RSS, "peak RSS {} MiB", rss / (1024 * 1024));
    // Generous for a loaded 2-core machine; the benchmark shows the real figure.
    assert!(took.as_secs() < 10, "took {took:?}");
    assert!(
        !s.state().join("runs").exists(),
        "a refused run created a run directory"
    );
}

#[test]
fn alias_bomb_in_a_workflow_is_refused_with_exit_2_in_little_memory() {
    let s = Scratch::new();
    let wf = s.workflow("bomb.yaml", &format!("name: bomb\nsteps: []\n{BOMB}"));
    // The bomb is 2 lines further down in this file than in the fixture.
    let mut cmd = s.rescue();
    cmd.args(["validate", wf.to_str().unwrap()]);
    let (out, _) = output_with_peak_rss(cmd);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("bomb.yaml:8:"), "{}", stderr(&out));

    let bare = s.workflow("bare.yaml", BOMB);
    assert_bomb_refused(&s, &["run", bare.to_str().unwrap()], &bare);
}

#[test]
fn alias_bomb_in_an_inputs_file_is_refused_with_exit_2_in_little_memory() {
    let s = Scratch::new();
    let wf = s.workflow("wf.yaml", ONE_INPUT);
    let inputs = s.workflow("inputs.yaml", BOMB);
    assert_bomb_refused(
        &s,
        &[
            "run",
            wf.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
        ],
        &inputs,
    );
}

#[test]
fn an_oversized_yaml_file_is_refused_without_reading_it_all() {
    let s = Scratch::new();
    let wf = s.workflow("wf.yaml", ONE_INPUT);
    let inputs = s.path("big.yaml");
    // Sparse: 1 GiB on paper, nothing on disk; reading it whole would take a GiB.
    std::fs::File::create(&inputs)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let mut cmd = s.rescue();
    cmd.args([
        "run",
        wf.to_str().unwrap(),
        "--inputs",
        inputs.to_str().unwrap(),
    ]);
    let (out, rss) = output_with_peak_rss(cmd);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("larger than 1 MiB"),
        "{}",
        stderr(&out)
    );
    assert!(rss < MAX_RSS, "peak RSS {} MiB", rss / (1024 * 1024));
}

#[test]
fn alias_bomb_as_an_emulator_scenario_is_refused_before_a_run_is_recorded() {
    let s = Scratch::new();
    let wf = s.workflow("wf.yaml", ONE_INPUT);
    let scenario = s.workflow("scenario.yaml", BOMB);
    let emulator = format!("--emulator={}", scenario.display());
    assert_bomb_refused(
        &s,
        &["run", wf.to_str().unwrap(), "--input", "vm=x", &emulator],
        &scenario,
    );
}
