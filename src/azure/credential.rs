//! Credentials: the azure_identity chain for real Azure; for an emulator, azure_identity's
//! client-secret credential signing in at the emulator's own Entra endpoint.

use std::sync::Arc;

use azure_core::auth::TokenCredential;

use super::error::{Error, Kind};

/// Environment / workload identity, managed identity, then the Azure CLI's login.
pub fn default_chain() -> Result<Arc<dyn TokenCredential>, Error> {
    azure_identity::create_default_credential().map_err(|e| login_error(&e))
}

/// No credential produced a token. The token endpoint's reason (an AADSTS code) is kept: it
/// is in the error's sources, and oauth2 keeps Entra's description out of its Display.
pub fn login_error(error: &azure_core::Error) -> Error {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    let debug = format!("{error:?}");
    if let Some(m) = regex::Regex::new(r"AADSTS\d+: [^\\\x22]*")
        .expect("a valid regex")
        .find(&debug)
    {
        text.push_str(&format!(" ({})", m.as_str().trim_end()));
    }
    Error::new(Kind::Auth, "get an Azure access token", text)
}

/// A service principal's client secret and the authority host to present it to.
#[derive(Clone)]
pub struct ClientSecret {
    pub authority_host: url::Url,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecret")
            .field("authority_host", &self.authority_host.as_str())
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientSecret {
    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` and
    /// `AZURE_AUTHORITY_HOST` (default: `default_authority`, the emulator itself, so that a
    /// forgotten variable never sends the secret to another host).
    pub fn from_env(default_authority: &url::Url) -> Result<ClientSecret, Error> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::new(
                        Kind::Auth,
                        "sign in to the emulator",
                        format!("{name} is not set"),
                    )
                })
        };
        let authority_host = match std::env::var("AZURE_AUTHORITY_HOST")
            .ok()
            .filter(|v| !v.is_empty())
        {
            None => default_authority.clone(),
            Some(v) => url::Url::parse(&v).map_err(|e| {
                Error::setup(format!("AZURE_AUTHORITY_HOST {v:?} is not a URL: {e}"))
            })?,
        };
        Ok(ClientSecret {
            authority_host,
            tenant_id: var("AZURE_TENANT_ID")?,
            client_id: var("AZURE_CLIENT_ID")?,
            client_secret: var("AZURE_CLIENT_SECRET")?,
        })
    }

    /// The credential; its token requests go through `http`.
    pub fn credential(&self, http: Arc<dyn azure_core::HttpClient>) -> Arc<dyn TokenCredential> {
        Arc::new(azure_identity::ClientSecretCredential::new(
            http,
            self.authority_host.clone(),
            self.tenant_id.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
        ))
    }
}
