//! The HTTP side: one axum fallback handler that authenticates, checks the api-version,
//! completes due operations, applies fault rules, dispatches, adds ARM's headers and logs.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::arm::{self, ArmError};
use super::faults::{self, FaultKind};
use super::operations::{self, Family, OpKind, Operation};
use super::reqlog::{Entry, RequestLog};
use super::routes::{self, Route};
use super::state::{self, State};
use super::{Config, Handle};

/// The emulator shared by every request.
pub struct Emu {
    pub state: Mutex<State>,
    pub data_dir: PathBuf,
    pub images: PathBuf,
    pub time_scale: f64,
    pub token: String,
    pub base: String,
    log: RequestLog,
    rates: Mutex<HashMap<&'static str, VecDeque<Instant>>>,
    /// Running Run Command tasks, aborted on shutdown.
    pub tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

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
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Result<Value, ArmError> {
        if self.body.is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::bad_request("InvalidRequestContent", format!("The request content was invalid and could not be deserialized: '{e}'."))
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
        Reply { status, headers: Vec::new(), body: Some(body), text: None }
    }

    pub fn empty(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: None, text: None }
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

impl Emu {
    /// Saves the state; an unwritable data dir is a server error, not a silent loss.
    pub fn save(&self, state: &State) -> Result<(), ArmError> {
        state.save(&self.data_dir).map_err(|e| ArmError::internal(format!("the emulator could not save its state: {e:#}")))
    }

    /// Seconds of Azure latency scaled for this emulator (and a `slow` fault).
    pub fn scaled(&self, seconds: f64, call: &Call) -> f64 {
        let factor = match call.fault {
            Some(FaultKind::Slow { factor }) => factor,
            _ => 1.0,
        };
        seconds * self.time_scale * factor
    }

    /// Registers a new long-running operation (failing at the end under `lro_failed`).
    pub fn begin(&self, state: &mut State, family: Family, kind: OpKind, seconds: f64, call: &Call) -> Operation {
        let mut op = Operation::new(family, kind, self.scaled(seconds, call));
        if call.lro_failed() {
            op.fail_with = Some(ArmError::new(
                500,
                "InternalOperationError",
                "An internal execution error occurred. Please retry later.",
            ));
        }
        state.operations.insert(op.id.clone(), op.clone());
        op
    }

    /// Azure-AsyncOperation and Location headers for an operation.
    pub fn lro_headers(&self, state: &State, op: &Operation, mut reply: Reply, location: bool) -> Reply {
        let url = format!("{}{}", self.base, op.status_path(state));
        if location {
            reply = reply.header("Location", format!("{url}&monitor=true"));
        }
        reply.header("Azure-AsyncOperation", url)
    }

    pub fn retry_after(&self, seconds: f64) -> String {
        operations::retry_after(seconds, self.time_scale).to_string()
    }

    /// The boot diagnostics serial log URL: SAS-like, signed so only this emulator's clients
    /// can guess it.
    pub fn serial_log_url(&self, vm_id: &str) -> String {
        format!("{}{}{vm_id}/serialconsole.log?sig={}", self.base, routes::SERIAL_LOG_PREFIX, self.sign(vm_id))
    }

    pub fn sign(&self, what: &str) -> String {
        hex::encode(&Sha256::digest(format!("{}:{what}", self.token).as_bytes())[..16])
    }

    fn rate_remaining(&self, bucket: &'static str) -> (u64, u64, u64, u64) {
        const LIMIT_3: u64 = 4000;
        const LIMIT_30: u64 = 32000;
        // Windows shrink with the time scale like every other Azure duration.
        let (w3, w30) = (Duration::from_secs_f64(180.0 * self.time_scale), Duration::from_secs_f64(1800.0 * self.time_scale));
        let now = Instant::now();
        let mut rates = self.rates.lock().expect("rate lock");
        let q = rates.entry(bucket).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) > w30) {
            q.pop_front();
        }
        q.push_back(now);
        let in3 = q.iter().rev().take_while(|t| now.duration_since(**t) <= w3).count() as u64;
        let in30 = q.len() as u64;
        (LIMIT_3.saturating_sub(in3), LIMIT_3, LIMIT_30.saturating_sub(in30), LIMIT_30)
    }
}

