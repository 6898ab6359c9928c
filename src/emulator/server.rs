//! The HTTP side: one axum fallback handler that authenticates, checks the api-version,
//! completes due operations, applies fault rules, dispatches, adds ARM's headers and logs.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;

use super::arm::{self, ArmError};
use super::faults::{self, FaultKind};
use super::http::{to_response, Call, Reply};
use super::operations::{self, Family, OpKind, Operation};
use super::ratelimit::{ArmBuckets, ArmClass, RateLimits, Remaining};
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
    /// The tenant and service principals (also in the state; fixed once seeded).
    pub directory: super::entra::Directory,
    /// Signs the access tokens the Entra endpoint issues.
    pub token_key: [u8; 32],
    /// Signs the boot diagnostics (SAS-style) URLs.
    pub sas_key: [u8; 32],
    /// `https://127.0.0.1:PORT` (or `http://` with `--http`).
    pub base: String,
    log: RequestLog,
    rates: RateLimits,
    arm_rates: ArmBuckets,
    /// Running Run Command tasks, aborted (and awaited) on shutdown.
    pub tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Emu {
    /// The state, even after a handler panicked while holding it (a bug must not take the
    /// whole emulator down with a poisoned lock).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Saves the state; an unwritable data dir is a server error, not a silent loss.
    pub fn save(&self, state: &State) -> Result<(), ArmError> {
        state.save(&self.data_dir).map_err(|e| {
            ArmError::internal(format!("the emulator could not save its state: {e:#}"))
        })
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
    pub fn begin(
        &self,
        state: &mut State,
        family: Family,
        kind: OpKind,
        seconds: f64,
        call: &Call,
    ) -> Operation {
        let mut op = Operation::new(family, kind, self.scaled(seconds, call));
        op.api_version = call.query("api-version").map(String::from);
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
    pub fn lro_headers(
        &self,
        state: &State,
        op: &Operation,
        mut reply: Reply,
        location: bool,
    ) -> Reply {
        let url = format!("{}{}", self.base, op.status_path(state));
        if location {
            reply = reply.header("Location", format!("{url}&monitor=true"));
        }
        reply.header("Azure-AsyncOperation", url)
    }
}

pub async fn start(config: Config) -> anyhow::Result<Handle> {
    anyhow::ensure!(
        config.time_scale > 0.0 && config.time_scale.is_finite(),
        "time_scale must be a positive number"
    );
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating emulator data dir {}", config.data_dir.display()))?;
    let data_dir = config.data_dir.canonicalize()?;
    state::secure(&data_dir)?;
    let images = state::images_dir(&data_dir);
    let loaded = State::load(&data_dir)?;
    let mut state = match loaded {
        Some(s) => s,
        None => {
            let (text, origin, base_dir) = match &config.scenario {
                None => (
                    super::INCIDENT_SCENARIO.to_string(),
                    "incident (embedded)".to_string(),
                    std::env::current_dir()?,
                ),
                Some(p) => (
                    crate::workflow::yaml::read_file(
                        p,
                        "scenario",
                        "check the --emulator=FILE path",
                    )?,
                    p.display().to_string(),
                    p.parent().map(|d| d.to_path_buf()).unwrap_or_default(),
                ),
            };
            let scenario = super::scenario::parse(&text, &origin)?;
            let dd = data_dir.clone();
            let seeded = tokio::task::spawn_blocking(move || {
                super::scenario::seed(&scenario, &base_dir, &dd)
            })
            .await??;
            seeded.save(&data_dir)?;
            seeded
        }
    };
    if operations::interrupted(&mut state) > 0 {
        // A killed emulator could not detach the loop devices of its Run Command.
        let imgs = images.clone();
        tokio::task::spawn_blocking(move || super::runcommand::detach_stale(&imgs)).await?;
    }
    let unbooted = operations::awaiting_boot(&state);
    state.save(&data_dir)?;
    std::fs::create_dir_all(&images)?;
    let tls = if config.tls {
        Some(super::tls::load_or_create(&data_dir)?)
    } else {
        None
    };
    let token_key = super::keys::key(&data_dir, "token-signing")?;
    let sas_key = super::keys::key(&data_dir, "sas")?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", config.port))
        .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
    let port = listener.local_addr()?.port();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://127.0.0.1:{port}");
    let subscription_id = state.subscription.clone();
    let directory = state.directory.clone();
    anyhow::ensure!(
        !directory.principals.is_empty(),
        "{} has no service principal (a state saved by an older rescue): start on a fresh data dir",
        data_dir.join(state::STATE_FILE).display()
    );
    let emu = Arc::new(Emu {
        state: Mutex::new(state),
        data_dir,
        images,
        time_scale: config.time_scale,
        directory: directory.clone(),
        token_key,
        sas_key,
        base: base.clone(),
        log: RequestLog::open(config.log.as_deref())?,
        rates: RateLimits::new(config.time_scale),
        arm_rates: ArmBuckets::new(config.time_scale),
        tasks: Mutex::new(Vec::new()),
    });
    // A start interrupted before its boot check had run gets its boot check now.
    for (op, vm) in unbooted {
        super::resources::vm_actions::boot_into(&emu, &op, &vm)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    let app = axum::Router::new()
        .fallback(dispatch)
        .with_state(emu.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server_handle = axum_server::Handle::new();
    let stopper = server_handle.clone();
    tokio::spawn(async move {
        let _ = rx.await;
        // Open keep-alive connections must not hold the shutdown up.
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(2)));
    });
    let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
    let make = app.into_make_service();
    let served = match tls {
        Some(t) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(t.config);
            let server = axum_server::from_tcp_rustls(listener, config)?.handle(server_handle);
            tokio::spawn(async move { server.serve(make).await })
        }
        None => {
            let server = axum_server::from_tcp(listener)?.handle(server_handle);
            tokio::spawn(async move { server.serve(make).await })
        }
    };
    let task = tokio::spawn(async move {
        let _ = served.await;
        let tasks: Vec<_> = emu.tasks.lock().expect("task lock").drain(..).collect();
        for t in &tasks {
            t.abort();
        }
        // Awaited so that their scripts are killed and loop devices detached before we return.
        for t in tasks {
            let _ = t.await;
        }
    });
    let first = &directory.principals[0];
    Ok(Handle {
        endpoint: url::Url::parse(&format!("{base}/"))?,
        ca_pem,
        subscription_id,
        tenant_id: directory.tenant_id.clone(),
        client_id: first.client_id.clone(),
        client_secret: first.secret.clone(),
        shutdown: tx,
        task,
    })
}

async fn dispatch(
    axum::extract::State(emu): axum::extract::State<Arc<Emu>>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 8 << 20)
        .await
        .unwrap_or_default();
    // A request that reached the server is carried out whatever the client does next, as a
    // real service goes on with a request whose caller hung up: a client killed mid-request
    // (the crash tests' SIGKILL) must not cancel a handler halfway, between two changes to the
    // state (an instance added, its pool operation not yet begun).
    let task = tokio::spawn(serve(emu, started, method, path, raw_query, headers, body));
    task.await.unwrap_or_else(|e| {
        let mut r = Response::new(Body::from(format!(
            "emulator: the request's handler failed: {e}"
        )));
        *r.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

async fn serve(
    emu: Arc<Emu>,
    started: Instant,
    method: String,
    path: String,
    raw_query: String,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let query: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();

    if path.starts_with(super::kube::PREFIX) {
        let (response, operation) =
            super::kube::handle(&emu, &method, &path, &query, &headers, &body).await;
        emu.log.write(&Entry {
            time: arm::rfc3339(arm::now()),
            method: &method,
            path: &path,
            query: &raw_query,
            status: response.status().as_u16(),
            duration_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            operation: &operation,
            fault: None,
        });
        return response;
    }
    let (reply, operation, fault, rate) = handle(&emu, &method, &path, query, headers, body).await;
    let drop_connection = fault == Some(FaultKind::DropConnection);
    let status = reply.status;
    let mut response = to_response(reply, rate);
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
            Err::<Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "fault: drop_connection",
            ))
        }));
    }
    response
}

