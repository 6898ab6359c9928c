//! Runs kept in a Blob Storage container, the local state directory their working copy.
//!
//! - `runs/<run_id>/journal.json`: the journal, replaced whole with `If-Match` on the version
//!   this process wrote last, under the run's lease. Its metadata names the lease's holder.
//! - The run's lock is a lease on that blob ([`LEASE`]), renewed in the background. A holder
//!   that is killed stops renewing: its lease lapses, or `--force-unlock` breaks it, or (same
//!   machine, process gone) the next one takes it over.
//! - `files/<sha256>`: the workflow's text and its scripts, content-addressed (written once
//!   with `If-None-Match: *`), so a run resumes from anywhere with what it started with.
//! - `runs/<run_id>/kept/<name>`: files steps keep (`fsck.log`).
//!
//! Fencing: when a renewal or a save finds the lease gone, this process stops acting for
//! Azure at once ([`crate::azure::halt`]) and its next save fails with [`Fenced`], naming
//! whoever holds the run now.
//!
//! The engine's store calls are synchronous (a journal save completes before the effect it
//! precedes); the requests run on this store's own small runtime, which also renews leases.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use azure_core::prelude::LeaseId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::azure::blob::{Condition, Container, Location};
use crate::azure::{Error, ErrorKind};
use crate::engine::files::FileStore;
use crate::engine::journal::{self, Journal};
use crate::engine::lock::{Holder, LockError};
use crate::engine::store::{is_valid_run_id, Fenced, HeldRun, LocalStore, RunStore};

/// How long a lease lasts unrenewed: Blob Storage's shortest (15–60 s), so that a holder that
/// died frees its run soon.
pub const LEASE: Duration = Duration::from_secs(15);
/// Renewed three times per lease: two renewals may fail before the lease lapses.
const RENEW_EVERY: Duration = Duration::from_secs(5);
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    local: LocalStore,
    container: Container,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    ensured: tokio::sync::OnceCell<()>,
    held: Mutex<HashMap<String, Arc<Held>>>,
    /// The files (by hash) this process has put or found in the container.
    files: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<()>>>>,
}

/// A lease this process holds on a run.
struct Held {
    lease: LeaseId,
    me: Holder,
    /// The journal blob's version this process wrote last.
    etag: Mutex<String>,
    lost: Mutex<Option<Fenced>>,
}

fn journal_blob(run_id: &str) -> String {
    format!("runs/{run_id}/journal.json")
}

fn file_blob(sha: &str) -> String {
    format!("files/{sha}")
}

fn kept_prefix(run_id: &str) -> String {
    format!("runs/{run_id}/kept/")
}

fn metadata(holder: &Holder) -> Vec<(String, String)> {
    let mut m = vec![
        ("holderpid".to_string(), holder.pid.to_string()),
        ("holderhost".to_string(), holder.host.clone()),
        (
            "holderstarted".to_string(),
            holder.started.format(&Rfc3339).unwrap_or_default(),
        ),
    ];
    if let Some(user) = &holder.user {
        m.push(("holderuser".to_string(), user.clone()));
    }
    m
}

fn holder_of(metadata: &HashMap<String, String>) -> Option<Holder> {
    Some(Holder {
        pid: metadata.get("holderpid")?.parse().ok()?,
        host: metadata.get("holderhost")?.clone(),
        user: metadata.get("holderuser").cloned(),
        started: OffsetDateTime::parse(metadata.get("holderstarted")?, &Rfc3339).ok()?,
    })
}

/// A write refused because the lease or the version is not this process's any more.
fn is_fencing(e: &Error) -> bool {
    e.kind == ErrorKind::PreconditionFailed
        || (e.kind == ErrorKind::Conflict && e.code.starts_with("Lease"))
}

