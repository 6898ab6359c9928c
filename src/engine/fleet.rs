//! A fleet: one run per target, in one process, a bounded number at once. Each run is an
//! ordinary run (its own id, journal and lock in the state dir); the fleet's record only says
//! which run is whose, so `rescue fleet status` and `rescue fleet resume` find them again. The
//! runs' journals stay the truth about each run: the record's status is a summary.
//!
//! Also the rescue-VM pool: runs that share rescue VMs hold a place on one while their copy is
//! attached, never more places than the VM has room for data disks.

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
            let ids: Vec<String> = std::fs::read_dir(Self::dir(state_dir))
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
            let started = |id: &str| {
                std::fs::read_to_string(Self::path(state_dir, id))
                    .ok()
                    .and_then(|t| serde_json::from_str::<FleetRecord>(&t).ok())
                    .map(|r| r.started)
            };
            super::store::newest(ids, started).with_context(|| {
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

/// Rescue VMs shared by the fleet's runs. Each has so many places (its free data-disk slots):
/// a run holds one from its copy's attach to its detach ([`Pool::take`], the guard's drop), so
/// the runs together never attach more than it takes. Runs are also spread over the VMs when
/// they start ([`Pool::assign`]), so that they queue evenly.
#[derive(Clone, Default)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    vms: Mutex<BTreeMap<String, Room>>,
    freed: Notify,
}

#[derive(Clone, Copy, Debug)]
struct Room {
    free: usize,
    /// Its places when no copy of this fleet is attached: the slots free when it was read, plus
    /// what copies of the fleet's own earlier runs held then.
    size: usize,
    /// Runs sent to it and not ended.
    assigned: usize,
}

pub struct Place {
    pool: Pool,
    pub vm: String,
}

impl Pool {
    /// VMs and their places: (free now, at most).
    pub fn new(room: impl IntoIterator<Item = (String, usize, usize)>) -> Pool {
        Pool {
            inner: Arc::new(PoolInner {
                vms: Mutex::new(
                    room.into_iter()
                        .map(|(vm, free, size)| {
                            (
                                vm,
                                Room {
                                    free,
                                    size: size.max(free),
                                    assigned: 0,
                                },
                            )
                        })
                        .collect(),
                ),
                freed: Notify::new(),
            }),
        }
    }

    fn vms(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Room>> {
        self.inner.vms.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn contains(&self, vm: &str) -> bool {
        self.vms().contains_key(vm)
    }

    /// The pool's VMs, `rg/name`.
    pub fn names(&self) -> Vec<String> {
        self.vms().keys().cloned().collect()
    }

    /// The VM a new run goes to: the one with the fewest runs per place (the first name among
    /// equals). None: the pool is empty.
    pub fn assign(&self) -> Option<String> {
        let mut vms = self.vms();
        let (vm, room) = vms.iter_mut().min_by(|(_, a), (_, b)| {
            let load = |r: &Room| r.assigned as f64 / r.size.max(1) as f64;
            load(a).total_cmp(&load(b))
        })?;
        room.assigned += 1;
        Some(vm.clone())
    }

    /// A run sent to `vm` ended.
    pub fn unassign(&self, vm: &str) {
        if let Some(room) = self.vms().get_mut(vm) {
            room.assigned = room.assigned.saturating_sub(1);
        }
    }

    /// A place on `vm`, waiting while it has none free. None: `vm` is not in the pool.
    pub async fn take(&self, vm: &str) -> Option<Place> {
        loop {
            // Registered before looking: a place given back in between is not missed.
            let freed = self.inner.freed.notified();
            {
                let mut vms = self.vms();
                let room = vms.get_mut(vm)?;
                if room.free > 0 {
                    room.free -= 1;
                    return Some(Place {
                        pool: self.clone(),
                        vm: vm.to_string(),
                    });
                }
            }
            freed.await;
        }
    }

    /// A copy attached before the fleet started (a resumed run's) was detached: its slot is
    /// free again.
    pub fn give_back(&self, vm: &str) {
        if let Some(room) = self.vms().get_mut(vm) {
            room.free = (room.free + 1).min(room.size);
        }
        self.inner.freed.notify_waiters();
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.pool.give_back(&self.vm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_are_spread_over_the_vms_and_wait_for_a_free_place() {
        let pool = Pool::new([("a".to_string(), 1, 1), ("b".to_string(), 2, 2)]);
        // b has twice a's places: it gets two runs of three.
        let assigned: Vec<String> = (0..3).map(|_| pool.assign().unwrap()).collect();
        assert_eq!(assigned, ["a", "b", "b"]);
        let first = pool.take("a").await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.take("a").await.map(|p| p.vm.clone()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.unwrap().as_deref(), Some("a"));
        assert!(pool.take("c").await.is_none());
        // A slot given back never makes more places than the VM has.
        pool.give_back("a");
        pool.give_back("a");
        let _only = pool.take("a").await.unwrap();
        assert_eq!(pool.vms()["a"].free, 0);
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

    #[test]
    fn of_two_fleets_started_in_one_second_last_is_the_later_whatever_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = |id: &str, at_ms: i64| {
            let mut r = FleetRecord::new("w".into(), 1, vec![], Value::Null, vec![]);
            r.fleet_id = id.into();
            r.started = OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(at_ms);
            r.save(dir.path()).unwrap();
        };
        fleet("20261202-120106-ffff", 100);
        fleet("20261202-120106-0001", 900);
        fleet("20261202-120105-ffff", 5000);
        let last = FleetRecord::load(dir.path(), LAST).unwrap();
        assert_eq!(last.fleet_id, "20261202-120106-0001");
    }
}
