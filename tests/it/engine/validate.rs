//! `rescue validate` and input checking on the real binary: every malformed workflow in
//! fixtures/malformed/ exits 2 and reports each of its errors at the right line and column.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/engine/fixtures")
}

fn rescue() -> Command {
    let mut cmd = Command::cargo_bin("rescue").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1");
    cmd
}

/// An error a fixture must report: (line, column, part of the message).
type Expected = (usize, usize, &'static str);

/// Each malformed workflow with every error it must report, in file order.
const CORPUS: &[(&str, &[Expected])] = &[
    (
        "bad-condition.yaml",
        &[(9, 9, "invalid expression `inputs.force ==`")],
    ),
    (
        "bad-defaults.yaml",
        &[
            (
                6,
                14,
                "default of input `count` is invalid: expected integer",
            ),
            (10, 14, "`btrfs` is not one of: ext4, xfs"),
            (14, 14, "`VM-2` does not match the pattern `[a-z]+`"),
        ],
    ),
    (
        "bad-duration.yaml",
        &[
            (5, 14, "`ten minutes` is not a duration"),
            (
                7,
                21,
                "`max_attempts` of `retry` of step `wait` must be a whole number",
            ),
            (8, 16, "`5 parsecs` is not a duration"),
        ],
    ),
    ("bad-indentation.yaml", &[(7, 8, "invalid YAML")]),
    (
        "bad-input-type.yaml",
        &[
            (4, 11, "unknown type `strng` of input `vm`"),
            (7, 5, "unknown field `requird` in input `size`"),
        ],
    ),
    (
        "bad-needs.yaml",
        &[
            (11, 20, "step `left` needs `strat`, which is no step"),
            (
                18,
                16,
                "reads step `left`, which step `right` does not need: the two may run at the same time",
            ),
            (21, 13, "step `loop` needs itself"),
            (
                21,
                19,
                "step `loop` needs `after`, which needs it: a cycle (loop → after → loop)",
            ),
        ],
    ),
    (
        "bad-pattern.yaml",
        &[(
            5,
            14,
            "`pattern` of input `vm` is not a valid regular expression",
        )],
    ),
    (
        "bad-step-id.yaml",
        &[
            (3, 9, "step id `Greet Patient` has characters"),
            (7, 5, "a step has no `id`"),
        ],
    ),
    ("duplicate-key.yaml", &[(7, 5, "duplicate key `uses`")]),
    (
        "duplicate-step-id.yaml",
        &[(7, 9, "duplicate step id `greet`")],
    ),
    (
        "later-step.yaml",
        &[
            (7, 16, "reads step `second`, which runs later"),
            (10, 9, "reads step `second`, which is this step itself"),
        ],
    ),
    (
        "many-errors.yaml",
        &[
            (3, 1, "unknown field `descriptoin`"),
            (11, 16, "unknown input `disk`"),
            (13, 11, "unknown action `core.copy`"),
            (15, 15, "step `snapshot` (`core.echo`) has no output `id`"),
            (18, 14, "`soon` is not a duration"),
            (
                20,
                18,
                "argument `condition` of `core.assert` must be boolean, found a string",
            ),
            (21, 9, "duplicate step id `snapshot`"),
            (24, 16, "reads step `later`, which runs later"),
        ],
    ),
    (
        "missing-argument.yaml",
        &[(
            4,
            11,
            "missing the required argument `message` of `core.echo`",
        )],
    ),
    (
        "steps-not-a-list.yaml",
        &[(3, 3, "`steps` must be a list, found a mapping")],
    ),
    (
        "syntax-error.yaml",
        &[(8, 1, "invalid YAML: while parsing a flow sequence")],
    ),
    (
        "two-documents.yaml",
        &[(7, 1, "a second YAML document in the same file")],
    ),
    (
        "unclosed-expression.yaml",
        &[(9, 16, "`${{` is not closed by `}}`")],
    ),
    (
        "unknown-action.yaml",
        &[(4, 11, "unknown action `core.ehco`")],
    ),
    (
        "unknown-argument.yaml",
        &[(7, 7, "unknown argument `colour` for action `core.echo`")],
    ),
    ("unknown-input.yaml", &[(9, 27, "unknown input `vmm`")]),
    (
        "unknown-output.yaml",
        &[(10, 16, "step `greet` (`core.echo`) has no output `msg`")],
    ),
    (
        "unknown-step-field.yaml",
        &[
            (3, 5, "step `greet` has no `uses`"),
            (4, 5, "unknown field `usse` in step `greet`"),
        ],
    ),
    ("unknown-step.yaml", &[(10, 16, "unknown step `gret`")]),
    (
        "unknown-top-field.yaml",
        &[
            (2, 1, "the workflow has no `steps`"),
            (3, 1, "unknown field `step` in a workflow"),
        ],
    ),
    (
        "unknown-variable.yaml",
        &[
            (6, 16, "unknown variable `input`"),
            (6, 35, "unknown `run.name`"),
            (8, 11, "unknown `output` in `steps.greet.output.message`"),
        ],
    ),
    (
        "wrong-arg-type.yaml",
        &[
            (
                6,
                18,
                "argument `condition` of `core.assert` must be boolean",
            ),
            (
                7,
                16,
                "argument `message` of `core.assert` must be string, found an integer",
            ),
        ],
    ),
];

#[test]
fn every_malformed_workflow_exits_2_with_each_error_located() {
    let dir = fixtures().join("malformed");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let listed: Vec<String> = CORPUS.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(
        on_disk,
        listed,
        "every fixture in {} must be listed in CORPUS with its errors",
        dir.display()
    );
    assert!(CORPUS.len() >= 15);

    for (file, expected) in CORPUS {
        let out = rescue()
            .current_dir(&dir)
            .args(["validate", file])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: exit code\n{stderr}");
        assert!(out.stdout.is_empty(), "{file}: nothing on stdout");
        // miette's header for each problem: `╭─[file:line:col]`, right after the message.
        let found: Vec<(usize, usize, String)> = stderr
            .lines()
            .zip(stderr.lines().skip(1))
            .filter_map(|(message, header)| {
                let location = header
                    .split_once(&format!("[{file}:"))?
                    .1
                    .split_once(']')?
                    .0;
                let (line, col) = location.split_once(':')?;
                Some((
                    line.parse().ok()?,
                    col.parse().ok()?,
                    message.trim_start_matches([' ', '×']).to_string(),
                ))
            })
            .collect();
        assert_eq!(
            found.len(),
            expected.len(),
            "{file}: number of errors reported\n{stderr}"
        );
        for ((line, col, message), (want_line, want_col, want)) in found.iter().zip(*expected) {
            assert_eq!(
                (line, col),
                (want_line, want_col),
                "{file}: location of `{want}`\n{stderr}"
            );
            assert!(
                message.contains(want),
                "{file}:{line}:{col}: expected `{want}` in `{message}`"
            );
        }
        let n = expected.len();
        let summary = format!(
            "{n} error{}; nothing was changed",
            if n == 1 { "" } else { "s" }
        );
        assert!(
            stderr.contains(&summary),
            "{file}: summary `{summary}`\n{stderr}"
        );
    }
}

#[test]
fn errors_show_the_offending_line_and_a_hint() {
    let dir = fixtures().join("malformed");
    let out = rescue()
        .current_dir(&dir)
        .args(["validate", "unknown-step-field.yaml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(" 4 │     usse: core.echo"), "{stderr}");
    assert!(stderr.contains("help: did you mean `uses`?"), "{stderr}");
    let out = rescue()
        .current_dir(&dir)
        .args(["validate", "unknown-action.yaml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `core.echo`?"));
}

#[test]
fn a_valid_workflow_is_reported_with_its_step_count() {
    rescue()
        .args(["validate", "workflows/demo.yaml"])
        .assert()
        .code(0)
        .stdout("workflows/demo.yaml: valid (5 steps)\n");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let out = rescue()
        .args(["validate", "no/such/workflow.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read workflow no/such/workflow.yaml")
    );
}

#[test]
fn bad_input_values_exit_2_naming_the_value() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--input", "patient=vm2", "--input", "pateint=vm3"],
            "unknown input `pateint`",
        ),
        (
            &["--input", "patient=vm2", "--input", "wait=soon"],
            "`soon` is not an integer",
        ),
        (
            &["--input", "patient=vm2", "--input", "mode=brutal"],
            "`brutal` is not one of: gentle, thorough",
        ),
        (
            &["--input", "patient=VM_2"],
            "`VM_2` does not match the pattern",
        ),
        (
            &["--input", "patient=vm2", "--input", "sign_off=perhaps"],
            "`perhaps` is not a boolean",
        ),
        (
            &["--input", "patient"],
            "--input `patient` is not NAME=VALUE",
        ),
        (
            &[],
            "missing required input `patient` (name of the (pretend) broken VM)",
        ),
    ];
    for (args, want) in cases {
        let out = rescue()
            .args(["plan", "workflows/demo.yaml"])
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: expected `{want}` in\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: no plan on stdout");
    }
}

