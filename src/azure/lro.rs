//! Long-running operations, polled by us (azure_mgmt_compute 0.21's own polling re-sends PUTs and
//! never reads `Azure-AsyncOperation`; see the wire contract).
//!
//! A mutation's first response names its operation (`Azure-AsyncOperation`, else `Location`).
//! The caller checkpoints that [`Operation`] so that a resumed process polls it instead of
//! sending the mutation again. [`Azure::poll`] follows it to the end, sleeping what Azure asks
//! (`retry-after-ms`, then `Retry-After`, else a growing default), within a deadline. An
//! operation URL that answers 404/410 has expired: the outcome is then read from the resource.

use std::time::{Duration, Instant};

use azure_core::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{Error, Kind, Result};
use super::transport::{header, retry_after};
use super::{human, kill_hook, progress, Azure};

/// An operation in flight, as checkpointed in the journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// What we wait for, for the progress line: "snapshot aks-vm2-snap-…".
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The result is Location's final body (POSTs with a result: attachDetachDataDisks).
    #[serde(default)]
    pub final_via_location: bool,
    /// How long Azure asked us to wait before the first poll (its first answer's Retry-After);
    /// `None` once checkpointed: a process that resumes it polls at once.
    #[serde(skip)]
    pub first_wait: Option<Duration>,
}

/// The outcome of sending a mutation.
#[derive(Debug)]
pub enum Started {
    /// Finished synchronously; the response body (Null when empty).
    Done(Value),
    Pending(Operation),
}

/// How an operation ended, when we could find out.
#[derive(Debug)]
pub enum Ended {
    /// Its final body (`properties.output`, Location's answer) or Null.
    Succeeded(Value),
    /// Failed or Canceled, with Azure's error verbatim.
    Failed(Error),
    /// The operation URL answers 404/410: ARM no longer keeps it. Read the resource instead.
    Gone,
}

/// Where an operation's result is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalVia {
    /// PUT/PATCH/DELETE and actions: the resource itself (the caller re-reads it).
    Resource,
    /// A POST with a result body: Location's final answer.
    Location,
}

/// Waits between polls when Azure gives no hint: a quarter of the time waited so far, from
/// 0.5 s to 10 s. The end is then seen at most a quarter late (doubling waits see it up to
/// twice as late: a 9 s operation seen at 15.5 s), at the cost of a few more reads, which the
/// transport paces by the read budget.
const UNHINTED_FIRST: Duration = Duration::from_millis(500);
const UNHINTED_MAX: Duration = Duration::from_secs(10);

pub fn unhinted(waited: Duration) -> Duration {
    (waited / 4).clamp(UNHINTED_FIRST, UNHINTED_MAX)
}

fn parse_body(bytes: &[u8]) -> Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

pub(crate) async fn collect(
    response: Response,
    doing: &str,
) -> Result<(StatusCode, azure_core::headers::Headers, Vec<u8>)> {
    let (status, headers, body) = response.deconstruct();
    let bytes = body
        .collect()
        .await
        .map_err(|e| Error::from_core(&e, doing))?;
    Ok((status, headers, bytes.to_vec()))
}

impl Azure {
    /// Turn a mutation's first (successful) response into a finished result or an operation.
    pub(crate) async fn started(
        &self,
        response: Response,
        label: &str,
        final_via: FinalVia,
    ) -> Result<Started> {
        let (status, headers, body) = collect(response, label).await?;
        let async_operation = header(&headers, "azure-asyncoperation").map(str::to_string);
        let location = header(&headers, "location").map(str::to_string);
        let pending = status == StatusCode::Accepted || async_operation.is_some();
        if !pending || (async_operation.is_none() && location.is_none()) {
            return Ok(Started::Done(parse_body(&body)));
        }
        Ok(Started::Pending(Operation {
            label: label.to_string(),
            async_operation,
            location,
            final_via_location: final_via == FinalVia::Location,
            first_wait: Some(retry_after(&headers).unwrap_or_else(|| unhinted(Duration::ZERO))),
        }))
    }

    /// Follow `op` to its end, or fail: `Transient` when polling itself failed (the operation
    /// may still be running; poll again later), `Deadline` past `deadline`.
    pub async fn poll(&self, op: &Operation, deadline: Instant) -> Result<Ended> {
        let started = Instant::now();
        // Polling before the first answer's Retry-After has passed only costs a request: an
        // SDK's poller waits it out too.
        if let Some(wait) = op.first_wait {
            if Instant::now() + wait <= deadline {
                progress::report(format!("waiting for {}: accepted", op.label));
                self.wait(wait).await;
            }
        }
        if let Some(url) = &op.async_operation {
            loop {
                let (headers, body) = match self.get_url(url, &op.label).await {
                    Ok((_, headers, body)) => (headers, body),
                    // ARM no longer keeps this operation: the resource tells the outcome.
                    Err(e) if e.is_not_found() => return Ok(Ended::Gone),
                    Err(e) => return Err(e),
                };
                kill_hook::after_poll();
                let state = body.get("status").and_then(Value::as_str).ok_or_else(|| {
                    Error::protocol(
                        format!("poll {}", op.label),
                        format!("the operation status has no `status` field: {body}"),
                    )
                })?;
                match state.to_ascii_lowercase().as_str() {
                    "succeeded" => {
                        if op.final_via_location {
                            if let Some(location) = &op.location {
                                return self.poll_location(op, location, started, deadline).await;
                            }
                        }
                        let output = body.pointer("/properties/output").cloned();
                        return Ok(Ended::Succeeded(output.unwrap_or(Value::Null)));
                    }
                    "failed" | "canceled" | "cancelled" => {
                        let e = Error::operation_failed(&op.label, state, body.get("error"));
                        return Ok(Ended::Failed(e));
                    }
                    _ => {}
                }
                self.pause(op, state, &headers, started, deadline).await?;
            }
        }
        match &op.location {
            Some(location) => self.poll_location(op, location, started, deadline).await,
            None => Ok(Ended::Succeeded(Value::Null)),
        }
    }

