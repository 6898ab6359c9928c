//! Helpers for the engine's run/resume tests: a scratch state dir, the real binary, journals.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Appends `before`, sleeps 2 s in step `nap`, appends `after`: a run to interrupt mid-step.
pub const NAP: &str = r#"
name: nap
steps:
  - id: before
    uses: core.write_file
    with: { path: "{dir}/count", content: "before\n", append: true }
  - id: nap
    uses: core.sleep
    with: { duration: 2s }
  - id: after
    uses: core.write_file
    with: { path: "{dir}/count", content: "after\n", append: true }
"#;

/// Writes `one`, fails once in `two`, writes `three`: a run that stops resumable mid-way.
pub const TWO_STEPS: &str = r#"
name: two-steps
steps:
  - id: one
    uses: core.write_file
    with: { path: "{dir}/count", content: "one\n", append: true }
  - id: two
    uses: core.fail
    with: { times: 1, message: "try again" }
  - id: three
    uses: core.write_file
    with: { path: "{dir}/count", content: "three\n", append: true }
"#;

/// A scratch directory holding the state dir, workflows and files the steps write.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// Writes a workflow; `{dir}` in the text becomes the scratch directory.
    pub fn workflow(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(
            &path,
            text.replace("{dir}", &self.dir.path().display().to_string()),
        )
        .expect("write workflow");
        path
    }

    /// `rescue ARGS` with this state dir and no terminal. `RESCUE_TEST_BIN` pins the binary
    /// (worktrees sharing one target dir overwrite each other's `target/debug/rescue`).
    pub fn rescue(&self) -> Command {
        let bin = std::env::var_os("RESCUE_TEST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("rescue"));
        let mut cmd = Command::new(bin);
        cmd.env("RESCUE_STATE_DIR", self.state())
            .env_remove("RESCUE_TEST_KILL_AT")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.rescue().args(args).output().expect("spawn rescue")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.rescue()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rescue")
    }

    /// The id of the one run in the state dir.
    pub fn run_id(&self) -> String {
        let mut ids: Vec<_> = std::fs::read_dir(self.state().join("runs"))
            .expect("runs dir")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(ids.len(), 1, "expected one run, found {ids:?}");
        ids.pop().unwrap()
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.state().join("runs").join(id)
    }

    pub fn journal(&self, id: &str) -> Value {
        let text = std::fs::read_to_string(self.run_dir(id).join("journal.json")).expect("journal");
        serde_json::from_str(&text).expect("journal is JSON")
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Waits until the run's journal shows `step` in `status`.
    pub fn wait_for_step(&self, step: &str, status: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(entries) = std::fs::read_dir(self.state().join("runs")) {
                for entry in entries.flatten() {
                    let id = entry.file_name().to_string_lossy().into_owned();
                    let Ok(text) = std::fs::read_to_string(entry.path().join("journal.json"))
                    else {
                        continue;
                    };
                    let Ok(journal) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if step_field(&journal, step, "status") == status {
                        return id;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "step {step} never reached {status}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A field of a step in a journal, as a string ("" when absent).
pub fn step_field(journal: &Value, step: &str, field: &str) -> String {
    let steps = journal["steps"].as_array().cloned().unwrap_or_default();
    match steps
        .iter()
        .find(|s| s["id"] == step)
        .map(|s| s[field].clone())
    {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill failed");
}

pub fn wait_output(child: Child) -> Output {
    child.wait_with_output().expect("wait for rescue")
}

pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `cmd` to the end and returns its output with the child's peak resident set size in
/// bytes, read from the kernel's accounting of that one child (wait4's `ru_maxrss`).
// The child is reaped by wait4 (which std's wait cannot do: it drops the rusage).
#[allow(clippy::zombie_processes)]
pub fn output_with_peak_rss(mut cmd: Command) -> (Output, u64) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    // Drain both pipes while the child runs, so a chatty child cannot block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        out.read_to_end(&mut buf).expect("read stdout");
        buf
    });
    let mut stderr = Vec::new();
    err.read_to_end(&mut stderr).expect("read stderr");
    let mut status = 0;
    // SAFETY: plain syscall on our own child; `rusage` is written by the kernel.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: reader.join().unwrap(),
        stderr,
    };
    // Linux reports ru_maxrss in KiB.
    (output, usage.ru_maxrss as u64 * 1024)
}
