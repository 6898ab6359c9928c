//! Credentials: the azure_identity chain for real Azure; for the emulator, azure_identity's
//! client-secret credential signing in at the emulator's own Entra endpoint.

use std::sync::Arc;

use azure_core::auth::TokenCredential;

use crate::actions::ActionError;

const LOGIN_HINT: &str = "log in with `az login` (and `az account set -s SUBSCRIPTION`), or set \
AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE) for a \
service principal; to rehearse without Azure, add `--emulator`";

/// Environment / workload identity, managed identity, then the Azure CLI's login.
pub fn default_chain() -> Result<Arc<dyn TokenCredential>, ActionError> {
    azure_identity::create_default_credential().map_err(|e| login_error(&e))
}

/// What to do when no credential in the chain produced a token.
pub fn login_error(error: &azure_core::Error) -> ActionError {
    ActionError::fatal(format!("cannot get an Azure access token: {error}")).with_hint(LOGIN_HINT)
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

const EMULATOR_LOGIN_HINT: &str = "set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET and \
AZURE_AUTHORITY_HOST to the values `rescue emulator serve` printed (`eval` its export lines), or use \
`--emulator` for an emulator inside rescue";

impl ClientSecret {
    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` and
    /// `AZURE_AUTHORITY_HOST` (default: `default_authority`, the emulator itself, so that a
    /// forgotten variable never sends the secret to another host).
    pub fn from_env(default_authority: &url::Url) -> Result<ClientSecret, ActionError> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    ActionError::fatal(format!("{name} is not set")).with_hint(EMULATOR_LOGIN_HINT)
                })
        };
        let authority_host = match std::env::var("AZURE_AUTHORITY_HOST")
            .ok()
            .filter(|v| !v.is_empty())
        {
            None => default_authority.clone(),
            Some(v) => url::Url::parse(&v).map_err(|e| {
                ActionError::fatal(format!("AZURE_AUTHORITY_HOST {v:?} is not a URL: {e}"))
            })?,
        };
        Ok(ClientSecret {
            authority_host,
            tenant_id: var("AZURE_TENANT_ID")?,
            client_id: var("AZURE_CLIENT_ID")?,
            client_secret: var("AZURE_CLIENT_SECRET")?,
        })
    }

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

/// What to do when the emulator's token endpoint refused us.
pub fn emulator_login_error(error: &azure_core::Error) -> ActionError {
    // The token endpoint's reason (an AADSTS code) is in the error's sources.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    // oauth2 keeps Entra's description out of its Display; it is in the Debug form.
    let debug = format!("{error:?}");
    if let Some(m) = regex::Regex::new(r"AADSTS\d+: [^\\\x22]*")
        .expect("a valid regex")
        .find(&debug)
    {
        text.push_str(&format!(" ({})", m.as_str().trim_end()));
    }
    ActionError::fatal(format!(
        "cannot get an access token from the emulator: {text}"
    ))
    .with_hint(EMULATOR_LOGIN_HINT)
}