pub async fn start(config: Config) -> anyhow::Result<Handle> {
    anyhow::ensure!(config.time_scale > 0.0 && config.time_scale.is_finite(), "time_scale must be a positive number");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating emulator data dir {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.canonicalize()?;
    let images = state::images_dir(&data_dir);
    let loaded = State::load(&data_dir)?;
    let mut state = match loaded {
        Some(s) => s,
        None => {
            let (text, origin, base_dir) = match &config.scenario {
                None => (super::INCIDENT_SCENARIO.to_string(), "incident (embedded)".to_string(), std::env::current_dir()?),
                Some(p) => (
                    std::fs::read_to_string(p).with_context(|| format!("reading scenario {}", p.display()))?,
                    p.display().to_string(),
                    p.parent().map(|d| d.to_path_buf()).unwrap_or_default(),
                ),
            };
            let scenario = super::scenario::parse(&text, &origin)?;
            let dd = data_dir.clone();
            let seeded = tokio::task::spawn_blocking(move || super::scenario::seed(&scenario, &base_dir, &dd)).await??;
            seeded.save(&data_dir)?;
            seeded
        }
    };
    if operations::fail_interrupted(&mut state) > 0 {
        // A killed emulator could not detach the loop devices of its Run Command.
        let imgs = images.clone();
        tokio::task::spawn_blocking(move || super::runcommand::detach_stale(&imgs)).await?;
    }
    state.save(&data_dir)?;
    std::fs::create_dir_all(&images)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
        .await
        .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
    let port = listener.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let token = config.token.clone().unwrap_or_else(|| hex::encode(rand::random::<[u8; 24]>()));
    let subscription_id = state.subscription.clone();
    let emu = Arc::new(Emu {
        state: Mutex::new(state),
        data_dir,
        images,
        time_scale: config.time_scale,
        token: token.clone(),
        base: base.clone(),
        log: RequestLog::open(config.log.as_deref())?,
        rates: Mutex::new(HashMap::new()),
        tasks: Mutex::new(Vec::new()),
    });
    let app = axum::Router::new().fallback(dispatch).with_state(emu.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        let _ = server.await;
        for t in emu.tasks.lock().expect("task lock").drain(..) {
            t.abort();
        }
    });
    Ok(Handle { endpoint: url::Url::parse(&format!("{base}/"))?, token, subscription_id, shutdown: tx, task })
}

async fn dispatch(axum::extract::State(emu): axum::extract::State<Arc<Emu>>, req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 8 << 20).await.unwrap_or_default();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(raw_query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();

    let (reply, operation, fault, rate) = handle(&emu, &method, &path, query, headers, body).await;
    let drop_connection = fault == Some(FaultKind::DropConnection);
    let status = reply.status;
    let mut response = to_response(reply, &emu, rate);
    emu.log.write(&Entry {
        time: arm::rfc3339(arm::now()),
        method: &method,
        path: &path,
        query: &raw_query,
        status,
        duration_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        operation,
        fault: fault.map(|f| f.to_string()),
    });
    if drop_connection {
        // The effect happened; the client never learns it: the body stream fails mid-response.
        *response.body_mut() = Body::from_stream(futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "fault: drop_connection"))
        }));
    }
    response
}

