//! The evidence of a run, for the incident ticket: built from the journal alone (so it can be
//! rebuilt at any time), written as `report.md` and `report.json` in the run directory when a
//! run ends, printed by `rescue report`. It also gives the end-of-run summary and the
//! situation a failed run leaves (what is down, locked, attached), so that the screen, the
//! report and the JSON say the same.
//!
//! What each action left is read from the journal by the action's name in one table
//! ([`LEAVES`]): a step that succeeded left its effect until its counterpart succeeded.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::engine::journal::{Journal, RunStatus, StepRecord, StepStatus};

/// Bumped when the JSON shape changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;
pub const MARKDOWN: &str = "report.md";
pub const JSON: &str = "report.json";
/// The full fsck log the fsck step saves in the run directory, when it does.
pub const FSCK_LOG: &str = "fsck.log";

#[derive(Clone, Debug, Serialize)]
pub struct Evidence {
    pub format_version: u32,
    pub run_id: String,
    pub workflow: String,
    pub status: String,
    /// Where it acted, in words.
    pub target: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended: Option<OffsetDateTime>,
    pub total_ms: u64,
    /// The VM being repaired (name), when the run names one.
    pub vm: Option<String>,
    pub timeline: Vec<TimelineStep>,
    pub downtime: Option<Downtime>,
    pub disks: Vec<DiskRole>,
    pub verdicts: Vec<Verdict>,
    /// The full fsck log in the run directory, when the fsck step saved it.
    pub fsck_log: Option<PathBuf>,
    /// What the run leaves as it is now: the VM down, the lock held, the copy attached.
    pub situation: Vec<String>,
    /// The command that fits now, and why; none when nothing is left to do.
    pub next: Option<NextCommand>,
    /// Later commands worth knowing (cleanup after a repair).
    pub then: Vec<NextCommand>,
    pub journal: PathBuf,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimelineStep {
    pub id: String,
    pub uses: String,
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended: Option<OffsetDateTime>,
    pub duration_ms: Option<u64>,
    pub attempts: u32,
    /// The mutating Azure requests, with their correlation and operation ids.
    pub calls: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Downtime {
    /// When the VM was taken down (the deallocate request).
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// When its agent reported Ready again; None while it is still down.
    #[serde(with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Until Ready, or until the last journal write while still down.
    pub ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DiskRole {
    /// `original`, `snapshot`, `repaired copy`.
    pub role: &'static str,
    pub name: String,
    pub id: String,
    /// Where it stands now: "kept (safety copy)", "the VM's OS disk now", ...
    pub state: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub step: String,
    pub verdict: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NextCommand {
    pub command: String,
    pub why: String,
}

/// What a succeeded action leaves until its counterpart succeeds: (action, counterpart, what
/// it is, in words, with `{vm}` the step's VM and `{disk}` its disk).
const LEAVES: &[(&str, &str, &str)] = &[
    (
        "azure.vm.deallocate",
        "azure.vm.start",
        "VM {vm} is deallocated (down)",
    ),
    (
        "azure.vm.lock",
        "azure.vm.unlock",
        "VM {vm} is locked by this run (tag rescue-run); another run of it is refused",
    ),
    (
        "azure.vm.attach_disk",
        "azure.vm.detach_disk",
        "disk {disk} is attached to VM {vm}",
    ),
];

fn succeeded<'j>(journal: &'j Journal, uses: &'j str) -> impl Iterator<Item = &'j StepRecord> + 'j {
    journal
        .steps
        .iter()
        .filter(move |s| s.uses == uses && s.status == StepStatus::Succeeded)
}

fn first_done<'j>(journal: &'j Journal, uses: &'j str) -> Option<&'j StepRecord> {
    succeeded(journal, uses).next()
}

fn text<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn name_of(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

/// The situation the run leaves, from which steps succeeded.
pub fn situation(journal: &Journal) -> Vec<String> {
    let mut out = Vec::new();
    for (action, counterpart, what) in LEAVES {
        for step in succeeded(journal, action) {
            let vm = text(&step.args, "vm").unwrap_or("?");
            let undone = journal.steps.iter().any(|s| {
                s.uses == *counterpart
                    && s.status == StepStatus::Succeeded
                    && text(&s.args, "vm") == Some(vm)
            });
            if undone {
                continue;
            }
            let disk = text(&step.args, "disk_id").map(name_of).unwrap_or_default();
            let lun = step
                .outputs
                .get("lun")
                .map(|l| format!(" at LUN {l}"))
                .unwrap_or_default();
            let mut line = what.replace("{vm}", vm).replace("{disk}", &disk);
            if *action == "azure.vm.attach_disk" {
                line.push_str(&lun);
            }
            out.push(line);
        }
    }
    if let Some(swap) = first_done(journal, "azure.vm.swap_os_disk") {
        let vm = text(&swap.args, "vm").unwrap_or("?");
        let new = text(&swap.outputs, "new_disk_id")
            .map(name_of)
            .unwrap_or_default();
        out.push(format!(
            "VM {vm} boots from the repaired copy {new}; the original disk is kept"
        ));
    }
    if journal.rollback.is_some() {
        out.clear();
    }
    out
}

/// The one command that fits a run as its journal stands, and why.
pub fn next_command(journal: &Journal) -> Option<NextCommand> {
    let id = &journal.run_id;
    if let Some(rollback) = &journal.rollback {
        use crate::engine::rollback::RollbackStatus;
        return (rollback.status != RollbackStatus::Succeeded).then(|| NextCommand {
            command: format!("rescue rollback {id} --yes"),
            why: "the rollback stopped midway; running it again continues it".into(),
        });
    }
    if journal.status == RunStatus::Succeeded {
        return None;
    }
    let failed = journal
        .steps
        .iter()
        .find(|s| s.status == StepStatus::Failed);
    let error = failed.and_then(|s| s.error.as_ref());
    // Refused before any change: nothing to continue; the message says what to fix.
    if error.is_some_and(|e| e.refused || e.locked) {
        return None;
    }
    let rollback = error
        .and_then(|e| e.hint.as_deref())
        .is_some_and(|h| h.contains("rescue rollback"));
    Some(if rollback {
        NextCommand {
            command: format!("rescue rollback {id} --yes"),
            why: "the step cannot succeed by trying again; rollback undoes what the run did (the original disk is kept)".into(),
        }
    } else {
        NextCommand {
            command: format!("rescue resume {id}"),
            why: "it continues from the first step not done; steps done are not repeated".into(),
        }
    })
}

/// The disks of a repair and what each is now.
fn disks(journal: &Journal) -> Vec<DiskRole> {
    let swapped = first_done(journal, "azure.vm.swap_os_disk").is_some();
    let mut out = Vec::new();
    let mut push = |role, id: &str, state: &str| {
        out.push(DiskRole {
            role,
            name: name_of(id),
            id: id.to_string(),
            state: state.to_string(),
        })
    };
    if let Some(id) =
        first_done(journal, "azure.vm.inspect").and_then(|s| text(&s.outputs, "os_disk_id"))
    {
        let state = if swapped {
            "swapped out, kept unchanged (delete it with `rescue cleanup` once sure)"
        } else {
            "the VM's OS disk, never modified"
        };
        push("original", id, state);
    }
    let created = |uses: &str, kind: &str| {
        first_done(journal, uses)
            .and_then(|s| text(&s.outputs, "id").map(str::to_string))
            .or_else(|| {
                journal
                    .resources
                    .iter()
                    .find(|r| r.resource.kind == kind)
                    .map(|r| r.resource.id.clone())
            })
    };
    if let Some(id) = created("azure.snapshot.create", "snapshot") {
        push("snapshot", &id, "kept as the safety copy");
    }
    if let Some(id) = created("azure.disk.create_from_snapshot", "disk") {
        let state = if swapped {
            "the VM's OS disk now"
        } else {
            "not in use by the VM"
        };
        push("repaired copy", &id, state);
    }
    out
}

/// Deallocation to agent Ready.
fn downtime(journal: &Journal) -> Option<Downtime> {
    let down = first_done(journal, "azure.vm.deallocate").or_else(|| {
        journal
            .steps
            .iter()
            .find(|s| s.uses == "azure.vm.deallocate" && s.started.is_some())
    })?;
    let from = down
        .calls
        .first()
        .and_then(|c| c.get("time"))
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .or(down.started)?;
    let until = first_done(journal, "azure.vm.wait_healthy").and_then(|s| s.ended);
    let end = until.unwrap_or(journal.updated);
    Some(Downtime {
        from,
        until,
        ms: (end - from).whole_milliseconds().max(0) as u64,
    })
}

impl Evidence {
    pub fn build(journal: &Journal, run_dir: &Path, target: String) -> Evidence {
        let timeline = journal
            .steps
            .iter()
            .map(|s| TimelineStep {
                id: s.id.clone(),
                uses: s.uses.clone(),
                status: s.status.as_str().to_string(),
                started: s.started,
                ended: s.ended,
                duration_ms: match (s.started, s.ended) {
                    (Some(a), Some(b)) => Some((b - a).whole_milliseconds().max(0) as u64),
                    _ => None,
                },
                attempts: s.attempts,
                calls: s.calls.clone(),
                error: s.error.as_ref().map(|e| e.message.clone()),
            })
            .collect();
        let verdicts = journal
            .steps
            .iter()
            .filter_map(|s| {
                let verdict = text(&s.outputs, "verdict")?;
                Some(Verdict {
                    step: s.id.clone(),
                    verdict: verdict.to_string(),
                })
            })
            .collect();
        let vm = first_done(journal, "azure.vm.inspect")
            .and_then(|s| text(&s.args, "vm").map(str::to_string))
            .or_else(|| {
                journal
                    .steps
                    .iter()
                    .find_map(|s| text(&s.args, "vm").map(str::to_string))
            });
        let mut then = Vec::new();
        if journal.status == RunStatus::Succeeded
            && journal.rollback.is_none()
            && !disks(journal).is_empty()
        {
            // A run that swapped a disk leaves the old one and can be undone; one that only
            // kept a copy (a replaced AKS node, gone with its disk) leaves just that copy.
            let swapped = first_done(journal, "azure.vm.swap_os_disk").is_some();
            then.push(NextCommand {
                command: format!("rescue cleanup {}", journal.run_id),
                why: if swapped {
                    "once the VM is confirmed healthy: lists the snapshot and the old disk, and deletes what you confirm"
                } else {
                    "once the forensic copy is no longer needed: lists what the run left (its snapshot), and deletes what you confirm"
                }
                .into(),
            });
            if swapped {
                then.push(NextCommand {
                    command: format!("rescue rollback {} --dry-run", journal.run_id),
                    why: "if the repaired VM misbehaves: what undoing the repair would do".into(),
                });
            }
        }
        let status = match &journal.rollback {
            Some(r) if r.status == crate::engine::rollback::RollbackStatus::Succeeded => {
                "rolled back".to_string()
            }
            Some(_) => "rollback unfinished".to_string(),
            None => journal.status.as_str().to_string(),
        };
        let ended = journal.steps.iter().filter_map(|s| s.ended).max();
        Evidence {
            format_version: FORMAT_VERSION,
            run_id: journal.run_id.clone(),
            workflow: journal.workflow.path.display().to_string(),
            status,
            target,
            started: journal.created,
            ended,
            total_ms: (journal.updated - journal.created)
                .whole_milliseconds()
                .max(0) as u64,
            vm,
            timeline,
            downtime: downtime(journal),
            disks: disks(journal),
            verdicts,
            fsck_log: Some(run_dir.join(FSCK_LOG)).filter(|p| p.is_file()),
            situation: situation(journal),
            next: next_command(journal),
            then,
            journal: Journal::path(run_dir),
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("the evidence serializes")
    }

    /// The report as Markdown, for pasting into a ticket.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# rescue run {}\n", self.run_id);
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| workflow | `{}` |", self.workflow);
        let _ = writeln!(md, "| result | **{}** |", self.status);
        let _ = writeln!(md, "| target | {} |", self.target);
        if let Some(vm) = &self.vm {
            let _ = writeln!(md, "| VM | `{vm}` |");
        }
        let _ = writeln!(md, "| started | {} |", stamp(self.started));
        if let Some(ended) = self.ended {
            let _ = writeln!(md, "| ended | {} |", stamp(ended));
        }
        let _ = writeln!(md, "| total time | {} |", super::secs(self.total_ms));
        if let Some(d) = &self.downtime {
            let _ = writeln!(md, "| VM downtime | {} |", downtime_text(d));
        }
        let _ = writeln!(md, "| journal | `{}` |", self.journal.display());

        if !self.situation.is_empty() || self.next.is_some() {
            let _ = writeln!(md, "\n## Where things stand\n");
            for line in &self.situation {
                let _ = writeln!(md, "- {line}");
            }
            if let Some(next) = &self.next {
                let _ = writeln!(md, "\nNext: `{}` ({})", next.command, next.why);
            }
        }

        if !self.disks.is_empty() {
            let _ = writeln!(
                md,
                "\n## Disks\n\n| role | name | now | id |\n|---|---|---|---|"
            );
            for d in &self.disks {
                let _ = writeln!(
                    md,
                    "| {} | `{}` | {} | `{}` |",
                    d.role, d.name, d.state, d.id
                );
            }
        }

        if !self.verdicts.is_empty() || self.fsck_log.is_some() {
            let _ = writeln!(md, "\n## fsck\n");
            for v in &self.verdicts {
                let _ = writeln!(md, "- step `{}`: verdict **{}**", v.step, v.verdict);
            }
            if let Some(log) = &self.fsck_log {
                let _ = writeln!(md, "- full log: [{FSCK_LOG}]({})", log.display());
            }
        }

        let _ = writeln!(
            md,
            "\n## Timeline (UTC)\n\n| step | action | status | start | end | duration | Azure requests (correlation id, operation id) |\n|---|---|---|---|---|---|---|"
        );
        for s in &self.timeline {
            let calls: Vec<String> = s
                .calls
                .iter()
                .map(|c| {
                    let get = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                    let status = c.get("status").map(|s| s.to_string()).unwrap_or("-".into());
                    format!(
                        "{} {} → {status}, correlation `{}`, operation `{}`",
                        get("method"),
                        name_of(&get("path")),
                        get("correlation_id"),
                        get("operation_id")
                    )
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | `{}` | {}{} | {} | {} | {} | {} |",
                s.id,
                s.uses,
                s.status,
                if s.attempts > 1 {
                    format!(" ({} attempts)", s.attempts)
                } else {
                    String::new()
                },
                s.started.map(clock).unwrap_or_default(),
                s.ended.map(clock).unwrap_or_default(),
                s.duration_ms.map(super::secs).unwrap_or_default(),
                calls.join("<br>")
            );
        }
        let errors: Vec<&TimelineStep> =
            self.timeline.iter().filter(|s| s.error.is_some()).collect();
        if !errors.is_empty() {
            let _ = writeln!(md, "\n## Errors\n");
            for s in errors {
                let _ = writeln!(
                    md,
                    "- step `{}`:\n\n```\n{}\n```",
                    s.id,
                    s.error.as_deref().unwrap_or_default()
                );
            }
        }
        if !self.then.is_empty() {
            let _ = writeln!(md, "\n## Next commands\n");
            for n in &self.then {
                let _ = writeln!(md, "- `{}`: {}", n.command, n.why);
            }
        }
        md
    }

    /// Writes `report.md` and `report.json` into the run directory.
    pub fn write(&self, run_dir: &Path) -> anyhow::Result<()> {
        crate::engine::journal::write_file_durably(
            &run_dir.join(JSON),
            (serde_json::to_string_pretty(&self.to_json())? + "\n").as_bytes(),
        )?;
        crate::engine::journal::write_file_durably(
            &run_dir.join(MARKDOWN),
            self.markdown().as_bytes(),
        )
    }
}

pub fn downtime_text(d: &Downtime) -> String {
    match d.until {
        Some(_) => format!(
            "{} (deallocated {} → agent Ready {})",
            super::secs(d.ms),
            clock(d.from),
            d.until.map(clock).unwrap_or_default()
        ),
        None => format!(
            "still down, since {} ({} so far)",
            clock(d.from),
            super::secs(d.ms)
        ),
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `13:24:31.2`: steps of a rehearsal last about a second.
pub fn clock(t: OffsetDateTime) -> String {
    format!(
        "{:02}:{:02}:{:02}.{}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond() / 100
    )
}
