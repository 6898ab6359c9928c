//! Helpers: the binary, a scratch directory outside the repository, outputs as JSON.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub use crate::crash::support::bin;

/// The incident on the emulator, with the azure-cli-shaped flags (its VM is an AKS node).
pub const INCIDENT: &[&str] = &[
    "-g",
    "MC_prod-rg_prod-aks_westeurope",
    "-n",
    "aks-nodepool1-31415926-vm2",
    "--rescue-vm",
    "rescue-vm",
    "--allow-aks-node",
];

/// The incident VM's OS disk, as the scenario names it.
pub const ORIGINAL_DISK: &str =
    "aks-nodepool1-31415926-vm2_OsDisk_1_3a9f5c7e1d2b4a68e0f4b6d8c1a5e927";

/// `rescue` in `dir` (outside the repository) with its own state dir, no terminal.
pub fn rescue(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .env("RESCUE_STATE_DIR", dir.join("state"))
        .env("HOME", dir)
        .env_remove("RESCUE_EMULATOR_URL")
        .env_remove("RESCUE_EMULATOR_CA")
        .env_remove("AZURE_SUBSCRIPTION_ID")
        .env_remove("RESCUE_TEST_KILL_AT")
        .stdin(Stdio::null());
    cmd
}

pub fn run(dir: &Path, args: &[&str]) -> Output {
    rescue(dir).args(args).output().expect("spawn rescue")
}

pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// One JSON document, or (for streams) one per line.
pub fn json_of(bytes: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(doc) = serde_json::from_str::<Value>(&text) {
        return vec![doc];
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// stderr under `-o json`: JSON lines only; the last is the error object, if any.
pub fn error_object(out: &Output) -> Value {
    let lines = json_of(&out.stderr);
    let last = lines.last().cloned().unwrap_or(Value::Null);
    for key in ["code", "message", "hint", "exit"] {
        assert!(
            last.get(key).is_some(),
            "no `{key}` in {last}\n{}",
            text(out)
        );
    }
    assert_eq!(
        last["exit"].as_i64(),
        out.status.code().map(i64::from),
        "{}",
        text(out)
    );
    last
}

/// The runs in a state dir.
pub fn runs(state: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(state.join("runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

pub fn is_root() -> bool {
    crate::repair::images::is_root()
}
