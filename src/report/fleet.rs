//! A fleet's reporter: many runs at once on one stderr. On a terminal, one live line per target
//! (its step, state and elapsed time); in logs, one prefixed line per event; in JSON, every
//! event names its target. A run's output is always whole lines of its own, so runs never
//! interleave inside a message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{describe, Style};
use crate::engine::events::{Event, EventSink};

/// The one reporter of a fleet; [`FleetReporter::target`] gives each run its sink.
pub struct FleetReporter {
    style: Style,
    multi: MultiProgress,
    width: usize,
}

impl FleetReporter {
    /// `ids`: the targets, for the width of their column.
    pub fn new(style: Style, ids: &[String]) -> Arc<FleetReporter> {
        Arc::new(FleetReporter {
            style,
            multi: MultiProgress::new(),
            width: ids.iter().map(String::len).max().unwrap_or(0),
        })
    }

    pub fn target(self: &Arc<Self>, id: &str) -> Arc<dyn EventSink> {
        match self.style {
            Style::Json => Arc::new(super::json::TargetJsonReporter { target: id.into() }),
            Style::Progress => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{spinner:.cyan}} {{prefix:<{}.bold}} [{{elapsed:>4}}] {{wide_msg}}",
                        self.width
                    ))
                    .expect("static template")
                    .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
                );
                bar.set_prefix(id.to_string());
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(200));
                Arc::new(LiveLine {
                    bar,
                    running: Mutex::new(Vec::new()),
                })
            }
            Style::Plain | Style::Quiet => Arc::new(Prefixed {
                prefix: format!("[{id:<w$}]", w = self.width),
                quiet: self.style == Style::Quiet,
                last_status: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A whole message (the fleet's summary) above the live lines.
    pub fn say(&self, text: &str) {
        match self.style {
            Style::Progress => {
                let _ = self.multi.println(text);
            }
            _ => eprintln!("{text}"),
        }
    }
}

/// A target's live line on the terminal: the steps running now and their latest word.
struct LiveLine {
    bar: ProgressBar,
    /// (step, what it says), in the order they started.
    running: Mutex<Vec<(String, String)>>,
}

impl LiveLine {
    fn show(&self, running: &[(String, String)]) {
        let text = running
            .iter()
            .map(|(step, said)| format!("{step}: {said}"))
            .collect::<Vec<_>>()
            .join(" | ");
        self.bar.set_message(text);
    }

    fn set(&self, step: &str, said: Option<String>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match said {
            Some(said) => match running.iter_mut().find(|(s, _)| s == step) {
                Some(entry) => entry.1 = said,
                None => running.push((step.to_string(), said)),
            },
            None => running.retain(|(s, _)| s != step),
        }
        self.show(&running);
    }

    fn end(&self, mark: &str, message: String) {
        self.bar.set_style(
            ProgressStyle::with_template(&format!(
                "{mark} {{prefix:.bold}} [{{elapsed:>4}}] {{wide_msg}}"
            ))
            .expect("static template"),
        );
        self.bar.finish_with_message(message);
    }
}

impl EventSink for LiveLine {
    fn emit(&self, event: Event) {
        match &event {
            Event::StepStarted { step, attempt, .. } => self.set(
                step,
                Some(format!("running{}", super::attempt_note(*attempt))),
            ),
            Event::StepStatus { step, message } => self.set(step, Some(message.clone())),
            Event::StepRetrying { step, attempt, .. } => {
                self.set(step, Some(format!("attempt {attempt} failed, retrying")))
            }
            Event::StepSucceeded { step, .. } | Event::StepSkipped { step, .. } => {
                self.set(step, None)
            }
            Event::StepFailed { step, error, .. } => {
                self.set(step, Some(format!("failed: {error}")))
            }
            Event::RunFinished {
                run_id,
                status,
                error,
                ..
            } => match error {
                None => self.end("✔", format!("{} (run {run_id})", status.as_str())),
                Some(e) => self.end("✘", format!("{} (run {run_id}): {e}", status.as_str())),
            },
            Event::RunInterrupted { run_id, .. } => {
                self.end("…", format!("interrupted (run {run_id})"))
            }
            _ => {}
        }
    }

    fn confirm(&self, _prompt: &str) -> bool {
        false
    }
}

/// A target's lines in a log: each event one line, after the target's id.
struct Prefixed {
    prefix: String,
    quiet: bool,
    last_status: Mutex<HashMap<String, Instant>>,
}

impl EventSink for Prefixed {
    fn emit(&self, event: Event) {
        if self.quiet && !matches!(event, Event::StepFailed { .. }) {
            return;
        }
        if let Event::StepStatus { step, .. } = &event {
            let mut last = self.last_status.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if last
                .get(step)
                .is_some_and(|t| now.duration_since(*t) < super::plain::STATUS_EVERY)
            {
                return;
            }
            last.insert(step.clone(), now);
        }
        let text = match &event {
            Event::RunFinished {
                run_id,
                status,
                error,
                ..
            } => Some(format!(
                "run {run_id} {}{}",
                status.as_str(),
                error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )),
            other => describe(other),
        };
        if let Some(text) = text {
            let stamp = super::plain::stamp();
            // One write per event, under stderr's lock: a line of another run cannot cut it.
            let mut out = String::new();
            for line in text.lines() {
                out.push_str(&format!("{stamp} {} {line}\n", self.prefix));
            }
            eprint!("{out}");
        }
    }

    fn confirm(&self, _prompt: &str) -> bool {
        false
    }
}
