//! `--output json`: one JSON object per event on stdout, for scripts.

use serde::Serialize;
use time::OffsetDateTime;

use crate::engine::events::{Event, EventSink};

pub struct JsonReporter;

#[derive(Serialize)]
struct Line<'a> {
    #[serde(with = "time::serde::rfc3339")]
    time: OffsetDateTime,
    #[serde(flatten)]
    event: &'a Event,
}

impl EventSink for JsonReporter {
    fn emit(&self, event: Event) {
        let line = serde_json::to_value(Line {
            time: OffsetDateTime::now_utc(),
            event: &event,
        })
        .expect("events serialize");
        // Through the output contract: `--query` applies per event, `-o yaml` gives documents.
        crate::cli::output::line(&line);
    }

    /// Scripts answer with `--yes`; never block a pipe on a question.
    fn confirm(&self, _prompt: &str) -> bool {
        false
    }
}
