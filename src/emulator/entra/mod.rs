//! A Microsoft Entra ID (Azure AD) slice on the emulator's own host: OpenID discovery, instance
//! discovery and the v2.0 token endpoint's client-credentials grant, so that the real credential
//! chains (azure_identity, MSAL under azure-identity and azure-cli) sign in to the emulator as
//! they sign in to Azure.
//!
//! Sources: Microsoft identity platform, "OAuth 2.0 client credentials flow"
//! (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow: request,
//! success and error responses); "OpenID Connect on the Microsoft identity platform" (the
//! discovery document); "Microsoft Entra authentication and authorization error codes"
//! (learn.microsoft.com/entra/identity-platform/reference-error-codes: AADSTS codes);
//! MSAL Python `authority.py` (what a client reads from discovery).

pub mod token;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::arm;
use super::http::Reply;

/// The tenant and the service principals that may sign in (from the scenario).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Directory {
    pub tenant_id: String,
    pub principals: Vec<Principal>,
    /// The identity of the host the client runs on, when the scenario gives it one: served at
    /// `/msi/token` as App Service serves its identity endpoint.
    #[serde(default)]
    pub managed_identity: Option<ManagedIdentity>,
}

/// An App Service-style managed identity: `IDENTITY_ENDPOINT` is this emulator's `/msi/token`,
/// `IDENTITY_HEADER` the secret the platform gives the app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagedIdentity {
    pub client_id: String,
    pub object_id: String,
    pub header: String,
}

/// A federated identity credential of an app (workload identity federation): tokens an external
/// issuer signed for `subject` are exchanged for Entra tokens ("Workload identity federation",
/// learn.microsoft.com/entra/workload-id/workload-identity-federation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Federation {
    pub issuer: String,
    pub subject: String,
    /// Default `api://AzureADTokenExchange`, the audience Microsoft recommends.
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub client_id: String,
    pub secret: String,
    pub display_name: String,
    /// The service principal's object id (`oid` in its tokens).
    pub object_id: String,
    #[serde(default)]
    pub federated: Vec<Federation>,
}

