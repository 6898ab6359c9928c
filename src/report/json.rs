//! `--output json`: one JSON object per event on stdout, for scripts.

use serde::Serialize;
use time::OffsetDateTime;

use crate::engine::events::{Event, EventSink};

pub struct JsonReporter;

/// A fleet's run: every event names its target (`"target": "vm2"`), so one stream of many runs
/// can be told apart.
pub struct TargetJsonReporter {
    pub target: String,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(flatten)]
    event: &'a Event,
}

fn emit(target: Option<&str>, event: &Event) {
    let line = serde_json::to_value(Line {
        time: OffsetDateTime::now_utc(),
        target,
        event,
    })
    .expect("events serialize");
    // Through the output contract: `--query` applies per event, `-o yaml` gives documents.
    crate::cli::output::line(&line);
}

impl EventSink for JsonReporter {
    fn emit(&self, event: Event) {
        emit(None, &event)
    }

    /// Scripts answer with `--yes`; never block a pipe on a question.
    fn confirm(&self, _prompt: &str) -> bool {
        false
    }
}

impl EventSink for TargetJsonReporter {
    fn emit(&self, event: Event) {
        emit(Some(&self.target), &event)
    }

    fn confirm(&self, _prompt: &str) -> bool {
        false
    }
}
