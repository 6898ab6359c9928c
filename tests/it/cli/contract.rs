//! One output contract: `-o json` is one document (plan, runs, status, report, rollback
//! --dry-run, workflows, validate) or JSON lines (run, resume), errors one JSON object on
//! stderr with code, message, hint and exit; `-o yaml` and `--query` as azure-cli has them.

use serde_json::Value;

use super::support::*;

const FLOW: &str = r#"
name: flow
inputs:
  who: { type: string }
steps:
  - id: greet
    uses: core.echo
    with: { message: "hello ${{ inputs.who }}" }
  - id: save
    uses: core.write_file
    with: { path: "DIR/greeting.txt", content: "${{ steps.greet.outputs.message }}" }
outputs:
  greeting: "${{ steps.greet.outputs.message }}"
"#;

#[test]
fn every_command_speaks_json_errors_included() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wf = d.join("flow.yaml");
    std::fs::write(&wf, FLOW.replace("DIR", &d.display().to_string())).unwrap();
    let wf = wf.to_str().unwrap();

    // Documents.
    for args in [
        vec!["runs", "-o", "json"],
        vec!["workflows", "-o", "json"],
        vec!["validate", wf, "-o", "json"],
        vec!["plan", wf, "--input", "who=x", "-o", "json"],
        vec!["-o", "json", "plan", "demo", "--input", "patient=vm2"],
    ] {
        let out = run(d, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert_eq!(json_of(&out.stdout).len(), 1, "{args:?}: one document");
    }

    // A run streams JSON lines, ending with the summary; the run leaves its report.
    let out = run(d, &["run", wf, "--input", "who=json", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let events = json_of(&out.stdout);
    assert!(events.len() > 3, "{}", text(&out));
    assert_eq!(events.last().unwrap()["event"], "run_summary");
    let run_dir = runs(&d.join("state")).pop().unwrap();
    for file in ["report.md", "report.json", "journal.json"] {
        assert!(run_dir.join(file).is_file(), "{file} missing");
    }

    for args in [
        vec!["status", "last", "-o", "json"],
        vec!["report", "last", "-o", "json"],
        vec!["report", "last", "--format", "json"],
        vec!["rollback", "last", "--dry-run", "-o", "json"],
    ] {
        let out = run(d, &args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let docs = json_of(&out.stdout);
        assert_eq!(docs.len(), 1, "{args:?}: one document");
    }
    let status = &json_of(&run(d, &["status", "last", "-o", "json"]).stdout)[0];
    assert_eq!(status["running"], false);
    assert_eq!(status["status"], "succeeded");
    let resumed = run(d, &["resume", "last", "-o", "json"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));

    // Errors: one object on stderr with code, message, hint and the exit code.
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["status", "20990101-000000-dead", "-o", "json"],
            2,
            "no_such_run",
        ),
        (vec!["run", "--bogus", "-o", "json"], 2, "usage"),
        (vec!["validate", "nope.yaml", "-o", "json"], 2, "invalid"),
        (vec!["runs", "-o", "json", "--query", "runs[?"], 2, "usage"),
        (vec!["cleanup", "last", "-o", "json"], 2, "no_azure"),
        (vec!["run", "demo", "-g", "rg", "-o", "json"], 2, "usage"),
        (
            vec![
                "run",
                "os-disk-swap",
                "-g",
                "rg",
                "-n",
                "vm",
                "--rescue-vm",
                "r",
                "-o",
                "json",
            ],
            2,
            "needs_yes",
        ),
    ];
    for (args, exit, code) in cases {
        let out = run(d, &args);
        assert_eq!(out.status.code(), Some(exit), "{args:?}: {}", text(&out));
        let error = error_object(&out);
        assert_eq!(error["code"], code, "{args:?}: {error}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
    // `-g` maps to an input only a workflow that declares it takes.
    let out = run(d, &["run", "demo", "-g", "rg"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no input `resource_group`"),
        "{}",
        text(&out)
    );
}

#[test]
fn yaml_and_query_as_azure_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(
        d,
        &[
            "run",
            "demo",
            "--input",
            "patient=vm2",
            "--input",
            &format!("notes={}/n.txt", d.display()),
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = runs(&d.join("state"))
        .pop()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();

    let out = run(
        d,
        &[
            "runs",
            "-o",
            "json",
            "--query",
            "runs[?status=='succeeded'].id",
        ],
    );
    assert_eq!(
        json_of(&out.stdout)[0],
        serde_json::json!([id]),
        "{}",
        text(&out)
    );
    // Text output with --query prints the result plainly.
    let out = run(d, &["runs", "--query", "runs[0].id"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);

    let out = run(d, &["status", "last", "-o", "yaml"]);
    let doc: Value = serde_yaml::from_slice(&out.stdout).expect("YAML");
    assert_eq!(doc["run_id"], Value::String(id.clone()));

    // A table for lists.
    let out = run(d, &["runs", "-o", "table"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("RUN") && table.contains(&id), "{table}");
}

#[test]
fn version_names_the_commit_and_help_lists_exit_codes_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--version"]);
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.contains("commit "), "{version}");
    for sub in [&["--help"][..], &["run", "--help"], &["status", "--help"]] {
        let help = String::from_utf8_lossy(&run(dir.path(), sub).stdout).into_owned();
        for needle in [
            "Exit codes:",
            "  4    declined",
            "130",
            "RESCUE_STATE_DIR",
            "AZURE_SUBSCRIPTION_ID",
        ] {
            assert!(
                help.contains(needle),
                "{sub:?} --help lacks {needle:?}:\n{help}"
            );
        }
    }
    // Completions and man pages come from the same declarations.
    let bash = run(dir.path(), &["completions", "bash"]);
    assert!(String::from_utf8_lossy(&bash.stdout).contains("rescue"));
    let man = run(dir.path(), &["man", "pages"]);
    assert_eq!(man.status.code(), Some(0), "{}", text(&man));
    assert!(dir.path().join("pages/rescue.1").is_file());
    assert!(dir.path().join("pages/rescue-run.1").is_file());
}
