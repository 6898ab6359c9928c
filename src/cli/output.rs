//! The one output contract, as azure-cli keeps it: `-o text|json|yaml|table`, `--query`
//! (JMESPath, the language azure-cli's `--query` takes), `-v`, `-q`, `--debug`.
//!
//! - A command that shows something shows one document: [`document`] prints it as JSON or YAML
//!   (after `--query`), or as the command's own text.
//! - `run`, `resume` and `rollback` stream events instead: one JSON object a line ([`line`]).
//! - Errors, whatever the command: [`Failure`] prints `error: ... / hint: ...` as text, and one
//!   JSON object `{code, message, hint, exit}` on stderr under `-o json` (or yaml).
//!
//! The flags are global (they may come before or after the subcommand), parsed once in
//! [`crate::cli::main`] and kept here for the rest of the process: errors are printed from deep
//! inside commands, and every one of them must follow the same contract.

use std::io::Write;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

/// How results are written to stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable text (progress on a terminal, timestamped lines otherwise).
    #[default]
    Text,
    /// JSON: one document, or one event per line for run/resume/rollback.
    Json,
    /// YAML: the JSON document as YAML (events as one YAML document each).
    Yaml,
    /// A table, for lists (runs, workflows); other commands print their text.
    Table,
}

#[derive(Args, Clone, Debug, Default)]
pub struct GlobalArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, global = true, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// A JMESPath query applied to the JSON output (as azure-cli's --query), e.g.
    /// `runs[?status=='failed'].id`.
    #[arg(long, global = true, value_name = "JMESPATH")]
    pub query: Option<String>,
    /// More detail: plan arguments and Azure calls, resource ids in summaries.
    #[arg(long, short = 'v', global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Only errors and the result (no progress lines).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Log every HTTP request to Azure on stderr: method, URL, status, correlation id, time
    /// (tokens and signatures are never shown).
    #[arg(long, global = true)]
    pub debug: bool,
}

/// The global flags, checked.
pub struct Output {
    pub format: OutputFormat,
    /// Checked once at start; compiled where used (jmespath's expressions are not `Sync`).
    pub query: Option<String>,
    pub verbose: bool,
    pub quiet: bool,
    pub debug: bool,
}

static OUTPUT: OnceLock<Output> = OnceLock::new();

impl Output {
    pub fn from_args(args: &GlobalArgs) -> Result<Output, Failure> {
        let query = match &args.query {
            None => None,
            Some(q) => {
                jmespath::compile(q).map_err(|e| {
                    Failure::usage(format!("--query {q:?} is not a JMESPath expression: {e}"))
                        .with_hint("see https://jmespath.org, e.g. --query \"runs[].id\"")
                })?;
                Some(q.clone())
            }
        };
        Ok(Output {
            format: args.output,
            query,
            verbose: args.verbose,
            quiet: args.quiet,
            debug: args.debug,
        })
    }

    /// Structured output (JSON or YAML): no prose on stdout, errors as objects on stderr.
    pub fn structured(&self) -> bool {
        matches!(self.format, OutputFormat::Json | OutputFormat::Yaml)
    }
}

/// Keeps the global flags for the rest of the process (the first call wins).
pub fn init(output: Output) {
    let _ = OUTPUT.set(output);
}

/// The global flags (defaults until [`init`]).
pub fn get() -> &'static Output {
    OUTPUT.get_or_init(|| Output {
        format: OutputFormat::Text,
        query: None,
        verbose: false,
        quiet: false,
        debug: false,
    })
}

/// `value` after `--query`, if one was given.
fn queried(value: &Value) -> Result<Value, Failure> {
    let Some(query) = &get().query else {
        return Ok(value.clone());
    };
    let expression =
        jmespath::compile(query).map_err(|e| Failure::usage(format!("--query: {e}")))?;
    let data = jmespath::Variable::from_json(&value.to_string())
        .map_err(|e| Failure::new(crate::exit::INVALID, "query", e))?;
    let result = expression
        .search(data)
        .map_err(|e| Failure::usage(format!("--query: {e}")))?;
    serde_json::to_value(&*result)
        .map_err(|e| Failure::new(crate::exit::INVALID, "query", e.to_string()))
}

fn write_stdout(text: &str) {
    // A closed pipe (`| head`) is not worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// A value as a person reads it after `--query`: strings bare, the rest as JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s}\n"),
        Value::Array(items) if items.iter().all(|v| !v.is_object() && !v.is_array()) => {
            items.iter().map(plain).collect::<String>()
        }
        other => serde_json::to_string_pretty(other).expect("JSON") + "\n",
    }
}

