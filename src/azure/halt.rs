//! The process's stop for Azure: once it may no longer act (the run it works for is held by
//! someone else now: its shared lease was lost), no request leaves it, whatever was in flight
//! above. One switch for the process, closed once and never reopened: the transport checks it
//! before every request, so a step that was polling or about to write gets an error instead.

use std::sync::OnceLock;

static HALTED: OnceLock<String> = OnceLock::new();

/// From now on every request fails with [`super::ErrorKind::Halted`] and `why` as its message.
pub fn close(why: impl Into<String>) {
    let _ = HALTED.set(why.into());
}

/// Why requests are stopped, once they are.
pub fn reason() -> Option<&'static str> {
    HALTED.get().map(String::as_str)
}
