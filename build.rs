//! `include_dir!` embeds `workflows/` (src/workflow/builtin.rs). The compiler tracks the files it
//! embedded, not the directory, so a workflow added there would go unnoticed without this.
//!
//! `--version` names the commit it was built from (`RESCUE_GIT_COMMIT`): what an incident
//! report needs to say which rescue ran. Outside a git checkout (a crate tarball) it says so.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-changed=workflows");
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!("commit {rev}{}", if dirty { ", modified" } else { "" })
        }
        None => "commit unknown: not built from a git checkout".to_string(),
    };
    println!("cargo:rustc-env=RESCUE_GIT_COMMIT={commit}");
    // A new commit or a checkout changes HEAD or the ref it points to; a worktree's are
    // under its own git dir.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
                println!("cargo:rerun-if-changed={common}/{head}");
            }
        }
        println!("cargo:rerun-if-changed={dir}/index");
    }
}
