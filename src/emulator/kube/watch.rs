//! `?watch=true`: a stream of `{"type","object"}` lines (ADDED, MODIFIED, DELETED), as the API
//! server sends them, from the request's resourceVersion on. The controllers run lazily, so
//! the stream itself drives them while a client waits (kubectl delete --wait, wait --for).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use serde_json::{json, Value};

use super::api::{KubeError, Request};
use super::controllers;
use super::kinds::Kind;
use super::select::Selectors;
use super::store::{object_key, Cluster};
use crate::emulator::server::Emu;

/// How often a watch looks for changes (real time: the controllers' own times are scaled).
const TICK: Duration = Duration::from_millis(50);
/// The API server's default when no `timeoutSeconds` is given is a random 30-60 minutes
/// (`--min-request-timeout` 1800 s); 30 minutes here.
const DEFAULT_TIMEOUT: u64 = 1800;

struct Watch {
    emu: Arc<Emu>,
    index: usize,
    kind: Kind,
    namespace: Option<String>,
    selectors: Selectors,
    /// Revision seen so far.
    revision: u64,
    /// Matching objects already reported (key → resourceVersion).
    known: BTreeMap<String, String>,
    deadline: tokio::time::Instant,
    queue: Vec<Value>,
}

pub fn start(
    emu: Arc<Emu>,
    index: usize,
    kind: Kind,
    namespace: Option<String>,
    req: &Request,
) -> Result<Response, KubeError> {
    let selectors = Selectors::parse(req.query("labelSelector"), req.query("fieldSelector"))
        .map_err(|m| KubeError::new(400, "BadRequest", m))?;
    let timeout = req
        .query("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(DEFAULT_TIMEOUT);
    let from = req.query("resourceVersion").unwrap_or("");
    let mut w = Watch {
        emu: emu.clone(),
        index,
        kind,
        namespace,
        selectors,
        revision: 0,
        known: BTreeMap::new(),
        deadline: tokio::time::Instant::now() + Duration::from_secs(timeout),
        queue: Vec::new(),
    };
    {
        let mut state = emu.lock();
        let changed = controllers::reconcile(&mut state, &emu.images, emu.time_scale);
        let c = &state.kubernetes[index];
        match from.parse::<u64>() {
            // "0" or none: synthetic ADDED events for what exists now, then changes.
            Err(_) | Ok(0) => {
                w.revision = c.revision;
                for o in w.matching(c) {
                    w.queue.push(json!({"type": "ADDED", "object": o}));
                    w.known.insert(key_of(&o), rv(&o));
                }
                w.queue.reverse();
            }
            Ok(r) => {
                if r < c.oldest_watchable() {
                    return Err(KubeError::new(
                        410,
                        "Expired",
                        format!("too old resource version: {r} ({})", c.revision),
                    ));
                }
                // Objects that match now existed at `r` unless created after it; what changed
                // after `r` is reported by the first poll.
                w.revision = r;
                for o in w.matching(c) {
                    if rv(&o).parse::<u64>().unwrap_or(0) <= r {
                        w.known.insert(key_of(&o), rv(&o));
                    }
                }
                for t in &c.tombstones {
                    if t.kind == kind.plural && t.revision > r && w.selects(&t.object) {
                        w.known.insert(key_of(&t.object), "0".into());
                    }
                }
            }
        }
        if changed {
            let _ = emu.save(&state);
        }
    }
    let stream = futures::stream::unfold(w, |mut w| async move {
        loop {
            if let Some(event) = w.queue.pop() {
                let mut line = serde_json::to_vec(&event).unwrap_or_default();
                line.push(b'\n');
                return Some((Ok::<Bytes, std::io::Error>(Bytes::from(line)), w));
            }
            if tokio::time::Instant::now() >= w.deadline {
                return None;
            }
            tokio::time::sleep(TICK).await;
            w.poll();
        }
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .expect("valid response"))
}

fn key_of(o: &Value) -> String {
    object_key(
        o["metadata"]["namespace"].as_str(),
        o["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

fn rv(o: &Value) -> String {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string()
}

impl Watch {
    fn selects(&self, o: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| o["metadata"]["namespace"] == ns)
            && self.selectors.matches(o)
    }

    fn matching(&self, c: &Cluster) -> Vec<Value> {
        c.list(self.kind)
            .filter(|o| self.selects(o))
            .cloned()
            .collect()
    }

    fn poll(&mut self) {
        let mut state = self.emu.lock();
        if controllers::reconcile(&mut state, &self.emu.images, self.emu.time_scale) {
            let _ = self.emu.save(&state);
        }
        let Some(c) = state.kubernetes.get(self.index) else {
            return;
        };
        if c.revision == self.revision {
            return;
        }
        let mut events = Vec::new();
        let current = self.matching(c);
        let mut seen = BTreeMap::new();
        for o in current {
            let key = key_of(&o);
            let version = rv(&o);
            match self.known.get(&key) {
                Some(v) if *v == version => {}
                Some(_) => events.push(json!({"type": "MODIFIED", "object": o})),
                None => events.push(json!({"type": "ADDED", "object": o})),
            }
            seen.insert(key, version);
        }
        for key in self.known.keys() {
            if seen.contains_key(key) {
                continue;
            }
            // Gone, or no longer selected: the last state the watch can show.
            let last = c
                .tombstones
                .iter()
                .rev()
                .find(|t| t.kind == self.kind.plural && key_of(&t.object) == *key)
                .map(|t| t.object.clone())
                .or_else(|| c.get(self.kind, key).cloned());
            if let Some(o) = last {
                events.push(json!({"type": "DELETED", "object": o}));
            }
        }
        self.known = seen;
        self.revision = c.revision;
        events.reverse();
        self.queue = events;
    }
}
