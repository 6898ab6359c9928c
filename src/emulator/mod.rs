//! A loopback Azure Resource Manager emulator on real disk images.
//!
//! It speaks the slice of ARM that `rescue` drives (disks, snapshots, VMs, Run Command) with
//! Azure's paths, api-versions, long-running-operation headers, error codes and rules, over
//! HTTPS, behind its own Entra ID token endpoint, so a workflow rehearsed here behaves as it
//! would on Azure and clients we did not write (azure-cli, the Python SDK) run against it
//! unchanged. Disks are sparse image files in the data dir; Run Command scripts run for real
//! with the VM's data disks on loop devices.
//!
//! Time is lazy: every operation stores when it is due, and each request first completes the
//! operations that are due. Nothing is lost when the process dies; `start` on the same data dir
//! carries on where it stopped.

pub mod aks;
mod arm;
mod auth;
mod boot;
mod entra;
mod faults;
mod generate;
mod gpt;
mod http;
mod images;
mod keys;
pub mod kube;
mod latency;
mod lvm;
mod operations;
pub mod ratelimit;
mod reqlog;
mod resources;
mod routes;
mod rules;
mod runcommand;
mod scenario;
mod server;
mod state;
mod tls;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

pub use generate::Corruption;
pub use scenario::{check_file as check_scenario, fleet as fleet_scenario, INCIDENT_SCENARIO};

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct Config {
    /// Scenario file to seed a fresh data dir from; `None` = the embedded incident scenario.
    pub scenario: Option<PathBuf>,
    /// Where state and disk images live; a saved state there is resumed (scenario ignored).
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1; 0 = any free port.
    pub port: u16,
    /// Multiplies Azure-like latencies (1.0 = as slow as Azure).
    pub time_scale: f64,
    /// Append one JSON line per request to this file.
    pub log: Option<PathBuf>,
    /// HTTPS with the data dir's own CA (`DATA_DIR/tls/ca.pem`); false = plain HTTP.
    pub tls: bool,
}

/// A running emulator.
pub struct Handle {
    /// `https://127.0.0.1:PORT/`: ARM and the Entra authority host alike.
    pub endpoint: url::Url,
    /// The CA certificate to trust (`None` with plain HTTP).
    pub ca_pem: Option<PathBuf>,
    pub subscription_id: String,
    pub tenant_id: String,
    /// The scenario's first service principal.
    pub client_id: String,
    pub client_secret: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Stops accepting requests and waits for the server to finish (running Run Command
    /// scripts are killed; their loop devices are detached).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// Starts an emulator on 127.0.0.1 in the current tokio runtime.
pub async fn start(config: Config) -> anyhow::Result<Handle> {
    server::start(config).await
}

/// `rescue emulator serve`: run an emulator until interrupted.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Scenario YAML to seed from (default: the embedded incident scenario).
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// TCP port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// State and disk images; a previous state there is resumed
    /// (default: $XDG_STATE_HOME/rescue/emulator).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Latency scale: 1.0 is as slow as Azure, 0.05 (the default, as for `--emulator`) twenty
    /// times faster.
    #[arg(
        long,
        env = "RESCUE_TIME_SCALE",
        default_value_t = 0.05,
        value_name = "F"
    )]
    pub time_scale: f64,
    /// Write one JSON line per request to FILE.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Serve plain HTTP instead of HTTPS (for curl-style debugging; SDKs refuse to send a
    /// bearer token over it).
    #[arg(long)]
    pub http: bool,
}

/// Runs `rescue emulator serve`: prints the endpoint lines, then serves until Ctrl-C.
pub async fn serve(args: ServeArgs) -> ExitCode {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    if !(args.time_scale > 0.0 && args.time_scale.is_finite()) {
        eprintln!(
            "error: --time-scale must be a positive number, got {}",
            args.time_scale
        );
        return ExitCode::from(crate::exit::INVALID);
    }
    if let Some(path) = &args.scenario {
        if data_dir.join(state::STATE_FILE).exists() {
            eprintln!(
                "note: {} holds a saved emulator state, which is resumed; --scenario {} is ignored",
                data_dir.display(),
                path.display()
            );
        } else if let Err(e) = scenario::check_file(path) {
            eprintln!("error: {e:#}");
            return ExitCode::from(crate::exit::INVALID);
        }
    }
    let config = Config {
        scenario: args.scenario,
        data_dir,
        port: args.port,
        time_scale: args.time_scale,
        log: args.log,
        tls: !args.http,
    };
    let handle = match start(config).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot start the emulator: {e:#}");
            return ExitCode::from(crate::exit::STEP_FAILED);
        }
    };
    // Listening for the stop signals before the banner: a script that reads the banner and
    // stops the emulator at once must still stop it cleanly.
    // (`signal` registers its handler when called, `ctrl_c()` only when first polled.)
    use tokio::signal::unix::{signal, SignalKind};
    let stop = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(banner(&handle).as_bytes());
    let _ = out.flush();
    drop(out);
    match stop {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => wait_for_stop_signal().await,
    }
    handle.shutdown().await;
    ExitCode::from(crate::exit::SUCCESS)
}

/// Ctrl-C or SIGTERM: both stop the emulator cleanly (scripts killed, loop devices detached).
async fn wait_for_stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The lines `serve` prints first: where it listens, then one shell export per variable that
/// points rescue and Azure's own clients at it (the Entra authority host is the same server).
fn banner(h: &Handle) -> String {
    let base = h.endpoint.as_str().trim_end_matches('/');
    let mut out = format!("rescue emulator listening on {base}\n");
    let ca = h
        .ca_pem
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    for (name, value) in [
        ("RESCUE_EMULATOR_URL", base),
        ("RESCUE_EMULATOR_CA", ca.as_str()),
        ("AZURE_SUBSCRIPTION_ID", h.subscription_id.as_str()),
        ("AZURE_TENANT_ID", h.tenant_id.as_str()),
        ("AZURE_CLIENT_ID", h.client_id.as_str()),
        ("AZURE_CLIENT_SECRET", h.client_secret.as_str()),
        ("AZURE_AUTHORITY_HOST", base),
    ] {
        out.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    out
}

/// Single-quotes a value for `eval` unless it is plainly safe.
fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:~".contains(c))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

fn default_data_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    state.join("rescue").join("emulator")
}

#[cfg(test)]
mod tests {
    #[test]
    fn shell_quote_leaves_plain_values_alone() {
        assert_eq!(
            super::shell_quote("https://127.0.0.1:4242"),
            "https://127.0.0.1:4242"
        );
        assert_eq!(super::shell_quote("a b'c"), "'a b'\\''c'");
        assert_eq!(super::shell_quote(""), "''");
    }
}
