//! `rescue status RUN_ID`: the steps of a run, their durations, outputs and errors.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use time::{macros::format_description, OffsetDateTime};

use super::settings::StateArgs;
use super::{Flags, Settings};
use crate::engine::journal::{Journal, RunStatus, StepRecord, StepStatus};
use crate::exit;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The run to show (see `rescue runs`).
    pub run_id: String,
    #[command(flatten)]
    pub state: StateArgs,
}

impl StatusArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            ..Flags::default()
        }
    }
}

pub fn run(args: &StatusArgs, settings: &Settings) -> ExitCode {
    let (_, run_dir) = match super::find_run(settings, &args.run_id) {
        Ok(found) => found,
        Err(code) => return code,
    };
    let mut journal = match Journal::load(&run_dir) {
        Ok(j) => j,
        Err(e) => return super::Failure::from_error(&e).report(),
    };
    let holder = match super::run_store(settings) {
        Ok(store) => store.holder(&journal.run_id),
        Err(code) => return code,
    };
    // Through the record, which has no place for secrets an older journal may hold.
    if let Ok(Some(target)) = super::target::TargetRecord::from_value(&journal.target) {
        journal.target = target.to_value();
    }
    let mut value = serde_json::to_value(&journal).expect("journal serializes");
    value["running"] = serde_json::json!(holder.is_some());
    value["held_by"] = serde_json::json!(holder);
    value["next"] = serde_json::json!(
        crate::report::evidence::next_command(&journal).filter(|_| holder.is_none())
    );
    value["situation"] = serde_json::json!(crate::report::evidence::situation(&journal));
    match super::output::document(&value, || render(&journal, holder.as_ref()), None) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(f) => f.report(),
    }
}

/// A value under its key, indented: one line as it is, several (a script's output) below it.
fn field(key: &str, value: &Value, indent: &str) -> String {
    let text = show(value);
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(first), None) => format!("{indent}{key} = {first}\n"),
        (None, _) => format!("{indent}{key} = \n"),
        (Some(_), Some(_)) => {
            let mut out = format!("{indent}{key}:\n");
            for line in text.lines() {
                out.push_str(&format!("{indent}  | {line}\n"));
            }
            out
        }
    }
}

pub fn render(j: &Journal, holder: Option<&crate::engine::lock::Holder>) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("run       {}", j.run_id));
    line(format!("workflow  {}", j.workflow.path.display()));
    let status = match holder {
        Some(h) => format!(
            "{} (running now: process {} on {} since {})",
            j.status.as_str(),
            h.pid,
            h.host,
            utc_time(h.started)
        ),
        None if j.status == RunStatus::Running => {
            "stopped while running (the process died; resume reconciles the step in flight)"
                .to_string()
        }
        None => j.status.as_str().to_string(),
    };
    line(format!("status    {status}"));
    line(format!("target    {}", target_line(&j.target)));
    if let Some(rollback) = &j.rollback {
        let status = match rollback.status {
            crate::engine::rollback::RollbackStatus::Succeeded => "rolled back".to_string(),
            crate::engine::rollback::RollbackStatus::Running => format!(
                "rollback interrupted (run `rescue rollback {} --yes` again)",
                j.run_id
            ),
            crate::engine::rollback::RollbackStatus::Failed => format!(
                "rollback failed (fix the cause, run `rescue rollback {} --yes` again)",
                j.run_id
            ),
        };
        line(format!(
            "rollback  {status}, started {}",
            utc_time(rollback.started)
        ));
    }
    line(format!(
        "started   {}   updated {}",
        utc_time(j.created),
        utc_time(j.updated)
    ));
    line(String::new());
    let width = j.steps.iter().map(|s| s.id.len()).max().unwrap_or(4);
    for step in &j.steps {
        line(format!(
            "{} {:<width$}  {:<9} {:>8}  {}",
            mark(step.status),
            step.id,
            step.status.as_str(),
            duration(step),
            step.uses
        ));
        if step.attempts > 1 {
            line(format!("    attempts: {}", step.attempts));
        }
        for (key, value) in &step.outputs {
            out_field(&mut line, key, value, "    ");
        }
        if let Some(err) = &step.error {
            line(format!(
                "    error: {}",
                err.message.replace('\n', "\n    ")
            ));
            if let Some(hint) = &err.hint {
                line(format!("    hint: {hint}"));
            }
        }
    }
    if !j.resources.is_empty() {
        line(String::new());
        line("resources recorded:".into());
        for r in &j.resources {
            line(format!(
                "  {} {} (step {})",
                r.resource.kind, r.resource.id, r.step
            ));
        }
    }
    if !j.outputs.is_empty() {
        line(String::new());
        line("outputs:".into());
        for (key, value) in &j.outputs {
            out_field(&mut line, key, value, "  ");
        }
    }
    let situation = crate::report::evidence::situation(j);
    if !situation.is_empty() && j.status != RunStatus::Succeeded {
        line(String::new());
        line("where things stand:".into());
        for s in situation {
            line(format!("  - {s}"));
        }
    }
    match (holder, crate::report::evidence::next_command(j)) {
        (Some(h), _) => {
            line(String::new());
            line(format!(
                "it is running in process {} on {}: wait for it (`rescue status {}` again), or stop it with Ctrl-C there",
                h.pid, h.host, j.run_id
            ));
        }
        (None, Some(next)) => {
            line(String::new());
            line(format!("next: {}   ({})", next.command, next.why));
        }
        (None, None) => {}
    }
    out
}

fn out_field(line: &mut impl FnMut(String), key: &str, value: &Value, indent: &str) {
    line(field(key, value, indent).trim_end_matches('\n').to_string());
}

/// Where the run acts, in words.
pub(crate) fn target_line(target: &Value) -> String {
    use super::target::TargetRecord;
    match TargetRecord::from_value(target) {
        Ok(None) => "not recorded".into(),
        Err(e) => format!("unreadable: {e}"),
        Ok(Some(TargetRecord::Azure {
            subscription,
            cloud,
        })) => {
            let cloud = cloud.unwrap_or_else(|| "AzureCloud".into());
            match subscription {
                Some(s) => format!("Azure ({cloud}), subscription {s}"),
                None => format!("Azure ({cloud}), no subscription given"),
            }
        }
        Ok(Some(TargetRecord::Emulator { endpoint, .. })) => format!("the emulator at {endpoint}"),
        Ok(Some(TargetRecord::InProcessEmulator { data_dir, port, .. })) => format!(
            "the emulator inside rescue ({}{})",
            data_dir.display(),
            port.map(|p| format!(", port {p}")).unwrap_or_default()
        ),
    }
}

fn mark(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Succeeded => "✔",
        StepStatus::Failed => "✘",
        StepStatus::Running => "…",
        StepStatus::Skipped => "-",
        StepStatus::Pending => "·",
    }
}

fn duration(step: &StepRecord) -> String {
    match (step.started, step.ended) {
        (Some(start), Some(end)) => {
            let ms = (end - start).whole_milliseconds().max(0) as u64;
            crate::report::secs(ms)
        }
        _ => String::new(),
    }
}

/// A value as one line: strings bare, the rest as JSON.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn utc_time(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second]Z"
    ))
    .expect("static format")
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("valid time")
}
