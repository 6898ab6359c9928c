//! Reads remembered between two of our own actions.
//!
//! Planning, the run-time pre-flight, each step's converge read and the fence check before each
//! mutation all read the same few resources, often within milliseconds and with nothing done in
//! between. Asking ARM again then cannot tell us anything new that the first answer did not:
//! ARM's reads are not linearisable across requests anyway, so two GETs 5 ms apart prove no more
//! than one. So a GET answer (200 or 404) is served again until this process next *acts*:
//! - sends any request that is not a read (a write, an action, a delete);
//! - waits: a poll's or a throttle's sleep, a step's retry delay, a prompt to a person;
//! - or [`MAX_AGE`] passes, as a backstop for a wait nobody announced.
//!
//! Reads that matter for safety therefore still see Azure after every moment in which anyone
//! else could have acted on our behalf's resources: a rival run's lock shows up in the fence read
//! after our next wait, exactly as it would without the memo. What goes away are the repeats ARM
//! counts against the subscription's read quota (12,000 reads an hour per principal and
//! subscription, by Microsoft's "Understand how Azure Resource Manager throttles requests"),
//! which a fleet of repairs exhausts first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use azure_core::headers::Headers;
use azure_core::{BytesStream, Response, StatusCode};

/// The longest a remembered answer is served, whatever happened.
pub const MAX_AGE: Duration = Duration::from_secs(10);

struct Answer {
    epoch: u64,
    at: Instant,
    status: StatusCode,
    headers: Headers,
    body: Vec<u8>,
    /// Read with `$expand=instanceView`: the same resource with its instance view added (the
    /// ETag is the resource's), so it also answers a plain GET of it.
    expanded: bool,
}

/// One transport's remembered answers.
#[derive(Default)]
pub struct Memo {
    /// Bumped whenever this process acts or waits; an answer read in an earlier epoch is stale.
    epoch: AtomicU64,
    answers: Mutex<HashMap<String, Answer>>,
}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo").finish_non_exhaustive()
    }
}

/// A URL's identity for the memo: host, path and its query without `$expand=instanceView`
/// (sorted, decoded), and whether that expansion was asked.
fn key(url: &url::Url) -> (String, bool) {
    let mut expanded = false;
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, v)| {
            let expand = k == "$expand" && v.eq_ignore_ascii_case("instanceView");
            expanded |= expand;
            !expand
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    (
        format!(
            "{}{}?{}",
            url.origin().ascii_serialization(),
            url.path().to_ascii_lowercase(),
            query.join("&")
        ),
        expanded,
    )
}

fn remembered(status: StatusCode) -> bool {
    matches!(status, StatusCode::Ok | StatusCode::NotFound)
}

impl Memo {
    /// From now on, every read goes to Azure again: called before anything that lets time pass
    /// and for every request that is not a read.
    pub fn forget(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// The epoch a request is sent in.
    pub fn now(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The answer to a GET of `url`, if one read since the last action or wait answers it.
    pub fn recall(&self, url: &url::Url) -> Option<Response> {
        let (key, expanded) = key(url);
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let a = answers.get(&key)?;
        let fresh = a.epoch == self.now() && a.at.elapsed() < MAX_AGE;
        (fresh && (a.expanded || !expanded)).then(|| {
            Response::new(
                a.status,
                a.headers.clone(),
                Box::pin(BytesStream::new(a.body.clone())),
            )
        })
    }

    /// Keep a GET's answer (only 200 and 404: the others are worth asking again), and hand the
    /// response back whole. `epoch` is the one the request was sent in: an answer to a read that
    /// raced with one of our writes is not kept.
    pub async fn keep(
        &self,
        url: &url::Url,
        epoch_sent: u64,
        response: Response,
    ) -> azure_core::Result<Response> {
        let status = response.status();
        if !remembered(status) {
            return Ok(response);
        }
        let (status, headers, body) = response.deconstruct();
        let body = body.collect().await?;
        let (key, expanded) = key(url);
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if epoch_sent == self.now() {
            let keeps_more = answers
                .get(&key)
                .is_some_and(|a| a.epoch == epoch_sent && a.expanded && !expanded);
            if !keeps_more {
                answers.insert(
                    key,
                    Answer {
                        epoch: epoch_sent,
                        at: Instant::now(),
                        status,
                        headers: headers.clone(),
                        body: body.to_vec(),
                        expanded,
                    },
                );
            }
        }
        Ok(Response::new(
            status,
            headers,
            Box::pin(BytesStream::new(body)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &'static str) -> Response {
        Response::new(
            StatusCode::Ok,
            Headers::new(),
            Box::pin(BytesStream::new(body)),
        )
    }

    async fn text(r: Response) -> String {
        r.into_body().collect_string().await.unwrap()
    }

    #[tokio::test]
    async fn an_answer_serves_until_the_next_action_and_an_expanded_read_serves_a_plain_one() {
        let memo = Memo::default();
        let expanded = url::Url::parse(
            "https://arm.test/subscriptions/s/x/virtualMachines/vm?api-version=1&%24expand=instanceView",
        )
        .unwrap();
        let plain =
            url::Url::parse("https://arm.test/subscriptions/s/x/virtualMachines/VM?api-version=1")
                .unwrap();
        assert!(memo.recall(&plain).is_none());
        let sent = memo.now();
        memo.keep(&expanded, sent, ok("with view")).await.unwrap();
        assert_eq!(text(memo.recall(&plain).unwrap()).await, "with view");
        assert_eq!(text(memo.recall(&expanded).unwrap()).await, "with view");
        memo.forget();
        assert!(memo.recall(&plain).is_none(), "an action makes it stale");

        let sent = memo.now();
        memo.keep(&plain, sent, ok("plain")).await.unwrap();
        assert!(
            memo.recall(&expanded).is_none(),
            "a plain read lacks the instance view"
        );
    }

    #[tokio::test]
    async fn a_read_that_raced_with_an_action_is_not_kept() {
        let memo = Memo::default();
        let url =
            url::Url::parse("https://arm.test/subscriptions/s/disks/d?api-version=1").unwrap();
        let sent = memo.now();
        memo.forget();
        let back = memo.keep(&url, sent, ok("old")).await.unwrap();
        assert_eq!(text(back).await, "old", "the caller still gets its answer");
        assert!(memo.recall(&url).is_none());
    }
}
