//! The one door to the network. Every request rescue sends to Azure (the SDK's, our operation
//! polls, and the credential's token requests) goes through [`Transport`], which
//! - trusts the TLS roots the target needs (the system's, plus a custom CA such as Azure Stack
//!   Hub's or the emulator's: added, never replacing verification);
//! - keeps one process-wide throttling gate per host: a 429 closes it for as long as Azure asks
//!   (`retry-after-ms`, then `Retry-After`), so concurrent operations back off together;
//! - paces requests by the budgets Azure reports on every answer (the governor, below), so that
//!   many runs in one process (a fleet) slow down before Azure answers 429 at all;
//! - retries what is safe to repeat: any request refused with 429 (Azure did not act on it), and
//!   reads (GET/HEAD) that failed with 5xx or a dropped connection. A mutation that failed any
//!   other way goes back to its caller, whose converge loop re-reads the resource to find out
//!   whether it took effect: re-sending it blindly could act twice;
//! - answers a read again from [`super::memo`] when nothing was done or waited for since it was
//!   last asked;
//! - remembers the correlation id of the call in progress, for error messages;
//! - with `--debug`, logs each request (method, URL without query secrets, status, time).
//!
//! azure_core's own retry policy is switched off (see [`super::Azure`]): it re-sends mutations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use azure_core::headers::{HeaderName, Headers};
use azure_core::{HttpClient, Method, Request, Response, StatusCode};
use rand::Rng;

use super::error::{Error, Kind};
use super::memo::Memo;
use super::{kill_hook, progress};

/// How a transport behaves; from the command line.
#[derive(Clone, Debug)]
pub struct TransportOptions {
    /// PEM file of an extra CA to trust (Azure Stack Hub, the emulator).
    pub extra_ca: Option<std::path::PathBuf>,
    /// The most one request may wait for Azure's throttling before its step fails (resumably).
    pub max_wait: Duration,
    /// Log every request to stderr.
    pub debug: bool,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            extra_ca: None,
            max_wait: Duration::from_secs(30 * 60),
            debug: false,
        }
    }
}

/// Requests that hang this long are cut (a dropped connection must not stall a run).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(100);
/// Reads that failed with 5xx or a dropped connection are tried this many times in all.
const READ_ATTEMPTS: u32 = 5;
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(8);

#[derive(Debug)]
pub struct Transport {
    inner: reqwest::Client,
    options: TransportOptions,
    requests: AtomicU64,
    memo: Memo,
}