impl BlobStore {
    /// Sends nothing yet: the container is checked at the first call that needs it.
    pub fn open(
        local: LocalStore,
        location: Location,
        auth: crate::azure::Auth,
    ) -> anyhow::Result<BlobStore> {
        let container = Container::connect(location, || {
            let cloud = crate::azure::Cloud::named("AzureCloud")?;
            crate::azure::credential::credential(
                &crate::azure::Login::Auth(auth),
                &cloud,
                Arc::new(reqwest::Client::new()),
            )
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("rescue-state")
            .enable_all()
            .build()
            .context("cannot start the shared state's runtime")?;
        Ok(BlobStore {
            inner: Arc::new(Inner {
                local,
                container,
                handle: runtime.handle().clone(),
                runtime: Mutex::new(Some(runtime)),
                ensured: tokio::sync::OnceCell::new(),
                held: Mutex::new(HashMap::new()),
                files: Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // Also from inside the engine's runtime, where a blocking shutdown would panic.
            runtime.shutdown_background();
        }
    }
}

impl Inner {
    /// Runs `work` on the store's runtime and waits for it, from sync or async code alike.
    fn block<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(work.await);
        });
        let wait = move || rx.recv().expect("the shared state's runtime stopped");
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    /// The container, created on first use when missing.
    fn container(self: &Arc<Self>) -> Result<Container, Error> {
        let me = self.clone();
        self.block(async move {
            me.ensured
                .get_or_try_init(|| me.container.ensure())
                .await
                .map(|_| me.container.clone())
        })
    }

    fn held(&self, run_id: &str) -> Option<Arc<Held>> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(run_id)
            .cloned()
    }

    fn holder_now(self: &Arc<Self>, run_id: &str) -> Option<Holder> {
        let c = self.container().ok()?;
        let name = journal_blob(run_id);
        let props = self
            .block(async move { c.properties(&name).await })
            .ok()??;
        props.leased.then(|| holder_of(&props.metadata)).flatten()
    }

    /// The lease is gone: no more Azure requests for this run, and its next save says who has
    /// it.
    fn lose(self: &Arc<Self>, run_id: &str, held: &Held, why: String) -> Fenced {
        let holder = || self.holder_now(run_id).filter(|h| *h != held.me);
        let mut fenced = Fenced {
            run_id: run_id.to_string(),
            why,
            holder: holder(),
        };
        crate::azure::halt::close(run_id, fenced.to_string());
        // Whoever took the run writes their name just after their lease (two requests, as this
        // store's own `acquire` does): a moment later, the run's end can name them.
        let named_by = std::time::Instant::now() + Duration::from_secs(1);
        while fenced.holder.is_none() && std::time::Instant::now() < named_by {
            std::thread::sleep(Duration::from_millis(100));
            fenced.holder = holder();
        }
        let mut lost = held.lost.lock().unwrap_or_else(|e| e.into_inner());
        if lost.is_none() {
            *lost = Some(fenced.clone());
        }
        fenced
    }

    fn acquire(self: &Arc<Self>, run_id: &str, take_over: bool) -> Result<Arc<Held>, LockError> {
        let io = |e: Error| LockError::Io {
            run_id: run_id.to_string(),
            source: std::io::Error::other(e.to_string()),
        };
        let container = self.container().map_err(io)?;
        let name = journal_blob(run_id);
        let (mut take_over, mut waiting) = (take_over, false);
        let lapsed_by = std::time::Instant::now() + LEASE + RENEW_EVERY;
        let lease = loop {
            let (c, n) = (container.clone(), name.clone());
            let e = match self.block(async move { c.acquire_lease(&n, LEASE).await }) {
                Ok(lease) => break lease,
                Err(e) => e,
            };
            if e.is_not_found() {
                return Err(io(Error::new(
                    ErrorKind::NotFound,
                    format!("lock run {run_id}"),
                    format!("no run `{run_id}` in {}", container.location()),
                )));
            }
            if e.kind != ErrorKind::Conflict {
                return Err(io(e));
            }
            let (c, n) = (container.clone(), name.clone());
            let holder = self
                .block(async move { c.properties(&n).await })
                .map_err(io)?
                .and_then(|p| holder_of(&p.metadata));
            let named = holder
                .as_ref()
                .map_or("its last holder".into(), |h| h.to_string());
            if take_over {
                // Breaking is never automatic: two processes that both broke a lease would
                // each take the run from the other.
                let (c, n) = (container.clone(), name.clone());
                self.block(async move { c.break_lease(&n).await })
                    .map_err(io)?;
                eprintln!("note: took run {run_id} over from {named}, as --force-unlock asked");
                take_over = false;
                continue;
            }
            // A holder gone from this machine renews no more: its lease lapses by itself.
            if holder.as_ref().is_some_and(Holder::is_gone_from_here)
                && std::time::Instant::now() < lapsed_by
            {
                if !waiting {
                    eprintln!(
                        "note: run {run_id} is leased to {named}, which has exited; waiting up to {} s for the lease to lapse",
                        LEASE.as_secs()
                    );
                    waiting = true;
                }
                self.block(tokio::time::sleep(Duration::from_millis(500)));
                continue;
            }
            return Err(LockError::Held {
                run_id: run_id.to_string(),
                holder,
                hint: format!(
                    "wait for it to finish; if that process is gone for good, its lease on {}/{name} lapses within {} s, or take the run over now: rescue resume {run_id} --force-unlock {run_id}",
                    container.location(),
                    LEASE.as_secs()
                ),
            });
        };
        let me = Holder::me();
        let c = container.clone();
        let n = name.clone();
        let m = metadata(&me);
        let etag = self
            .block(async move { c.set_metadata(&n, &lease, &m).await })
            .map_err(io)?;
        let held = Arc::new(Held {
            lease,
            me,
            etag: Mutex::new(etag),
            lost: Mutex::new(None),
        });
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run_id.to_string(), held.clone());
        Ok(held)
    }

    fn renew_in_background(self: &Arc<Self>, run_id: String, held: Arc<Held>) {
        let me = self.clone();
        self.handle.spawn(async move {
            let name = journal_blob(&run_id);
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if held
                    .lost
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some()
                    || me.held(&run_id).is_none_or(|h| !Arc::ptr_eq(&h, &held))
                {
                    return;
                }
                match me.container.renew_lease(&name, &held.lease).await {
                    Ok(()) => {}
                    // The next renewal tries again; the lease outlives two misses.
                    Err(e) if e.is_transient() => {}
                    Err(e) => {
                        let me2 = me.clone();
                        let held2 = held.clone();
                        let run = run_id.clone();
                        // `lose` blocks on this runtime: off its worker.
                        let _ = tokio::task::spawn_blocking(move || {
                            me2.lose(&run, &held2, format!("its lease was lost ({e})"))
                        })
                        .await;
                        return;
                    }
                }
            }
        });
    }
}

