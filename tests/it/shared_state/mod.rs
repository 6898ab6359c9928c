//! Team-shared run state (`--state azblob://`) on a real Azurite, started per test on a free
//! loopback port with a fresh data directory: a run killed on one "machine" (state dir and
//! working directory) and resumed on another, two resumes racing for one run, a holder that
//! lost its lease, and the kill harness.

mod kill;
mod lease;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rescue::azure::blob::{Container, Location};

/// Azurite's well-known development account and key (documented, not a secret):
/// https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key
pub const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const CONTAINER: &str = "rescue-runs";

/// `azurite-blob` on 127.0.0.1, stopped when dropped.
pub struct Azurite {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Azurite {
    pub fn start() -> Azurite {
        let program = which("azurite-blob").unwrap_or_else(|| {
            panic!("azurite-blob is not installed: run `bash .ci/setup` (it installs the pinned Azurite from npm)")
        });
        let data = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .args([
                "--silent",
                "--skipApiVersionCheck",
                "--blobHost",
                "127.0.0.1",
            ])
            .arg("--blobPort")
            .arg(port.to_string())
            .arg("--location")
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn azurite-blob");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Azurite {
            child,
            port,
            _data: data,
        }
    }

    /// What rescue (and any Azure Storage client) reaches it with.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint=http://127.0.0.1:{}/{ACCOUNT};",
            self.port
        )
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
        // SAFETY: tests in this binary that read this variable set the same value.
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

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
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
