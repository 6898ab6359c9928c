//! Our long-running-operation poller (azure_mgmt_compute 0.21's own polling re-sends PUTs and never
//! reads `Azure-AsyncOperation`).
//!
//! After a mutation's first response, [`Azure::begin`] reads `Azure-AsyncOperation`, else
//! `Location`, into an [`Operation`] that the caller checkpoints so a resumed step can keep polling
//! instead of sending the mutation again. [`Azure::wait`] polls it, sleeping what `Retry-After`
//! says (never longer, and bounded), reporting each poll's status, and returns the final resource.

use std::time::{Duration, Instant};

use azure_core::headers::HeaderName;
use azure_core::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors;
use super::retry::human;
use super::{progress, Azure};
use crate::actions::ActionError;

/// How long to wait between polls and retries.
#[derive(Clone, Debug)]
pub struct PollTiming {
    /// First wait when the service gives no `Retry-After`; doubles up to `max_unhinted`.
    pub first: Duration,
    pub max_unhinted: Duration,
    /// Upper bound on a `Retry-After` wait between polls.
    pub max_hinted: Duration,
    /// Backoff base and `Retry-After` cap of the retry policy.
    pub retry_base: Duration,
    pub retry_cap: Duration,
}

impl PollTiming {
    pub fn azure() -> Self {
        Self {
            first: Duration::from_secs(1),
            max_unhinted: Duration::from_secs(10),
            max_hinted: Duration::from_secs(60),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(30),
        }
    }

    /// The emulator runs Azure's latencies scaled down (its Retry-After never goes below 1 s):
    /// poll at a matching pace, so that a run idles at most ~50 ms past each operation's end.
    pub fn emulator() -> Self {
        Self {
            first: Duration::from_millis(20),
            max_unhinted: Duration::from_millis(50),
            max_hinted: Duration::from_millis(50),
            retry_base: Duration::from_millis(50),
            retry_cap: Duration::from_secs(2),
        }
    }

    pub(crate) fn next(&self, polls: u32, hinted: Option<Duration>) -> Duration {
        match hinted {
            Some(asked) => asked.min(self.max_hinted),
            None => self
                .first
                .saturating_mul(1u32 << polls.min(16))
                .min(self.max_unhinted),
        }
    }
}

/// An operation in flight, as checkpointed in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// What we wait for, for the progress line: "snapshot aks-vm2-snap-…".
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// GET this once the operation succeeded (PUT/PATCH); None for POST actions and deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_url: Option<String>,
    /// The result is Location's final body (runCommand, attachDetachDataDisks).
    #[serde(default)]
    pub final_via_location: bool,
}

/// The outcome of sending a mutation.
pub enum Started {
    /// Finished synchronously; the response body (Null when empty).
    Done(Value),
    Pending(Operation),
}

/// How the final result of an operation is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalVia {
    /// PUT/PATCH: `properties.output`, else GET the resource.
    Resource,
    /// POST with a result body (runCommand): Location's final body.
    Location,
    /// Actions and deletes: nothing to return.
    Nothing,
}

const AZURE_ASYNC_OPERATION: HeaderName = HeaderName::from_static("azure-asyncoperation");
const LOCATION: HeaderName = HeaderName::from_static("location");

/// `retry-after-ms` (what Azure sends for sub-second hints), else `Retry-After` in seconds.
fn retry_after(response_headers: &azure_core::headers::Headers) -> Option<Duration> {
    for ms in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(v) = response_headers.get_optional_str(&HeaderName::from_static(ms)) {
            if let Ok(n) = v.trim().parse::<u64>() {
                return Some(Duration::from_millis(n));
            }
        }
    }
    let secs = response_headers.get_optional_str(&HeaderName::from_static("retry-after"))?;
    secs.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn is_terminal(status: &str) -> bool {
    matches!(
        status.to_ascii_lowercase().as_str(),
        "succeeded" | "failed" | "canceled" | "cancelled"
    )
}

impl Azure {
    /// Turn a mutation's first response into a finished result or an operation to poll.
    pub async fn begin(
        &self,
        response: Response,
        label: impl Into<String>,
        resource_url: Option<String>,
        final_via: FinalVia,
    ) -> Result<Started, ActionError> {
        super::kill_hook::after_mutation();
        let (status, headers, body) = response.deconstruct();
        let async_operation = headers.get_optional_string(&AZURE_ASYNC_OPERATION);
        let location = headers.get_optional_string(&LOCATION);
        let body = body
            .collect()
            .await
            .map_err(|e| errors::translate(e, "read Azure's answer"))?;
        let pending = status == StatusCode::Accepted || async_operation.is_some();
        if !pending || (async_operation.is_none() && location.is_none()) {
            return Ok(Started::Done(parse_body(&body)));
        }
        Ok(Started::Pending(Operation {
            label: label.into(),
            async_operation,
            location,
            resource_url: if final_via == FinalVia::Resource {
                resource_url
            } else {
                None
            },
            final_via_location: final_via == FinalVia::Location,
        }))
    }

