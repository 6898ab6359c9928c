//! `rescue cleanup RUN_ID` after a successful repair: list what the run left behind (the
//! snapshot it created, the old broken OS disk it swapped out) and delete what is confirmed.
//! What the run created is deleted only while it carries the run's tag and is not in use; the old
//! disk only when named with `--delete-old-disk NAME`.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::run::block_on;
use super::settings::{StateArgs, TargetArgs, YesArgs};
use super::{Failure, Flags, Settings};
use crate::actions::azure::RUN_TAG;
use crate::azure::ids::ResourceId;
use crate::azure::model::Resource;
use crate::azure::{Azure, Write};
use crate::engine::journal::{Journal, RunStatus};
use crate::exit;

#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// The repaired run (see `rescue runs`).
    pub run_id: String,
    /// Also delete the old (broken) OS disk the run swapped out; give its name to confirm.
    #[arg(long, value_name = "NAME")]
    pub delete_old_disk: Option<String>,
    #[command(flatten)]
    pub yes: YesArgs,
    #[command(flatten)]
    pub state: StateArgs,
    /// Where the run acted is its journal's; these may only give a moved emulator's endpoint
    /// and the secrets that are never journaled.
    #[command(flatten)]
    pub target: TargetArgs,
}

impl CleanupArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            yes: Some(&self.yes),
            target: Some(&self.target),
            retarget: true,
            ..Flags::default()
        }
    }
}

pub fn run(args: &CleanupArgs, settings: &Settings) -> ExitCode {
    block_on(cleanup(args, settings))
}

/// One thing the run left behind.
struct Leftover {
    id: ResourceId,
    what: &'static str,
    /// Why it is not deleted now; None = deletable.
    kept: Option<String>,
}

