//! Where a run acts: builds `actions::Env` from the flags on `run`, records it in the journal,
//! and rebuilds it from the journal on `resume` so that a run continues against the same place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::settings::{Settings, Target};
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
        /// A national cloud's name; absent for the public cloud.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cloud: Option<String>,
    },
    /// An emulator inside the rescue process; its state lives in the run directory, so a
    /// resumed run restarts it where it stopped.
    InProcessEmulator {
        scenario: Option<PathBuf>,
        time_scale: f64,
        data_dir: PathBuf,
        /// The port it listened on: a restart binds it again if it can, so that the operation
        /// URLs the run checkpointed still answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
    },
    /// A `rescue emulator serve` running elsewhere. Its credentials are never journaled: they
    /// come from the environment on every run and resume.
    Emulator {
        endpoint: url::Url,
        #[serde(default)]
        ca: Option<PathBuf>,
        subscription: Option<String>,
    },
}

impl TargetRecord {
    pub fn for_new_run(target: &Target, run_dir: &Path) -> TargetRecord {
        match target.clone() {
            Target::Azure {
                subscription,
                cloud,
            } => TargetRecord::Azure {
                subscription,
                cloud,
            },
            Target::InProcessEmulator {
                scenario,
                time_scale,
            } => TargetRecord::InProcessEmulator {
                scenario,
                time_scale,
                data_dir: run_dir.join("emulator"),
                port: None,
            },
            Target::Emulator {
                endpoint,
                ca,
                subscription,
            } => TargetRecord::Emulator {
                endpoint,
                ca,
                subscription,
            },
        }
    }

    /// The record once connected: an in-process emulator's port, for the next restart (a
    /// connection shared with other runs keeps the port its emulator's owner recorded).
    pub fn connected(self, connected: &Connected) -> TargetRecord {
        match self {
            TargetRecord::InProcessEmulator {
                scenario,
                time_scale,
                data_dir,
                port,
            } => TargetRecord::InProcessEmulator {
                scenario,
                time_scale,
                data_dir,
                port: connected.emulator_port().or(port),
            },
            other => other,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("plain enum")
    }

    /// The journal's record. None: not recorded (format 1 journals, from before rescue acted
    /// on Azure). A record that does not parse is an error, never a fall back to Azure.
    pub fn from_value(value: &Value) -> Result<Option<TargetRecord>, String> {
        if value.is_null() {
            return Ok(None);
        }
        serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| format!("its `target` is not one rescue writes: {e} (found {value})"))
    }
}

/// A connected target; keep it alive for the whole run.
pub struct Connected {
    pub env: Env,
    emulator: Option<emulator::Handle>,
}

impl Connected {
    /// A run on a connection made for several (a fleet's): their one token cache, connection
    /// pool and throttling gate, and this run's files.
    pub fn with(azure: Arc<Azure>, files: Arc<dyn Files>) -> Connected {
        Connected {
            env: Env {
                azure: Some(azure),
                files: Some(files),
                ..Env::default()
            },
            emulator: None,
        }
    }

