//! The Azure layer: the only module that talks to Azure Resource Manager.
//!
//! Requests are built by azure_mgmt_compute 0.21 and sent with `.send()`; everything around them
//! is ours: the retry policy ([`retry`]), the long-running-operation poller ([`lro`]), and the
//! translation of ARM errors into messages that say what to do ([`errors`]). The SDK's own
//! `.await` polling is broken for ARM LROs (see the wire contract), so it is never used.

mod client;
mod credential;
pub mod errors;
pub mod ids;
pub mod kill_hook;
pub mod lro;
pub mod progress;
mod retry;

use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::TokenCredential;
use azure_mgmt_compute::Client;

use crate::actions::ActionError;
pub use client::VmAction;
pub use credential::ClientSecret;
pub use lro::{FinalVia, Operation, PollTiming, Started};
pub use retry::human as retry_human;

/// Where rescue talks to: real Azure, or a local emulator.
#[derive(Clone, Debug)]
pub enum Target {
    Azure {
        subscription: Option<String>,
    },
    /// An emulator: its CA is trusted for this target only, and the token comes from its own
    /// Entra endpoint through azure_identity's client-secret credential.
    Emulator {
        endpoint: url::Url,
        ca: Option<std::path::PathBuf>,
        login: Box<credential::ClientSecret>,
        subscription: String,
    },
}

/// A configured connection to ARM (real Azure or the emulator).
pub struct Azure {
    client: Client,
    subscription: String,
    /// Our own pipeline (same retry policy) for operation-status polls.
    pipeline: azure_core::Pipeline,
    credential: Arc<dyn TokenCredential>,
    scopes: Vec<String>,
    endpoint: url::Url,
    timing: PollTiming,
    emulated: bool,
    /// The HTTP client under the pipeline (with an emulator's CA when the target is one).
    http: reqwest::Client,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure")
            .field("endpoint", &self.endpoint.as_str())
            .field("subscription", &self.subscription)
            .finish()
    }
}

/// Requests that hang this long are cut and retried (a dropped connection must not stall a run).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(100);

/// The HTTP client; `ca`: also trust this CA (an emulator's), never instead of verifying.
fn http_client(ca: Option<&std::path::Path>) -> Result<reqwest::Client, ActionError> {
    let mut builder = reqwest::Client::builder().timeout(REQUEST_TIMEOUT);
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| {
            ActionError::fatal(format!(
                "cannot read the emulator's CA {}: {e}",
                path.display()
            ))
            .with_hint("RESCUE_EMULATOR_CA is printed by `rescue emulator serve`")
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
            ActionError::fatal(format!("{} is not a PEM certificate: {e}", path.display()))
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build()
        .map_err(|e| ActionError::fatal(format!("cannot build the HTTP client: {e}")))
}

impl Azure {
    /// Connect to `target`. For real Azure this asks the credential chain for a token right away,
    /// so a missing login fails here with instructions, not in the middle of a repair.
    pub async fn connect(target: Target) -> Result<Azure, ActionError> {
        match target {
            Target::Azure { subscription } => {
                let subscription = subscription
                    .filter(|s| !s.is_empty())
                    .or_else(|| std::env::var("AZURE_SUBSCRIPTION_ID").ok().filter(|s| !s.is_empty()))
                    .ok_or_else(|| {
                        ActionError::fatal("no Azure subscription given").with_hint(
                            "pass --subscription ID or set AZURE_SUBSCRIPTION_ID (`az account show --query id -o tsv` prints yours)",
                        )
                    })?;
                let endpoint = url::Url::parse(
                    azure_mgmt_compute::package_2024_07_01::DEFAULT_ENDPOINT.as_str(),
                )
                .expect("the public cloud endpoint is a valid URL");
                let credential = credential::default_chain()?;
                let http = http_client(None)?;
                let azure = Self::build(
                    endpoint,
                    http,
                    credential,
                    subscription,
                    PollTiming::azure(),
                    false,
                )?;
                azure.check_login().await?;
                Ok(azure)
            }
            Target::Emulator {
                endpoint,
                ca,
                login,
                subscription,
            } => {
                let http = http_client(ca.as_deref())?;
                let credential = login.credential(Arc::new(http.clone()));
                let azure = Self::build(
                    endpoint,
                    http,
                    credential,
                    subscription,
                    PollTiming::emulator(),
                    true,
                )?;
                // As for Azure: a refused login stops here, before any ARM request.
                let scopes: Vec<&str> = azure.scopes.iter().map(String::as_str).collect();
                azure
                    .credential
                    .get_token(&scopes)
                    .await
                    .map_err(|e| credential::emulator_login_error(&e))?;
                Ok(azure)
            }
        }
    }

    fn build(
        endpoint: url::Url,
        http: reqwest::Client,
        credential: Arc<dyn TokenCredential>,
        subscription: String,
        timing: PollTiming,
        emulated: bool,
    ) -> Result<Azure, ActionError> {
        let transport = azure_core::TransportOptions::new(Arc::new(http.clone()));
        let retry = azure_core::RetryOptions::custom(Arc::new(retry::ArmRetry::new(&timing)));
        let client = Client::builder(credential.clone())
            .endpoint(endpoint.clone())
            .retry(retry.clone())
            .transport(transport.clone())
            .build()
            .map_err(|e| ActionError::fatal(format!("cannot build the Azure client: {e}")))?;
        let options = azure_core::ClientOptions::new(transport).retry(retry);
        let pipeline = azure_core::Pipeline::new(
            Some("rescue"),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            Vec::new(),
        );
        let scope = endpoint
            .join(azure_core::auth::DEFAULT_SCOPE_SUFFIX)
            .map_err(|e| ActionError::fatal(format!("bad endpoint {endpoint}: {e}")))?
            .to_string();
        Ok(Azure {
            client,
            subscription,
            pipeline,
            credential,
            scopes: vec![scope],
            endpoint,
            timing,
            emulated,
            http,
        })
    }

    async fn check_login(&self) -> Result<(), ActionError> {
        self.token().await.map(|_| ())
    }

    pub(crate) async fn token(&self) -> Result<String, ActionError> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let token = self
            .credential
            .get_token(&scopes)
            .await
            .map_err(|e| credential::login_error(&e))?;
        Ok(token.token.secret().to_string())
    }

    /// The subscription used when a step does not name one.
    pub fn subscription(&self) -> &str {
        &self.subscription
    }

    /// The ARM endpoint (the public cloud, or the emulator's loopback URL).
    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// True when talking to the emulator rather than Azure.
    pub fn is_emulated(&self) -> bool {
        self.emulated
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn timing(&self) -> &PollTiming {
        &self.timing
    }

    /// Pause between two looks at a VM's health (no Retry-After applies to GETs).
    pub fn health_poll_interval(&self, polls: u32) -> Duration {
        self.timing.next(polls, None)
    }
}
