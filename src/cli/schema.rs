//! `rescue schema`: the JSON Schema of workflow files.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use crate::actions::Registry;
use crate::exit;

#[derive(Args, Debug)]
pub struct SchemaArgs {}

pub fn run(_args: &SchemaArgs) -> ExitCode {
    let schema = crate::workflow::schema::json_schema(&Registry::builtin());
    // A closed pipe (`rescue schema | head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        serde_json::to_string_pretty(&schema).expect("JSON")
    );
    ExitCode::from(exit::SUCCESS)
}
