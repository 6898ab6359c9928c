//! Reproducible failures injected by scenario rules: a given call of an operation, or a seeded
//! probability, answers 500/503/429, drops the connection, fails its LRO or runs slower.

use serde::{Deserialize, Serialize};

use super::arm::{self, ArmError};
use super::http::Reply;
use super::ratelimit::Remaining;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// Operation name (`snapshots.createOrUpdate`), short alias (`snapshot.create`), a prefix
    /// pattern (`virtualMachines.*`) or `*`.
    pub operation: String,
    /// Only the Nth call (1-based) of that operation.
    #[serde(default)]
    pub call: Option<u64>,
    /// Each call with this probability, from a seeded generator (same seed → same calls).
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// `http_500`, `http_503`, `throttle(SECONDS)`, `lro_failed`, `drop_connection`, `slow(FACTOR)`.
    pub kind: FaultKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    Http500,
    Http503,
    Throttle { retry_after: u64 },
    LroFailed,
    DropConnection,
    Slow { factor: f64 },
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (name, arg) = match s.split_once('(') {
            Some((n, rest)) => {
                let arg = rest
                    .strip_suffix(')')
                    .ok_or_else(|| format!("fault kind `{s}`: missing `)`"))?;
                (n.trim(), Some(arg.trim()))
            }
            None => (s, None),
        };
        let number = |default: f64| -> Result<f64, String> {
            match arg {
                None => Ok(default),
                Some(a) => a
                    .parse::<f64>()
                    .map_err(|_| format!("fault kind `{s}`: `{a}` is not a number")),
            }
        };
        Ok(match name {
            "http_500" => FaultKind::Http500,
            "http_503" => FaultKind::Http503,
            "throttle" => FaultKind::Throttle {
                retry_after: number(5.0)? as u64,
            },
            "lro_failed" => FaultKind::LroFailed,
            "drop_connection" => FaultKind::DropConnection,
            "slow" => FaultKind::Slow {
                factor: number(10.0)?,
            },
            other => {
                return Err(format!(
                    "unknown fault kind `{other}`: expected http_500, http_503, throttle(SECONDS), \
                     lro_failed, drop_connection or slow(FACTOR)"
                ))
            }
        })
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultKind::Http500 => write!(f, "http_500"),
            FaultKind::Http503 => write!(f, "http_503"),
            FaultKind::Throttle { retry_after } => write!(f, "throttle({retry_after})"),
            FaultKind::LroFailed => write!(f, "lro_failed"),
            FaultKind::DropConnection => write!(f, "drop_connection"),
            FaultKind::Slow { factor } => write!(f, "slow({factor})"),
        }
    }
}

