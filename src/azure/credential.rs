//! Credentials: the azure_identity chain for real Azure, a fixed token for the emulator.

use std::sync::Arc;

use azure_core::auth::{AccessToken, TokenCredential};

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

/// The emulator's bearer token: always the same, never expires.
#[derive(Debug)]
pub struct FixedToken {
    token: String,
}

impl FixedToken {
    pub fn new(token: String) -> Self {
        Self { token }
    }
}

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let expires = time::OffsetDateTime::now_utc() + time::Duration::hours(24);
        Ok(AccessToken::new(self.token.clone(), expires))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}
