//! The evidence of what was asked of Azure: every mutating request (PUT, PATCH, POST, DELETE)
//! with its answer's status, correlation id, request id and the operation it started, for the
//! run's report. Azure support traces a request by these ids (`x-ms-correlation-request-id`,
//! `x-ms-request-id`: "Azure Resource Manager request headers", Microsoft Learn), so an
//! incident ticket needs them.
//!
//! Like [`super::progress`], the recorder travels in a task-local set around each step's calls:
//! the transport sits below azure_core's pipeline, which carries no caller context.

use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One mutating request and what Azure answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub method: String,
    /// The URL's path (the resource and the action), without host or query.
    pub path: String,
    /// None when no answer came (a dropped connection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The id of the long-running operation it started (the last segment of its
    /// `Azure-AsyncOperation`, else `Location`, URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    pub duration_ms: u64,
}

pub type Recorder = Arc<dyn Fn(Call) + Send + Sync>;

tokio::task_local! {
    static RECORDER: Recorder;
}

/// Run `fut` with `recorder` receiving every mutating request it sends.
pub async fn scope<F: Future>(recorder: Recorder, fut: F) -> F::Output {
    RECORDER.scope(recorder, fut).await
}

/// The current task's recorder: for a request sent on its behalf by another task.
pub(crate) fn current() -> Option<Recorder> {
    RECORDER.try_with(Clone::clone).ok()
}

/// Hand a call to the current recorder, if any.
pub(crate) fn record(call: Call) {
    let _ = RECORDER.try_with(|r| r(call));
}

/// The operation id in an operation-status URL: its last path segment.
pub(crate) fn operation_id(url: &str) -> Option<String> {
    let path = url::Url::parse(url).ok()?.path().to_string();
    path.rsplit('/').find(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_operation_id_is_the_last_segment() {
        let url = "https://management.azure.com/subscriptions/s/providers/Microsoft.Compute/locations/westeurope/DiskOperations/0f1e2d?p=x&api-version=2024-03-02";
        assert_eq!(super::operation_id(url).as_deref(), Some("0f1e2d"));
    }
}
