//! Flags shared by several subcommands, and the validated [`Settings`] they become.

use std::path::{Path, PathBuf};

use clap::Args;

pub use super::output::OutputFormat;
use url::Url;

#[derive(Args, Clone, Debug, Default)]
pub struct StateArgs {
    /// Where runs are journaled [default: $XDG_STATE_HOME/rescue, i.e. ~/.local/state/rescue]
    #[arg(long, env = "RESCUE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Share runs with the team in Azure Blob Storage: azblob://ACCOUNT/CONTAINER. The journal,
    /// the run's lock (a lease) and its workflow and scripts live there, so anyone with access
    /// resumes the run from anywhere; --state-dir keeps the local working copy. Signs in with
    /// AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_KEY if set,
    /// else the Azure credential (--auth).
    #[arg(long, env = "RESCUE_STATE", value_name = "URL")]
    pub state: Option<String>,
}

#[derive(Args, Clone, Debug, Default)]
pub struct InputArgs {
    /// A workflow input, NAME=VALUE (repeatable; overrides --inputs).
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// A YAML file mapping input names to values.
    #[arg(long = "inputs", value_name = "FILE")]
    pub inputs: Option<PathBuf>,
    /// The broken VM's resource group (input `resource_group`), as in azure-cli.
    #[arg(long, short = 'g', value_name = "RG")]
    pub resource_group: Option<String>,
    /// The broken VM (input `vm`), as in azure-cli.
    #[arg(long, short = 'n', value_name = "VM")]
    pub name: Option<String>,
    /// The VM to run fsck on (input `rescue_vm`).
    #[arg(long, value_name = "VM")]
    pub rescue_vm: Option<String>,
    /// The rescue VM's resource group (input `rescue_resource_group`).
    #[arg(long, value_name = "RG")]
    pub rescue_resource_group: Option<String>,
    /// Repair an AKS node in place although AKS's support policy calls IaaS changes to nodes
    /// unsupported (input `allow_aks_node`).
    #[arg(long)]
    pub allow_aks_node: bool,
    /// Repair a VM that looks healthy without being asked (input `force_healthy`).
    #[arg(long)]
    pub force_healthy: bool,
    /// Keep a rescue VM this run creates (input `keep_rescue_vm`).
    #[arg(long)]
    pub keep_rescue_vm: bool,
    /// The AKS cluster (input `cluster`), as in `az aks`.
    #[arg(long = "cluster-name", value_name = "CLUSTER")]
    pub cluster_name: Option<String>,
    /// The Kubernetes node (input `node`), as `kubectl get nodes` names it.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
}

/// The azure-cli-shaped flags and the workflow inputs they give: the one place this mapping
/// is declared. (clap's id of the flag, the input.) `--subscription` is also the target's.
pub const INPUT_FLAGS: &[(&str, &str)] = &[
    ("resource_group", "resource_group"),
    ("name", "vm"),
    ("rescue_vm", "rescue_vm"),
    ("rescue_resource_group", "rescue_resource_group"),
    ("allow_aks_node", "allow_aks_node"),
    ("force_healthy", "force_healthy"),
    ("keep_rescue_vm", "keep_rescue_vm"),
    ("cluster_name", "cluster"),
    ("node", "node"),
    ("subscription", "subscription"),
];

impl InputArgs {
    fn flag_value(&self, id: &str) -> Option<String> {
        let on = |set: bool| set.then(|| "true".to_string());
        match id {
            "resource_group" => self.resource_group.clone(),
            "name" => self.name.clone(),
            "rescue_vm" => self.rescue_vm.clone(),
            "rescue_resource_group" => self.rescue_resource_group.clone(),
            "allow_aks_node" => on(self.allow_aks_node),
            "force_healthy" => on(self.force_healthy),
            "keep_rescue_vm" => on(self.keep_rescue_vm),
            "cluster_name" => self.cluster_name.clone(),
            "node" => self.node.clone(),
            _ => None,
        }
    }
}

/// `--flag` as typed, from clap's id.
fn flag_name(id: &str) -> String {
    match id {
        "resource_group" => "-g/--resource-group".into(),
        "name" => "-n/--name".into(),
        other => format!("--{}", other.replace('_', "-")),
    }
}

/// The `NAME=VALUE` inputs the azure-cli-shaped flags give `workflow`. A flag for an input the
/// workflow does not declare, or one that `--input` contradicts, is a usage error.
pub fn flag_inputs(
    settings: &Settings,
    workflow: &crate::workflow::Workflow,
) -> Result<Vec<String>, super::Failure> {
    let mut pairs = Vec::new();
    for (id, input) in INPUT_FLAGS {
        let value = match *id {
            // The target's flag; an input only when typed (an ambient AZURE_SUBSCRIPTION_ID
            // must not override a scenario's subscription).
            "subscription" if settings.on_command_line.contains(*id) => {
                match (
                    &settings.target_args.subscription,
                    workflow.inputs.contains_key(*input),
                ) {
                    (Some(v), true) => v.clone(),
                    _ => continue,
                }
            }
            "subscription" => continue,
            _ => match settings.flag_inputs.flag_value(id) {
                Some(v) => v,
                None => continue,
            },
        };
        if !workflow.inputs.contains_key(*input) {
            return Err(super::Failure::usage(format!(
                "{}: workflow `{}` has no input `{input}` (its inputs: {})",
                flag_name(id),
                workflow.name,
                workflow
                    .inputs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .with_hint("give the workflow's own inputs with --input NAME=VALUE"));
        }
        let prefix = format!("{input}=");
        if let Some(other) = settings
            .input_pairs
            .iter()
            .find_map(|p| p.strip_prefix(&prefix))
            .filter(|v| *v != value)
        {
            return Err(super::Failure::usage(format!(
                "{} {value} and --input {input}={other} disagree; give one",
                flag_name(id)
            )));
        }
        pairs.push(format!("{input}={value}"));
    }
    Ok(pairs)
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
    /// `--state azblob://...`: the shared store; None: runs live in `state_dir` only.
    pub shared_state: Option<crate::azure::blob::Location>,
    pub output: OutputFormat,
    pub yes: bool,
    pub input_pairs: Vec<String>,
    pub inputs_file: Option<PathBuf>,
    /// The azure-cli-shaped flags (see [`INPUT_FLAGS`]).
    pub flag_inputs: InputArgs,
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
        let shared_state = match flags.state.and_then(|s| s.state.as_deref()) {
            None | Some("") => None,
            Some(url) => Some(crate::shared_state::parse(url)?),
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
        let mut transport = crate::azure::TransportOptions {
            debug: super::output::get().debug,
            ..Default::default()
        };
        if let Some(t) = flags.target {
            transport.max_wait = t.max_wait;
        }
        Ok(Settings {
            transport,
            auth: flags.target.and_then(|t| t.auth).unwrap_or_default(),
            state_dir,
            shared_state,
            output: super::output::get().format,
            yes: flags.yes.is_some_and(|y| y.yes),
            input_pairs: inputs.input.clone(),
            inputs_file: inputs.inputs.clone(),
            flag_inputs: inputs,
            target,
            target_args: flags.target.cloned().unwrap_or_default(),
            on_command_line: Default::default(),
        })
    }

    /// JSON or YAML: no prose on stdout.
    pub fn json(&self) -> bool {
        matches!(self.output, OutputFormat::Json | OutputFormat::Yaml)
    }

    pub fn verbose(&self) -> bool {
        super::output::get().verbose
    }

    pub fn quiet(&self) -> bool {
        super::output::get().quiet
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