type Rate = Option<Remaining>;

async fn handle(
    emu: &Arc<Emu>,
    method: &str,
    path: &str,
    query: Vec<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (Reply, &'static str, Option<FaultKind>, Rate) {
    if let Some(route) = super::entra::parse(path) {
        let issuer = super::entra::Issuer {
            directory: &emu.directory,
            base: &emu.base,
            key: &emu.token_key,
        };
        let reply = super::entra::handle(&issuer, &route, method, &query, &headers, &body);
        return (reply, route.operation(), None, None);
    }
    let (route, sub) = match routes::parse(path) {
        Ok(r) => r,
        Err(e) => {
            return (
                super::auth::authenticate(emu, &headers)
                    .err()
                    .unwrap_or_else(|| e.into()),
                "unknown",
                None,
                None,
            )
        }
    };
    let (operation, alias) = route.operation(method);
    let api_version = query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
        .map(|(_, v)| v.clone());
    match &route {
        Route::SerialLog { blob } => {
            return (
                super::resources::vm::serial_log(emu, blob, &query),
                operation,
                None,
                None,
            );
        }
        // ARM serves its metadata to anyone: clients read it before they can sign in.
        Route::Metadata => {
            let location = emu.lock().location.clone();
            let reply = match routes::check_api_version(&route, api_version.as_deref(), &location) {
                Ok(()) => super::resources::metadata(emu),
                Err(e) => e.into(),
            };
            return (reply, operation, None, None);
        }
        _ => {}
    }
    let principal = match super::auth::authenticate(emu, &headers) {
        Ok(oid) => oid,
        Err(reply) => return (reply, operation, None, None),
    };
    let call = Call {
        method: method.to_string(),
        route,
        query,
        headers,
        body,
        fault: None,
    };
    let location = emu.lock().location.clone();
    if let Err(e) = routes::check_api_version(&call.route, api_version.as_deref(), &location) {
        return (e.into(), operation, None, None);
    }
    // ARM counts a call against its subscription's bucket before routing it to the resource
    // provider, whose own windows never see a call ARM refused.
    let arm_take = sub
        .as_deref()
        .map(|s| (s, emu.arm_rates.take(s, &principal, ArmClass::of(method))));
    if let Some((s, t)) = arm_take.filter(|(_, t)| t.left.is_none()) {
        return (
            t.throttled(s, &principal, emu.time_scale),
            operation,
            None,
            None,
        );
    }
    let (reply, fault, rate) = routed(emu, call, operation, alias, sub.as_deref()).await;
    let reply = match arm_take {
        Some((_, t)) => {
            let (name, value) = t.header();
            reply.header(&name, value)
        }
        None => reply,
    };
    (reply, operation, fault, rate)
}

/// The call once ARM let it through: the resource provider's windows, faults, the handler.
async fn routed(
    emu: &Arc<Emu>,
    call: Call,
    operation: &'static str,
    alias: &'static str,
    sub: Option<&str>,
) -> (Reply, Option<FaultKind>, Rate) {
    let method = call.method.as_str();
    let remaining = emu.rates.take(call.route.rate_bucket(method));
    let rate = call.route.compute_rates().then_some(remaining);
    let fault = {
        let mut state = emu.lock();
        if sub.is_some_and(|s| !s.eq_ignore_ascii_case(&state.subscription)) {
            let e = ArmError::new(
                404,
                "SubscriptionNotFound",
                format!(
                    "The subscription '{}' could not be found.",
                    sub.unwrap_or_default()
                ),
            );
            return (e.into(), None, rate);
        }
        // The world moves on whoever asks: ARM's operations and the Kubernetes side's loops.
        let changed = super::kube::reconcile(&mut state, &emu.images, emu.time_scale);
        let State {
            faults: rules,
            calls,
            ..
        } = &mut *state;
        let fault = faults::pick(rules, calls, operation, alias);
        if changed || fault.is_some() || !state.faults.is_empty() {
            if let Err(e) = emu.save(&state) {
                return (e.into(), None, rate);
            }
        }
        fault
    };
    let subscription = emu.lock().subscription.clone();
    if let Some((reply, rate)) = faults::refusal(fault, remaining, &subscription, emu.time_scale) {
        return (reply, fault, Some(rate));
    }
    let call = Call { fault, ..call };
    let reply = super::resources::dispatch(emu, &call)
        .await
        .unwrap_or_else(Reply::from);
    (reply, fault, rate)
}
