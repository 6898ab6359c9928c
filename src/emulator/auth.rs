//! Who may call: only the bearer token the emulator was started with (Run Command executes
//! scripts as root), answered with ARM's 401 bodies otherwise; and the signature of the boot
//! diagnostics URLs, which like Azure's SAS URLs carry their own credential.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use super::arm::ArmError;
use super::http::Reply;

pub fn authenticate(token: &str, headers: &HeaderMap) -> Result<(), Reply> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized(
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let presented = value.strip_prefix("Bearer ").unwrap_or("");
    if presented.as_bytes() != token.as_bytes() {
        return Err(unauthorized(
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ));
    }
    Ok(())
}

fn unauthorized(code: &str, message: &str) -> Reply {
    Reply::from(ArmError::new(401, code, message)).header(
        "WWW-Authenticate",
        format!(
            "Bearer authorization_uri=\"https://login.windows.net/\", error=\"invalid_token\", \
             error_description=\"{message}\""
        ),
    )
}

/// A URL signature only a holder of the token can produce.
pub fn sign(token: &str, what: &str) -> String {
    hex::encode(&Sha256::digest(format!("{token}:{what}").as_bytes())[..16])
}
