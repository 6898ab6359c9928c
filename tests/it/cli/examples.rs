//! Every example printed by `--help`, of every subcommand, runs as written (through `sh`,
//! from a directory outside the repository, in a network namespace with only loopback) on the
//! emulator, and exits 0. Examples that name `last` act on the run the examples before them
//! left; rollback's get a repair of their own (a cleaned-up run cannot be rolled back).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::*;

/// The subcommands in the order their examples run.
const ORDER: &[&[&str]] = &[
    &["workflows"],
    &["validate"],
    &["schema"],
    &["completions"],
    &["man"],
    &["plan"],
    &["doctor"],
    &["run"],
    &[],
    &["runs"],
    &["status"],
    &["report"],
    &["resume"],
    &["cleanup"],
];

/// The example lines under `Example:` / `Examples:` in `rescue SUB --help`.
fn examples(dir: &Path, sub: &[&str]) -> Vec<String> {
    let mut args: Vec<&str> = sub.to_vec();
    args.push("--help");
    // Wide enough that no example is wrapped (clap wraps help to COLUMNS off a terminal).
    let out = rescue(dir)
        .args(&args)
        .env("COLUMNS", "400")
        .output()
        .expect("spawn rescue");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut found = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.starts_with("Example") {
            inside = true;
            continue;
        }
        if inside && line.trim_start().starts_with("rescue ") {
            found.push(line.trim().to_string());
        } else {
            inside = false;
        }
    }
    found
}

/// `line` as a shell runs it, with this rescue first on PATH, in `dir`, loopback only.
fn shell_command(dir: &Path, line: &str) -> Command {
    let bin_dir = bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-n",
        "sh",
        "-c",
        "ip link set lo up && exec sh -c \"exec $1\"",
        "sh",
        line,
    ])
    .current_dir(dir)
    .env("PATH", path)
    .env("RESCUE_STATE_DIR", dir.join("state"))
    .env("HOME", dir)
    .env_remove("RESCUE_EMULATOR_URL")
    .env_remove("RESCUE_EMULATOR_CA")
    .env_remove("AZURE_SUBSCRIPTION_ID")
    .stdin(Stdio::null());
    cmd
}

fn shell(dir: &Path, line: &str) -> std::process::Output {
    shell_command(dir, line).output().expect("spawn sh")
}

fn expect_success(dir: &Path, line: &str) {
    let started = Instant::now();
    let out = shell(dir, line);
    assert_eq!(
        out.status.code(),
        Some(0),
        "example `{line}`: {}",
        text(&out)
    );
    if line.contains("-o json") && !line.contains('>') {
        // A document or JSON lines, as documented.
        let _ = json_of(&out.stdout);
    }
    eprintln!("ok ({:.1} s): {line}", started.elapsed().as_secs_f64());
}

#[test]
fn every_help_example_runs_as_written() {
    if !is_root() {
        return eprintln!("skipped: needs root for loop devices");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut seen = std::collections::BTreeSet::new();
    let mut count = 0;
    for sub in ORDER {
        for line in examples(d, sub) {
            if seen.insert(line.clone()) {
                expect_success(d, &line);
                count += 1;
            }
        }
    }

    // Rollback's examples on a repair of their own, in a fresh state dir.
    let fresh = d.join("rollback");
    std::fs::create_dir_all(&fresh).unwrap();
    let repair = examples(d, &["run"])
        .into_iter()
        .find(|l| l.contains("os-disk-swap"))
        .expect("run --help shows the repair");
    expect_success(&fresh, &repair);
    for line in examples(d, &["rollback"]) {
        expect_success(&fresh, &line);
        count += 1;
    }

    // The emulator serves until Ctrl-C, and then exits 0.
    let serve = examples(d, &["emulator", "serve"]);
    assert_eq!(serve.len(), 1, "{serve:?}");
    let mut child = shell_child(d, &serve[0]);
    let banner = crate::crash::support::banner(&mut child);
    assert!(
        banner[0].contains("listening on https://127.0.0.1:"),
        "{banner:?}"
    );
    // SAFETY: signalling our own child (sh exec'd unshare exec'd sh exec'd rescue).
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "serve after Ctrl-C");
    assert!(count >= 25, "only {count} examples found");
}

fn shell_child(dir: &Path, line: &str) -> std::process::Child {
    shell_command(dir, line)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn serve")
}
