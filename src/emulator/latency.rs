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
/// Action Run Command's limit: "The maximum time a script can run is 90 minutes. After that, the
/// script will time out." (Microsoft's linux/run-command.md).
pub const RUN_COMMAND_TIMEOUT: f64 = 90.0 * 60.0;
/// How long CRP waits for an agent that does not report before failing the operation with
/// VMAgentStatusCommunicationError: 25 min 22 s in the one recording with both times
/// (Azure/azure-powershell#5741: StartTime 10:57:51, EndTime 11:23:13).
pub const AGENT_STATUS_TIMEOUT: f64 = 25.0 * 60.0 + 22.0;
/// Before the agent starts a managed Run Command's script its execution state is Pending
/// (inferred: the handler reports Running when it starts, commandProcessor.go; how long the
/// agent takes to pick the goal state up is not documented).
pub const MANAGED_PICKUP: f64 = 10.0;
