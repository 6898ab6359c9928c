//! Where a recorded run continues (`resume`, `rollback`, `cleanup`): where it started, as its
//! journal says. The target flags may say the same again, or change what may change: a restarted
//! `rescue emulator serve` listens on a new endpoint, the in-process emulator may run at another
//! time scale or with a new CA (a new data dir), and secrets (the emulator's service principal)
//! are never journaled: they come from the environment every time.
//! A flag typed for anything else is refused, naming it; an environment variable that does not
//! apply to this run is noted and left aside (it is ambient, not a request for this command).

use super::settings::{Settings, TargetArgs};
use super::target::TargetRecord;
use crate::engine::journal::Journal;

/// A flag's value and whether it was typed (else it came from the environment).
struct Given<'a, T> {
    value: Option<&'a T>,
    typed: bool,
    /// `--emulator-url`
    flag: String,
    env: &'static str,
}

/// The ids of the arguments typed on the command line.
struct Typed<'a>(&'a std::collections::BTreeSet<String>);

impl Typed<'_> {
    /// `id` is clap's (the field's name); the flag is spelled from it.
    fn of<'v, T>(&self, value: Option<&'v T>, id: &str, env: &'static str) -> Given<'v, T> {
        Given {
            value,
            typed: self.0.contains(id),
            flag: format!("--{}", id.replace('_', "-")),
            env,
        }
    }
}

impl<T> Given<'_, T> {
    /// Refused when typed, noted when from the environment: it does not apply to this run.
    fn not_for(&self, run: &str, why: &str) -> Result<(), String> {
        match (self.value, self.typed) {
            (None, _) => Ok(()),
            (Some(_), true) => Err(format!(
                "{}: {why}; {run} continues where it started",
                self.flag
            )),
            (Some(_), false) => {
                eprintln!("note: {} is set, but {why}; it is left aside", self.env);
                Ok(())
            }
        }
    }
}

/// The target `journal`'s run continues on, with what the flags may change applied.
pub fn recorded_target(
    journal: &Journal,
    run_dir: &std::path::Path,
    settings: &Settings,
) -> Result<TargetRecord, String> {
    let run = format!("run {}", journal.run_id);
    let args: &TargetArgs = &settings.target_args;
    let typed = Typed(&settings.on_command_line);
    let subscription = typed.of(
        args.subscription.as_ref(),
        "subscription",
        "AZURE_SUBSCRIPTION_ID",
    );
    let emulator = typed.of(args.emulator.as_ref(), "emulator", "");
    let url = typed.of(
        args.emulator_url.as_ref(),
        "emulator_url",
        "RESCUE_EMULATOR_URL",
    );
    let ca = typed.of(
        args.emulator_ca.as_ref(),
        "emulator_ca",
        "RESCUE_EMULATOR_CA",
    );
    let time_scale = typed.of(args.time_scale.as_ref(), "time_scale", "RESCUE_TIME_SCALE");

    let recorded = TargetRecord::from_value(&journal.target).map_err(|problem| {
        crate::engine::journal::DamagedJournal {
            path: Journal::path(run_dir),
            problem,
        }
        .to_string()
    })?;
    let needs_azure = journal.steps.iter().any(|s| s.uses.starts_with("azure."));
    let Some(recorded) = recorded else {
        if needs_azure {
            return Err(format!("{run}'s journal records no target (where its Azure steps act); a run started by this rescue always does"));
        }
        // Core actions only: nothing is connected to.
        return Ok(TargetRecord::Azure {
            subscription: None,
            cloud: None,
        });
    };
    match recorded {
        TargetRecord::InProcessEmulator {
            scenario,
            time_scale: recorded_scale,
            data_dir,
            port,
        } => {
            let why = format!(
                "{run} acted on the emulator inside rescue, whose state is in {}",
                data_dir.display()
            );
            url.not_for(&run, &why)?;
            ca.not_for(&run, &why)?;
            subscription.not_for(&run, &format!("{why} (the scenario's subscription)"))?;
            if let Some(Some(file)) = emulator.value {
                if Some(file) != scenario.as_ref() {
                    return Err(format!(
                        "--emulator={}: {run} rehearses on the state it started from a scenario ({}); a scenario only seeds a new run",
                        file.display(),
                        scenario.as_ref().map_or("the built-in incident".to_string(), |s| s.display().to_string())
                    ));
                }
            }
            Ok(TargetRecord::InProcessEmulator {
                scenario,
                // Only how fast it answers; the state is the same.
                time_scale: time_scale.value.copied().unwrap_or(recorded_scale),
                data_dir,
                port,
            })
        }
        TargetRecord::Emulator {
            endpoint,
            ca: recorded_ca,
            subscription: recorded_subscription,
        } => {
            if emulator.value.is_some() {
                return Err(format!("--emulator: {run} acts on the emulator at {endpoint}, not one inside rescue; give --emulator-url if it moved"));
            }
            time_scale.not_for(
                &run,
                &format!(
                    "{run} acts on the emulator at {endpoint}, which keeps its own time scale"
                ),
            )?;
            let subscription = same_subscription(&run, &subscription, recorded_subscription)?;
            // A restarted `rescue emulator serve` listens on a new port: its URL is honoured.
            let endpoint = url.value.cloned().unwrap_or(endpoint);
            // So is its CA, when it serves from another data dir; `serve --http` exports none.
            let ca = match ca.value {
                Some(p) if p.as_os_str().is_empty() => None,
                Some(p) => Some(p.clone()),
                None => recorded_ca,
            };
            Ok(TargetRecord::Emulator {
                endpoint,
                ca,
                subscription,
            })
        }
        TargetRecord::Azure {
            subscription: recorded_subscription,
            cloud: recorded_cloud,
        } => {
            let why = format!("{run} acts on Azure");
            if emulator.value.is_some() {
                return Err(format!(
                    "--emulator: {why}; it cannot continue on an emulator"
                ));
            }
            url.not_for(&run, &why)?;
            ca.not_for(&run, &why)?;
            time_scale.not_for(&run, &why)?;
            let cloud = typed.of(args.cloud.as_ref(), "cloud", "");
            let recorded_name = recorded_cloud
                .clone()
                .unwrap_or_else(|| "AzureCloud".into());
            if cloud
                .value
                .is_some_and(|c| !c.eq_ignore_ascii_case(&recorded_name))
            {
                cloud.not_for(&run, &format!("{run} acts in {recorded_name}"))?;
            }
            Ok(TargetRecord::Azure {
                subscription: same_subscription(&run, &subscription, recorded_subscription)?,
                cloud: recorded_cloud,
            })
        }
    }
}

/// A run stays in its subscription. One given for a run that recorded none (it could not
/// connect, so it acted on nothing) is taken.
fn same_subscription(
    run: &str,
    given: &Given<'_, String>,
    recorded: Option<String>,
) -> Result<Option<String>, String> {
    match (given.value, recorded) {
        (Some(g), Some(r)) if *g != r => {
            let why = format!("{run} works in subscription {r}, not {g}");
            given.not_for(run, &why)?;
            Ok(Some(r))
        }
        (given, None) => Ok(given.cloned()),
        (_, recorded) => Ok(recorded),
    }
}