impl Transport {
    pub fn new(options: TransportOptions) -> Result<Arc<Transport>, Error> {
        let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
        if let Some(path) = &options.extra_ca {
            let pem = std::fs::read(path).map_err(|e| {
                Error::setup(format!(
                    "cannot read the CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            let ca = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                Error::setup(format!("{} is not a PEM certificate: {e}", path.display()))
            })?;
            builder = builder.add_root_certificate(ca);
        }
        let inner = builder
            .build()
            .map_err(|e| Error::setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Arc::new(Transport {
            inner,
            options,
            requests: AtomicU64::new(0),
            memo: Memo::default(),
        }))
    }

    /// The HTTP client under the transport (same TLS roots), for sign-ins: a token request is
    /// not an ARM call, so it takes no part in throttling gates or the kill hook's mutation
    /// count, as the default credential chain's own client does not.
    pub(crate) fn http(&self) -> reqwest::Client {
        self.inner.clone()
    }

    /// Requests sent so far (retries included; answers from the memo are not requests).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Time passes (a wait, a prompt): reads go to Azure again.
    pub fn forget_reads(&self) {
        self.memo.forget();
    }

    async fn send_once(&self, request: &Request) -> azure_core::Result<Response> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.inner.execute_request(request).await;
        if let Ok(response) = &result {
            if let Some(id) = header(response.headers(), "x-ms-correlation-request-id") {
                note_correlation(id);
            }
        }
        let elapsed = started.elapsed();
        if !is_read(request.method()) {
            super::calls::record(call_record(request, &result, elapsed));
        }
        if self.options.debug {
            let outcome = match &result {
                Ok(r) => {
                    let id = header(r.headers(), "x-ms-correlation-request-id").unwrap_or("-");
                    let request_id = header(r.headers(), "x-ms-request-id").unwrap_or("-");
                    format!(
                        "{} correlation={id} request={request_id}",
                        u16::from(r.status())
                    )
                }
                Err(e) => format!("failed: {e}"),
            };
            // The Authorization header (the token) is never shown; query secrets are cut.
            eprintln!(
                "debug: {} {} -> {outcome} ({} ms)",
                request.method(),
                redacted(request.url()),
                elapsed.as_millis()
            );
        }
        result
    }
}

/// What a mutating request leaves as evidence (see [`super::calls`]).
fn call_record(
    request: &Request,
    result: &azure_core::Result<Response>,
    elapsed: Duration,
) -> super::calls::Call {
    let headers = result.as_ref().ok().map(|r| r.headers());
    let get = |name| headers.and_then(|h| header(h, name)).map(str::to_string);
    super::calls::Call {
        time: time::OffsetDateTime::now_utc(),
        method: request.method().to_string(),
        path: request.url().path().to_string(),
        status: result.as_ref().ok().map(|r| u16::from(r.status())),
        correlation_id: get("x-ms-correlation-request-id"),
        request_id: get("x-ms-request-id"),
        operation_id: get("azure-asyncoperation")
            .or_else(|| get("location"))
            .and_then(|url| super::calls::operation_id(&url)),
        duration_ms: elapsed.as_millis() as u64,
    }
}

#[async_trait::async_trait]
impl HttpClient for Transport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<Response> {
        let read = is_read(request.method());
        if !read {
            self.memo.forget();
        }
        let result = self.execute(request, read).await;
        if !read {
            // Also after: a read sent while this was in flight may or may not show its effect.
            self.memo.forget();
        }
        result
    }
}

impl Transport {
    async fn execute(&self, request: &Request, read: bool) -> azure_core::Result<Response> {
        if let Some(why) = super::halt::reason() {
            return Err(azure_core::Error::full(
                azure_core::error::ErrorKind::Other,
                Error::new(Kind::Halted, "send the request", why),
                "halted",
            ));
        }
        let host = request.url().origin().ascii_serialization();
        let get = *request.method() == Method::Get;
        if get {
            if let Some(answer) = self.memo.recall(request.url()) {
                if self.options.debug {
                    eprintln!(
                        "debug: GET {} -> {} (answered again: nothing done since it was read)",
                        redacted(request.url()),
                        u16::from(answer.status())
                    );
                }
                return Ok(answer);
            }
        }
        let epoch = self.memo.now();
        let mut waited = Duration::ZERO;
        let mut attempt = 0u32;
        let class = if read { Class::Read } else { Class::Write };
        loop {
            attempt += 1;
            let gated = gate_wait(&host, self.options.max_wait.saturating_sub(waited)).await?;
            let paced = governor().pace(&host, class, Instant::now());
            if !paced.is_zero() {
                tokio::time::sleep(paced).await;
            }
            if !(gated + paced).is_zero() {
                self.memo.forget();
            }
            waited += gated + paced;
            let result = self.send_once(request).await;
            if let Ok(r) = &result {
                governor().observe(&host, class, r.headers(), Instant::now());
            }
            match &result {
                Ok(r) if r.status() == StatusCode::TooManyRequests => {
                    let asked = retry_after(r.headers()).unwrap_or(Duration::from_secs(10));
                    if waited + asked > self.options.max_wait {
                        return Err(throttled_past_limit(
                            asked,
                            self.options.max_wait,
                            r.headers(),
                        ));
                    }
                    close_gate(&host, asked, r.headers());
                    continue;
                }
                Ok(r) if read && r.status().is_server_error() && attempt < READ_ATTEMPTS => {
                    let delay = retry_after(r.headers()).unwrap_or_else(|| backoff(attempt));
                    progress::report(format!(
                        "Azure answered {} to a read, trying again in {}",
                        u16::from(r.status()),
                        super::human(delay)
                    ));
                    self.memo.forget();
                    tokio::time::sleep(delay).await;
                }
                Err(e)
                    if read
                        && *e.kind() == azure_core::error::ErrorKind::Io
                        && attempt < READ_ATTEMPTS =>
                {
                    let delay = backoff(attempt);
                    progress::report(format!(
                        "connection to Azure failed, trying again in {}",
                        super::human(delay)
                    ));
                    self.memo.forget();
                    tokio::time::sleep(delay).await;
                }
                Ok(r) => {
                    if !read && r.status().is_success() {
                        kill_hook::after_mutation();
                    }
                    if get {
                        let response = result.expect("matched Ok");
                        return self.memo.keep(request.url(), epoch, response).await;
                    }
                    return result;
                }
                Err(_) => return result,
            }
        }
    }
}

