//! `--log FILE`: one JSON line per request, so tests and benchmarks can count ARM calls.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use serde::Serialize;

#[derive(Serialize)]
pub struct Entry<'a> {
    pub time: String,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

pub struct RequestLog {
    file: Option<Mutex<std::fs::File>>,
}

impl RequestLog {
    pub fn open(path: Option<&Path>) -> anyhow::Result<Self> {
        let file = match path {
            None => None,
            Some(p) => Some(Mutex::new(
                std::os::unix::fs::OpenOptionsExt::mode(
                    std::fs::OpenOptions::new().create(true).append(true),
                    0o600,
                )
                .open(p)
                .with_context(|| format!("opening request log {}", p.display()))?,
            )),
        };
        Ok(RequestLog { file })
    }

    pub fn write(&self, entry: &Entry<'_>) {
        if let Some(f) = &self.file {
            let mut line = serde_json::to_vec(entry).expect("log entry serializes");
            line.push(b'\n');
            // One write per line keeps lines whole; a failed write must not fail the request.
            let _ = f.lock().expect("request log lock").write_all(&line);
        }
    }
}
