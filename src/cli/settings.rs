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
    /// Use an already running `rescue emulator serve` at this URL.
    #[arg(
        long,
        env = "RESCUE_EMULATOR_URL",
        value_name = "URL",
        requires = "emulator_token"
    )]
    pub emulator_url: Option<Url>,
    /// The token printed by `rescue emulator serve`.
    #[arg(
        long,
        env = "RESCUE_EMULATOR_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub emulator_token: Option<String>,
    /// Latency scale of the in-process emulator (1.0 = Azure-like waits).
    #[arg(
        long,
        env = "RESCUE_TIME_SCALE",
        value_name = "F",
        default_value_t = 0.05
    )]
    pub time_scale: f64,
}

/// Where Azure calls go.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Real Azure; the subscription may come from the workflow inputs or `az` later.
    Azure { subscription: Option<String> },
    /// Start an emulator in this process. `scenario: None` = the embedded incident.
    InProcessEmulator {
        scenario: Option<PathBuf>,
        time_scale: f64,
    },
    /// A running `rescue emulator serve`.
    Emulator {
        endpoint: Url,
        token: String,
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
}

/// The flag groups a subcommand has; absent groups take their defaults.
#[derive(Default)]
pub struct Flags<'a> {
    pub state: Option<&'a StateArgs>,
    pub output: Option<&'a OutputArgs>,
    pub inputs: Option<&'a InputArgs>,
    pub yes: Option<&'a YesArgs>,
    pub target: Option<&'a TargetArgs>,
}

impl Settings {
    pub fn resolve(flags: Flags) -> Result<Settings, String> {
        let state_dir = match flags.state.and_then(|s| s.state_dir.clone()) {
            Some(dir) => dir,
            None => default_state_dir()?,
        };
        let target = match flags.target {
            None => Target::Azure { subscription: None },
            Some(t) => target(t)?,
        };
        let inputs = flags.inputs.cloned().unwrap_or_default();
        if let Some(file) = &inputs.inputs {
            if !file.is_file() {
                return Err(format!("--inputs {}: no such file", file.display()));
            }
        }
        Ok(Settings {
            state_dir,
            output: flags.output.map_or(OutputFormat::Text, |o| o.output),
            yes: flags.yes.is_some_and(|y| y.yes),
            input_pairs: inputs.input,
            inputs_file: inputs.inputs,
            target,
        })
    }

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

fn target(t: &TargetArgs) -> Result<Target, String> {
    if !(t.time_scale.is_finite() && t.time_scale > 0.0) {
        return Err(format!(
            "--time-scale {} must be a number above 0 (e.g. 0.05)",
            t.time_scale
        ));
    }
    if let Some(scenario) = t.emulator.clone() {
        if let Some(path) = &scenario {
            if !path.is_file() {
                return Err(format!(
                    "--emulator={}: no such scenario file",
                    path.display()
                ));
            }
        }
        return Ok(Target::InProcessEmulator {
            scenario,
            time_scale: t.time_scale,
        });
    }
    if let Some(endpoint) = &t.emulator_url {
        let token = t
            .emulator_token
            .clone()
            .ok_or("--emulator-url needs --emulator-token (printed by `rescue emulator serve`)")?;
        return Ok(Target::Emulator {
            endpoint: endpoint.clone(),
            token,
            subscription: t.subscription.clone(),
        });
    }
    Ok(Target::Azure {
        subscription: t.subscription.clone(),
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