impl Serialize for FaultKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FaultKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl FaultRule {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = self.probability {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("fault probability {p} is not between 0 and 1"));
            }
        }
        if self.call == Some(0) {
            return Err("fault `call` counts from 1".into());
        }
        Ok(())
    }

    fn matches(&self, name: &str, alias: &str) -> bool {
        let p = self.operation.as_str();
        p == "*"
            || p.eq_ignore_ascii_case(name)
            || p.eq_ignore_ascii_case(alias)
            || p.strip_suffix(".*").is_some_and(|prefix| {
                name.split('.')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case(prefix))
                    || alias
                        .split('.')
                        .next()
                        .is_some_and(|a| a.eq_ignore_ascii_case(prefix))
            })
    }

    fn fires(&self, name: &str, call: u64) -> bool {
        match (self.call, self.probability) {
            (Some(n), _) => n == call,
            (None, Some(p)) => {
                let seed = self.seed.unwrap_or(0) ^ fnv1a(name.as_bytes());
                let draw = splitmix64(seed.wrapping_add(call.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
                (draw as f64 / u64::MAX as f64) < p
            }
            (None, None) => true,
        }
    }
}

/// Counts this call of the operation and returns the fault to apply, if any.
pub fn pick(
    rules: &[FaultRule],
    calls: &mut std::collections::BTreeMap<String, u64>,
    name: &str,
    alias: &str,
) -> Option<FaultKind> {
    let count = calls.entry(name.to_string()).or_insert(0);
    *count += 1;
    let call = *count;
    rules
        .iter()
        .find(|r| r.matches(name, alias) && r.fires(name, call))
        .map(|r| r.kind)
}

/// The answer that replaces the handler's: an exhausted rate-limit window (no fault), or a fault
/// that refuses the call. Returns the reply and the rate-limit state to report with it.
pub fn refusal(
    fault: Option<FaultKind>,
    remaining: Remaining,
    subscription: &str,
    time_scale: f64,
) -> Option<(Reply, Remaining)> {
    if remaining.exhausted() {
        return Some((remaining.throttled(time_scale), remaining));
    }
    match fault? {
        FaultKind::Http500 => {
            // ARM's text for an internal error, with its four diagnostic fields filled in as ARM
            // does (Azure/azure-powershell#11291: "Encountered internal server error. Diagnostic
            // information: timestamp '20200310T111055Z', subscription id '<subscription id >',
            // tracking id '135c8729-…', request correlation id '135c8729-…'."). The tracking and
            // correlation ids are one id there.
            let stamp = arm::now()
                .format(time::macros::format_description!(
                    "[year][month][day]T[hour][minute][second]Z"
                ))
                .expect("timestamp formats");
            let e = ArmError::new(
                500,
                "InternalServerError",
                format!(
                    "Encountered internal server error. Diagnostic information: timestamp '{stamp}', \
                     subscription id '{subscription}', tracking id '{id}', request correlation id '{id}'.",
                    id = arm::guid()
                ),
            );
            Some((e.into(), remaining))
        }
        // No recorded CRP 503 was found; the code is HTTP's and the text the one Azure's front
        // ends are seen to send ("The service is unavailable.", microsoft/vscode-azureappservice
        // #1593). No Retry-After: no source shows one on a 503.
        FaultKind::Http503 => Some((
            ArmError::new(503, "ServiceUnavailable", "The service is unavailable.").into(),
            remaining,
        )),
        FaultKind::Throttle { retry_after } => {
            let emptied = Remaining::emptied(remaining.bucket, retry_after as f64);
            Some((emptied.throttled(time_scale), emptied))
        }
        _ => None,
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn rule(yaml: &str) -> FaultRule {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn nth_call_fires_once() {
        let rules = vec![rule(
            "{operation: snapshot.create, call: 2, kind: http_503}",
        )];
        let mut calls = BTreeMap::new();
        let got: Vec<_> = (0..3)
            .map(|_| {
                pick(
                    &rules,
                    &mut calls,
                    "snapshots.createOrUpdate",
                    "snapshot.create",
                )
            })
            .collect();
        assert_eq!(got, vec![None, Some(FaultKind::Http503), None]);
    }

    #[test]
    fn seeded_probability_is_reproducible() {
        let rules = vec![rule(
            "{operation: '*', probability: 0.3, seed: 7, kind: throttle(2)}",
        )];
        let run = || {
            let mut calls = BTreeMap::new();
            (0..200)
                .map(|_| pick(&rules, &mut calls, "disks.get", "disk.get").is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let hits = a.iter().filter(|h| **h).count();
        assert!((30..90).contains(&hits), "{hits} hits of 200 at p=0.3");
    }

    #[test]
    fn kinds_parse_and_reject_typos() {
        assert_eq!(
            "throttle(7)".parse::<FaultKind>(),
            Ok(FaultKind::Throttle { retry_after: 7 })
        );
        assert_eq!(
            "slow(2.5)".parse::<FaultKind>(),
            Ok(FaultKind::Slow { factor: 2.5 })
        );
        assert!("http_502"
            .parse::<FaultKind>()
            .unwrap_err()
            .contains("unknown fault kind"));
    }
}
