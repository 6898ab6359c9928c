//! Who may call ARM: only the bearer of an unexpired token this emulator's Entra endpoint issued
//! for one of ARM's audiences (Run Command executes scripts as root), answered with ARM's 401
//! bodies otherwise; and the signature of the boot diagnostics URLs, which like Azure's SAS URLs
//! carry their own credential.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use super::arm::ArmError;
use super::entra::token::{self, Rejection};
use super::http::Reply;
use super::server::Emu;

/// The caller's object id, or ARM's 401.
pub fn authenticate(emu: &Emu, headers: &HeaderMap) -> Result<String, Reply> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized(
            emu,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.".into(),
        ));
    };
    let presented = value.strip_prefix("Bearer ").unwrap_or("");
    let audiences = super::entra::audiences(&emu.base);
    match token::verify(
        &emu.token_key,
        &emu.directory.tenant_id,
        presented,
        &audiences,
    ) {
        Ok(oid) => Ok(oid),
        Err(Rejection::Invalid) => Err(unauthorized(
            emu,
            "InvalidAuthenticationToken",
            "The access token is invalid.".into(),
        )),
        // The text as ARM sends it, times in .NET's invariant "G" format (sample:
        // microsoft/foundry-dev-tools#461).
        Err(Rejection::Expired { exp }) => Err(unauthorized(
            emu,
            "ExpiredAuthenticationToken",
            format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                dotnet_time(
                    time::OffsetDateTime::from_unix_timestamp(exp)
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                ),
                dotnet_time(time::OffsetDateTime::now_utc())
            ),
        )),
        Err(Rejection::WrongAudience { aud }) => {
            let allowed: Vec<String> = audiences
                .iter()
                .flat_map(|a| [a.clone(), a.trim_end_matches('/').to_string()])
                .map(|a| format!("'{a}'"))
                .collect();
            Err(unauthorized(
                emu,
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource '{aud}'. It should exactly \
                     match with one of the allowed audiences {}.",
                    allowed.join(",")
                ),
            ))
        }
    }
}

/// `M/d/yyyy h:mm:ss tt`.
fn dotnet_time(t: time::OffsetDateTime) -> String {
    let (h, ampm) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    format!(
        "{}/{}/{} {h}:{:02}:{:02} {ampm}",
        u8::from(t.month()),
        t.day(),
        t.year(),
        t.minute(),
        t.second()
    )
}

/// ARM's 401 points the client at the login endpoint in `WWW-Authenticate` (RFC 6750 §3); for
/// this cloud that is the emulator itself.
fn unauthorized(emu: &Emu, code: &str, message: String) -> Reply {
    let header = format!(
        "Bearer authorization_uri=\"{}/\", error=\"invalid_token\", error_description=\"{message}\"",
        emu.base
    );
    Reply::from(ArmError::new(401, code, message)).header("WWW-Authenticate", header)
}

/// A URL signature only the holder of the data dir's SAS key can produce.
pub fn sign(key: &[u8], what: &str) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(b":");
    h.update(what.as_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    #[test]
    fn dotnet_time_is_arm_s_format() {
        let t = time::macros::datetime!(2026-06-15 20:22:51 UTC);
        assert_eq!(super::dotnet_time(t), "6/15/2026 8:22:51 PM");
        let t = time::macros::datetime!(2026-06-15 00:05:01 UTC);
        assert_eq!(super::dotnet_time(t), "6/15/2026 12:05:01 AM");
    }
}