/// The resources a token may be asked for (`{audience}/.default`): ARM's audiences as the
/// public cloud's metadata lists them (`authentication.audiences` of
/// management.azure.com/metadata/endpoints), plus the emulator's own URL, which clients
/// derive their scope from when pointed at it (azure_mgmt_compute: endpoint + "/.default").
pub fn audiences(base: &str) -> Vec<String> {
    vec![
        "https://management.core.windows.net/".to_string(),
        "https://management.azure.com/".to_string(),
        format!("{base}/"),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/{tenant}/v2.0/.well-known/openid-configuration` (v2) or
    /// `/{tenant}/.well-known/openid-configuration` (v1).
    OpenIdConfiguration { tenant: String, v2: bool },
    /// `/common/discovery/instance` (what MSAL asks of an authority it does not know).
    InstanceDiscovery,
    /// `/{tenant}/oauth2/v2.0/token`.
    Token { tenant: String },
    /// `/msi/token`: the managed identity endpoint (App Service's `IDENTITY_ENDPOINT`).
    ManagedIdentity,
}

impl Route {
    pub fn operation(&self) -> &'static str {
        match self {
            Route::OpenIdConfiguration { .. } => "entra.openidConfiguration",
            Route::InstanceDiscovery => "entra.instanceDiscovery",
            Route::Token { .. } => "entra.token",
            Route::ManagedIdentity => "entra.managedIdentity",
        }
    }
}

/// Entra's paths; anything else is ARM's.
pub fn parse(path: &str) -> Option<Route> {
    let s: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is = |i: usize, w: &str| s.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    match s.len() {
        2 if is(0, "msi") && is(1, "token") => Some(Route::ManagedIdentity),
        3 if is(0, "common") && is(1, "discovery") && is(2, "instance") => {
            Some(Route::InstanceDiscovery)
        }
        3 if is(1, ".well-known") && is(2, "openid-configuration") => {
            Some(Route::OpenIdConfiguration {
                tenant: s[0].to_string(),
                v2: false,
            })
        }
        4 if is(1, "v2.0") && is(2, ".well-known") && is(3, "openid-configuration") => {
            Some(Route::OpenIdConfiguration {
                tenant: s[0].to_string(),
                v2: true,
            })
        }
        4 if is(1, "oauth2") && is(2, "v2.0") && is(3, "token") => Some(Route::Token {
            tenant: s[0].to_string(),
        }),
        _ => None,
    }
}

/// What the token endpoint needs from the emulator.
pub struct Issuer<'a> {
    pub directory: &'a Directory,
    pub base: &'a str,
    pub key: &'a [u8],
}

pub fn handle(
    issuer: &Issuer<'_>,
    route: &Route,
    method: &str,
    query: &[(String, String)],
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Reply {
    match (route, method) {
        (Route::ManagedIdentity, "GET") => managed_identity(issuer, query, headers),
        (Route::OpenIdConfiguration { tenant, v2 }, "GET") => openid_configuration(issuer, tenant, *v2),
        (Route::InstanceDiscovery, "GET") => instance_discovery(issuer),
        (Route::Token { tenant }, "POST") => token_request(issuer, tenant, headers, body),
        (Route::Token { .. }, _) => error(
            405,
            "invalid_request",
            90056,
            &format!("AADSTS90056: This endpoint only accepts POST, OPTIONS requests. Received a {method} request."),
        ),
        _ => Reply::empty(405),
    }
}

/// The discovery tenants Entra accepts besides a tenant id.
fn known_tenant(d: &Directory, tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case(&d.tenant_id)
        || ["common", "organizations"]
            .iter()
            .any(|t| tenant.eq_ignore_ascii_case(t))
}

/// The discovery document, in the shape of
/// login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration (fields as
/// listed by "OpenID Connect on the Microsoft identity platform").
fn openid_configuration(issuer: &Issuer<'_>, tenant: &str, v2: bool) -> Reply {
    if !known_tenant(issuer.directory, tenant) {
        return tenant_not_found(tenant);
    }
    let b = issuer.base;
    let (ver, iss) = if v2 {
        ("/v2.0", format!("{b}/{}/v2.0", issuer.directory.tenant_id))
    } else {
        ("", token::issuer(&issuer.directory.tenant_id))
    };
    let oauth = if v2 { "oauth2/v2.0" } else { "oauth2" };
    Reply::json(
        200,
        json!({
            "token_endpoint": format!("{b}/{tenant}/{oauth}/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{b}/{tenant}/discovery{ver}/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": iss,
            "request_uri_parameter_supported": false,
            "authorization_endpoint": format!("{b}/{tenant}/{oauth}/authorize"),
            "device_authorization_endpoint": format!("{b}/{tenant}/{oauth}/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{b}/{tenant}/{oauth}/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }),
    )
}

/// MSAL's instance discovery answer (`tenant_discovery_endpoint` is what MSAL Python reads,
/// authority.py `_initialize_entra_authority`; the metadata lists this host's aliases).
fn instance_discovery(issuer: &Issuer<'_>) -> Reply {
    let host = issuer
        .base
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    Reply::json(
        200,
        json!({
            "tenant_discovery_endpoint": format!("{}/{}/v2.0/.well-known/openid-configuration", issuer.base, issuer.directory.tenant_id),
            "api-version": "1.1",
            "metadata": [ { "preferred_network": host, "preferred_cache": host, "aliases": [host] } ],
        }),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`, grant_type=client_credentials with a client secret
/// (in the body, `client_secret_post`, or as HTTP Basic, `client_secret_basic`).
fn token_request(
    issuer: &Issuer<'_>,
    tenant: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Reply {
    let d = issuer.directory;
    if !tenant.eq_ignore_ascii_case(&d.tenant_id) {
        return tenant_not_found(tenant);
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let (mut client_id, mut secret) = (get("client_id"), get("client_secret"));
    if let Some((id, s)) = basic_auth(headers) {
        client_id = client_id.or(Some(id));
        secret = secret.or(Some(s));
    }
    match get("grant_type").as_deref() {
        Some("client_credentials") => {}
        None => return missing("grant_type"),
        Some(other) => {
            return error(
                400,
                "unsupported_grant_type",
                70003,
                &format!("AADSTS70003: The app requested an unsupported grant type '{other}'."),
            )
        }
    }
    let Some(client_id) = client_id else {
        return missing("client_id");
    };
    let Some(principal) = d
        .principals
        .iter()
        .find(|p| p.client_id.eq_ignore_ascii_case(&client_id))
    else {
        // AADSTS700016 as the token endpoint sends it: 400 unauthorized_client (sample body:
        // wazuh/wazuh#27069).
        return error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{}'. \
                 This can happen if the application has not been installed by the administrator of the tenant or \
                 consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                d.tenant_id
            ),
        );
    };
    let assertion = (get("client_assertion_type").as_deref() == Some(JWT_BEARER))
        .then(|| get("client_assertion"))
        .flatten();
    if let Some(assertion) = assertion {
        if let Err(refusal) = federated(principal, &assertion) {
            return refusal;
        }
    } else {
        let Some(secret) = secret else {
            return error(
                401,
                "invalid_client",
                7000218,
                "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        };
        if !constant_time_eq(secret.as_bytes(), principal.secret.as_bytes()) {
            // HTTP 401 and this text as Entra sends them (sample body: Azure/sap-automation#418).
            return error(
            401,
            "invalid_client",
            7000215,
            &format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the \
                 client secret value, not the client secret ID, for a secret added to app '{}'.",
                principal.client_id
            ),
        );
        }
    }
    let Some(scope) = get("scope") else {
        return missing("scope");
    };
    let Some(resource) = scope.split(' ').find_map(|s| s.strip_suffix("/.default")) else {
        return error(
            400,
            "invalid_scope",
            1002012,
            &format!("AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
        );
    };
    if !known_resource(issuer, resource) {
        return error(
            400,
            "invalid_resource",
            500011,
            &format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {}. \
                 This can happen if the application has not been installed by the administrator of the tenant or \
                 consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                d.tenant_id
            ),
        );
    }
    let (access_token, lifetime) = token::issue(issuer.key, &d.tenant_id, principal, resource);
    Reply::json(
        200,
        json!({
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }),
    )
}

/// RFC 7523's client assertion type, which Entra takes for certificates and federated tokens.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Azure Storage, a first-party resource every tenant has: clients ask for
/// `https://storage.azure.com/.default` ("Authorize access to blobs using Microsoft Entra ID",
/// Microsoft Learn; azure_storage's `STORAGE_TOKEN_SCOPE`) and Blob Storage takes tokens whose
/// `aud` is it. Entra issues them; ARM refuses them (not one of [`audiences`]).
const STORAGE_RESOURCE: &str = "https://storage.azure.com/";

fn known_resource(issuer: &Issuer<'_>, resource: &str) -> bool {
    audiences(issuer.base)
        .iter()
        .map(String::as_str)
        .chain([STORAGE_RESOURCE])
        .any(|a| a.trim_end_matches('/') == resource.trim_end_matches('/'))
}

/// A federated token presented as the client assertion: Entra matches its issuer, subject and
/// audience against the app's federated credentials and checks its validity window
/// (AADSTS70021 and AADSTS700024 in "Microsoft Entra authentication and authorization error
/// codes"). Entra also checks its signature against the issuer's published keys; the emulator
/// has no external issuer to ask on loopback, so it checks what Entra matches on.
fn federated(p: &Principal, assertion: &str) -> Result<(), Reply> {
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        sub: String,
        #[serde(default)]
        aud: serde_json::Value,
        exp: i64,
        #[serde(default)]
        nbf: Option<i64>,
    }
    let mut v = jsonwebtoken::Validation::default();
    v.insecure_disable_signature_validation();
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let invalid = || {
        error(
            400,
            "invalid_client",
            50027,
            "AADSTS50027: JWT token is invalid or malformed.",
        )
    };
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| invalid())?;
    v.algorithms = vec![header.alg];
    let c =
        jsonwebtoken::decode::<Claims>(assertion, &jsonwebtoken::DecodingKey::from_secret(b""), &v)
            .map_err(|_| invalid())?
            .claims;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if c.exp <= now || c.nbf.is_some_and(|n| n > now) {
        return Err(error(
            400,
            "invalid_client",
            700024,
            "AADSTS700024: Client assertion is not within its valid time range.",
        ));
    }
    let audiences: Vec<String> = match &c.aud {
        serde_json::Value::String(a) => vec![a.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let matched = p.federated.iter().any(|f| {
        f.issuer == c.iss && f.subject == c.sub && audiences.iter().any(|a| f.audiences.contains(a))
    });
    if !matched {
        return Err(error(
            400,
            "invalid_request",
            70021,
            &format!(
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{}'. Assertion Subject: '{}'. Assertion Audience: '{}'.",
                c.iss,
                c.sub,
                audiences.join(",")
            ),
        ));
    }
    Ok(())
}

/// `GET /msi/token?api-version=2019-08-01&resource=...` with `X-IDENTITY-HEADER`, answered as
/// App Service's identity endpoint answers ("Managed identities for App Service: REST endpoint
/// reference", learn.microsoft.com/azure/app-service/overview-managed-identity: `access_token`,
/// `expires_on` in seconds since the epoch as a string, `resource`, `token_type`, `client_id`).
fn managed_identity(
    issuer: &Issuer<'_>,
    query: &[(String, String)],
    headers: &axum::http::HeaderMap,
) -> Reply {
    let Some(identity) = &issuer.directory.managed_identity else {
        return Reply::empty(404);
    };
    let presented = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), identity.header.as_bytes()) {
        return Reply::json(401, json!({"statusCode": 401, "message": "Unauthorized"}));
    }
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("api-version") != Some("2019-08-01") {
        return Reply::json(
            400,
            json!({"statusCode": 400, "message": "api-version 2019-08-01 is required"}),
        );
    }
    let Some(resource) = get("resource").filter(|r| known_resource(issuer, r)) else {
        return Reply::json(
            400,
            json!({"statusCode": 400, "message": "The requested resource is not known"}),
        );
    };
    let me = Principal {
        client_id: identity.client_id.clone(),
        secret: String::new(),
        display_name: "managed identity".into(),
        object_id: identity.object_id.clone(),
        federated: Vec::new(),
    };
    let (access_token, lifetime) =
        token::issue(issuer.key, &issuer.directory.tenant_id, &me, resource);
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + lifetime;
    Reply::json(
        200,
        json!({
            "access_token": access_token,
            "expires_on": expires_on.to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }),
    )
}

fn basic_auth(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let v = headers.get("authorization")?.to_str().ok()?;
    let encoded = v.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn missing(parameter: &str) -> Reply {
    error(
        400,
        "invalid_request",
        900144,
        &format!(
            "AADSTS900144: The request body must contain the following parameter: '{parameter}'."
        ),
    )
}

fn tenant_not_found(tenant: &str) -> Reply {
    error(
        400,
        "invalid_tenant",
        90002,
        &format!(
            "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are \
             signing into the correct cloud. Check with your subscription administrator, this may happen if there \
             are no active subscriptions for the tenant."
        ),
    )
}

/// Entra's error body: the description ends with trace id, correlation id and timestamp, which
/// are repeated as fields (the shape of the samples cited above).
fn error(status: u16, code: &str, number: u32, description: &str) -> Reply {
    let (trace, correlation) = (arm::guid(), arm::guid());
    let now = arm::now();
    let stamp = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let body: Value = json!({
        "error": code,
        "error_description": format!("{description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"),
        "error_codes": [number],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={number}"),
    });
    Reply::json(status, body)
}