/// Prints a command's one document: `value` as JSON or YAML, `text()` (or `table()` for
/// `-o table`, when the command has one) otherwise. With `--query` and text output, the
/// query's result is printed plainly.
pub fn document(
    value: &Value,
    text: impl FnOnce() -> String,
    table: Option<&dyn Fn() -> String>,
) -> Result<(), Failure> {
    let out = get();
    let shown = match out.format {
        OutputFormat::Json => serde_json::to_string_pretty(&queried(value)?).expect("JSON") + "\n",
        OutputFormat::Yaml => serde_yaml::to_string(&queried(value)?).expect("YAML"),
        _ if out.query.is_some() => plain(&queried(value)?),
        OutputFormat::Table => match table {
            Some(table) => table(),
            None => text(),
        },
        OutputFormat::Text => text(),
    };
    write_stdout(&shown);
    Ok(())
}

/// Prints `value` as JSON whatever `-o` says (`report --format json`), after `--query`.
pub fn document_as_json(value: &Value) -> Result<(), Failure> {
    write_stdout(&(serde_json::to_string_pretty(&queried(value)?).expect("JSON") + "\n"));
    Ok(())
}

/// One event of a stream (`run`, `resume`, `rollback`): a JSON line, or a YAML document.
/// A `--query` that selects nothing from an event leaves it out.
pub fn line(value: &Value) {
    let Ok(shown) = queried(value) else { return };
    if shown.is_null() {
        return;
    }
    match get().format {
        OutputFormat::Yaml => write_stdout(&format!(
            "---\n{}",
            serde_yaml::to_string(&shown).expect("YAML")
        )),
        _ => write_stdout(&(serde_json::to_string(&shown).expect("JSON") + "\n")),
    }
}

/// A note or warning for the engineer on stderr; a JSON line under structured output.
pub fn note(level: &str, message: &str) {
    if get().structured() {
        eprintln!("{}", json!({ "level": level, "message": message }));
    } else {
        eprintln!("{level}: {message}");
    }
}

/// A command that could not do what was asked: what went wrong, what to do, and the exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Exit code (see `crate::exit`).
    pub exit: u8,
    /// A stable word for scripts: `usage`, `invalid_workflow`, `step_failed`, `locked`, ...
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    /// `message` may carry its hint on a `\n  hint: ` line, as rescue's errors do.
    pub fn new(exit: u8, code: &'static str, message: impl Into<String>) -> Failure {
        let message = message.into();
        let (message, hint) = match message.split_once("\n  hint: ") {
            Some((m, h)) => (m.to_string(), Some(h.trim().to_string())),
            None => (message, None),
        };
        Failure {
            exit,
            code,
            message,
            hint,
        }
    }

    /// Bad flags or arguments (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(crate::exit::INVALID, "usage", message)
    }

    /// An error from below (anyhow), classified by what it is.
    pub fn from_error(e: &anyhow::Error) -> Failure {
        use crate::engine::lock::LockError;
        let text = format!("{e:#}");
        match e.downcast_ref::<LockError>() {
            Some(LockError::Held { .. }) => Failure::new(crate::exit::LOCKED, "locked", text),
            _ if e.is::<crate::engine::store::Fenced>() => {
                Failure::new(crate::exit::LOCKED, "fenced", text)
            }
            _ if e.is::<crate::engine::journal::DamagedJournal>() => {
                Failure::new(crate::exit::INVALID, "damaged_journal", text)
            }
            _ => Failure::new(crate::exit::STEP_FAILED, "failed", text),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "exit": self.exit,
        })
    }

    /// Prints it (text, or one JSON object on stderr) and gives its exit code.
    pub fn report(&self) -> ExitCode {
        if get().structured() {
            eprintln!("{}", self.to_json());
        } else {
            eprintln!("error: {}", self.message);
            if let Some(hint) = &self.hint {
                eprintln!("  hint: {hint}");
            }
        }
        ExitCode::from(self.exit)
    }
}

impl From<Failure> for ExitCode {
    fn from(f: Failure) -> ExitCode {
        f.report()
    }
}

/// Whether `args` (the command line) ask for structured output, read before clap parses it:
/// a usage error must follow the contract too.
pub fn asks_structured(args: &[String]) -> bool {
    let mut words = args.iter().map(String::as_str).peekable();
    while let Some(word) = words.next() {
        let value = match word {
            "-o" | "--output" => words.peek().copied(),
            w => w
                .strip_prefix("--output=")
                .or_else(|| w.strip_prefix("-o").filter(|v| !v.is_empty())),
        };
        if matches!(
            value.map(|v| v.trim_start_matches('=')),
            Some("json" | "yaml")
        ) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_split_off_the_message() {
        let f = Failure::new(2, "usage", "no run `x`\n  hint: `rescue runs` lists them");
        assert_eq!(f.message, "no run `x`");
        assert_eq!(f.hint.as_deref(), Some("`rescue runs` lists them"));
    }

    #[test]
    fn structured_output_is_found_in_any_spelling() {
        let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(asks_structured(&words("rescue runs -o json")));
        assert!(asks_structured(&words("rescue -ojson runs")));
        assert!(asks_structured(&words("rescue runs --output=yaml")));
        assert!(!asks_structured(&words("rescue runs -o table")));
    }
}
