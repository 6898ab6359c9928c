//! A fleet: one run per target, in one process, a bounded number at once. Each run is an
//! ordinary run (its own id, journal and lock in the state dir); the fleet's record only says
//! which run is whose, so `rescue fleet status` and `rescue fleet resume` find them again. The
//! runs' journals stay the truth about each run: the record's status is a summary.
//!
//! Also the rescue-VM pool: targets that share rescue VMs take a place on one for the whole of
//! their run, never more places than the VM has room for data disks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::journal::write_file_durably;
use super::store::{create_private_dir, is_valid_run_id, new_run_id};

/// Where a target stands in its fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// No run yet (waiting for a place, or the fleet stopped before it).
    Pending,
    Running,
    Succeeded,
    /// Its run stopped before its end (failed, interrupted, refused); `rescue resume` continues it.
    Failed,
}

impl TargetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Pending => "pending",
            TargetStatus::Running => "running",
            TargetStatus::Succeeded => "succeeded",
            TargetStatus::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetTarget {
    pub id: String,
    pub inputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub status: TargetStatus,
    /// The run's exit code once it ended (as `rescue run` would have exited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<u8>,
    /// Why it did not succeed, one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `<state_dir>/fleets/<fleet_id>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FleetRecord {
    pub fleet_id: String,
    /// The workflow as given (a built-in's name or a path).
    pub workflow: String,
    pub concurrency: usize,
    /// The rescue VMs the fleet shares out (`--rescue-vm`), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rescue_vms: Vec<String>,
    /// Where the runs act (the runs' journals record it too).
    pub target: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated: OffsetDateTime,
    pub targets: Vec<FleetTarget>,
}

pub const LAST: &str = "last";

impl FleetRecord {
    pub fn new(
        workflow: String,
        concurrency: usize,
        rescue_vms: Vec<String>,
        target: Value,
        targets: Vec<(String, Map<String, Value>)>,
    ) -> FleetRecord {
        let now = OffsetDateTime::now_utc();
        FleetRecord {
            fleet_id: new_run_id(),
            workflow,
            concurrency,
            rescue_vms,
            target,
            started: now,
            updated: now,
            targets: targets
                .into_iter()
                .map(|(id, inputs)| FleetTarget {
                    id,
                    inputs,
                    run_id: None,
                    status: TargetStatus::Pending,
                    exit: None,
                    error: None,
                })
                .collect(),
        }
    }

    pub fn dir(state_dir: &Path) -> PathBuf {
        state_dir.join("fleets")
    }

    pub fn path(state_dir: &Path, fleet_id: &str) -> PathBuf {
        Self::dir(state_dir).join(format!("{fleet_id}.json"))
    }

    /// Written so that a crash leaves the old record or the new one, never half of one.
    pub fn save(&mut self, state_dir: &Path) -> anyhow::Result<()> {
        create_private_dir(&Self::dir(state_dir))?;
        self.updated = OffsetDateTime::now_utc();
        let bytes = serde_json::to_vec_pretty(self)?;
        write_file_durably(&Self::path(state_dir, &self.fleet_id), &bytes)
    }

