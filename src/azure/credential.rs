//! Credentials: the azure_identity chain for real Azure, a fixed token for the emulator.

use std::sync::Arc;

use azure_core::auth::{AccessToken, TokenCredential};

use super::error::{Error, Kind};

/// Environment / workload identity, managed identity, then the Azure CLI's login.
pub fn default_chain() -> Result<Arc<dyn TokenCredential>, Error> {
    azure_identity::create_default_credential().map_err(|e| login_error(&e))
}

/// No credential in the chain produced a token.
pub fn login_error(error: &azure_core::Error) -> Error {
    Error::new(Kind::Auth, "get an Azure access token", error.to_string())
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
