//! The Azure layer: the only module that talks to Azure Resource Manager. It knows resources,
//! requests and operations, never steps, runs or workflows.
//!
//! - [`transport`]: the one door to the network (TLS roots, the throttling gate, safe retries);
//! - [`requests`]: the calls, built by azure_mgmt_compute 0.21 and sent with `.send()`;
//! - [`network`]: a rescue VM's VNet, NSG and NIC, typed REST on azure_core's pipeline;
//! - [`lro`]: our long-running-operation poller (the SDK's own `.await` polling is broken for
//!   ARM, see the wire contract);
//! - [`memo`]: a read is not repeated until we act or wait;
//! - [`converge`]: one loop that brings a resource to a desired state;
//! - [`disk_batch`]: attach/detach changes to one VM merged into one request;
//! - [`script`]: a script run at most once (managed Run Command);
//! - [`error`]: errors classified by HTTP status and ARM code;
//! - [`model`]: typed views of what is read.

pub mod account;
pub mod aks;
pub mod blob;
pub mod calls;
pub mod converge;
pub mod credential;
pub mod disk_batch;
pub mod error;
pub mod halt;
pub mod ids;
pub mod kill_hook;
pub mod lro;
pub mod memo;
pub mod model;
pub mod network;
pub mod progress;
pub mod requests;
pub mod script;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::TokenCredential;
use azure_mgmt_compute::Client;

pub use credential::{Auth, ClientSecret, Cloud, Login};
pub use error::{Error, Kind as ErrorKind};
pub use lro::{Ended, Operation, Started};
pub use requests::{VmAction, Write};
pub use transport::TransportOptions;

/// Where rescue talks to and as whom: a cloud (the public one, a national one, or endpoints
/// of its own such as Azure Stack Hub's or an emulator's), a sign-in, and the subscription.
#[derive(Clone, Debug)]
pub struct Target {
    pub cloud: Cloud,
    pub login: Login,
    /// Else `AZURE_SUBSCRIPTION_ID`.
    pub subscription: Option<String>,
    /// A CA to trust besides the system's (PEM), for this target only.
    pub extra_ca: Option<std::path::PathBuf>,
}

/// A configured connection to ARM (real Azure or the emulator).
pub struct Azure {
    client: Client,
    subscription: String,
    /// Our own pipeline (no retry policy: the transport retries) for operation-status polls.
    pipeline: azure_core::Pipeline,
    transport: Arc<transport::Transport>,
    credential: Arc<dyn TokenCredential>,
    scopes: Vec<String>,
    endpoint: url::Url,
    /// Endpoints this target had before (an emulator restarted on another port): operation URLs
    /// checkpointed there are polled here.
    previous_endpoints: Vec<url::Url>,
    /// Attach/detach changes waiting for, or sharing, one request per VM.
    disk_batches: disk_batch::Batches,
}

impl std::fmt::Debug for Azure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Azure")
            .field("endpoint", &self.endpoint.as_str())
            .field("subscription", &self.subscription)
            .finish()
    }
}

impl Azure {
    /// Connect to `target`. This asks the credential for a token right away, so a missing
    /// login fails here, not in the middle of a repair.
    pub async fn connect(target: Target, mut options: TransportOptions) -> Result<Azure, Error> {
        if target.extra_ca.is_some() {
            options.extra_ca = target.extra_ca.clone();
        }
        let subscription = target
            .subscription
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                std::env::var("AZURE_SUBSCRIPTION_ID")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .ok_or_else(|| Error::setup("no Azure subscription given"))?;
        let transport = transport::Transport::new(options)?;
        // Sign-ins go to Entra, not ARM: through the plain client, so that they are neither
        // retried as ARM requests nor counted as mutations by the test hooks.
        let credential =
            credential::credential(&target.login, &target.cloud, Arc::new(transport.http()))?;
        let azure = Self::build(
            target.cloud.resource_manager.clone(),
            credential,
            subscription,
            transport,
        )?;
        azure.token().await?;
        Ok(azure)
    }

    fn build(
        endpoint: url::Url,
        credential: Arc<dyn TokenCredential>,
        subscription: String,
        transport: Arc<transport::Transport>,
    ) -> Result<Azure, Error> {
        let http: Arc<dyn azure_core::HttpClient> = transport.clone();
        let transport_options = azure_core::TransportOptions::new(http);
        // azure_core's retry policy re-sends mutations after a lost answer; the transport
        // retries only what is safe, and the converge loop handles the rest.
        let client = Client::builder(credential.clone())
            .endpoint(endpoint.clone())
            .retry(azure_core::RetryOptions::none())
            .transport(transport_options.clone())
            .build()
            .map_err(|e| Error::setup(format!("cannot build the Azure client: {e}")))?;
        let pipeline_options = azure_core::ClientOptions::new(transport_options)
            .retry(azure_core::RetryOptions::none());
        let pipeline = azure_core::Pipeline::new(
            Some("rescue"),
            Some(env!("CARGO_PKG_VERSION")),
            pipeline_options,
            Vec::new(),
            Vec::new(),
        );
        let scope = endpoint
            .join(azure_core::auth::DEFAULT_SCOPE_SUFFIX)
            .map_err(|e| Error::setup(format!("bad endpoint {endpoint}: {e}")))?
            .to_string();
        Ok(Azure {
            client,
            subscription,
            pipeline,
            transport,
            credential,
            scopes: vec![scope],
            endpoint,
            previous_endpoints: Vec::new(),
            disk_batches: Default::default(),
        })
    }

    /// Operation URLs checkpointed on `old` (this target's endpoint in an earlier process) are
    /// polled on this endpoint.
    pub fn with_previous_endpoint(mut self, old: url::Url) -> Self {
        if old.origin() != self.endpoint.origin() {
            self.previous_endpoints.push(old);
        }
        self
    }

    pub(crate) async fn token(&self) -> Result<String, Error> {
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

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.transport.requests()
    }

    /// Time passes outside this layer (a step's retry delay, a prompt): what was read before is
    /// read again (see [`memo`]).
    pub fn time_passes(&self) {
        self.transport.forget_reads();
    }

    /// Sleep between polls: reads after it go to Azure again, in this task and in any other
    /// that read while it slept.
    pub async fn wait(&self, d: Duration) {
        self.time_passes();
        tokio::time::sleep(d).await;
        self.time_passes();
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn pipeline(&self) -> &azure_core::Pipeline {
        &self.pipeline
    }

    pub(crate) fn transport(&self) -> &Arc<transport::Transport> {
        &self.transport
    }

    /// A converge loop's place at VM `id`'s attach/detach gate (None: not a VM).
    pub fn disk_batch_member(&self, id: &ids::ResourceId) -> Option<disk_batch::Member> {
        self.disk_batches.member(id)
    }

    pub(crate) fn previous_endpoints(&self) -> &[url::Url] {
        &self.previous_endpoints
    }
}

/// "8 s", "1.5 s", "50 ms": readable on a progress line.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 0.1 {
        format!("{} ms", d.as_millis())
    } else if secs >= 10.0 {
        format!("{} s", secs.round())
    } else {
        format!("{:.1} s", secs)
    }
}
