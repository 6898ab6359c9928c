//! A request as the handlers see it (`Call`), what they answer (`Reply`), and the response
//! with ARM's common headers.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::arm::{self, ArmError};
use super::faults::FaultKind;
use super::ratelimit::Remaining;
use super::routes::Route;

/// One request, parsed.
pub struct Call {
    pub method: String,
    pub route: Route,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// An `lro_failed` or `slow` fault for the operation this call starts.
    pub fault: Option<FaultKind>,
}

impl Call {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, ArmError> {
        if self.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::bad_request(
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{e}'."),
            )
        })
    }

    pub fn lro_failed(&self) -> bool {
        self.fault == Some(FaultKind::LroFailed)
    }
}

/// A response before ARM's common headers are added.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// A non-JSON body and its content type (blobs and their XML errors).
    pub raw: Option<(&'static str, Vec<u8>)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            raw: None,
        }
    }

    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            raw: None,
        }
    }

    pub fn raw(status: u16, content_type: &'static str, bytes: Vec<u8>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            raw: Some((content_type, bytes)),
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The wait Azure asks with `Retry-After: azure_seconds`, scaled by the emulator's time
    /// scale. `Retry-After` stays whole seconds (the RPC's async-api-reference: "Retry-After
    /// should be (integer), will not support http-date"), rounded up so a wait Azure asks never
    /// becomes 0; `retry-after-ms` carries the scaled wait to the millisecond, the header the
    /// Azure SDKs read before `Retry-After` (azure-core's retry policy, Azure/azure-sdk-for-rust
    /// PR #1517: "looking for the <xxx>-ms headers before the retry-after header", as the
    /// JavaScript SDK does).
    pub fn retry_after(self, azure_seconds: f64, time_scale: f64) -> Self {
        let (seconds, millis) = scaled_wait(azure_seconds, time_scale);
        self.header("Retry-After", seconds.to_string())
            .header("retry-after-ms", millis.to_string())
    }
}

/// (whole seconds rounded up, at least 1; milliseconds rounded up, at least 1) of a scaled wait.
pub fn scaled_wait(azure_seconds: f64, time_scale: f64) -> (u64, u64) {
    let scaled = (azure_seconds * time_scale).max(0.0);
    (
        scaled.ceil().max(1.0) as u64,
        (scaled * 1000.0).ceil().max(1.0) as u64,
    )
}

impl From<ArmError> for Reply {
    fn from(e: ArmError) -> Self {
        Reply::json(e.status, e.body())
    }
}

pub fn to_response(reply: Reply, rate: Option<Remaining>) -> Response {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let h = builder.headers_mut().expect("fresh builder");
    let id = arm::guid();
    h.insert("x-ms-request-id", HeaderValue::from_str(&id).expect("guid"));
    h.insert(
        "x-ms-correlation-request-id",
        HeaderValue::from_str(&id).expect("guid"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    if let Some(r) = rate {
        h.insert(
            "x-ms-ratelimit-remaining-resource",
            HeaderValue::from_str(&r.header()).expect("ascii"),
        );
    }
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k.as_str()),
            HeaderValue::from_str(v),
        ) {
            h.insert(name, value);
        }
    }
    let body = if let Some(json) = reply.body {
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        Body::from(serde_json::to_vec(&json).expect("json serializes"))
    } else if let Some((content_type, bytes)) = reply.raw {
        h.insert("content-type", HeaderValue::from_static(content_type));
        Body::from(bytes)
    } else {
        Body::empty()
    };
    builder.body(body).expect("valid response")
}

#[cfg(test)]
mod tests {
    #[test]
    fn waits_round_up_and_never_reach_zero() {
        assert_eq!(super::scaled_wait(10.0, 0.05), (1, 500));
        assert_eq!(super::scaled_wait(600.0, 0.05), (30, 30_000));
        assert_eq!(super::scaled_wait(2.0, 0.002), (1, 4));
        assert_eq!(super::scaled_wait(10.0, 1.0), (10, 10_000));
        assert_eq!(super::scaled_wait(3.0, 0.3333), (1, 1000));
    }
}
