//! Our retry policy, in place of azure_core's default (which honours any `Retry-After` with no cap,
//! so a `Retry-After: 1200` would silently sleep 20 minutes).
//!
//! azure_core decides *what* is retried (408, 429, 500, 502, 503, 504 and connection errors);
//! this policy decides *how long*: `Retry-After` capped, otherwise jittered exponential backoff,
//! and every wait is reported to the step's progress line.

use std::time::Duration;

use azure_core::error::ErrorKind;
use rand::Rng;

use super::lro::PollTiming;
use super::progress;

/// Give up after this many retries of one request...
const MAX_RETRIES: u32 = 8;
/// ...or once this much time has gone by since the first attempt.
const MAX_ELAPSED: Duration = Duration::from_secs(15 * 60);

#[derive(Debug)]
pub struct ArmRetry {
    base: Duration,
    cap: Duration,
}

impl ArmRetry {
    pub fn new(timing: &PollTiming) -> Self {
        Self {
            base: timing.retry_base,
            cap: timing.retry_cap,
        }
    }

    /// Exponential from `base`, at most `cap`, with jitter in [50 %, 100 %] so that clients
    /// throttled together do not come back together.
    fn backoff(&self, retry_count: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << retry_count.saturating_sub(1).min(16));
        let full = exp.min(self.cap);
        full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }

    /// What the server asked for (never more than the cap), or our backoff.
    pub fn delay(&self, retry_count: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(asked) => asked.min(self.cap),
            None => self.backoff(retry_count),
        }
    }
}

/// "8 s", "1.5 s", "50 ms": readable on a progress line.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 0.1 {
        format!("{} ms", d.as_millis())
    } else if secs >= 10.0 {
        format!("{} s", secs.round())
    } else {
        format!("{:.1} s", secs)
    }
}

fn reason(error: &azure_core::Error) -> String {
    match error.kind() {
        ErrorKind::HttpResponse { status, .. } if u16::from(*status) == 429 => {
            "throttled by Azure".to_string()
        }
        ErrorKind::HttpResponse { status, error_code } => {
            let code = error_code
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            format!("Azure answered {}{code}", u16::from(*status))
        }
        ErrorKind::Io => "connection to Azure failed".to_string(),
        other => format!("Azure request failed ({other})"),
    }
}

#[async_trait::async_trait]
impl azure_core::RetryPolicy for ArmRetry {
    fn is_expired(&self, duration_since_start: Duration, retry_count: u32) -> bool {
        retry_count >= MAX_RETRIES || duration_since_start >= MAX_ELAPSED
    }

    fn sleep_duration(&self, retry_count: u32) -> Duration {
        self.backoff(retry_count)
    }

    async fn wait(
        &self,
        error: &azure_core::Error,
        retry_count: u32,
        retry_after: Option<Duration>,
    ) {
        let delay = self.delay(retry_count, retry_after);
        progress::report(format!(
            "{}, retrying in {} (retry {retry_count} of {MAX_RETRIES})",
            reason(error),
            human(delay)
        ));
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ArmRetry {
        ArmRetry {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        assert_eq!(
            policy().delay(1, Some(Duration::from_secs(8))),
            Duration::from_secs(8)
        );
        assert_eq!(
            policy().delay(1, Some(Duration::from_secs(1200))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn backoff_grows_jittered_and_stays_under_the_cap() {
        let p = policy();
        for n in 1..20 {
            let d = p.delay(n, None);
            let full = Duration::from_secs(1u64 << (n - 1).min(16)).min(Duration::from_secs(30));
            assert!(
                d >= full / 2 && d <= full,
                "retry {n}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
        }
    }
}
