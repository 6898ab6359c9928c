//! Stops for Azure: once a run may no longer act (someone else holds it now: its shared lease
//! was lost), no request for it leaves the process, whatever was in flight above. The transport
//! checks before every request, so a step that was polling or about to write gets an error
//! instead.
//!
//! A process may work for several runs at once (a fleet): each run's requests are sent inside
//! [`scope`] with the run's key, and [`close`] stops only that key, so the fleet's other runs go
//! on. A request sent outside every scope belongs to no run in particular and is stopped once
//! any run's is: nothing can tell it is not the lost run's. Closed once, never reopened.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock};

fn closed() -> std::sync::MutexGuard<'static, HashMap<String, String>> {
    static CLOSED: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    CLOSED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

tokio::task_local! {
    static KEY: String;
}

/// Run `fut` with its requests stopped when `key` is closed.
pub async fn scope<F: Future>(key: String, fut: F) -> F::Output {
    KEY.scope(key, fut).await
}

/// From now on every request under `key` (and every one outside a scope) fails with
/// [`super::ErrorKind::Halted`] and `why` as its message.
pub fn close(key: &str, why: impl Into<String>) {
    closed()
        .entry(key.to_string())
        .or_insert_with(|| why.into());
}

/// Why the current task's requests are stopped, once they are.
pub fn reason() -> Option<String> {
    reason_for(key().as_deref())
}

/// The current task's key, if it runs in a [`scope`].
pub fn key() -> Option<String> {
    KEY.try_with(Clone::clone).ok()
}

/// Why requests under `key` (None: outside every scope) are stopped, once they are: for a
/// request sent on a run's behalf by another task.
pub fn reason_for(key: Option<&str>) -> Option<String> {
    let closed = closed();
    match key {
        Some(key) => closed.get(key).cloned(),
        None => closed.values().next().cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_one_run_stops_its_requests_and_unscoped_ones_only() {
        assert_eq!(scope("a".into(), async { reason() }).await, None);
        close("a", "a is held elsewhere");
        assert_eq!(
            scope("a".into(), async { reason() }).await.as_deref(),
            Some("a is held elsewhere")
        );
        assert_eq!(scope("b".into(), async { reason() }).await, None);
        assert_eq!(reason().as_deref(), Some("a is held elsewhere"));
        close("a", "again");
        assert_eq!(
            scope("a".into(), async { reason() }).await.as_deref(),
            Some("a is held elsewhere"),
            "closed once"
        );
    }
}
