//! Flags shared by several subcommands, and the validated [`Settings`] they become.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use url::Url;

/// How results are written to stdout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Readable text (progress on a terminal, timestamped lines otherwise).
    #[default]
    Text,
    /// JSON (one event per line for run/resume).
    Json,
}

#[derive(Args, Clone, Debug, Default)]
pub struct StateArgs {
    /// Where runs are journaled [default: $XDG_STATE_HOME/rescue, i.e. ~/.local/state/rescue]
    #[arg(long, env = "RESCUE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

#[derive(Args, Clone, Debug, Default)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Args, Clone, Debug, Default)]
pub struct InputArgs {
    /// A workflow input, NAME=VALUE (repeatable; overrides --inputs).
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// A YAML file mapping input names to values.
    #[arg(long = "inputs", value_name = "FILE")]
    pub inputs: Option<PathBuf>,
}

#[derive(Args, Clone, Debug, Default)]
pub struct YesArgs {
    /// Answer yes to every `confirm:` step (for scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args, Clone, Debug, Default)]
pub struct TargetArgs {
    /// The Azure subscription to work in.
    #[arg(long, env = "AZURE_SUBSCRIPTION_ID", value_name = "ID")]
    pub subscription: Option<String>,
    /// Rehearse on an in-process emulator: `--emulator` for the built-in incident scenario,
    /// `--emulator=FILE` for another scenario.
    #[arg(long, value_name = "SCENARIO", num_args = 0..=1, require_equals = true, conflicts_with = "emulator_url")]
    pub emulator: Option<Option<PathBuf>>,
    /// Use an already running `rescue emulator serve` at this URL (sign in with the
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_AUTHORITY_HOST it prints).
    #[arg(long, env = "RESCUE_EMULATOR_URL", value_name = "URL")]
    pub emulator_url: Option<Url>,
    /// The emulator's CA certificate to trust (printed by `rescue emulator serve`).
    #[arg(long, env = "RESCUE_EMULATOR_CA", value_name = "FILE")]
    pub emulator_ca: Option<PathBuf>,
    /// Latency scale of the in-process emulator (1.0 = Azure-like waits) [default: 0.05]
    #[arg(long, env = "RESCUE_TIME_SCALE", value_name = "F")]
    pub time_scale: Option<f64>,
    /// The most one request may wait for Azure's throttling (its Retry-After) before the step
    /// fails, resumably. Azure's waits are honoured in full up to this.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub max_wait: std::time::Duration,
    /// Which credential signs in: `default` (environment, managed identity, then `az login`),
    /// `cli` (`az login`), `msi` (this machine's managed identity), `env` (a service principal
    /// from AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET) or `workload`
    /// (AZURE_FEDERATED_TOKEN_FILE). Naming one keeps, say, a jump box's managed identity from
    /// winning over your `az login`.
    #[arg(long, env = "AZURE_CREDENTIAL_KIND", value_name = "KIND", value_parser = parse_auth)]
    pub auth: Option<crate::azure::Auth>,
    /// The Azure cloud: AzureCloud (the default), AzureUSGovernment or AzureChinaCloud.
    #[arg(long, value_name = "NAME")]
    pub cloud: Option<String>,
}

fn parse_auth(s: &str) -> Result<crate::azure::Auth, String> {
    s.parse()
}

/// The in-process emulator's latency scale when `--time-scale` is not given.
pub const DEFAULT_TIME_SCALE: f64 = 0.05;

impl TargetArgs {
    /// `--time-scale`, checked.
    pub fn time_scale(&self) -> Result<Option<f64>, String> {
        match self.time_scale {
            Some(f) if !(f.is_finite() && f > 0.0) => Err(format!(
                "--time-scale {f} must be a number above 0 (e.g. 0.05)"
            )),
            other => Ok(other),
        }
    }
}

/// Where Azure calls go.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Real Azure (`cloud`: a national cloud's name, None for the public one); the
    /// subscription may come from the workflow inputs or `az` later.
    Azure {
        subscription: Option<String>,
        cloud: Option<String>,
    },
    /// Start an emulator in this process. `scenario: None` = the embedded incident.
    InProcessEmulator {
        scenario: Option<PathBuf>,
        time_scale: f64,
    },
    /// A running `rescue emulator serve`; credentials come from the environment.
    Emulator {
        endpoint: Url,
        ca: Option<PathBuf>,
        subscription: Option<String>,
    },
}

