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

/// ARM's own throttling, before any resource provider sees the call: since 2024 a token bucket
/// per region, subscription, principal and operation type ("Understand how Azure Resource
/// Manager throttles requests", Microsoft Learn,
/// azure-resource-manager/management/request-limits-and-throttling, "Regional throttling and
/// token bucket algorithm": reads 250 tokens refilled at 25 a second, deletes and writes 200 at
/// 10). Its "Remaining requests" table names the headers that report them. The refill, an
/// Azure rate, runs faster by the time scale.
pub struct ArmBuckets {
    time_scale: f64,
    /// (subscription, principal, class) → tokens left, when last counted.
    buckets: Mutex<HashMap<BucketKey, (f64, Instant)>>,
}

type BucketKey = (String, String, ArmClass);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArmClass {
    Reads,
    Writes,
    Deletes,
}

impl ArmClass {
    pub fn of(method: &str) -> ArmClass {
        match method {
            "GET" | "HEAD" => ArmClass::Reads,
            "DELETE" => ArmClass::Deletes,
            _ => ArmClass::Writes,
        }
    }

    /// (bucket size, tokens per Azure second).
    pub fn budget(self) -> (f64, f64) {
        match self {
            ArmClass::Reads => (250.0, 25.0),
            ArmClass::Writes | ArmClass::Deletes => (200.0, 10.0),
        }
    }

    fn word(self) -> &'static str {
        match self {
            ArmClass::Reads => "read",
            ArmClass::Writes => "write",
            ArmClass::Deletes => "delete",
        }
    }
}

/// A call's take from its ARM bucket.
#[derive(Debug, Clone, Copy)]
pub struct ArmTake {
    pub class: ArmClass,
    /// Whole tokens left after this call (None: the bucket was empty and the call refused).
    pub left: Option<u64>,
    /// Azure seconds until the next token, when refused.
    pub wait: f64,
}

impl ArmBuckets {
    pub fn new(time_scale: f64) -> Self {
        ArmBuckets {
            time_scale,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn take(&self, subscription: &str, principal: &str, class: ArmClass) -> ArmTake {
        let (size, refill) = class.budget();
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("arm bucket lock");
        let key = (
            subscription.to_ascii_lowercase(),
            principal.to_string(),
            class,
        );
        let (tokens, at) = buckets.entry(key).or_insert((size, now));
        let azure_seconds = now.duration_since(*at).as_secs_f64() / self.time_scale;
        *tokens = (*tokens + azure_seconds * refill).min(size);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            ArmTake {
                class,
                left: Some(tokens.floor() as u64),
                wait: 0.0,
            }
        } else {
            ArmTake {
                class,
                left: None,
                wait: (1.0 - *tokens) / refill,
            }
        }
    }
}

impl ArmTake {
    /// `x-ms-ratelimit-remaining-subscription-reads` / `-writes` / `-deletes`.
    pub fn header(&self) -> (String, String) {
        (
            format!(
                "x-ms-ratelimit-remaining-subscription-{}s",
                self.class.word()
            ),
            self.left.unwrap_or(0).to_string(),
        )
    }

    /// ARM's 429 for an empty bucket, as Azure sends it (`SubscriptionRequestsThrottled`; the
    /// text as a 2025 deployment failure recorded it: "Number of 'read' requests for
    /// subscription '…' actor '…' exceeded. Please try again after '10' seconds after additional
    /// tokens are available. Refer to https://aka.ms/arm-throttling for additional
    /// information."), with `Retry-After` the wait for the next token, scaled.
    pub fn throttled(&self, subscription: &str, principal: &str, time_scale: f64) -> Reply {
        let seconds = self.wait.ceil().max(1.0);
        let e = ArmError::new(
            429,
            "SubscriptionRequestsThrottled",
            format!(
                "Number of '{}' requests for subscription '{subscription}' actor '{principal}' \
                 exceeded. Please try again after '{seconds}' seconds after additional tokens are \
                 available. Refer to https://aka.ms/arm-throttling for additional information.",
                self.class.word()
            ),
        );
        let (name, value) = self.header();
        Reply::from(e)
            .retry_after(seconds, time_scale)
            .header(&name, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arm_bucket_empties_then_refills_at_its_scaled_rate() {
        // Unscaled, 250 reads in a row leave the 251st refused: a token is 40 ms away.
        let b = ArmBuckets::new(1.0);
        let left: Vec<Option<u64>> = (0..250)
            .map(|_| b.take("S", "p", ArmClass::Reads).left)
            .collect();
        assert_eq!((left[0], left[249]), (Some(249), Some(0)));
        let refused = b.take("S", "p", ArmClass::Reads);
        assert_eq!(refused.left, None);
        assert!(refused.wait > 0.0 && refused.wait <= 0.04, "{refused:?}");
        // Other classes, principals and subscriptions have buckets of their own.
        assert_eq!(b.take("S", "p", ArmClass::Writes).left, Some(199));
        assert_eq!(b.take("S", "q", ArmClass::Reads).left, Some(249));
        // Scaled 1000 times, 10 ms refill 250 reads.
        let b = ArmBuckets::new(0.001);
        for _ in 0..250 {
            b.take("S", "p", ArmClass::Reads);
        }
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(b.take("S", "p", ArmClass::Reads).left, Some(249));
    }
}
