//! The Azure layer's own error: what went wrong, classified by HTTP status and ARM error code,
//! never by the English of a message (Azure rewords messages; codes are its contract).
//!
//! What to *do* about an error (hints naming workflow steps, `rescue resume`) is decided above
//! this layer, by the actions.

use std::fmt;
use std::time::Duration;

use azure_core::error::ErrorKind as CoreKind;
use serde_json::Value;

/// What kind of failure, as far as a caller needs to decide what comes next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No credential produced a token, or ARM refused the token (401).
    Auth,
    /// The identity may not do this (403).
    Forbidden,
    /// 404: the resource (or its resource group, or subscription) does not exist.
    NotFound,
    /// 409: Azure refused the change in the resource's present state.
    Conflict,
    /// 412: `If-Match` no longer matches; someone else changed the resource first.
    PreconditionFailed,
    /// 429, after the wait Azure asked for would pass the caller's limit.
    Throttled,
    /// 5xx, a dropped connection or a timeout: the request may or may not have taken effect.
    Transient,
    /// 400 and other refusals of the request itself.
    Invalid,
    /// A long-running operation ended Failed or Canceled.
    OperationFailed,
    /// Waited past the operation's deadline; it may still finish.
    Deadline,
    /// Azure sent something this client cannot read (bad JSON, an operation URL elsewhere).
    Protocol,
    /// Could not set up the client (endpoint, TLS roots, credential configuration).
    Setup,
    /// Not sent: this process may no longer act for its run ([`super::halt`]).
    Halted,
}

/// A failed Azure call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    /// What we were doing, as a phrase: "create snapshot s1".
    pub doing: String,
    pub status: Option<u16>,
    /// The ARM error code (`OperationNotAllowed`, `ResourceNotFound`, ...); empty when none.
    pub code: String,
    pub message: String,
    /// `x-ms-correlation-request-id`, which Azure support asks for.
    pub correlation_id: Option<String>,
    /// For `Throttled`: how long Azure asked us to wait.
    pub retry_after: Option<Duration>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, doing: impl Into<String>, message: impl Into<String>) -> Self {
        Error {
            kind,
            doing: doing.into(),
            status: None,
            code: String::new(),
            message: message.into(),
            correlation_id: None,
            retry_after: None,
        }
    }

    pub fn setup(message: impl Into<String>) -> Self {
        Self::new(Kind::Setup, "connect to Azure", message)
    }

    pub fn protocol(doing: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Kind::Protocol, doing, message)
    }

    /// An HTTP error answer: `{"error": {"code", "message"}}` as ARM sends it.
    pub fn from_response(
        doing: &str,
        status: u16,
        body: &[u8],
        correlation: Option<String>,
    ) -> Self {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let error = parsed.as_ref().map(|v| v.get("error").unwrap_or(v));
        let text = |k: &str| {
            error
                .and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut message = text("message");
        if message.is_empty() {
            message = String::from_utf8_lossy(body).trim().to_string();
        }
        Error {
            kind: kind_of_status(status),
            doing: doing.to_string(),
            status: Some(status),
            code: text("code"),
            message,
            correlation_id: correlation,
            retry_after: None,
        }
    }

    /// An azure_core error from a request made to do `doing`.
    pub fn from_core(error: &azure_core::Error, doing: &str) -> Self {
        match error.kind() {
            CoreKind::HttpResponse { status, error_code } => {
                let mut out = Error {
                    kind: kind_of_status(u16::from(*status)),
                    doing: doing.to_string(),
                    status: Some(u16::from(*status)),
                    code: error_code.clone().unwrap_or_default(),
                    message: error.to_string(),
                    correlation_id: None,
                    retry_after: None,
                };
                if let Some(http) = error.as_http_error() {
                    if let Some(m) = http.error_message() {
                        out.message = m.to_string();
                    }
                    if out.code.is_empty() {
                        out.code = http.error_code().unwrap_or_default().to_string();
                    }
                }
                out
            }
            CoreKind::Io => Error::new(
                Kind::Transient,
                doing,
                format!("Azure did not answer ({error})"),
            ),
            CoreKind::Credential => Error::new(Kind::Auth, doing, error.to_string()),
            CoreKind::DataConversion => Error::protocol(doing, error.to_string()),
            _ => match find_ours(error) {
                Some(ours) => Error {
                    doing: doing.to_string(),
                    ..ours.clone()
                },
                None => Error::new(Kind::Transient, doing, error.to_string()),
            },
        }
    }

    /// A long-running operation that ended Failed or Canceled, with its `error` verbatim.
    pub fn operation_failed(doing: &str, status: &str, error: Option<&Value>) -> Self {
        let text = |k: &str| {
            error
                .and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut message = text("message");
        if message.is_empty() {
            message = error
                .map(Value::to_string)
                .unwrap_or_else(|| "no error details".into());
        }
        Error {
            kind: Kind::OperationFailed,
            doing: doing.to_string(),
            status: None,
            code: text("code"),
            message: format!("the operation ended {status}: {message}"),
            correlation_id: None,
            retry_after: None,
        }
    }

    pub fn with_correlation(mut self, id: Option<String>) -> Self {
        if self.correlation_id.is_none() {
            self.correlation_id = id;
        }
        self
    }

    /// Worth trying again later (the engine's retry, or `rescue resume`): nothing in the request
    /// itself was wrong.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            Kind::Transient | Kind::Throttled | Kind::Deadline
        )
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == Kind::NotFound
    }
}

fn kind_of_status(status: u16) -> Kind {
    match status {
        401 => Kind::Auth,
        403 => Kind::Forbidden,
        404 | 410 => Kind::NotFound,
        409 => Kind::Conflict,
        412 => Kind::PreconditionFailed,
        429 => Kind::Throttled,
        408 | 500..=599 => Kind::Transient,
        _ => Kind::Invalid,
    }
}

/// Our transport wraps its own errors (throttling past the limit) into azure_core errors; find
/// them again on the way out.
fn find_ours(error: &azure_core::Error) -> Option<&Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return Some(ours);
        }
        source = e.source();
    }
    None
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {}", self.doing)?;
        if !self.code.is_empty() {
            write!(f, " ({})", self.code)?;
        }
        if let Some(status) = self.status {
            write!(f, " [HTTP {status}]")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(id) = &self.correlation_id {
            write!(f, " (correlation id {id})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_error_bodies_are_read_by_code_not_text() {
        let body =
            br#"{"error":{"code":"OperationNotAllowed","message":"whatever Azure says today"}}"#;
        let e = Error::from_response("swap OS disk", 409, body, Some("c0ffee".into()));
        assert_eq!(e.kind, Kind::Conflict);
        assert_eq!(e.code, "OperationNotAllowed");
        assert_eq!(
            e.to_string(),
            "cannot swap OS disk (OperationNotAllowed) [HTTP 409]: whatever Azure says today (correlation id c0ffee)"
        );
    }

    #[test]
    fn failed_operations_keep_their_error_verbatim() {
        let e = Error::operation_failed(
            "snapshot s",
            "Failed",
            Some(&serde_json::json!({"code":"InternalDiskManagementError","message":"boom 42"})),
        );
        assert_eq!(e.kind, Kind::OperationFailed);
        assert_eq!(e.code, "InternalDiskManagementError");
        assert!(e.message.contains("boom 42"), "{e}");
    }

    #[test]
    fn statuses_map_to_what_a_caller_decides_on() {
        assert_eq!(kind_of_status(410), Kind::NotFound);
        assert_eq!(kind_of_status(503), Kind::Transient);
        assert_eq!(kind_of_status(400), Kind::Invalid);
    }
}
