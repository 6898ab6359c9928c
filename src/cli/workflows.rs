//! `rescue workflows`: the built-in workflows with what each is for and its inputs;
//! `rescue workflows show NAME` prints one, to copy and edit.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{Flags, Settings};
use crate::actions::Registry;
use crate::exit;
use crate::workflow::{builtin, Origin, Workflow};

#[derive(Args, Debug)]
pub struct WorkflowsArgs {
    #[command(subcommand)]
    pub command: Option<WorkflowsCommand>,
}

#[derive(Subcommand, Debug)]
pub enum WorkflowsCommand {
    /// Print a built-in workflow's YAML (e.g. to save it as your own and edit it).
    #[command(after_help = "Example:\n  rescue workflows show os-disk-swap > my-repair.yaml")]
    Show {
        /// The built-in's name (see `rescue workflows`).
        name: String,
    },
}

impl WorkflowsArgs {
    pub fn flags(&self) -> Flags<'_> {
        Flags { ..Flags::default() }
    }
}

pub fn run(args: &WorkflowsArgs, settings: &Settings) -> ExitCode {
    match &args.command {
        Some(WorkflowsCommand::Show { name }) => show(name),
        None => list(settings),
    }
}

fn show(name: &str) -> ExitCode {
    match builtin::find(name) {
        Some(b) => {
            // A closed pipe (`| head`) is not worth a panic.
            let _ = std::io::stdout().write_all(b.text.as_bytes());
            ExitCode::from(exit::SUCCESS)
        }
        None => super::report_invalid(&builtin::not_found(name, "not a built-in workflow").into()),
    }
}

fn list(_settings: &Settings) -> ExitCode {
    let registry = Registry::builtin();
    let mut loaded = Vec::new();
    for b in builtin::all() {
        match crate::workflow::load(&Origin::Builtin(b.name.to_string()), &registry) {
            Ok(wf) => loaded.push((b, wf)),
            // A built-in is checked by the tests; one that fails here is this build's bug.
            Err(problems) => return super::report_invalid(&problems),
        }
    }
    let list: Vec<Value> = loaded.iter().map(|(b, wf)| entry(b.name, wf)).collect();
    let doc = json!({"format_version": 1, "workflows": list});
    let text = || {
        loaded
            .iter()
            .map(|(b, wf)| text_entry(b.name, wf))
            .collect::<Vec<_>>()
            .join("\n")
            + "\nrun one with `rescue run NAME --input NAME=VALUE ...`; copy one with `rescue workflows show NAME > FILE`\n"
    };
    let table = || {
        let w = loaded
            .iter()
            .map(|(b, _)| b.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut out = format!("{:<w$}  {:<40}  SUMMARY\n", "NAME", "REQUIRED INPUTS");
        for (b, wf) in &loaded {
            let required: Vec<&str> = wf
                .inputs
                .iter()
                .filter(|(_, i)| i.required && i.default.is_none())
                .map(|(n, _)| n.as_str())
                .collect();
            out.push_str(&format!(
                "{:<w$}  {:<40}  {}\n",
                b.name,
                required.join(", "),
                summary(wf)
            ));
        }
        out
    };
    match super::output::document(&doc, text, Some(&table)) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(f) => f.report(),
    }
}

/// The description up to its first sentence or colon: what fits on the listing's line.
fn summary(wf: &Workflow) -> String {
    let text = wf.description.as_deref().unwrap_or("").trim();
    let end = text
        .match_indices(['.', ':'])
        .map(|(i, _)| i)
        .find(|&i| text[i + 1..].starts_with(char::is_whitespace) || i + 1 == text.len())
        .unwrap_or(text.len());
    text[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

fn entry(name: &str, wf: &Workflow) -> Value {
    let inputs: Vec<Value> = wf
        .inputs
        .iter()
        .map(|(input_name, input)| {
            json!({
                "name": input_name,
                "type": input.ty.to_string(),
                "values": input.values,
                "required": input.required && input.default.is_none(),
                "default": input.default.as_ref().map(|d| d.value.clone()),
                "description": input.description,
            })
        })
        .collect();
    json!({
        "name": name,
        "summary": summary(wf),
        "description": wf.description,
        "inputs": inputs,
    })
}

fn text_entry(name: &str, wf: &Workflow) -> String {
    let mut rows: Vec<[String; 4]> = wf
        .inputs
        .iter()
        .map(|(input_name, input)| {
            let ty = match input.values.as_slice() {
                [] => input.ty.to_string(),
                values => values.join("|"),
            };
            let need = match &input.default {
                Some(d) if d.value == Value::String(String::new()) => "optional".to_string(),
                Some(d) => format!("default {}", super::status::show(&d.value)),
                None if input.required => "required".to_string(),
                None => "optional".to_string(),
            };
            let about = input.description.clone().unwrap_or_default();
            [input_name.clone(), ty, need, about]
        })
        .collect();
    // What must be given comes first.
    rows.sort_by_key(|r| r[2] != "required");
    let width = |i: usize| rows.iter().map(|r| r[i].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut out = format!("{name}\n  {}\n  inputs:\n", summary(wf));
    for [input_name, ty, need, about] in &rows {
        let line = format!("    {input_name:<w0$}  {ty:<w1$}  {need:<w2$}  {about}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
