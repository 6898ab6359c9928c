//! ARM's per-resource throttling: sliding 3- and 30-minute windows per bucket
//! (`Microsoft.Compute/LowCostGet3Min` ...), reported in `x-ms-ratelimit-remaining-resource`
//! and answered with 429 once exhausted. Windows shrink with the time scale like every other
//! Azure duration.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use super::arm::{self, ArmError};
use super::http::Reply;

pub const LIMIT_3: u64 = 4000;
pub const LIMIT_30: u64 = 32000;
pub const WINDOW_3: f64 = 180.0;
pub const WINDOW_30: f64 = 1800.0;

pub struct RateLimits {
    time_scale: f64,
    calls: Mutex<HashMap<&'static str, VecDeque<Instant>>>,
}

/// What is left in a bucket after this call.
#[derive(Debug, Clone, Copy)]
pub struct Remaining {
    pub bucket: &'static str,
    pub in_3_min: u64,
    pub in_30_min: u64,
    /// Azure seconds until the exhausted window counts one call fewer (0 while not exhausted).
    pub reset_in: f64,
    /// Calls counted in the exhausted window.
    pub measured: u64,
}

impl RateLimits {
    pub fn new(time_scale: f64) -> Self {
        RateLimits {
            time_scale,
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a call against its bucket.
    pub fn take(&self, bucket: &'static str) -> Remaining {
        let w3 = Duration::from_secs_f64(WINDOW_3 * self.time_scale);
        let w30 = Duration::from_secs_f64(WINDOW_30 * self.time_scale);
        let now = Instant::now();
        let mut calls = self.calls.lock().expect("rate lock");
        let q = calls.entry(bucket).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) > w30) {
            q.pop_front();
        }
        q.push_back(now);
        let in3: Vec<&Instant> = q
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) <= w3)
            .collect();
        let remaining = Remaining {
            bucket,
            in_3_min: LIMIT_3.saturating_sub(in3.len() as u64),
            in_30_min: LIMIT_30.saturating_sub(q.len() as u64),
            reset_in: 0.0,
            measured: 0,
        };
        let frees = |oldest: &Instant, window: Duration| {
            window
                .saturating_sub(now.duration_since(*oldest))
                .as_secs_f64()
                / self.time_scale
        };
        if remaining.in_3_min == 0 {
            Remaining {
                reset_in: in3.last().map_or(0.0, |t| frees(t, w3)),
                measured: in3.len() as u64,
                ..remaining
            }
        } else if remaining.in_30_min == 0 {
            Remaining {
                reset_in: q.front().map_or(0.0, |t| frees(t, w30)),
                measured: q.len() as u64,
                ..remaining
            }
        } else {
            remaining
        }
    }
}

impl Remaining {
    pub fn exhausted(&self) -> bool {
        self.in_3_min == 0 || self.in_30_min == 0
    }

    /// A bucket emptied by a `throttle(SECONDS)` fault.
    pub fn emptied(bucket: &'static str, seconds: f64) -> Self {
        Remaining {
            bucket,
            in_3_min: 0,
            in_30_min: 0,
            reset_in: seconds,
            measured: LIMIT_3 + 1,
        }
    }

    pub fn header(&self) -> String {
        let b = self.bucket;
        format!(
            "Microsoft.Compute/{b}3Min;{},Microsoft.Compute/{b}30Min;{}",
            self.in_3_min, self.in_30_min
        )
    }

    /// CRP's 429, as the Compute throttling troubleshooting article shows it
    /// (MicrosoftDocs/SupportArticles-docs, virtual-machines/windows/troubleshooting-throttling-errors.md):
    /// `OperationNotAllowed`, "The server rejected the request because too many requests have
    /// been received for this subscription.", one `TooManyRequests` detail naming the operation
    /// group with a serialized JSON message, and `Retry-After` "the minimum number of seconds
    /// the client should wait" (the article's example: 1200, its window's end). Scaled by the
    /// time scale like every other wait.
    pub fn throttled(&self, time_scale: f64) -> Reply {
        let (group, allowed, window) = if self.in_3_min == 0 {
            (format!("{}3Min", self.bucket), LIMIT_3, WINDOW_3)
        } else {
            (format!("{}30Min", self.bucket), LIMIT_30, WINDOW_30)
        };
        let end = arm::now() + time::Duration::seconds_f64(self.reset_in * time_scale);
        let start = end - time::Duration::seconds_f64(window * time_scale);
        let detail = json!({
            "operationGroup": group,
            "startTime": arm::rfc3339(start),
            "endTime": arm::rfc3339(end),
            "allowedRequestCount": allowed,
            "measuredRequestCount": self.measured,
        });
        let e = ArmError::new(
            429,
            "OperationNotAllowed",
            "The server rejected the request because too many requests have been received for this subscription.",
        )
        .with_detail(json!({ "code": "TooManyRequests", "target": group, "message": detail.to_string() }));
        Reply::from(e).retry_after(self.reset_in, time_scale)
    }
}
