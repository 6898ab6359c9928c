//! `rescue status RUN_ID`: the steps of a run, their durations, outputs and errors.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use time::{macros::format_description, OffsetDateTime};

use super::settings::{OutputArgs, StateArgs};
use super::{Flags, Settings};
use crate::engine::journal::{Journal, RunStatus, StepRecord, StepStatus};
use crate::engine::store::Store;
use crate::exit;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The run to show (see `rescue runs`).
    pub run_id: String,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

impl StatusArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags {
            state: Some(&self.state),
            output: Some(&self.output),
            ..Flags::default()
        }
    }
}

pub fn run(args: &StatusArgs, settings: &Settings) -> ExitCode {
    let (run_id, json) = (args.run_id.as_str(), settings.json());
    let store = Store::new(settings.state_dir.clone());
    let journal = match store
        .existing_run(run_id)
        .and_then(|dir| Journal::load(&dir))
    {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::INVALID);
        }
    };
    if json {
        let mut journal = journal;
        // Through the record, which has no place for secrets an older journal may hold.
        if let Ok(Some(target)) = super::target::TargetRecord::from_value(&journal.target) {
            journal.target = target.to_value();
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&journal).expect("journal serializes")
        );
    } else {
        print!("{}", render(&journal));
    }
    ExitCode::from(exit::SUCCESS)
}

pub fn render(j: &Journal) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("run       {}", j.run_id));
    line(format!("workflow  {}", j.workflow.path.display()));
    line(format!("status    {}", j.status.as_str()));
    line(format!("target    {}", target_line(&j.target)));
    if let Some(rollback) = &j.rollback {
        let status = match rollback.status {
            crate::engine::rollback::RollbackStatus::Succeeded => "rolled back",
            crate::engine::rollback::RollbackStatus::Running => {
                "rollback interrupted (run `rescue rollback RUN_ID --yes` again)"
            }
            crate::engine::rollback::RollbackStatus::Failed => {
                "rollback failed (fix the cause, run `rescue rollback RUN_ID --yes` again)"
            }
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
            line(format!("    {key} = {}", show(value)));
        }
        if let Some(err) = &step.error {
            line(format!("    error: {}", err.message));
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
            line(format!("  {key} = {}", show(value)));
        }
    }
    if j.status != RunStatus::Succeeded {
        line(String::new());
        line(format!("continue with: rescue resume {}", j.run_id));
    }
    out
}

/// Where the run acts, in words.
fn target_line(target: &Value) -> String {
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
