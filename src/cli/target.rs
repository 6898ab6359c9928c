//! Where a run acts: builds `actions::Env` from the flags on `run`, records it in the journal,
//! and rebuilds it from the journal on `resume` so that a run continues against the same place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::Target;
use crate::actions::{ActionError, Env, Files};
use crate::azure::{self, Azure};
use crate::emulator;
use crate::engine::store::create_private_dir;

/// The target as the journal keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TargetRecord {
    Azure {
        subscription: Option<String>,
    },
    /// An emulator inside the rescue process; its state lives in the run directory, so a
    /// resumed run restarts it where it stopped.
    InProcessEmulator {
        scenario: Option<PathBuf>,
        time_scale: f64,
        data_dir: PathBuf,
    },
    /// A `rescue emulator serve` running elsewhere.
    Emulator {
        endpoint: url::Url,
        token: String,
        subscription: Option<String>,
    },
}

impl TargetRecord {
    pub fn for_new_run(target: &Target, run_dir: &Path) -> TargetRecord {
        match target.clone() {
            Target::Azure { subscription } => TargetRecord::Azure { subscription },
            Target::InProcessEmulator {
                scenario,
                time_scale,
            } => TargetRecord::InProcessEmulator {
                scenario,
                time_scale,
                data_dir: run_dir.join("emulator"),
            },
            Target::Emulator {
                endpoint,
                token,
                subscription,
            } => TargetRecord::Emulator {
                endpoint,
                token,
                subscription,
            },
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("plain enum")
    }

    /// The journal's record; runs journaled without one acted on nothing but core actions.
    pub fn from_value(value: &Value) -> TargetRecord {
        serde_json::from_value(value.clone()).unwrap_or(TargetRecord::Azure { subscription: None })
    }
}

/// A connected target; keep it alive for the whole run.
pub struct Connected {
    pub env: Env,
    emulator: Option<emulator::Handle>,
}

impl Connected {
    /// Stops the in-process emulator, if any, after its state is saved.
    pub async fn close(self) {
        if let Some(handle) = self.emulator {
            handle.shutdown().await;
        }
    }
}

/// Connects when the workflow has Azure steps; core-only workflows need nothing.
pub async fn connect(
    record: &TargetRecord,
    needs_azure: bool,
    files: Option<Arc<dyn Files>>,
) -> Result<Connected, ActionError> {
    if !needs_azure {
        return Ok(Connected {
            env: Env {
                azure: None,
                files,
                force_unlock: None,
            },
            emulator: None,
        });
    }
    let (target, handle) = match record.clone() {
        TargetRecord::Azure { subscription } => (azure::Target::Azure { subscription }, None),
        TargetRecord::Emulator {
            endpoint,
            token,
            subscription,
        } => {
            let subscription =
                subscription.unwrap_or_else(|| DEFAULT_EMULATOR_SUBSCRIPTION.to_string());
            (
                azure::Target::Emulator {
                    endpoint,
                    token,
                    subscription,
                },
                None,
            )
        }
        TargetRecord::InProcessEmulator {
            scenario,
            time_scale,
            data_dir,
        } => {
            // Disk images of the rehearsal are state too: owner only, like the journal.
            create_private_dir(&data_dir).map_err(|e| ActionError::fatal(format!("{e:#}")))?;
            let config = emulator::Config {
                scenario,
                log: Some(data_dir.join("requests.jsonl")),
                data_dir,
                port: 0,
                time_scale,
                token: None,
            };
            let handle = emulator::start(config).await.map_err(|e| {
                ActionError::fatal(format!("cannot start the emulator: {e:#}")).with_hint(
                    "check that the state directory is writable and loop devices are available",
                )
            })?;
            let target = azure::Target::Emulator {
                endpoint: handle.endpoint.clone(),
                token: handle.token.clone(),
                subscription: handle.subscription_id.clone(),
            };
            (target, Some(handle))
        }
    };
    match Azure::connect(target).await {
        Ok(azure) => Ok(Connected {
            env: Env {
                azure: Some(Arc::new(azure)),
                files,
                force_unlock: None,
            },
            emulator: handle,
        }),
        Err(e) => {
            if let Some(handle) = handle {
                handle.shutdown().await;
            }
            Err(e)
        }
    }
}

/// The subscription of the embedded incident scenario, for `--emulator-url` without one.
const DEFAULT_EMULATOR_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
