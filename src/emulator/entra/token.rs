//! The access tokens: JWTs with the claims of a v1.0 app-only token for ARM ("Access token
//! claims reference", learn.microsoft.com/entra/identity-platform/access-token-claims-reference),
//! signed with a per-data-dir key. Entra signs with RS256 and publishes its keys; no client
//! verifies an access token meant for ARM (only ARM does, and here ARM is this emulator), so
//! HS256 with a key only the emulator holds checks the same things: who issued it, for which
//! audience, until when.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::Principal;

/// Entra's default access-token lifetime is 60-90 minutes ("Configurable token lifetimes");
/// `expires_in` in the samples of the client-credentials doc is 3599.
pub const LIFETIME_SECONDS: i64 = 3599;

#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub appid: String,
    /// 1: the client authenticated with a secret.
    pub appidacr: String,
    pub idp: String,
    pub idtyp: String,
    pub oid: String,
    pub sub: String,
    pub tid: String,
    pub uti: String,
    pub ver: String,
}

/// v1.0 tokens name the tenant's STS as issuer (access-token-claims-reference, `iss`).
pub fn issuer(tenant: &str) -> String {
    format!("https://sts.windows.net/{tenant}/")
}

/// Signs a token for `resource`; returns it and its lifetime in seconds.
pub fn issue(key: &[u8], tenant: &str, p: &Principal, resource: &str) -> (String, i64) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let iss = issuer(tenant);
    let claims = Claims {
        aud: resource.to_string(),
        iss: iss.clone(),
        iat: now,
        nbf: now,
        exp: now + LIFETIME_SECONDS,
        appid: p.client_id.clone(),
        appidacr: "1".into(),
        idp: iss,
        idtyp: "app".into(),
        oid: p.object_id.clone(),
        sub: p.object_id.clone(),
        tid: tenant.to_string(),
        uti: super::super::arm::guid().replace('-', ""),
        ver: "1.0".into(),
    };
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .expect("HS256 signing cannot fail");
    (token, LIFETIME_SECONDS)
}

/// Why ARM refuses a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Invalid,
    Expired { exp: i64 },
    WrongAudience { aud: String },
}

/// What ARM looks at (besides signature and issuer).
#[derive(Deserialize)]
struct Checked {
    aud: String,
    exp: i64,
    /// The principal ARM counts the call against (its throttling buckets are per principal).
    #[serde(default)]
    oid: String,
}

/// Checks signature, issuer, audience and expiry, as ARM does before anything else. Returns the
/// caller's object id.
pub fn verify(
    key: &[u8],
    tenant: &str,
    token: &str,
    audiences: &[String],
) -> Result<String, Rejection> {
    let mut v = Validation::new(Algorithm::HS256);
    // Audience and expiry are checked below, to answer with ARM's distinct codes.
    v.validate_aud = false;
    v.validate_exp = false;
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    v.set_issuer(&[issuer(tenant)]);
    let claims = decode::<Checked>(token, &DecodingKey::from_secret(key), &v)
        .map_err(|_| Rejection::Invalid)?
        .claims;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if claims.exp <= now {
        return Err(Rejection::Expired { exp: claims.exp });
    }
    if !audiences
        .iter()
        .any(|a| a.trim_end_matches('/') == claims.aud.trim_end_matches('/'))
    {
        return Err(Rejection::WrongAudience { aud: claims.aud });
    }
    Ok(claims.oid)
}
