//! The plan as text for people: aligned, one block per step.

use std::fmt::Write;

use serde_json::Value;

use super::{Decision, Plan, PlannedArg};

fn show(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "\"\"".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn width<'a>(names: impl Iterator<Item = &'a String>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0)
}

/// `run_command` is the command that would run this plan, shown in the footer.
pub fn render_text(plan: &Plan, run_command: &str) -> String {
    let mut out = String::new();
    let wf = &plan.workflow;
    let _ = writeln!(out, "Plan: {} ({})", wf.name, wf.path);
    if let Some(description) = &wf.description {
        for line in textwrap::wrap(
            description.trim(),
            textwrap::Options::new(96)
                .initial_indent("  ")
                .subsequent_indent("  "),
        ) {
            let _ = writeln!(out, "{line}");
        }
    }

    if !plan.inputs.is_empty() {
        let _ = writeln!(out, "\nInputs:");
        let w = width(plan.inputs.keys());
        for (name, value) in &plan.inputs {
            let _ = writeln!(out, "  {name:<w$}  {}", show(value));
        }
    }

    let _ = writeln!(out, "\nSteps:");
    let number_width = plan.steps.len().to_string().len();
    let id_width = width(plan.steps.iter().map(|s| &s.id));
    let uses_width = width(plan.steps.iter().map(|s| &s.uses));
    let indent = " ".repeat(2 + number_width + 2);
    for (i, step) in plan.steps.iter().enumerate() {
        let mut marks = Vec::new();
        if step.mutates {
            marks.push(changes(&step.uses).to_string());
        }
        if step.confirm.is_some() {
            marks.push("asks first".to_string());
        }
        if step.max_attempts > 1 {
            marks.push(format!("up to {} attempts", step.max_attempts));
        }
        if let Some(timeout) = &step.timeout {
            marks.push(format!("timeout {timeout}"));
        }
        let marks = if marks.is_empty() {
            String::new()
        } else {
            format!("  [{}]", marks.join(", "))
        };
        let line = format!(
            "  {:>number_width$}  {:<id_width$}  {:<uses_width$}{marks}",
            i + 1,
            step.id,
            step.uses
        );
        let _ = writeln!(out, "{}", line.trim_end());
        if let Some(name) = &step.name {
            let _ = writeln!(out, "{indent}{name}");
        }
        if let Some(condition) = &step.condition {
            let decided = match (condition.decision, &condition.known_after) {
                (Decision::Runs, _) => "true now: runs".to_string(),
                (Decision::Skipped, _) => "false now: skipped".to_string(),
                (Decision::AtRunTime, Some(after)) => {
                    format!("decided at run time, after step {after}")
                }
                (Decision::AtRunTime, None) => "decided at run time".to_string(),
            };
            let _ = writeln!(
                out,
                "{indent}if: {} ({decided})",
                condition.expression.trim()
            );
        }
        match &step.effect {
            Some(effect) => {
                let _ = writeln!(out, "{indent}→ {}", effect.summary);
                for call in &effect.calls {
                    let _ = writeln!(out, "{indent}    {call}");
                }
                for note in &effect.notes {
                    let _ = writeln!(out, "{indent}  note: {note}");
                }
            }
            None => {
                let _ = writeln!(out, "{indent}→ skipped");
            }
        }
        if let Some(question) = &step.confirm {
            let _ = writeln!(out, "{indent}confirm: {question}");
        }
        let w = width(step.args.keys());
        for (name, arg) in &step.args {
            let value = match arg {
                PlannedArg::Value(v) => show(v),
                PlannedArg::KnownAfter(step) => format!("(known after step {step})"),
            };
            let mut lines = value.lines();
            let first = lines.next().unwrap_or("");
            let _ = writeln!(out, "{indent}  {name:<w$}  {first}");
            for line in lines {
                let _ = writeln!(out, "{indent}  {:<w$}  {line}", "");
            }
        }
    }

    if !plan.outputs.is_empty() {
        let _ = writeln!(out, "\nOutputs (known after the run):");
        let w = width(plan.outputs.keys());
        for (name, expression) in &plan.outputs {
            let _ = writeln!(out, "  {name:<w$}  {expression}");
        }
    }

    let n = plan.steps.len();
    let m = plan.mutating_steps;
    let (n_s, m_s) = (if n == 1 { "" } else { "s" }, if m == 1 { "s" } else { "" });
    let effect = if plan
        .steps
        .iter()
        .filter(|s| s.mutates)
        .all(|s| s.uses.starts_with("azure."))
    {
        format!("change{m_s} Azure")
    } else {
        format!("make{m_s} changes")
    };
    let _ = writeln!(
        out,
        "\n{n} step{n_s}, {m} {effect}; run with `{run_command}`"
    );
    out
}

/// What a mutating step changes, by its action's family.
fn changes(uses: &str) -> &'static str {
    if uses.starts_with("azure.") {
        "changes Azure"
    } else {
        "makes changes"
    }
}