    /// `Location` answers 202 while running, then the final result (200/201, or 204 when
    /// empty); an error status there is the operation's failure.
    async fn poll_location(
        &self,
        op: &Operation,
        url: &str,
        started: Instant,
        deadline: Instant,
    ) -> Result<Ended> {
        loop {
            let (status, headers, body) = match self.get_url(url, &op.label).await {
                Ok(answer) => answer,
                Err(e) if e.is_not_found() => return Ok(Ended::Gone),
                // Location answers the operation's own failure with its error status.
                Err(e) if !e.is_transient() && e.status.is_some() => return Ok(Ended::Failed(e)),
                Err(e) => return Err(e),
            };
            kill_hook::after_poll();
            if status != StatusCode::Accepted {
                return Ok(Ended::Succeeded(body));
            }
            self.pause(op, "InProgress", &headers, started, deadline)
                .await?;
        }
    }

    async fn pause(
        &self,
        op: &Operation,
        state: &str,
        headers: &azure_core::headers::Headers,
        started: Instant,
        deadline: Instant,
    ) -> Result<()> {
        let delay = retry_after(headers).unwrap_or_else(|| unhinted(started.elapsed()));
        if Instant::now() + delay > deadline {
            return Err(Error::new(
                Kind::Deadline,
                format!("wait for {}", op.label),
                format!(
                    "still {state} after {}, past its deadline; it may still finish",
                    human(started.elapsed())
                ),
            ));
        }
        progress::report(format!(
            "waiting for {}: {state}, {}",
            op.label,
            human(started.elapsed())
        ));
        self.wait(delay).await;
        Ok(())
    }

    /// GET an absolute URL on this ARM endpoint (an operation URL Azure gave us), with our token.
    /// An error status is an `Error` with that status (for operations, 404/410 mean "expired").
    pub(crate) async fn get_url(
        &self,
        url: &str,
        doing: &str,
    ) -> Result<(StatusCode, azure_core::headers::Headers, Value)> {
        let url = self.on_this_endpoint(url)?;
        let mut request = Request::new(url, Method::Get);
        request.insert_header(
            azure_core::headers::AUTHORIZATION,
            format!("Bearer {}", self.token().await?),
        );
        let (sent, correlation) = super::transport::with_correlation(
            self.pipeline()
                .send(&azure_core::Context::new(), &mut request),
        )
        .await;
        let (status, headers, bytes) = match sent {
            Ok(response) => collect(response, doing).await?,
            // azure_core turns every error status into an error (its retry policy checks it).
            Err(e) => {
                return Err(
                    Error::from_core(&e, &format!("poll {doing}")).with_correlation(correlation)
                );
            }
        };
        Ok((status, headers, parse_body(&bytes)))
    }

    /// The bearer token only goes to the endpoint it was issued for. An operation URL on an
    /// endpoint this target used before (an emulator restarted on another port) is moved here.
    fn on_this_endpoint(&self, url: &str) -> Result<url::Url> {
        let mut parsed = url::Url::parse(url).map_err(|e| {
            Error::protocol("poll an operation", format!("bad operation URL {url}: {e}"))
        })?;
        if parsed.origin() == self.endpoint().origin() {
            return Ok(parsed);
        }
        if self
            .previous_endpoints()
            .iter()
            .any(|old| old.origin() == parsed.origin())
        {
            let here = self.endpoint();
            parsed
                .set_scheme(here.scheme())
                .and_then(|_| parsed.set_host(here.host_str()).map_err(|_| ()))
                .and_then(|_| parsed.set_port(here.port()))
                .map_err(|_| {
                    Error::protocol("poll an operation", format!("cannot move {url} to {here}"))
                })?;
            return Ok(parsed);
        }
        Err(Error::protocol(
            "poll an operation",
            format!("Azure sent an operation URL on another host ({url}); refusing to send credentials there"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhinted_polls_wait_a_quarter_of_the_wait_so_far_from_half_a_second_to_ten() {
        let s = Duration::from_secs;
        assert_eq!(unhinted(Duration::ZERO), Duration::from_millis(500));
        assert_eq!(unhinted(s(1)), Duration::from_millis(500));
        assert_eq!(unhinted(s(8)), s(2));
        assert_eq!(unhinted(s(600)), s(10));
    }
}