/// GET and HEAD change nothing: safe to retry, to answer again from the memo, and no evidence.
fn is_read(method: &Method) -> bool {
    matches!(method, Method::Get | Method::Head)
}

/// `retry-after-ms` (Azure services send it for sub-second hints; azure-core honours it), then
/// `x-ms-retry-after-ms`, then `Retry-After` in seconds.
pub fn retry_after(headers: &Headers) -> Option<Duration> {
    for ms in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(n) = header(headers, ms).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(n));
        }
    }
    header(headers, "retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

pub(crate) fn header<'h>(headers: &'h Headers, name: &'static str) -> Option<&'h str> {
    headers.get_optional_str(&HeaderName::from_static(name))
}

fn backoff(attempt: u32) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(BACKOFF_CAP);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// The throttling buckets Azure reported, for the message: "HighCostGet3Min;0".
fn buckets(headers: &Headers) -> String {
    let mut parts = Vec::new();
    for (name, value) in headers.iter() {
        if name.as_str().starts_with("x-ms-ratelimit-remaining") {
            parts.push(format!("{}: {}", name.as_str(), value.as_str()));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

fn throttled_past_limit(asked: Duration, limit: Duration, headers: &Headers) -> azure_core::Error {
    let until = clock_after(asked);
    let mut error = Error::new(
        Kind::Throttled,
        "send the request",
        format!(
            "Azure is throttling this subscription until {until}{}: waiting {} would pass --max-wait {}",
            buckets(headers),
            super::human(asked),
            super::human(limit)
        ),
    );
    error.status = Some(429);
    error.retry_after = Some(asked);
    azure_core::Error::full(
        azure_core::error::ErrorKind::Other,
        error,
        "throttled by Azure",
    )
}

/// "14:03:27" (UTC) for a wait of `d` from now.
fn clock_after(d: Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + d;
    format!("{:02}:{:02}:{:02} UTC", at.hour(), at.minute(), at.second())
}

/// The process-wide throttling gates, by origin: when each opens again.
fn gates() -> &'static Mutex<HashMap<String, Instant>> {
    static GATES: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    GATES.get_or_init(Default::default)
}

fn close_gate(host: &str, asked: Duration, headers: &Headers) {
    let until = Instant::now() + asked;
    let mut gates = gates().lock().unwrap_or_else(|e| e.into_inner());
    let entry = gates.entry(host.to_string()).or_insert(until);
    *entry = (*entry).max(until);
    drop(gates);
    progress::report(format!(
        "throttled by Azure until {}{}",
        clock_after(asked),
        buckets(headers)
    ));
}

/// Wait while the gate of `host` is closed; how long we waited. Refuses a wait past `budget`.
async fn gate_wait(host: &str, budget: Duration) -> azure_core::Result<Duration> {
    let until = gates()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(host)
        .copied();
    let Some(until) = until else {
        return Ok(Duration::ZERO);
    };
    let wait = until.saturating_duration_since(Instant::now());
    if wait.is_zero() {
        return Ok(Duration::ZERO);
    }
    if wait > budget {
        return Err(throttled_past_limit(wait, budget, &Headers::new()));
    }
    tokio::time::sleep(wait).await;
    Ok(wait)
}

/// Which of Azure's budgets a request draws from: reads (GET, HEAD) or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Class {
    Read,
    Write,
}

/// Below this share of a bucket's size, requests are spaced at the bucket's refill pace.
const LOW_WATER: f64 = 0.25;

/// One of Azure's throttling buckets as its last answer reported it.
#[derive(Clone, Debug)]
struct Budget {
    /// Calls Azure said were left.
    remaining: f64,
    seen: Instant,
    /// Calls of this class sent since (each may have drawn from it).
    sent: f64,
    /// The most ever reported left: its size, as far as we can tell.
    size: f64,
    /// Calls per second it gets back.
    refill: f64,
}

impl Budget {
    /// What is left at `now`: what Azure said, less what was sent since, plus what came back.
    fn left(&self, now: Instant) -> f64 {
        let back = self.refill * now.saturating_duration_since(self.seen).as_secs_f64();
        (self.remaining - self.sent + back).min(self.size)
    }

    /// How long to keep between two calls drawing from it: nothing while more than a quarter
    /// is left; then its refill pace, so that the runs together never empty it; and with
    /// nothing left, until one call's worth has come back.
    fn spacing(&self, now: Instant) -> Duration {
        if self.refill <= 0.0 || self.size <= 0.0 {
            return Duration::ZERO;
        }
        let left = self.left(now);
        if left > self.size * LOW_WATER {
            Duration::ZERO
        } else if left >= 1.0 {
            Duration::from_secs_f64(1.0 / self.refill)
        } else {
            Duration::from_secs_f64((1.0 - left) / self.refill)
        }
    }
}

/// A bucket an answer reports: its name, what is left, and how fast it refills (calls/s).
///
/// - `x-ms-ratelimit-remaining-subscription-reads` / `-writes` / `-deletes`: ARM's regional
///   token buckets per subscription, which refill 25 reads, 10 writes and 10 deletes a second
///   ("Understand how Azure Resource Manager throttles requests", Microsoft Learn,
///   azure-resource-manager/management/request-limits-and-throttling, the token bucket
///   algorithm's table: bucket sizes 250 / 200 / 200).
/// - `x-ms-ratelimit-remaining-resource: Microsoft.Compute/LowCostGet3Min;3998,...`: a resource
///   provider's sliding windows ("Troubleshooting API throttling errors", Microsoft Learn,
///   virtual-machines/troubleshooting/troubleshooting-throttling-errors): a window of W minutes
///   gives its calls back at most as fast as its whole count per W.
fn budgets(headers: &Headers) -> Vec<(String, f64, Refill)> {
    let mut found = Vec::new();
    for (name, refill) in [
        ("x-ms-ratelimit-remaining-subscription-reads", 25.0),
        ("x-ms-ratelimit-remaining-subscription-writes", 10.0),
        ("x-ms-ratelimit-remaining-subscription-deletes", 10.0),
    ] {
        if let Some(n) = header_named(headers, name).and_then(|v| v.trim().parse::<f64>().ok()) {
            found.push((name.to_string(), n, Refill::PerSecond(refill)));
        }
    }
    if let Some(list) = header(headers, "x-ms-ratelimit-remaining-resource") {
        for item in list.split(',') {
            let Some((bucket, left)) = item.trim().split_once(';') else {
                continue;
            };
            let Ok(left) = left.trim().parse::<f64>() else {
                continue;
            };
            let minutes = bucket
                .strip_suffix("Min")
                .map(|b| {
                    let digits = b.len() - b.chars().rev().take_while(char::is_ascii_digit).count();
                    &b[digits..]
                })
                .and_then(|m| m.parse::<f64>().ok());
            if let Some(minutes) = minutes.filter(|m| *m > 0.0) {
                found.push((bucket.to_string(), left, Refill::Window(minutes * 60.0)));
            }
        }
    }
    found
}

/// How a bucket fills again.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Refill {
    PerSecond(f64),
    /// A sliding window of so many seconds: its size back per window.
    Window(f64),
}

fn header_named<'h>(headers: &'h Headers, name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The process-wide governor: per host and class, the buckets Azure reported and when the
/// last request left.
#[derive(Default)]
struct Governor {
    state: Mutex<HashMap<(String, Class), Paced>>,
}

#[derive(Default)]
struct Paced {
    budgets: HashMap<String, Budget>,
    /// When the next request of this class may leave.
    next: Option<Instant>,
}

fn governor() -> &'static Governor {
    static GOVERNOR: OnceLock<Governor> = OnceLock::new();
    GOVERNOR.get_or_init(Default::default)
}