    /// The fleet `given` names (`last`: the most recent one).
    pub fn load(state_dir: &Path, given: &str) -> anyhow::Result<FleetRecord> {
        let id = if given == LAST {
            let mut ids: Vec<String> = std::fs::read_dir(Self::dir(state_dir))
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter_map(|e| {
                            e.file_name()
                                .to_str()
                                .and_then(|n| n.strip_suffix(".json"))
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            ids.pop().with_context(|| {
                format!(
                    "`last`: there are no fleets in {}\n  hint: start one with `rescue fleet run`",
                    Self::dir(state_dir).display()
                )
            })?
        } else {
            given.to_string()
        };
        let path = Self::path(state_dir, &id);
        if !is_valid_run_id(&id) || !path.is_file() {
            anyhow::bail!(
                "no fleet `{id}` in {}\n  hint: `rescue fleet status last` shows the latest (use the same --state-dir)",
                Self::dir(state_dir).display()
            );
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| {
            format!(
                "fleet record {} is damaged (rescue replaces it atomically and never writes this)",
                path.display()
            )
        })
    }
}

/// The fleet's record shared by its runs as they start and end; every change is saved.
#[derive(Clone)]
pub struct FleetLog {
    state_dir: PathBuf,
    record: Arc<Mutex<FleetRecord>>,
}

impl FleetLog {
    pub fn new(state_dir: PathBuf, record: FleetRecord) -> FleetLog {
        FleetLog {
            state_dir,
            record: Arc::new(Mutex::new(record)),
        }
    }

    pub fn update(&self, change: impl FnOnce(&mut FleetRecord)) -> anyhow::Result<()> {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut record);
        record.save(&self.state_dir)
    }

    pub fn read(&self) -> FleetRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Rescue VMs shared by the fleet's runs: each has room for so many runs at once (its free
/// data-disk slots); a run takes a place on the VM with the most room and gives it back when
/// it ends (the guard's drop).
#[derive(Clone, Default)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    /// Free places by VM name.
    free: Mutex<BTreeMap<String, usize>>,
    freed: Notify,
}

pub struct Place {
    pool: Pool,
    pub vm: String,
}

impl Pool {
    /// VMs and how many runs each takes at once.
    pub fn new(room: impl IntoIterator<Item = (String, usize)>) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                free: Mutex::new(room.into_iter().collect()),
                freed: Notify::new(),
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.free().is_empty()
    }

    fn free(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, usize>> {
        self.inner.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The places left, by VM.
    pub fn room(&self) -> BTreeMap<String, usize> {
        self.free().clone()
    }

    /// A place on `wanted` (a run resumed on the VM it started on), else on the VM with the
    /// most room; waits while there is none. None: no VM of the pool can ever take it (all
    /// have no room at all, or `wanted` is not in the pool).
    pub async fn take(&self, wanted: Option<&str>) -> Option<Place> {
        loop {
            // Registered before looking: a place given back in between is not missed.
            let freed = self.inner.freed.notified();
            {
                let mut free = self.free();
                let chosen = match wanted {
                    Some(vm) => {
                        let room = *free.get(vm)?;
                        (room > 0).then(|| vm.to_string())
                    }
                    None => {
                        let best = free.iter().max_by_key(|(name, room)| {
                            // The most room; among equals, the first name.
                            (**room, std::cmp::Reverse((*name).clone()))
                        });
                        match best {
                            None => return None,
                            Some((vm, room)) => (*room > 0).then(|| vm.clone()),
                        }
                    }
                };
                if let Some(vm) = chosen {
                    *free.get_mut(&vm).expect("chosen from the map") -= 1;
                    return Some(Place {
                        pool: self.clone(),
                        vm,
                    });
                }
            }
            freed.await;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(room) = self.pool.free().get_mut(&self.vm) {
            *room += 1;
        }
        self.pool.inner.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn places_go_to_the_vm_with_most_room_and_wait_when_none_is_left() {
        let pool = Pool::new([("a".to_string(), 1), ("b".to_string(), 2)]);
        let first = pool.take(None).await.unwrap();
        assert_eq!(first.vm, "b");
        let second = pool.take(None).await.unwrap();
        assert_eq!(second.vm, "a");
        let third = pool.take(None).await.unwrap();
        assert_eq!(third.vm, "b");
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take(None).await.map(|p| p.vm.clone()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(second);
        assert_eq!(waiting.await.unwrap().as_deref(), Some("a"));
        assert!(pool.take(Some("c")).await.is_none());
    }

    #[test]
    fn a_record_is_saved_and_found_as_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut record = FleetRecord::new(
            "os-disk-swap".into(),
            4,
            vec![],
            Value::Null,
            vec![("vm1".into(), Map::new())],
        );
        record.save(dir.path()).unwrap();
        let loaded = FleetRecord::load(dir.path(), LAST).unwrap();
        assert_eq!(loaded.fleet_id, record.fleet_id);
        assert_eq!(loaded.targets[0].status, TargetStatus::Pending);
        assert!(FleetRecord::load(dir.path(), "../x").is_err());
    }
}