#[test]
fn bad_values_in_an_inputs_file_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.yaml");
    std::fs::write(&inputs, "patient: vm2\nwait: soon\nmood: calm\n").unwrap();
    let out = rescue()
        .args(["plan", "workflows/demo.yaml", "--inputs"])
        .arg(&inputs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let name = inputs.display();
    assert!(
        stderr.contains(&format!("[{name}:2:7]"))
            && stderr.contains("bad value for input `wait`: expected integer"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("[{name}:3:1]")) && stderr.contains("unknown input `mood`"),
        "{stderr}"
    );
}

#[test]
fn command_line_inputs_override_the_inputs_file() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs.yaml");
    std::fs::write(&inputs, "patient: from-file\nwait: 7\n").unwrap();
    let out = rescue()
        .args([
            "plan",
            "workflows/demo.yaml",
            "--output",
            "json",
            "--input",
            "patient=from-flag",
            "--inputs",
        ])
        .arg(&inputs)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["inputs"]["patient"], "from-flag");
    assert_eq!(plan["inputs"]["wait"], 7);
    assert_eq!(plan["inputs"]["mode"], "gentle", "defaults fill the rest");
}

#[test]
fn schema_is_json_describing_steps_and_actions() {
    let out = rescue().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let step = &schema["$defs"]["Step"];
    for property in [
        "id",
        "name",
        "description",
        "uses",
        "with",
        "if",
        "retry",
        "timeout",
        "confirm",
    ] {
        assert!(
            step["properties"].get(property).is_some(),
            "Step.{property} in the schema"
        );
    }
    assert_eq!(step["additionalProperties"], false);
    let actions: Vec<&str> = step["properties"]["uses"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["const"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"core.echo") && actions.contains(&"core.assert"),
        "{actions:?}"
    );
    assert!(
        schema["properties"]["steps"].is_object()
            && schema["required"]
                .as_array()
                .unwrap()
                .contains(&"steps".into())
    );
}

#[test]
fn help_teaches_exit_codes_and_examples() {
    let out = rescue().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Exit codes:") && help.contains("130"),
        "{help}"
    );
    for sub in [
        &["validate"][..],
        &["plan"],
        &["run"],
        &["resume"],
        &["runs"],
        &["status"],
        &["schema"],
        &["emulator", "serve"],
    ] {
        let out = rescue().args(sub).arg("--help").output().unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("rescue "),
            "`{sub:?} --help` has an example"
        );
    }
    rescue().arg("plan").assert().code(2);
    rescue()
        .args(["plan", "workflows/demo.yaml", "--output", "yaml"])
        .assert()
        .code(2);
    rescue()
        .args([
            "plan",
            "workflows/demo.yaml",
            "--time-scale",
            "-1",
            "--input",
            "patient=vm2",
        ])
        .assert()
        .code(2);
}
