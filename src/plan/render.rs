//! The plan as text for people, as Terraform shows one: a line per change, marked `+` create,
//! `~` update, `-` delete, `>` action, `<=` read, then the totals. `verbose` adds each step's
//! arguments, notes and ARM calls. Warnings (what would stop the run) are always shown.

use std::fmt::Write;

use serde_json::Value;

use super::{Decision, Plan, PlannedArg, PlannedStep};

fn show(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "\"\"".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_arg(arg: &PlannedArg) -> String {
    match arg {
        PlannedArg::Value(v) => show(v),
        PlannedArg::KnownAfter(step) => format!("(known after step {step})"),
        PlannedArg::KnownAfterRun => "(known after the run)".into(),
    }
}

fn width<'a>(names: impl Iterator<Item = &'a String>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0)
}

/// "VM", "disk", "snapshot": the resource type as an engineer says it.
fn noun(resource_type: &str) -> &str {
    if resource_type.ends_with("virtualMachineScaleSets/virtualMachines") {
        return "instance";
    }
    match resource_type.rsplit('/').next().unwrap_or(resource_type) {
        "virtualMachines" => "VM",
        "agentPools" => "node pool",
        "Node" => "node",
        "disks" => "disk",
        "snapshots" => "snapshot",
        other => other,
    }
}

/// One line per change of `step`, or one `<=` line for a step that only reads.
fn change_lines(step: &PlannedStep, id_width: usize, out: &mut Vec<(String, String)>) {
    let asks = if step.confirm.is_some() {
        "  [asks first]"
    } else {
        ""
    };
    let Some(effect) = &step.effect else {
        out.push((
            "  ".into(),
            format!("{:<id_width$}  skipped ({})", step.id, condition_text(step)),
        ));
        return;
    };
    if effect.changes.is_empty() {
        let mark = if step.mutates { ">" } else { "<=" };
        out.push((
            mark.into(),
            format!("{:<id_width$}  {}{asks}", step.id, effect.summary),
        ));
        return;
    }
    for c in &effect.changes {
        out.push((
            c.kind.mark().to_string(),
            format!(
                "{:<id_width$}  {} {}  {}{asks}",
                step.id,
                noun(&c.resource_type),
                c.name,
                c.what
            ),
        ));
    }
}

fn condition_text(step: &PlannedStep) -> String {
    match &step.condition {
        None => String::new(),
        Some(c) => match (c.decision, &c.known_after) {
            (Decision::Runs, _) => format!("if {}: true now", c.expression.trim()),
            (Decision::Skipped, _) => format!("if {}: false now", c.expression.trim()),
            (Decision::AtRunTime, Some(after)) => {
                format!("if {}: decided after step {after}", c.expression.trim())
            }
            (Decision::AtRunTime, None) => {
                format!("if {}: decided at run time", c.expression.trim())
            }
        },
    }
}

/// The details `-v` adds under a step.
fn details(step: &PlannedStep, out: &mut String) {
    let indent = "        ";
    if let Some(name) = &step.name {
        let _ = writeln!(out, "{indent}{name}");
    }
    if step.condition.is_some() && step.effect.is_some() {
        let _ = writeln!(out, "{indent}{}", condition_text(step));
    }
    if let Some(effect) = &step.effect {
        for call in &effect.calls {
            let _ = writeln!(out, "{indent}  {call}");
        }
        for note in &effect.notes {
            let _ = writeln!(out, "{indent}  note: {note}");
        }
    }
    let mut marks = Vec::new();
    if step.max_attempts > 1 {
        marks.push(format!("up to {} attempts", step.max_attempts));
    }
    if let Some(timeout) = &step.timeout {
        marks.push(format!("timeout {timeout}"));
    }
    if !marks.is_empty() {
        let _ = writeln!(out, "{indent}  ({})", marks.join(", "));
    }
    let w = width(step.args.keys());
    for (name, arg) in &step.args {
        let value = show_arg(arg);
        let mut lines = value.lines();
        let _ = writeln!(out, "{indent}  {name:<w$}  {}", lines.next().unwrap_or(""));
        for line in lines {
            let _ = writeln!(out, "{indent}  {:<w$}  {line}", "");
        }
    }
}

/// The change lines, the read-only steps folded, then the totals.
fn body(plan: &Plan, verbose: bool, out: &mut String) {
    let id_width = width(plan.steps.iter().map(|s| &s.id));
    let mut reads: Vec<&str> = Vec::new();
    let flush = |reads: &mut Vec<&str>, out: &mut String| {
        if !reads.is_empty() {
            let _ = writeln!(out, "  <= {} (read only)", reads.join(", "));
            reads.clear();
        }
    };
    for step in &plan.steps {
        let read_only = !step.mutates
            && step
                .effect
                .as_ref()
                .is_some_and(|e| e.changes.is_empty() && e.warnings.is_empty());
        if read_only && !verbose {
            reads.push(&step.id);
            continue;
        }
        flush(&mut reads, out);
        let mut lines = Vec::new();
        change_lines(step, id_width, &mut lines);
        for (mark, line) in lines {
            let _ = writeln!(out, "  {mark:<2} {line}");
        }
        if let Some(needs) = &step.needs {
            let after = if needs.is_empty() {
                "nothing: starts at once".to_string()
            } else {
                needs.join(", ")
            };
            let _ = writeln!(out, "     after {after} (beside any step it does not need)");
        }
        if let Some(effect) = &step.effect {
            for warning in &effect.warnings {
                let _ = writeln!(out, "     ! {warning}");
            }
        }
        if verbose {
            details(step, out);
        }
    }
    flush(&mut reads, out);

    let t = &plan.totals;
    let _ = writeln!(
        out,
        "\nPlan: {} to add, {} to change, {} to destroy, {} action{}.",
        t.add,
        t.change,
        t.destroy,
        t.actions,
        if t.actions == 1 { "" } else { "s" }
    );
}

/// The plan as the go-ahead shows it: the changes and the totals, nothing else.
pub fn render_short(plan: &Plan) -> String {
    let mut out = String::from("\n");
    body(plan, false, &mut out);
    out.push('\n');
    out
}

/// `run_command` is the command that would run this plan, shown last.
pub fn render_text(plan: &Plan, run_command: &str, verbose: bool) -> String {
    let mut out = String::new();
    let wf = &plan.workflow;
    let _ = writeln!(out, "Plan for {} ({})", wf.name, wf.path);
    if let Some(target) = &plan.target {
        let _ = writeln!(out, "Target: {target}");
    }
    if verbose {
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
    }
    if !plan.inputs.is_empty() {
        let shown: Vec<String> = plan
            .inputs
            .iter()
            .filter(|(_, v)| !matches!(v, Value::String(s) if s.is_empty()))
            .map(|(k, v)| format!("{k}={}", show(v)))
            .collect();
        let _ = writeln!(out, "Inputs: {}", shown.join(", "));
    }
    out.push('\n');

    body(plan, verbose, &mut out);
    if !plan.outputs.is_empty() {
        let _ = writeln!(out, "\nOutputs:");
        let w = width(plan.outputs.keys());
        for (name, value) in &plan.outputs {
            let _ = writeln!(out, "  {name:<w$}  {}", show_arg(value));
        }
    }
    let _ = writeln!(out, "\nNothing was changed. To run it: {run_command}");
    if !verbose {
        let _ = writeln!(
            out,
            "(-v shows each step's arguments, notes and Azure calls)"
        );
    }
    out
}