/// The lease, released when dropped (unless it was lost).
struct Lease {
    inner: Arc<Inner>,
    run_id: String,
    held: Arc<Held>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lease({})", self.run_id)
    }
}

impl HeldRun for Lease {}

impl Drop for Lease {
    fn drop(&mut self) {
        self.inner
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.run_id);
        if self
            .held
            .lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        let c = self.inner.container.clone();
        let (name, lease) = (journal_blob(&self.run_id), self.held.lease);
        // Best effort: an unreleased lease lapses by itself.
        let _ = self
            .inner
            .block(async move { c.release_lease(&name, &lease).await });
    }
}

fn anyhow_of(e: Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

impl RunStore for BlobStore {
    fn location(&self) -> String {
        self.inner.container.location().to_string()
    }

    fn run_dir(&self, run_id: &str) -> std::path::PathBuf {
        self.inner.local.run_dir(run_id)
    }

    fn create_run(&self) -> anyhow::Result<String> {
        let c = self.inner.container().map_err(anyhow_of)?;
        loop {
            let id = self.inner.local.create_dir()?;
            let (c2, name) = (c.clone(), journal_blob(&id));
            // Claims the id team-wide: an empty journal until the first save, under the lease.
            match self.inner.block(async move {
                c2.put(&name, Vec::new(), Condition::Absent, None, &[])
                    .await
            }) {
                Ok(_) => return Ok(id),
                Err(e) if is_fencing(&e) || e.kind == ErrorKind::Conflict => {
                    self.inner.local.discard(&id);
                }
                Err(e) => {
                    self.inner.local.discard(&id);
                    return Err(anyhow_of(e));
                }
            }
        }
    }

    fn run_ids(&self) -> anyhow::Result<Vec<String>> {
        let c = self.inner.container().map_err(anyhow_of)?;
        let names = self
            .inner
            .block(async move { c.list("runs/").await })
            .map_err(anyhow_of)?;
        let mut ids: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_prefix("runs/")?.strip_suffix("/journal.json"))
            .filter(|id| is_valid_run_id(id))
            .map(str::to_string)
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn journal_text(&self, run_id: &str) -> anyhow::Result<Option<String>> {
        let c = self.inner.container().map_err(anyhow_of)?;
        let name = journal_blob(run_id);
        let bytes = self
            .inner
            .block(async move { c.get(&name).await })
            .map_err(anyhow_of)?;
        bytes
            .filter(|b| !b.is_empty())
            .map(|b| String::from_utf8(b).context("the shared journal is not UTF-8 text"))
            .transpose()
    }

    fn journal_place(&self, run_id: &str) -> std::path::PathBuf {
        format!("{}/{}", self.location(), journal_blob(run_id)).into()
    }

    fn fetch(&self, run_id: &str) -> anyhow::Result<bool> {
        if !is_valid_run_id(run_id) {
            return Ok(false);
        }
        let Some(text) = self.journal_text(run_id)? else {
            return Ok(false);
        };
        let dir = self.run_dir(run_id);
        crate::engine::store::create_private_dir(&dir)?;
        journal::write_durably(&Journal::path(&dir), text.as_bytes())?;
        let journal = Journal::parse_stored(&text, run_id, &self.journal_place(run_id))?;
        let files = FileStore::new(&dir);
        let wanted = std::iter::once(journal.workflow.sha256.clone())
            .chain(journal.workflow.files.values().map(|f| f.sha256.clone()));
        let c = self.inner.container().map_err(anyhow_of)?;
        for sha in wanted {
            if files.get(&sha).is_ok() {
                continue;
            }
            let (c2, name) = (c.clone(), file_blob(&sha));
            let bytes = self
                .inner
                .block(async move { c2.get(&name).await })
                .map_err(anyhow_of)?
                .with_context(|| {
                    format!(
                        "{}/files/{sha} is missing (the journal names it)",
                        self.location()
                    )
                })?;
            anyhow::ensure!(
                files.put(&bytes)? == sha,
                "{}/files/{sha} no longer matches its hash (edited?)",
                self.location()
            );
        }
        let (c2, prefix) = (c.clone(), kept_prefix(run_id));
        let kept = self
            .inner
            .block(async move { c2.list(&prefix).await })
            .map_err(anyhow_of)?;
        for name in kept {
            let file = name.rsplit('/').next().unwrap_or_default().to_string();
            if file.is_empty() || dir.join(&file).is_file() {
                continue;
            }
            let c2 = c.clone();
            if let Some(bytes) = self
                .inner
                .block(async move { c2.get(&name).await })
                .map_err(anyhow_of)?
            {
                journal::write_file_durably(&dir.join(&file), &bytes)?;
            }
        }
        Ok(true)
    }

    fn lock(&self, run_id: &str, take_over: bool) -> Result<Box<dyn HeldRun>, LockError> {
        let held = self.inner.acquire(run_id, take_over)?;
        self.inner
            .renew_in_background(run_id.to_string(), held.clone());
        Ok(Box::new(Lease {
            inner: self.inner.clone(),
            run_id: run_id.to_string(),
            held,
        }))
    }

    fn save_journal(&self, run_id: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let held = self
            .inner
            .held(run_id)
            .with_context(|| format!("cannot save run {run_id}'s journal without its lease"))?;
        if let Some(lost) = &*held.lost.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(lost.clone().into());
        }
        let c = self.inner.container.clone();
        let name = journal_blob(run_id);
        let etag = held.etag.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (lease, meta, body) = (held.lease, metadata(&held.me), bytes.to_vec());
        let written = self.inner.block(async move {
            c.put(&name, body, Condition::Version(&etag), Some(&lease), &meta)
                .await
        });
        match written {
            Ok(etag) => {
                *held.etag.lock().unwrap_or_else(|e| e.into_inner()) = etag;
            }
            Err(e) if is_fencing(&e) => {
                let why = format!("the shared journal refused this process's save ({e})");
                return Err(self.inner.lose(run_id, &held, why).into());
            }
            Err(e) => return Err(anyhow_of(e)),
        }
        self.inner.local.save_journal(run_id, bytes)
    }

    fn put_file(&self, run_id: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let sha = self.inner.local.put_file(run_id, bytes)?;
        let c = self.inner.container().map_err(anyhow_of)?;
        // Content-addressed and never deleted: once this process has put a file (or found it
        // there), its other runs need not send it again, and runs recorded together (a fleet's)
        // wait for the one put.
        let put = self
            .inner
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(sha.clone())
            .or_default()
            .clone();
        let (name, body) = (file_blob(&sha), bytes.to_vec());
        self.inner
            .block(async move {
                put.get_or_try_init(|| async move {
                    match c.put(&name, body, Condition::Absent, None, &[]).await {
                        // A blob already there holds these very bytes.
                        Err(e) if e.kind == ErrorKind::Conflict || is_fencing(&e) => Ok(()),
                        other => other.map(|_| ()),
                    }
                })
                .await
                .copied()
            })
            .map_err(anyhow_of)?;
        Ok(sha)
    }

    fn keep(&self, run_id: &str, name: &str, bytes: &[u8]) -> anyhow::Result<std::path::PathBuf> {
        let path = self.inner.local.keep(run_id, name, bytes)?;
        let c = self.inner.container().map_err(anyhow_of)?;
        let (blob, body) = (format!("{}{name}", kept_prefix(run_id)), bytes.to_vec());
        self.inner
            .block(async move { c.put(&blob, body, Condition::Any, None, &[]).await })
            .map_err(anyhow_of)?;
        Ok(path)
    }

    fn holder(&self, run_id: &str) -> Option<Holder> {
        self.inner.holder_now(run_id)
    }

    fn discard(&self, run_id: &str) {
        self.inner.local.discard(run_id);
        let lease = self.inner.held(run_id).map(|h| h.lease);
        if let Ok(c) = self.inner.container() {
            let name = journal_blob(run_id);
            let _ = self
                .inner
                .block(async move { c.delete(&name, lease.as_ref()).await });
        }
    }
}