/// Every flag, parsed once and checked. Subcommands read this, never clap's structs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub output: OutputFormat,
    pub yes: bool,
    pub input_pairs: Vec<String>,
    pub inputs_file: Option<PathBuf>,
    pub target: Target,
    /// How requests to Azure behave (throttling limit).
    pub transport: crate::azure::TransportOptions,
    /// Which credential signs in (`--auth`).
    pub auth: crate::azure::Auth,
    /// The target flags as given (from the command line or the environment), for commands
    /// that continue a recorded run: they honour or refuse each (see `cli::retarget`).
    pub target_args: TargetArgs,
    /// Ids of the arguments typed on the command line (the rest came from the environment).
    pub on_command_line: std::collections::BTreeSet<String>,
}

/// The flag groups a subcommand has; absent groups take their defaults.
#[derive(Default)]
pub struct Flags<'a> {
    pub state: Option<&'a StateArgs>,
    pub output: Option<&'a OutputArgs>,
    pub inputs: Option<&'a InputArgs>,
    pub yes: Option<&'a YesArgs>,
    pub target: Option<&'a TargetArgs>,
    /// The target flags only adjust a recorded run's target (`cli::retarget`), so they need
    /// not make a target of their own (resume, rollback, cleanup).
    pub retarget: bool,
}

impl Settings {
    pub fn resolve(flags: Flags) -> Result<Settings, String> {
        let state_dir = match flags.state.and_then(|s| s.state_dir.clone()) {
            Some(dir) => dir,
            None => default_state_dir()?,
        };
        let target = match flags.target {
            Some(t) if !flags.retarget => target(t)?,
            Some(t) => {
                t.time_scale()?;
                Target::Azure {
                    subscription: None,
                    cloud: None,
                }
            }
            None => Target::Azure {
                subscription: None,
                cloud: None,
            },
        };
        let inputs = flags.inputs.cloned().unwrap_or_default();
        if let Some(file) = &inputs.inputs {
            if !file.is_file() {
                return Err(format!("--inputs {}: no such file", file.display()));
            }
        }
        let mut transport = crate::azure::TransportOptions::default();
        if let Some(t) = flags.target {
            transport.max_wait = t.max_wait;
        }
        Ok(Settings {
            transport,
            auth: flags.target.and_then(|t| t.auth).unwrap_or_default(),
            state_dir,
            output: flags.output.map_or(OutputFormat::Text, |o| o.output),
            yes: flags.yes.is_some_and(|y| y.yes),
            input_pairs: inputs.input,
            inputs_file: inputs.inputs,
            target,
            target_args: flags.target.cloned().unwrap_or_default(),
            on_command_line: Default::default(),
        })
    }

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

fn target(t: &TargetArgs) -> Result<Target, String> {
    let time_scale = t.time_scale()?.unwrap_or(DEFAULT_TIME_SCALE);
    if let Some(scenario) = t.emulator.clone() {
        if let Some(path) = &scenario {
            if !path.is_file() {
                return Err(format!(
                    "--emulator={}: no such scenario file",
                    path.display()
                ));
            }
            // A bad scenario is bad input: refused before a run is recorded.
            crate::emulator::check_scenario(path)
                .map_err(|e| format!("--emulator={}: {e:#}", path.display()))?;
        }
        return Ok(Target::InProcessEmulator {
            scenario,
            time_scale,
        });
    }
    if let Some(endpoint) = &t.emulator_url {
        // `serve --http` exports an empty RESCUE_EMULATOR_CA: no CA to trust.
        let ca = t.emulator_ca.clone().filter(|p| !p.as_os_str().is_empty());
        if let Some(ca) = ca.as_ref().filter(|p| !p.is_file()) {
            return Err(format!("--emulator-ca {}: no such file", ca.display()));
        }
        return Ok(Target::Emulator {
            endpoint: endpoint.clone(),
            ca,
            subscription: t.subscription.clone(),
        });
    }
    if let Some(cloud) = &t.cloud {
        crate::azure::Cloud::named(cloud).map_err(|e| format!("--cloud: {}", e.message))?;
    }
    Ok(Target::Azure {
        subscription: t.subscription.clone(),
        cloud: t.cloud.clone(),
    })
}

fn default_state_dir() -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").filter(|v| !v.is_empty()).ok_or("cannot find the state directory: neither XDG_STATE_HOME nor HOME is set; pass --state-dir DIR")?;
            Path::new(&home).join(".local/state")
        }
    };
    Ok(base.join("rescue"))
}
