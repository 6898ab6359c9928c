//! Plain timestamped lines on stderr, for logs and CI where a progress bar would be noise.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::{macros::format_description, OffsetDateTime};

use crate::engine::events::{Event, EventSink};

/// Sub-status updates of one step are shown at most this often.
pub(super) const STATUS_EVERY: Duration = Duration::from_secs(5);

pub struct PlainReporter {
    last_status: Mutex<HashMap<String, Instant>>,
}

impl PlainReporter {
    pub fn new() -> Self {
        PlainReporter {
            last_status: Mutex::new(HashMap::new()),
        }
    }

    fn throttled(&self, step: &str) -> bool {
        let mut last = self.last_status.lock().unwrap();
        let now = Instant::now();
        match last.get(step) {
            Some(t) if now.duration_since(*t) < STATUS_EVERY => true,
            _ => {
                last.insert(step.to_string(), now);
                false
            }
        }
    }
}

impl Default for PlainReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl EventSink for PlainReporter {
    fn emit(&self, event: Event) {
        if let Event::StepStatus { step, .. } = &event {
            if self.throttled(step) {
                return;
            }
        }
        if let Some(text) = super::describe(&event) {
            eprintln!("{} {text}", stamp());
        }
    }

    fn confirm(&self, prompt: &str) -> bool {
        super::ask(prompt)
    }
}

/// "14:03:27", the time a line is written.
pub(super) fn stamp() -> String {
    OffsetDateTime::now_utc()
        .format(format_description!("[hour]:[minute]:[second]"))
        .expect("static format")
}