/// The old OS disks the run swapped out (outputs of its swap steps).
fn old_disks(journal: &Journal) -> Vec<String> {
    journal
        .steps
        .iter()
        .filter_map(|s| s.outputs.get("original_disk_id").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

fn in_use(resource: &Resource) -> Option<String> {
    resource
        .str("/managedBy")
        .filter(|m| !m.is_empty())
        .map(|vm| format!("in use by VM {}", vm.rsplit('/').next().unwrap_or(vm)))
}

async fn leftovers(
    azure: &Azure,
    journal: &Journal,
    old_disk_named: Option<&str>,
) -> Result<Vec<Leftover>, crate::actions::ActionError> {
    let mut found = Vec::new();
    for record in &journal.resources {
        let id = ResourceId::parse(&record.resource.id)?;
        let Some(resource) = azure.read(&id).await? else {
            continue;
        };
        let ours = resource.tag(RUN_TAG) == Some(journal.run_id.as_str());
        let kept = match (ours, in_use(&resource)) {
            (false, _) => Some(format!("its {RUN_TAG} tag is not this run's: not deleted")),
            (true, Some(used)) => Some(format!("{used}: kept")),
            (true, None) => None,
        };
        found.push(Leftover {
            id,
            what: "created by the run",
            kept,
        });
    }
    for old in old_disks(journal) {
        let id = ResourceId::parse(&old)?;
        let Some(resource) = azure.read(&id).await? else {
            continue;
        };
        let kept = match (in_use(&resource), old_disk_named) {
            (Some(used), _) => Some(format!("{used}: kept")),
            (None, Some(name)) if name.eq_ignore_ascii_case(&id.name) => None,
            (None, _) => Some(format!("deleted only with --delete-old-disk {}", id.name)),
        };
        found.push(Leftover {
            id,
            what: "the old OS disk (swapped out)",
            kept,
        });
    }
    Ok(found)
}

async fn delete(azure: &Azure, id: &ResourceId) -> Result<(), crate::actions::ActionError> {
    let label = format!("delete {} {}", id.kind.noun(), id.name);
    azure
        .apply(id, &Write::Delete, &label, CLEANUP_DEADLINE)
        .await?;
    Ok(())
}

/// How long one deletion may take before cleanup gives up on it (it can be run again).
const CLEANUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

async fn cleanup(args: &CleanupArgs, settings: &Settings) -> ExitCode {
    let (run_id, run_dir, lock, mut journal) = match super::open_run(settings, &args.run_id) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let refuse = |message: String, hint: Option<String>| {
        let f = Failure::new(exit::INVALID, "not_finished", message);
        match hint {
            Some(h) => f.with_hint(h).report(),
            None => f.report(),
        }
    };
    if journal.rollback.is_some() {
        return refuse(
            format!("run {run_id} was rolled back: cleanup is for finished repairs"),
            Some(format!("`rescue rollback {run_id} --delete-created --include-snapshot --yes` deletes what the run created")),
        );
    }
    if journal.status != RunStatus::Succeeded {
        let next = crate::report::evidence::next_command(&journal)
            .map(|n| format!("next: `{}` ({})", n.command, n.why));
        return refuse(
            format!(
                "run {run_id} has not succeeded ({}): cleanup is for finished repairs",
                journal.status.as_str()
            ),
            next,
        );
    }
    if let Some(name) = &args.delete_old_disk {
        if !old_disks(&journal).iter().any(|d| {
            d.rsplit('/')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        }) {
            let olds: Vec<String> = old_disks(&journal)
                .iter()
                .map(|d| d.rsplit('/').next().unwrap_or(d).to_string())
                .collect();
            return Failure::usage(format!(
                "--delete-old-disk {name}: not an OS disk run {run_id} swapped out (that is: {})",
                olds.join(", ")
            ))
            .report();
        }
    }
    let connected = match super::connect_recorded(&mut journal, &run_dir, settings).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Ok(azure) = connected.env.azure().cloned() else {
        return Failure::new(
            exit::INVALID,
            "no_azure",
            format!("run {run_id} did not act on Azure: nothing to clean up"),
        )
        .report();
    };
    let found = match leftovers(&azure, &journal, args.delete_old_disk.as_deref()).await {
        Ok(found) => found,
        Err(e) => return Failure::new(exit::STEP_FAILED, "azure", e.to_string()).report(),
    };
    let structured = settings.json();
    if !structured {
        println!("run {run_id} left:");
        if found.is_empty() {
            println!("  nothing");
        }
        for l in &found {
            println!(
                "  {:<8} {}  ({}; {})",
                l.id.kind.noun(),
                l.id.name,
                l.what,
                l.kept.as_deref().unwrap_or("to delete")
            );
        }
    }
    let deletable: Vec<&Leftover> = found.iter().filter(|l| l.kept.is_none()).collect();
    if !deletable.is_empty() && !settings.yes && !crate::report::interactive() {
        return Failure::new(
            exit::INVALID,
            "needs_yes",
            "nothing was deleted: there is no terminal to confirm on",
        )
        .with_hint(format!(
            "to delete what is marked `to delete`, pass --yes: rescue cleanup {run_id} --yes"
        ))
        .report();
    }
    let mut failed = false;
    let mut deleted = Vec::new();
    for l in deletable {
        if !settings.yes
            && !crate::report::ask(&format!("Delete {} {}?", l.id.kind.noun(), l.id.name))
        {
            continue;
        }
        match delete(&azure, &l.id).await {
            Ok(()) => {
                if !structured {
                    eprintln!("deleted {} {}", l.id.kind.noun(), l.id.name);
                }
                deleted.push(l.id.to_string());
            }
            Err(e) => {
                super::output::note("error", &e.to_string());
                failed = true;
            }
        }
    }
    connected.close().await;
    drop(lock);
    if structured {
        let left: Vec<serde_json::Value> = found
            .iter()
            .map(|l| {
                let id = l.id.to_string();
                serde_json::json!({
                    "kind": l.id.kind.noun(),
                    "name": l.id.name,
                    "id": id,
                    "what": l.what,
                    "kept": l.kept,
                    "deleted": deleted.contains(&id),
                })
            })
            .collect();
        let doc = serde_json::json!({"format_version": 1, "run_id": run_id, "resources": left});
        if let Err(f) = super::output::document(&doc, String::new, None) {
            return f.report();
        }
    }
    if failed {
        ExitCode::from(exit::STEP_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}
