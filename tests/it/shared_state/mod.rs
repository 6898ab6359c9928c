//! Team-shared run state (`--state azblob://`) on a real Azurite, started per test on a free
//! loopback port with a fresh data directory: a run killed on one "machine" (state dir and
//! working directory) and resumed on another, two resumes racing for one run, a holder that
//! lost its lease, and the kill harness.

mod entra;
mod kill;
mod lease;

use std::path::{Path, PathBuf};
use std::process::Command;

use rescue::azure::blob::{Container, Location};

#[path = "../../../examples/support/azurite.rs"]
mod launcher;
pub use launcher::ACCOUNT;

pub const CONTAINER: &str = "rescue-runs";

/// Azurite for one test.
pub struct Azurite(launcher::Azurite);

impl Azurite {
    pub fn start() -> Azurite {
        Self::start_with(launcher::Access::SharedKey)
    }

    /// On HTTPS, taking Entra tokens, with the certificate `emulator` serves (for 127.0.0.1,
    /// issued by the CA its clients trust): one lab CA for both.
    pub fn start_entra(emulator: &crate::crash::support::Served) -> Azurite {
        let tls = emulator.data_dir.join("tls");
        Self::start_with(launcher::Access::Entra {
            cert: &tls.join("server.pem"),
            key: &tls.join("server.key"),
        })
    }

    fn start_with(access: launcher::Access<'_>) -> Azurite {
        Azurite(launcher::Azurite::start_with(access).unwrap_or_else(|| {
            panic!("azurite-blob is not installed: run `bash .ci/setup` (it installs the pinned Azurite from npm)")
        }))
    }

    pub fn connection_string(&self) -> String {
        self.0.connection_string()
    }

    pub fn endpoint(&self) -> String {
        self.0.endpoint()
    }

    pub fn state_url(&self) -> String {
        format!("azblob://{ACCOUNT}/{CONTAINER}")
    }

    /// The arguments and environment that put a `rescue` on this store.
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("AZURE_STORAGE_CONNECTION_STRING", self.connection_string())
            .env("RESCUE_STATE", self.state_url())
    }

    /// A client of our own on the container, for what another team member would do to it.
    pub fn container(&self) -> Container {
        // Each test runs in a process of its own (nextest): this sets it for this test only.
        std::env::set_var("AZURE_STORAGE_CONNECTION_STRING", self.connection_string());
        Container::connect(
            Location {
                account: ACCOUNT.into(),
                container: CONTAINER.into(),
            },
            || panic!("the connection string signs in"),
        )
        .unwrap()
    }
}

/// The workflows directory copied to `dir` (the run stores what it reads; the copy can go).
pub fn workflow_copy(dir: &Path) -> PathBuf {
    let out = Command::new("cp")
        .arg("-a")
        .arg(crate::crash::support::repo("workflows"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    dir.join("workflows").join("os-disk-swap.yaml")
}

/// "Another machine": its own state dir and working directory.
pub struct Machine {
    pub state: PathBuf,
    pub cwd: PathBuf,
}

impl Machine {
    pub fn new(root: &Path, name: &str) -> Machine {
        let m = Machine {
            state: root.join(name).join("state"),
            cwd: root.join(name).join("work"),
        };
        std::fs::create_dir_all(&m.cwd).unwrap();
        m
    }
}

/// `rescue ARGS` against `emulator` on `store`, as `machine`.
pub fn rescue_on(
    emulator: &crate::crash::support::Served,
    store: &Azurite,
    machine: &Machine,
    args: &[&str],
) -> Command {
    let mut cmd = emulator.command(&machine.state);
    store.apply(&mut cmd);
    cmd.current_dir(&machine.cwd).args(args);
    cmd
}

/// `rescue run WORKFLOW` of os-disk-swap on the incident inputs, not yet started.
pub fn repair_on(
    emulator: &crate::crash::support::Served,
    store: &Azurite,
    machine: &Machine,
    workflow: &Path,
) -> Command {
    let inputs = crate::crash::support::repo("examples/incident-inputs.yaml");
    rescue_on(
        emulator,
        store,
        machine,
        &[
            "run",
            workflow.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--yes",
        ],
    )
}

/// The one run the store lists.
pub fn only_run(
    emulator: &crate::crash::support::Served,
    store: &Azurite,
    machine: &Machine,
) -> String {
    let out = rescue_on(emulator, store, machine, &["runs", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        crate::crash::support::text(&out)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{doc}");
    runs[0]["id"].as_str().unwrap().to_string()
}
