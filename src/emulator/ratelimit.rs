//! ARM's per-resource throttling: sliding 3- and 30-minute windows per bucket
//! (`Microsoft.Compute/LowCostGet3Min` ...), reported in `x-ms-ratelimit-remaining-resource`
//! and answered with 429 once exhausted. Windows shrink with the time scale like every other
//! Azure duration.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::arm::ArmError;
use super::http::Reply;

const LIMIT_3: u64 = 4000;
const LIMIT_30: u64 = 32000;

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
        let w3 = Duration::from_secs_f64(180.0 * self.time_scale);
        let w30 = Duration::from_secs_f64(1800.0 * self.time_scale);
        let now = Instant::now();
        let mut calls = self.calls.lock().expect("rate lock");
        let q = calls.entry(bucket).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) > w30) {
            q.pop_front();
        }
        q.push_back(now);
        let in3 = q
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) <= w3)
            .count() as u64;
        Remaining {
            bucket,
            in_3_min: LIMIT_3.saturating_sub(in3),
            in_30_min: LIMIT_30.saturating_sub(q.len() as u64),
        }
    }
}

impl Remaining {
    pub fn exhausted(bucket: &'static str) -> Self {
        Remaining {
            bucket,
            in_3_min: 0,
            in_30_min: 0,
        }
    }

    pub fn header(&self) -> String {
        let b = self.bucket;
        format!(
            "Microsoft.Compute/{b}3Min;{},Microsoft.Compute/{b}30Min;{}",
            self.in_3_min, self.in_30_min
        )
    }

    /// ARM's 429 for this bucket.
    pub fn throttled(&self, retry_after: u64) -> Reply {
        Reply::from(ArmError::new(
            429,
            "OperationNotAllowed",
            format!(
                "The server rejected the request because too many requests have been received for this \
                 subscription. (Throttled by policy Microsoft.Compute/{}3Min)",
                self.bucket
            ),
        ))
        .header("Retry-After", retry_after.to_string())
    }
}
