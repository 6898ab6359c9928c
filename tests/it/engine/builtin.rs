//! Built-in workflows by name from any directory, `rescue workflows`, and a run that keeps what
//! it started with: resumed from its stored copies after the originals changed or were deleted.

use std::path::Path;

use serde_json::Value;

use super::run_support::*;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn a_built_in_runs_by_name_from_a_directory_outside_the_repository() {
    let s = Scratch::new();
    let notes = s.path("notes.txt");
    let out = s
        .rescue()
        .current_dir(s.dir.path())
        .args([
            "run",
            "demo",
            "--input",
            "patient=vm2",
            "--input",
            &format!("notes={}", notes.display()),
            "--input",
            "wait=0",
            "--yes",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        s.read("notes.txt").starts_with("rescuing vm2"),
        "{}",
        s.read("notes.txt")
    );
    let journal = s.journal(&s.run_id());
    assert_eq!(journal["workflow"]["path"], "builtin:demo.yaml");
    assert_eq!(journal["workflow"]["builtin"], "demo");
    // The run keeps the text it ran, content-addressed.
    let sha = journal["workflow"]["sha256"].as_str().unwrap();
    let stored = std::fs::read_to_string(s.run_dir(&s.run_id()).join("files").join(sha)).unwrap();
    assert_eq!(
        stored,
        std::fs::read_to_string(repo("workflows/demo.yaml")).unwrap()
    );

    // Neither a file nor a built-in: exit 2, listing the built-ins, nothing recorded.
    let out = s
        .rescue()
        .current_dir(s.dir.path())
        .args(["run", "os-disk-swp"])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("demo, os-disk-swap") && err.contains("did you mean `os-disk-swap`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(s.state().join("runs")).unwrap().count(),
        1
    );
}

#[test]
fn workflows_lists_the_built_ins_and_show_prints_one_to_copy() {
    let s = Scratch::new();
    let out = s.run(&["workflows"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("os-disk-swap\n  Repair a VM whose OS disk filesystem is corrupted, without ever touching the original disk\n"), "{text}");
    let vm_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("vm "))
        .unwrap();
    assert!(
        vm_line.contains("string")
            && vm_line.contains("required")
            && vm_line.contains("the broken VM"),
        "{vm_line}"
    );
    assert!(text.contains("demo\n"), "{text}");

    let out = s.run(&["workflows", "-o", "json"]);
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let swap = doc["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "os-disk-swap")
        .unwrap();
    let inputs = swap["inputs"].as_array().unwrap();
    let required: Vec<&str> = inputs
        .iter()
        .filter(|i| i["required"] == true)
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        ["resource_group", "vm"],
        "rescue_vm is optional: one is created"
    );

    // `show` prints the built-in byte for byte: saved, it is a workflow of one's own.
    let out = s.run(&["workflows", "show", "os-disk-swap"]);
    assert_exit(&out, 0);
    assert_eq!(
        out.stdout,
        std::fs::read(repo("workflows/os-disk-swap.yaml")).unwrap()
    );
    let copy = s.path("mine.yaml");
    std::fs::write(&copy, &out.stdout).unwrap();
    std::fs::create_dir(s.path("scripts")).unwrap();
    std::fs::copy(
        repo("workflows/scripts/fsck-disk.sh"),
        s.path("scripts/fsck-disk.sh"),
    )
    .unwrap();
    assert_exit(&s.run(&["validate", copy.to_str().unwrap()]), 0);

    let out = s.run(&["workflows", "show", "nope"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(
            "built-in workflows: aks-node-replace, demo, os-disk-swap, release-stuck-disk"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_script_named_by_a_workflow_must_exist_before_anything_runs() {
    let s = Scratch::new();
    let wf = s.workflow("wf.yaml", STORED_SCRIPT);
    let out = s.run(&["run", wf.to_str().unwrap(), "--emulator"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("wf.yaml:12:15") && err.contains("scripts/hello.sh"),
        "{err}"
    );
    assert!(
        !s.state().join("runs").exists() || s.state().join("runs").read_dir().unwrap().count() == 0
    );
}

const STORED_SCRIPT: &str = r#"
name: stored-script
steps:
  - id: gate
    uses: core.fail
    with: { times: 1, message: "stop here" }
  - id: script
    uses: azure.vm.run_command
    with:
      resource_group: MC_prod-rg_prod-aks_westeurope
      vm: rescue-vm
      script: scripts/hello.sh
"#;

fn script(version: &str) -> String {
    format!("echo \"script {version}\"\necho 'RESCUE-STATUS {{\"verdict\":\"clean\"}}'\n")
}

#[test]
fn resume_runs_the_stored_copies_after_the_originals_changed_or_went() {
    let s = Scratch::new();
    let wf = s.workflow("wf.yaml", STORED_SCRIPT);
    std::fs::create_dir(s.path("scripts")).unwrap();
    std::fs::write(s.path("scripts/hello.sh"), script("v1")).unwrap();
    let out = s.run(&["run", wf.to_str().unwrap(), "--emulator", "--yes"]);
    assert_exit(&out, 1);
    let id = s.run_id();

    // An edited script is refused like an edited workflow (--force would adopt it).
    std::fs::write(s.path("scripts/hello.sh"), script("v2")).unwrap();
    let out = s.run(&["resume", &id]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("scripts/hello.sh") && stderr(&out).contains("changed"),
        "{}",
        stderr(&out)
    );

    // Gone: the run goes on from what it stored when it started (v1), from any directory.
    std::fs::remove_file(&wf).unwrap();
    std::fs::remove_dir_all(s.path("scripts")).unwrap();
    let out = s
        .rescue()
        .current_dir("/")
        .args(["resume", &id])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("is gone; resuming from the copy stored with run"),
        "{}",
        stderr(&out)
    );
    let journal = s.journal(&id);
    let stdout_of_script = journal["steps"][1]["outputs"]["stdout"].as_str().unwrap();
    assert!(stdout_of_script.contains("script v1"), "{stdout_of_script}");
}
