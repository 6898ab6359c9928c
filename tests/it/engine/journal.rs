//! A tampered journal never panics: every command refuses it with exit 2, saying what is wrong
//! and where, and changes nothing. A journal copied into another run's directory is refused.

use std::path::Path;

use serde_json::{json, Value};

use super::run_support::*;

/// TWO_STEPS with an input, for the cases that tamper with recorded inputs.
fn workflow() -> String {
    TWO_STEPS.replace(
        "steps:",
        "inputs:\n  who:\n    type: string\n    default: me\nsteps:",
    )
}

/// How a case damages the run: its journal's JSON, or its raw text.
enum Tamper {
    Json(fn(&mut Value)),
    Text(fn(&str) -> String),
    /// The run's stored workflow text.
    StoredWorkflow,
}

/// Cases only visible against the workflow (or its stored copy) or when connecting to the
/// run's target: `status` and `runs`, which read the journal alone, may show those; `resume`,
/// which runs the workflow where the run acted, must refuse.
const RESUME_ONLY: &[&str] = &[
    "target not one rescue writes",
    "target as text",
    "a step missing",
    "a step of another action",
    "a step the workflow lacks",
    "input of the wrong type",
    "input the workflow lacks",
    "stored workflow edited",
];

/// (name, damage, what the error must say)
fn corpus() -> Vec<(&'static str, Tamper, &'static str)> {
    use Tamper::*;
    vec![
        (
            "truncated",
            Text(|t| t[..t.len() / 2].to_string()),
            "EOF while parsing",
        ),
        ("empty", Text(|_| String::new()), "EOF while parsing"),
        (
            "not json",
            Text(|_| "journal? what journal".into()),
            "expected value",
        ),
        (
            "no format version",
            Json(|j| drop(j.as_object_mut().unwrap().remove("format_version"))),
            "no `format_version`",
        ),
        (
            "format version as text",
            Json(|j| j["format_version"] = json!("3")),
            "no `format_version`",
        ),
        (
            "newer format",
            Json(|j| j["format_version"] = json!(99)),
            "newer than this rescue",
        ),
        (
            "no steps",
            Json(|j| drop(j.as_object_mut().unwrap().remove("steps"))),
            "missing field `steps`",
        ),
        (
            "steps not a list",
            Json(|j| j["steps"] = json!({"one": 1})),
            "invalid type: map, expected a sequence",
        ),
        (
            "unknown step status",
            Json(|j| j["steps"][0]["status"] = json!("exploded")),
            "unknown variant `exploded`",
        ),
        (
            "attempts as text",
            Json(|j| j["steps"][1]["attempts"] = json!("many")),
            "invalid type: string \"many\", expected u32",
        ),
        (
            "checkpoints not a map",
            Json(|j| j["steps"][1]["checkpoints"] = json!([1])),
            "invalid type: sequence, expected a map",
        ),
        (
            "bad timestamp",
            Json(|j| j["created"] = json!("yesterday")),
            "created",
        ),
        (
            "deep nesting",
            Json(|j| j["steps"][0]["args"]["x"] = (0..300).fold(json!(1), |v, _| json!([v]))),
            "recursion limit exceeded",
        ),
        (
            "a step missing",
            Json(|j| drop(j["steps"].as_array_mut().unwrap().remove(1))),
            "the workflow's step `two` is missing from the journal (steps recorded: one, three)",
        ),
        (
            "a step twice",
            Json(|j| j["steps"][2] = j["steps"][1].clone()),
            "`steps[2]`: step `two` is recorded twice",
        ),
        (
            "a step of another action",
            Json(|j| j["steps"][1]["uses"] = json!("core.echo")),
            "step `two` is recorded as `core.echo`, but the workflow's step uses `core.fail`",
        ),
        (
            "a step the workflow lacks",
            Json(|j| {
                j["steps"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"id": "four", "uses": "core.echo", "status": "pending"}))
            }),
            "the journal records step `four`, which the workflow does not have",
        ),
        (
            "empty step id",
            Json(|j| j["steps"][0]["id"] = json!("")),
            "`steps[0]` has an empty `id`",
        ),
        (
            "resource of no step",
            Json(
                |j| j["resources"] = json!([{"step": "ghost", "kind": "file", "id": "/x", "recorded": "2026-01-01T00:00:00Z"}]),
            ),
            "a recorded resource names step `ghost`",
        ),
        (
            "rollback of no step",
            Json(
                |j| j["rollback"] = json!({"started": "2026-01-01T00:00:00Z", "status": "running", "options": {"delete_created": false, "include_snapshot": false}, "undos": [{"step": "ghost", "uses": "core.echo", "status": "pending", "description": "x"}]}),
            ),
            "the rollback section names step `ghost`",
        ),
        (
            "run id of another run",
            Json(|j| j["run_id"] = json!("20000101-000000-beef")),
            "records run `20000101-000000-beef`, but lies in the directory of run",
        ),
        (
            "run id with a path",
            Json(|j| j["run_id"] = json!("../../etc")),
            "`run_id` \"../../etc\" is not a run id",
        ),
        (
            "workflow hash not a hash",
            Json(|j| j["workflow"]["sha256"] = json!("../../../etc/passwd")),
            "is not a SHA-256",
        ),
        (
            "input of the wrong type",
            Json(|j| j["inputs"]["who"] = json!(5)),
            "recorded input `who`: expected string, found an integer",
        ),
        (
            "input the workflow lacks",
            Json(|j| j["inputs"]["whom"] = json!("x")),
            "input `whom` is recorded, but the workflow declares no such input",
        ),
        (
            "stored workflow edited",
            StoredWorkflow,
            "no longer matches its hash",
        ),
    ]
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[track_caller]
fn assert_refused(out: &std::process::Output, what: &str, case: &str) {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "{case}: {what} panicked:\n{err}");
    assert_exit(out, 2);
    assert!(
        err.contains("is damaged") || err.contains("newer than"),
        "{case}: {what}:\n{err}"
    );
}

