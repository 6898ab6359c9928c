//! Reporters: turn engine events into progress bars, plain lines or JSON.

pub mod evidence;
pub mod fleet;
mod json;
mod plain;
mod progress;

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::events::{Event, EventSink};

pub use json::JsonReporter;
pub use plain::PlainReporter;
pub use progress::ProgressReporter;

/// How events are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// indicatif progress lines on the terminal (stderr).
    Progress,
    /// Timestamped lines on stderr, for logs and CI.
    Plain,
    /// One JSON object per line on stdout.
    Json,
    /// `-q`: only failures, as they happen.
    Quiet,
}

impl Style {
    /// Progress on a terminal, plain lines otherwise, JSON when asked.
    pub fn detect(json: bool) -> Style {
        if json {
            Style::Json
        } else if std::io::stderr().is_terminal() {
            Style::Progress
        } else {
            Style::Plain
        }
    }
}

pub fn reporter(style: Style) -> Arc<dyn EventSink> {
    match style {
        Style::Progress => Arc::new(ProgressReporter::new()),
        Style::Plain => Arc::new(PlainReporter::new()),
        Style::Json => Arc::new(JsonReporter),
        Style::Quiet => Arc::new(QuietReporter),
    }
}

/// `-q`: a failing step's line (with its hint), nothing else; questions are still asked.
pub struct QuietReporter;

impl EventSink for QuietReporter {
    fn emit(&self, event: Event) {
        if let Event::StepFailed { .. } = &event {
            if let Some(text) = describe(&event) {
                eprintln!("{text}");
            }
        }
    }

    fn confirm(&self, prompt: &str) -> bool {
        ask(prompt)
    }
}

/// Whether a person can answer a question: both stdin and stderr are terminals.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// A step's `verdict` output (e.g. the fsck result), which the engineer must see before the
/// swap is confirmed; empty when the step has none.
pub(crate) fn verdict_note(outputs: &serde_json::Map<String, serde_json::Value>) -> String {
    match outputs.get("verdict").and_then(|v| v.as_str()) {
        Some(verdict) => format!(" (verdict: {verdict})"),
        None => String::new(),
    }
}

/// A one-line human description of an event; None for events shown otherwise.
pub(crate) fn describe(event: &Event) -> Option<String> {
    Some(match event {
        Event::RunStarted {
            run_id,
            workflow,
            steps,
            resumed,
        } => {
            let verb = if *resumed { "resuming" } else { "starting" };
            format!("{verb} run {run_id}: {workflow} ({} steps)", steps.len())
        }
        Event::StepStarted {
            step,
            name,
            attempt,
        } => {
            let name = if name != step {
                format!(": {name}")
            } else {
                String::new()
            };
            format!("{step}: started{}{name}", attempt_note(*attempt))
        }
        Event::StepStatus { step, message } => format!("{step}: {message}"),
        Event::StepReconciled {
            step,
            adopted: true,
        } => {
            format!("{step}: was interrupted after it took effect; adopting its result")
        }
        Event::StepReconciled {
            step,
            adopted: false,
        } => {
            format!("{step}: was interrupted before it took effect; running it again")
        }
        Event::StepRetrying {
            step,
            attempt,
            delay_ms,
            error,
        } => {
            format!(
                "{step}: attempt {attempt} failed: {error}; retrying in {}",
                secs(*delay_ms)
            )
        }
        Event::StepSucceeded {
            step,
            elapsed_ms,
            outputs,
        } => {
            format!(
                "{step}: succeeded in {}{}",
                secs(*elapsed_ms),
                verdict_note(outputs)
            )
        }
        Event::StepFailed {
            step,
            error,
            hint,
            elapsed_ms,
        } => {
            format!(
                "{step}: failed after {}: {error}{}",
                secs(*elapsed_ms),
                hint_note(hint.as_deref())
            )
        }
        Event::StepSkipped { step, reason } => format!("{step}: skipped ({reason})"),
        // Shown once, by the question itself (or, without a terminal, by the run's end).
        Event::AwaitingConfirmation { .. }
        | Event::RunFinished { .. }
        | Event::RunInterrupted { .. } => return None,
    })
}

/// " (attempt N)" for retries, nothing for the first attempt.
pub(crate) fn attempt_note(attempt: u32) -> String {
    if attempt > 1 {
        format!(" (attempt {attempt})")
    } else {
        String::new()
    }
}

/// A step's hint on its own line under the failure, on every output.
pub fn hint_note(hint: Option<&str>) -> String {
    hint.map(|h| format!("\n  hint: {h}")).unwrap_or_default()
}

pub fn secs(ms: u64) -> String {
    let d = Duration::from_millis(ms);
    if d < Duration::from_secs(60) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// The go-ahead, as `terraform apply` asks it: only the word `yes` goes ahead. Read on a
/// thread of its own so that Ctrl-C (`interrupted`) ends the wait at once. None: interrupted.
pub async fn go_ahead(
    question: &str,
    interrupt: &crate::engine::interrupt::Interrupt,
) -> Option<bool> {
    eprint!("{question}\n  Only 'yes' will be accepted.\n\n  Enter a value: ");
    let _ = std::io::stderr().flush();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut answer = String::new();
        let read = std::io::stdin().lock().read_line(&mut answer);
        let _ = tx.send(read.is_ok() && answer.trim() == "yes");
    });
    tokio::select! {
        yes = rx => Some(yes.unwrap_or(false)),
        _ = interrupt.wait() => {
            eprintln!();
            None
        }
    }
}

/// Asks on stderr, reads the answer from stdin; anything but yes is no.
pub(crate) fn ask(prompt: &str) -> bool {
    eprint!("{prompt} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