type Rate = Option<(&'static str, (u64, u64, u64, u64))>;

async fn handle(
    emu: &Arc<Emu>,
    method: &str,
    path: &str,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (Reply, &'static str, Option<FaultKind>, Rate) {
    let (route, sub) = match routes::parse(path) {
        Ok(r) => r,
        Err(e) => return (authenticate(emu, &headers).err().unwrap_or_else(|| e.into()), "unknown", None, None),
    };
    let (operation, alias) = route.operation(method);
    if let Route::SerialLog { vm_id } = &route {
        return (super::resources::vm::serial_log(emu, vm_id, &query), operation, None, None);
    }
    if let Err(reply) = authenticate(emu, &headers) {
        return (reply, operation, None, None);
    }
    let call = Call { method: method.to_string(), route, query, headers, body, fault: None };
    if let Some(wanted) = call.route.api_version() {
        if let Err(e) = check_api_version(call.query("api-version"), wanted) {
            return (e.into(), operation, None, None);
        }
    }
    let bucket = call.route.rate_bucket(method);
    let remaining = emu.rate_remaining(bucket);
    let rate = Some((bucket, remaining));
    let fault = {
        let mut state = emu.state.lock().expect("state lock");
        if sub.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case(&state.subscription)) {
            let e = ArmError::new(404, "SubscriptionNotFound", format!("The subscription '{}' could not be found.", sub.unwrap()));
            return (e.into(), operation, None, rate);
        }
        let changed = operations::complete_due(&mut state, &emu.images, arm::now());
        let State { faults: rules, calls, .. } = &mut *state;
        let fault = faults::pick(rules, calls, operation, alias);
        if changed || fault.is_some() || !state.faults.is_empty() {
            if let Err(e) = emu.save(&state) {
                return (e.into(), operation, None, rate);
            }
        }
        fault
    };
    if remaining.0 == 0 {
        return (throttled(emu, bucket, 10), operation, None, rate);
    }
    match fault {
        Some(FaultKind::Http500) => {
            let e = ArmError::new(500, "InternalServerError", "Encountered internal server error. Diagnostic information: timestamp '', subscription id '', tracking id '', request correlation id ''.");
            return (e.into(), operation, fault, rate);
        }
        Some(FaultKind::Http503) => {
            let e = ArmError::new(503, "ServiceUnavailable", "The service is currently unavailable. Please retry the request after some time.");
            return (Reply::from(e).header("Retry-After", "1"), operation, fault, rate);
        }
        Some(FaultKind::Throttle { retry_after }) => {
            return (throttled(emu, bucket, retry_after), operation, fault, Some((bucket, (0, 4000, 0, 32000))));
        }
        _ => {}
    }
    let call = Call { fault, ..call };
    let reply = super::resources::dispatch(emu, &call).await.unwrap_or_else(Reply::from);
    (reply, operation, fault, rate)
}

fn throttled(emu: &Emu, bucket: &str, retry_after: u64) -> Reply {
    let _ = emu;
    Reply::from(ArmError::new(
        429,
        "OperationNotAllowed",
        format!(
            "The server rejected the request because too many requests have been received for this subscription. \
             (Throttled by policy Microsoft.Compute/{bucket}3Min)"
        ),
    ))
    .header("Retry-After", retry_after.to_string())
}

fn authenticate(emu: &Emu, headers: &HeaderMap) -> Result<(), Reply> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(Reply::from(ArmError::new(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ))
        .header("WWW-Authenticate", "Bearer authorization_uri=\"https://login.windows.net/\", error=\"invalid_token\", error_description=\"The authentication failed because of missing 'Authorization' header.\""));
    };
    let presented = value.strip_prefix("Bearer ").unwrap_or("");
    if presented.as_bytes() != emu.token.as_bytes() {
        return Err(Reply::from(ArmError::new(401, "InvalidAuthenticationToken", "The access token is invalid."))
            .header("WWW-Authenticate", "Bearer authorization_uri=\"https://login.windows.net/\", error=\"invalid_token\", error_description=\"The access token is invalid.\""));
    }
    Ok(())
}

fn check_api_version(given: Option<&str>, wanted: &str) -> Result<(), ArmError> {
    match given {
        None => Err(ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if v == wanted => Ok(()),
        Some(v) => Err(ArmError::bad_request(
            "InvalidApiVersionParameter",
            format!("The api-version '{v}' is invalid. The supported versions are '{wanted}'."),
        )),
    }
}

fn to_response(reply: Reply, emu: &Emu, rate: Rate) -> Response {
    let mut builder = Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    let h = builder.headers_mut().expect("fresh builder");
    let id = arm::guid();
    h.insert("x-ms-request-id", HeaderValue::from_str(&id).expect("guid"));
    h.insert("x-ms-correlation-request-id", HeaderValue::from_str(&id).expect("guid"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    if let Some((bucket, (r3, _, r30, _))) = rate {
        let v = format!("Microsoft.Compute/{bucket}3Min;{r3},Microsoft.Compute/{bucket}30Min;{r30}");
        h.insert("x-ms-ratelimit-remaining-resource", HeaderValue::from_str(&v).expect("ascii"));
    }
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(value)) = (axum::http::HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            h.insert(name, value);
        }
    }
    let _ = emu;
    let body = if let Some(json) = reply.body {
        h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
        Body::from(serde_json::to_vec(&json).expect("json serializes"))
    } else if let Some(text) = reply.text {
        h.insert("content-type", HeaderValue::from_static("text/plain; charset=utf-8"));
        Body::from(text)
    } else {
        Body::empty()
    };
    builder.body(body).expect("valid response")
}