#[test]
fn tampered_journals_are_refused_with_exit_2_saying_what_is_wrong() {
    let base = Scratch::new();
    let wf = base.workflow("wf.yaml", &workflow());
    assert_exit(&base.run(&["run", wf.to_str().unwrap()]), 1);
    let id = base.run_id();

    // The untampered run resumes: what the cases refuse is their damage.
    let control = Scratch::new();
    copy_dir(&base.run_dir(&id), &control.run_dir(&id));
    assert_exit(&control.run(&["resume", &id]), 0);

    for (case, tamper, expected) in corpus() {
        let s = Scratch::new();
        let dir = s.run_dir(&id);
        copy_dir(&base.run_dir(&id), &dir);
        let path = dir.join("journal.json");
        let text = std::fs::read_to_string(&path).unwrap();
        match tamper {
            Tamper::Json(change) => {
                let mut journal: Value = serde_json::from_str(&text).unwrap();
                change(&mut journal);
                std::fs::write(&path, serde_json::to_string_pretty(&journal).unwrap()).unwrap();
            }
            Tamper::Text(change) => std::fs::write(&path, change(&text)).unwrap(),
            Tamper::StoredWorkflow => {
                let sha = serde_json::from_str::<Value>(&text).unwrap()["workflow"]["sha256"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let stored = dir.join("files").join(sha);
                let edited = std::fs::read_to_string(&stored)
                    .unwrap()
                    .replace("try again", "rm -rf");
                std::fs::write(stored, edited).unwrap();
            }
        }
        let before = std::fs::read(&path).unwrap();

        let out = s.run(&["resume", &id]);
        assert_refused(&out, "resume", case);
        let err = stderr(&out);
        assert!(
            err.contains(expected),
            "{case}: expected `{expected}` in:\n{err}"
        );
        assert!(
            err.contains(&id) || err.contains("journal"),
            "{case}: where? {err}"
        );

        let intrinsic = !RESUME_ONLY.contains(&case);
        if intrinsic {
            assert_refused(&s.run(&["status", &id]), "status", case);
            assert_refused(
                &s.run(&["status", &id, "-o", "json"]),
                "status -o json",
                case,
            );
            assert_refused(&s.run(&["rollback", &id, "--dry-run"]), "rollback", case);
        }
        for args in [
            &["status", &id][..],
            &["rollback", &id, "--dry-run"][..],
            &["cleanup", &id],
            &["runs"],
            &["runs", "-o", "json"],
        ] {
            let out = s.run(args);
            assert!(
                !stderr(&out).contains("panicked"),
                "{case}: {args:?} panicked:\n{}",
                stderr(&out)
            );
            assert_ne!(out.status.code(), Some(101), "{case}: {args:?}");
        }
        // `runs` lists it as unreadable, with the reason, and goes on.
        let runs: Value = serde_json::from_str(&stdout(&s.run(&["runs", "-o", "json"]))).unwrap();
        let listed = runs["runs"][0]["error"].as_str().unwrap_or_default();
        assert_eq!(listed.contains("damaged"), intrinsic, "{case}: {runs}");

        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{case}: the journal was changed"
        );
        assert_eq!(
            lines_of(&s.path("count")),
            Vec::<String>::new(),
            "{case}: a step ran"
        );
    }
}