impl Governor {
    /// How long the request about to leave waits; it is counted as sent at its turn.
    fn pace(&self, host: &str, class: Class, now: Instant) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let paced = state.entry((host.to_string(), class)).or_default();
        let spacing = paced
            .budgets
            .values()
            .map(|b| b.spacing(now))
            .max()
            .unwrap_or(Duration::ZERO);
        if spacing.is_zero() {
            paced.next = None;
        }
        let turn = match paced.next {
            Some(next) if next > now => next,
            _ => now,
        };
        paced.next = Some(turn + spacing).filter(|_| !spacing.is_zero());
        for b in paced.budgets.values_mut() {
            b.sent += 1.0;
        }
        turn - now
    }

    /// An answer's budgets replace what was known of them.
    fn observe(&self, host: &str, class: Class, headers: &Headers, now: Instant) {
        let reported = budgets(headers);
        if reported.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let paced = state.entry((host.to_string(), class)).or_default();
        for (name, left, refill) in reported {
            let size = paced.budgets.get(&name).map_or(left, |b| b.size.max(left));
            let refill = match refill {
                Refill::PerSecond(r) => r,
                Refill::Window(seconds) => size / seconds,
            };
            paced.budgets.insert(
                name,
                Budget {
                    remaining: left,
                    seen: now,
                    sent: 0.0,
                    size,
                    refill,
                },
            );
        }
    }
}