    /// The port the in-process emulator listens on, if there is one.
    pub fn emulator_port(&self) -> Option<u16> {
        self.emulator.as_ref().and_then(|h| h.endpoint.port())
    }

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
    settings: &Settings,
) -> Result<Connected, ActionError> {
    if !needs_azure {
        return Ok(Connected {
            env: Env {
                files,
                ..Env::default()
            },
            emulator: None,
        });
    }
    let auth = settings.auth;
    let (target, handle, previous) = match record.clone() {
        TargetRecord::Azure {
            subscription,
            cloud,
        } => {
            let cloud = azure::Cloud::named(cloud.as_deref().unwrap_or("AzureCloud"))?;
            let target = azure::Target {
                cloud,
                login: azure::Login::Auth(auth),
                subscription,
                extra_ca: None,
            };
            (target, None, None)
        }
        TargetRecord::Emulator {
            endpoint,
            ca,
            subscription,
        } => {
            // A cloud of its own: its ARM endpoint, and its Entra at AZURE_AUTHORITY_HOST
            // (what `serve` exports; the emulator itself when unset).
            let cloud = azure::Cloud::custom(endpoint.clone(), endpoint.clone());
            let login = match auth {
                // Its own sign-in, the service principal it printed, unless told otherwise.
                azure::Auth::Default => {
                    let refused = |e| login_refused(e, auth, true);
                    let authority = azure::credential::authority(&cloud).map_err(refused)?;
                    azure::Login::Secret(
                        azure::ClientSecret::from_env(&authority).map_err(refused)?,
                    )
                }
                other => azure::Login::Auth(other),
            };
            let target = azure::Target {
                cloud,
                login,
                subscription: Some(
                    subscription.unwrap_or_else(|| DEFAULT_EMULATOR_SUBSCRIPTION.to_string()),
                ),
                extra_ca: ca,
            };
            (target, None, None)
        }
        TargetRecord::InProcessEmulator {
            scenario,
            time_scale,
            data_dir,
            port,
        } => {
            // Disk images of the rehearsal are state too: owner only, like the journal.
            create_private_dir(&data_dir).map_err(|e| ActionError::fatal(format!("{e:#}")))?;
            let config = emulator::Config {
                scenario,
                log: Some(data_dir.join("requests.jsonl")),
                data_dir,
                port: port.unwrap_or(0),
                time_scale,
                tls: true,
            };
            let started = match emulator::start(config.clone()).await {
                Err(e) if config.port != 0 => {
                    eprintln!("note: the emulator cannot listen on port {} again ({e:#}); it restarts on another, and operations in flight are polled there", config.port);
                    emulator::start(emulator::Config { port: 0, ..config }).await
                }
                started => started,
            };
            let handle = started.map_err(|e| {
                ActionError::fatal(format!("cannot start the emulator: {e:#}")).with_hint(
                    "check that the state directory is writable and loop devices are available",
                )
            })?;
            let endpoint = handle.endpoint.clone();
            // Operation URLs checkpointed on the port the run used before are polled here.
            let previous = port.and_then(|p| {
                let mut old = endpoint.clone();
                old.set_port(Some(p)).ok()?;
                Some(old)
            });
            let target = azure::Target {
                cloud: azure::Cloud::custom(endpoint.clone(), endpoint.clone()),
                login: azure::Login::Secret(azure::ClientSecret {
                    authority_host: endpoint,
                    tenant_id: handle.tenant_id.clone(),
                    client_id: handle.client_id.clone(),
                    client_secret: handle.client_secret.clone(),
                }),
                subscription: Some(handle.subscription_id.clone()),
                extra_ca: handle.ca_pem.clone(),
            };
            (target, Some(handle), previous)
        }
    };
    match Azure::connect(target, settings.transport.clone()).await {
        Ok(azure) => {
            let azure = match previous {
                Some(old) => azure.with_previous_endpoint(old),
                None => azure,
            };
            Ok(Connected {
                env: Env {
                    azure: Some(Arc::new(azure)),
                    files,
                    ..Env::default()
                },
                emulator: handle,
            })
        }
        Err(e) => {
            let emulated = handle.is_some() || matches!(record, TargetRecord::Emulator { .. });
            if let Some(handle) = handle {
                handle.shutdown().await;
            }
            Err(login_refused(e, auth, emulated))
        }
    }
}

/// A refused sign-in (or an unreadable CA): say how to sign in with the credential kind chosen.
fn login_refused(e: azure::Error, auth: azure::Auth, emulated: bool) -> ActionError {
    let refused = matches!(e.kind, azure::ErrorKind::Auth);
    let error = ActionError::from(e);
    if !refused {
        return error;
    }
    error.with_hint(match auth {
        azure::Auth::Default if emulated => {
            "set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and AZURE_AUTHORITY_HOST to the \
             values `rescue emulator serve` printed (`eval` its export lines), or use `--emulator` for \
             an emulator inside rescue"
        }
        azure::Auth::Default => {
            "sign in with `az login`, or name the credential: --auth cli|msi|env|workload"
        }
        azure::Auth::Cli => "run `az login` (and `az account set --subscription ID`), then again",
        azure::Auth::ManagedIdentity => {
            "this machine's managed identity answered no: check that it exists and has a role on \
             the resource group (App Service and Container Apps set IDENTITY_ENDPOINT and \
             IDENTITY_HEADER; a VM uses IMDS), or name another credential with --auth"
        }
        azure::Auth::Env => {
            "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or \
             AZURE_FEDERATED_TOKEN_FILE) for the service principal, or name another credential \
             with --auth"
        }
        azure::Auth::Workload => {
            "the token in AZURE_FEDERATED_TOKEN_FILE must match a federated credential of the app \
             AZURE_CLIENT_ID (issuer, subject, audience api://AzureADTokenExchange): Entra's \
             message above names the ones it was given"
        }
    })
}

/// The subscription of the embedded incident scenario, for `--emulator-url` without one.
const DEFAULT_EMULATOR_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";
