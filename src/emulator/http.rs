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
    pub text: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body),
            text: None,
        }
    }

    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            text: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
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
    } else if let Some(text) = reply.text {
        h.insert(
            "content-type",
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Body::from(text)
    } else {
        Body::empty()
    };
    builder.body(body).expect("valid response")
}