/// The URL for a log line: SAS signatures and other query secrets are cut.
fn redacted(url: &url::Url) -> String {
    let mut shown = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let secret = matches!(k.as_ref(), "sig" | "se" | "sv" | "skoid" | "sktid");
            (
                k.into_owned(),
                if secret {
                    "REDACTED".into()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    if kept.is_empty() {
        shown.set_query(None);
    } else {
        shown.query_pairs_mut().clear().extend_pairs(kept);
    }
    shown.to_string()
}

tokio::task_local! {
    static CORRELATION: Arc<Mutex<Option<String>>>;
}

fn note_correlation(id: &str) {
    let _ = CORRELATION.try_with(|slot| {
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.to_string());
    });
}

/// Run one call, and learn the correlation id of its last response (for its error message).
pub async fn with_correlation<F: std::future::Future>(fut: F) -> (F::Output, Option<String>) {
    let slot = Arc::new(Mutex::new(None));
    let out = CORRELATION.scope(slot.clone(), fut).await;
    let id = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    (out, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = Headers::new();
        h.insert("retry-after", "10");
        assert_eq!(retry_after(&h), Some(Duration::from_secs(10)));
        h.insert("retry-after-ms", "250");
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }

    #[test]
    fn backoff_is_jittered_and_capped() {
        for n in 1..12 {
            let d = backoff(n);
            assert!(d <= BACKOFF_CAP && d >= BACKOFF_BASE / 2, "{n}: {d:?}");
        }
    }

    #[test]
    fn log_lines_hide_sas_signatures() {
        let url = url::Url::parse("https://h/x?api-version=1&sig=secret&se=2026").unwrap();
        let shown = redacted(&url);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("api-version=1"), "{shown}");
    }

    #[tokio::test]
    async fn a_closed_gate_past_the_budget_is_refused_at_once() {
        let mut h = Headers::new();
        h.insert("x-ms-ratelimit-remaining-subscription-writes", "0");
        close_gate("https://gate-test.invalid", Duration::from_secs(600), &h);
        let started = Instant::now();
        let refused = gate_wait("https://gate-test.invalid", Duration::from_secs(5)).await;
        assert!(refused.is_err());
        assert!(started.elapsed() < Duration::from_secs(1));
        let e = refused.unwrap_err();
        let ours = find_error(&e).expect("our error inside");
        assert_eq!(ours.kind, Kind::Throttled);
        assert!(ours.message.contains("--max-wait"), "{}", ours.message);
    }

    fn answer(pairs: &[(&'static str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (k, v) in pairs {
            h.insert(*k, v.to_string());
        }
        h
    }

    #[test]
    fn budgets_are_read_from_the_subscription_and_resource_headers() {
        let h = answer(&[
            ("x-ms-ratelimit-remaining-subscription-reads", "249"),
            (
                "x-ms-ratelimit-remaining-resource",
                "Microsoft.Compute/LowCostGet3Min;3998,Microsoft.Compute/LowCostGet30Min;31990",
            ),
        ]);
        let found = budgets(&h);
        assert_eq!(
            found,
            vec![
                (
                    "x-ms-ratelimit-remaining-subscription-reads".to_string(),
                    249.0,
                    Refill::PerSecond(25.0)
                ),
                (
                    "Microsoft.Compute/LowCostGet3Min".to_string(),
                    3998.0,
                    Refill::Window(180.0)
                ),
                (
                    "Microsoft.Compute/LowCostGet30Min".to_string(),
                    31990.0,
                    Refill::Window(1800.0)
                ),
            ]
        );
    }

    #[test]
    fn a_bucket_paces_calls_only_once_it_runs_low() {
        let now = Instant::now();
        let bucket = |remaining: f64, sent: f64| Budget {
            remaining,
            seen: now,
            sent,
            size: 200.0,
            refill: 10.0,
        };
        // More than a quarter left: no wait.
        assert_eq!(bucket(60.0, 0.0).spacing(now), Duration::ZERO);
        // A quarter or less: the refill pace, 1/10 s.
        assert_eq!(bucket(50.0, 0.0).spacing(now), Duration::from_millis(100));
        // Sent since, counted: 60 reported, 20 sent, 40 left.
        assert_eq!(bucket(60.0, 20.0).spacing(now), Duration::from_millis(100));
        // Empty: until one call's worth came back; 2 s later 20 came back.
        assert_eq!(bucket(0.0, 1.0).spacing(now), Duration::from_millis(200));
        assert_eq!(
            bucket(0.0, 1.0).spacing(now + Duration::from_secs(2)),
            Duration::from_millis(100)
        );
        assert!(bucket(0.0, 0.0).left(now + Duration::from_secs(3600)) <= 200.0);
    }

    #[test]
    fn the_governor_spaces_a_class_by_its_lowest_bucket_and_leaves_the_other_alone() {
        let g = Governor::default();
        let now = Instant::now();
        // Plenty left: nothing waits.
        g.observe(
            "h",
            Class::Write,
            &answer(&[("x-ms-ratelimit-remaining-subscription-writes", "199")]),
            now,
        );
        assert_eq!(g.pace("h", Class::Write, now), Duration::ZERO);
        // Low (10 writes left of a 199 seen): one write per 1/10 s, the next one's turn after it.
        g.observe(
            "h",
            Class::Write,
            &answer(&[("x-ms-ratelimit-remaining-subscription-writes", "10")]),
            now,
        );
        assert_eq!(g.pace("h", Class::Write, now), Duration::ZERO);
        assert_eq!(g.pace("h", Class::Write, now), Duration::from_millis(100));
        assert_eq!(g.pace("h", Class::Write, now), Duration::from_millis(200));
        // Reads have their own budget.
        assert_eq!(g.pace("h", Class::Read, now), Duration::ZERO);
        // A window bucket: 30 left of 4000 in 3 minutes gives back 4000/180 a second.
        g.observe(
            "h",
            Class::Read,
            &answer(&[(
                "x-ms-ratelimit-remaining-resource",
                "Microsoft.Compute/LowCostGet3Min;4000",
            )]),
            now,
        );
        g.observe(
            "h",
            Class::Read,
            &answer(&[(
                "x-ms-ratelimit-remaining-resource",
                "Microsoft.Compute/LowCostGet3Min;30",
            )]),
            now,
        );
        assert_eq!(g.pace("h", Class::Read, now), Duration::ZERO);
        let second = g.pace("h", Class::Read, now);
        assert_eq!(second, Duration::from_secs_f64(180.0 / 4000.0));
    }

    fn find_error(e: &azure_core::Error) -> Option<&Error> {
        std::error::Error::source(e).and_then(|s| s.downcast_ref::<Error>())
    }
}
