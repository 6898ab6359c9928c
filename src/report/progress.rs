//! Terminal progress: one line per step with a spinner, elapsed time and the action's sub-status.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::events::{Event, EventSink};

pub struct ProgressReporter {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl ProgressReporter {
    pub fn new() -> Self {
        ProgressReporter {
            multi: MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn running_style() -> ProgressStyle {
        ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} [{elapsed:>3}] {wide_msg}")
            .expect("static template")
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
    }

    fn done_style(mark: &str) -> ProgressStyle {
        ProgressStyle::with_template(&format!("{mark} {{prefix:.bold}} {{wide_msg}}"))
            .expect("static template")
    }

    /// A finished step leaves the live area and is printed above it for good: the live area is
    /// cleared while a confirmation is asked, and the engineer must still see what happened.
    fn finish(&self, step: &str, mark: &str, message: String) {
        if let Some(bar) = self.bars.lock().unwrap().remove(step) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let _ = self
            .multi
            .println(format!("{mark} {} {message}", console::style(step).bold()));
    }
}

impl Default for ProgressReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl EventSink for ProgressReporter {
    fn emit(&self, event: Event) {
        match &event {
            Event::StepStarted {
                step,
                name,
                attempt,
            } => {
                let mut bars = self.bars.lock().unwrap();
                let bar = bars.entry(step.clone()).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(Self::running_style());
                    bar.set_prefix(step.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(format!("{name}{}", super::attempt_note(*attempt)));
            }
            Event::StepStatus { step, message } => {
                if let Some(bar) = self.bars.lock().unwrap().get(step) {
                    bar.set_message(message.clone());
                }
            }
            Event::StepRetrying { step, .. } => {
                if let (Some(bar), Some(text)) =
                    (self.bars.lock().unwrap().get(step), super::describe(&event))
                {
                    bar.set_message(text.trim_start_matches(&format!("{step}: ")).to_string());
                }
            }
            Event::StepSucceeded {
                step,
                elapsed_ms,
                outputs,
            } => self.finish(
                step,
                "✔",
                format!(
                    "succeeded in {}{}",
                    super::secs(*elapsed_ms),
                    super::verdict_note(outputs)
                ),
            ),
            Event::StepFailed {
                step,
                error,
                hint,
                elapsed_ms,
            } => self.finish(
                step,
                "✘",
                format!(
                    "failed after {}: {error}{}",
                    super::secs(*elapsed_ms),
                    super::hint_note(hint.as_deref())
                ),
            ),
            Event::StepSkipped { step, reason } => {
                self.finish(step, "-", format!("skipped ({reason})"))
            }
            Event::RunInterrupted { .. } => {
                // The step in flight stays `running` in the journal; say so instead of spinning on.
                for (_, bar) in self.bars.lock().unwrap().drain() {
                    bar.set_style(Self::done_style("…"));
                    bar.abandon_with_message("interrupted; resume reconciles it");
                }
            }
            _ => {
                if let Some(text) = super::describe(&event) {
                    let _ = self.multi.println(text);
                }
            }
        }
    }

    /// The live area is cleared and hidden while the question waits. Not `suspend`, which
    /// holds the display's lock until the answer comes: anything printed meanwhile (the
    /// interruption of a Ctrl-C) would wait for an answer that never comes.
    fn confirm(&self, prompt: &str) -> bool {
        let _ = self.multi.clear();
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
        let yes = super::ask(prompt);
        self.multi.set_draw_target(ProgressDrawTarget::stderr());
        yes
    }
}