    /// Poll `op` until it ends; its final resource (or Null) on success, its `error` verbatim on failure.
    pub async fn wait(&self, op: &Operation) -> Result<Value, ActionError> {
        self.wait_outcome(op).await?
    }

    /// Like [`Azure::wait`], but tells apart "the operation ended (in success or failure)" (`Ok`)
    /// from "could not find out" (`Err`: polling failed, the operation may still be running).
    pub async fn wait_outcome(
        &self,
        op: &Operation,
    ) -> Result<Result<Value, ActionError>, ActionError> {
        let started = Instant::now();
        let mut polls = 0u32;
        if let Some(url) = &op.async_operation {
            loop {
                let (_, headers, body) = self.get_raw(url).await?;
                super::kill_hook::after_poll();
                let status = body
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("InProgress")
                    .to_string();
                if is_terminal(&status) {
                    if !status.eq_ignore_ascii_case("succeeded") {
                        return Ok(Err(errors::operation_failed(
                            &op.label,
                            &status,
                            body.get("error"),
                        )));
                    }
                    if let Some(output) = body.pointer("/properties/output") {
                        return Ok(Ok(output.clone()));
                    }
                    break;
                }
                let delay = self.timing().next(polls, retry_after(&headers));
                progress::report(format!(
                    "waiting for {}: {status}, {}",
                    op.label,
                    human(started.elapsed())
                ));
                tokio::time::sleep(delay).await;
                polls += 1;
            }
            if op.final_via_location {
                if let Some(location) = &op.location {
                    return self.poll_location(op, location, started).await.map(Ok);
                }
            }
        } else if let Some(location) = &op.location {
            let body = self.poll_location(op, location, started).await?;
            if !body.is_null() || op.resource_url.is_none() {
                return Ok(Ok(body));
            }
        }
        match &op.resource_url {
            Some(url) => Ok(Ok(self.get_raw(url).await?.2)),
            None => Ok(Ok(Value::Null)),
        }
    }

    /// `Location` answers 202 while running, then the final result (200/201, or 204 when empty).
    async fn poll_location(
        &self,
        op: &Operation,
        url: &str,
        started: Instant,
    ) -> Result<Value, ActionError> {
        let mut polls = 0u32;
        loop {
            let (status, headers, body) = self.get_raw(url).await?;
            super::kill_hook::after_poll();
            if status != StatusCode::Accepted {
                return Ok(body);
            }
            let delay = self.timing().next(polls, retry_after(&headers));
            progress::report(format!(
                "waiting for {}: InProgress, {}",
                op.label,
                human(started.elapsed())
            ));
            tokio::time::sleep(delay).await;
            polls += 1;
        }
    }

    /// GET an absolute URL on this ARM endpoint through our pipeline (auth + retry policy).
    pub(crate) async fn get_raw(
        &self,
        url: &str,
    ) -> Result<(StatusCode, azure_core::headers::Headers, Value), ActionError> {
        let url = url::Url::parse(url).map_err(|e| {
            ActionError::fatal(format!("Azure sent a bad operation URL {url}: {e}"))
        })?;
        // The bearer token only ever goes to the endpoint it was issued for.
        if url.origin() != self.endpoint().origin() {
            return Err(ActionError::fatal(format!(
                "Azure sent an operation URL on another host ({url}); refusing to send credentials there"
            )));
        }
        let mut request = Request::new(url, Method::Get);
        request.insert_header(
            azure_core::headers::AUTHORIZATION,
            format!("Bearer {}", self.token().await?),
        );
        let response = self
            .pipeline
            .send(&azure_core::Context::new(), &mut request)
            .await
            .map_err(|e| errors::translate(e, "poll the operation"))?;
        let (status, headers, body) = response.deconstruct();
        let body = body
            .collect()
            .await
            .map_err(|e| errors::translate(e, "read Azure's answer"))?;
        Ok((status, headers, parse_body(&body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_never_wait_longer_than_retry_after() {
        let t = PollTiming::azure();
        assert_eq!(
            t.next(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            t.next(5, Some(Duration::from_secs(600))),
            Duration::from_secs(60)
        );
        assert_eq!(t.next(0, None), Duration::from_secs(1));
        assert_eq!(t.next(10, None), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = azure_core::headers::Headers::new();
        h.insert("retry-after", "10");
        assert_eq!(retry_after(&h), Some(Duration::from_secs(10)));
        h.insert("retry-after-ms", "250");
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }
}
