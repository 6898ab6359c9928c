//! How long Azure takes, in seconds, for each operation (multiplied by the time scale).
//! Observed orders of magnitude, not promises: snapshots take tens of seconds, deallocation
//! about a minute, Run Command at least about 20 s.

pub const SNAPSHOT_CREATE: f64 = 30.0;
pub const DISK_COPY: f64 = 20.0;
pub const DISK_EMPTY: f64 = 3.0;
pub const VOLUME_UPDATE: f64 = 2.0;
pub const VOLUME_DELETE: f64 = 10.0;
/// Attach / detach (PUT, PATCH or attachDetachDataDisks).
pub const VM_UPDATE: f64 = 10.0;
pub const OS_SWAP: f64 = 15.0;
/// An update or action that changes nothing (tags only, start of a running VM...).
pub const NO_OP: f64 = 3.0;
pub const DEALLOCATE: f64 = 60.0;
pub const POWER_OFF: f64 = 30.0;
pub const START: f64 = 30.0;
pub const RESTART: f64 = 40.0;
pub const VM_CREATE: f64 = 90.0;
pub const VM_DELETE: f64 = 45.0;
pub const RUN_COMMAND_MIN: f64 = 20.0;
