//! Who rescue signs in as, and where: the cloud (ARM and Entra endpoints) and the credential
//! kind (`--auth`). Every credential sends its token requests through the same transport as ARM
//! requests, so a custom CA (Azure Stack Hub, the emulator) is trusted for sign-in too.
//!
//! The kind is explicit because the default chain picks the first credential that works: on a
//! jump box with a managed identity, that identity silently wins over the engineer's `az login`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::HttpClient;
use azure_identity::TokenCredentialOptions;

use super::error::{Error, Kind};

/// A cloud: where ARM is, and the Entra authority that issues its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    pub name: String,
    pub resource_manager: url::Url,
    pub authority_host: url::Url,
}

/// The national clouds by the names azure-cli gives them (`az cloud list`), with the endpoints
/// their `metadata/endpoints` list (resourceManager, authentication.loginEndpoint).
const CLOUDS: &[(&str, &str, &str)] = &[
    (
        "AzureCloud",
        "https://management.azure.com/",
        "https://login.microsoftonline.com/",
    ),
    (
        "AzureUSGovernment",
        "https://management.usgovcloudapi.net/",
        "https://login.microsoftonline.us/",
    ),
    (
        "AzureChinaCloud",
        "https://management.chinacloudapi.cn/",
        "https://login.chinacloudapi.cn/",
    ),
];

impl Cloud {
    pub fn named(name: &str) -> Result<Cloud, Error> {
        let (name, arm, login) = CLOUDS
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let known: Vec<&str> = CLOUDS.iter().map(|(n, ..)| *n).collect();
                Error::setup(format!(
                    "unknown cloud `{name}`: expected one of {}",
                    known.join(", ")
                ))
            })?;
        Ok(Cloud {
            name: (*name).to_string(),
            resource_manager: url::Url::parse(arm).expect("a valid URL"),
            authority_host: url::Url::parse(login).expect("a valid URL"),
        })
    }

    /// A cloud given by its endpoints (Azure Stack Hub, the emulator).
    pub fn custom(resource_manager: url::Url, authority_host: url::Url) -> Cloud {
        Cloud {
            name: format!("custom ({resource_manager})"),
            resource_manager,
            authority_host,
        }
    }
}

/// Which credential signs in (`--auth`, `AZURE_CREDENTIAL_KIND`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// azure_identity's chain: environment, managed identity, then the Azure CLI.
    #[default]
    Default,
    /// The Azure CLI's login (`az account get-access-token`).
    Cli,
    /// The managed identity of the machine (App Service's `IDENTITY_ENDPOINT`, else the VM's IMDS).
    ManagedIdentity,
    /// A service principal from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`
    /// (or a federated token file, as workload identity).
    Env,
    /// Workload identity: `AZURE_FEDERATED_TOKEN_FILE` exchanged for a token, read again on
    /// every refresh (the platform rotates the file).
    Workload,
}

impl FromStr for Auth {
    type Err = String;
    fn from_str(s: &str) -> Result<Auth, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "default" => Auth::Default,
            "cli" | "azure-cli" => Auth::Cli,
            "msi" | "managed-identity" | "managedidentity" => Auth::ManagedIdentity,
            "env" | "environment" => Auth::Env,
            "workload" | "workload-identity" => Auth::Workload,
            other => {
                return Err(format!(
                    "unknown credential kind `{other}`: expected default, cli, msi, env or workload"
                ))
            }
        })
    }
}

/// How to sign in: a kind of credential, or a given service principal (an in-process emulator's).
#[derive(Clone, Debug)]
pub enum Login {
    Auth(Auth),
    Secret(ClientSecret),
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

fn var(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::new(Kind::Auth, "sign in", format!("{name} is not set")))
}

impl ClientSecret {
    /// From `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET`, presented to
    /// `authority` (so that a forgotten variable never sends the secret to another host).
    pub fn from_env(authority: &url::Url) -> Result<ClientSecret, Error> {
        Ok(ClientSecret {
            authority_host: authority.clone(),
            tenant_id: var("AZURE_TENANT_ID")?,
            client_id: var("AZURE_CLIENT_ID")?,
            client_secret: var("AZURE_CLIENT_SECRET")?,
        })
    }

    /// The credential; its token requests go through `http`.
    pub fn credential(&self, http: Arc<dyn HttpClient>) -> Arc<dyn TokenCredential> {
        Arc::new(azure_identity::ClientSecretCredential::new(
            http,
            self.authority_host.clone(),
            self.tenant_id.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
        ))
    }
}

/// The authority to sign in at: `AZURE_AUTHORITY_HOST` when set (as every Azure SDK reads it),
/// else the cloud's.
pub fn authority(cloud: &Cloud) -> Result<url::Url, Error> {
    match std::env::var("AZURE_AUTHORITY_HOST")
        .ok()
        .filter(|v| !v.is_empty())
    {
        None => Ok(cloud.authority_host.clone()),
        Some(v) => url::Url::parse(&v)
            .map_err(|e| Error::setup(format!("AZURE_AUTHORITY_HOST {v:?} is not a URL: {e}"))),
    }
}

/// The credential `login` names, for `cloud`, its token requests sent through `http`.
pub fn credential(
    login: &Login,
    cloud: &Cloud,
    http: Arc<dyn HttpClient>,
) -> Result<Arc<dyn TokenCredential>, Error> {
    let auth = match login {
        Login::Secret(secret) => return Ok(secret.credential(http)),
        Login::Auth(auth) => *auth,
    };
    let authority = authority(cloud)?;
    let mut options = TokenCredentialOptions::from(http.clone());
    options.set_authority_host(authority.to_string());
    let made: azure_core::Result<Arc<dyn TokenCredential>> = match auth {
        Auth::Default => azure_identity::DefaultAzureCredentialBuilder::new()
            .with_options(options)
            .build()
            .map(|c| Arc::new(c) as Arc<dyn TokenCredential>),
        Auth::Cli => Ok(Arc::new(azure_identity::AzureCliCredential::new())),
        Auth::ManagedIdentity if std::env::var_os("IDENTITY_ENDPOINT").is_some() => {
            azure_identity::AppServiceManagedIdentityCredential::create(options)
                .map(|c| Arc::new(c) as Arc<dyn TokenCredential>)
        }
        Auth::ManagedIdentity => Ok(Arc::new(
            azure_identity::VirtualMachineManagedIdentityCredential::new(options),
        )),
        Auth::Env if std::env::var_os("AZURE_CLIENT_SECRET").is_some() => {
            return Ok(ClientSecret::from_env(&authority)?.credential(http))
        }
        Auth::Env if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some() => {
            return Ok(Arc::new(WorkloadIdentity::from_env(http, authority)?))
        }
        // A certificate, or say what is missing.
        Auth::Env => azure_identity::EnvironmentCredential::create(options)
            .map(|c| Arc::new(c) as Arc<dyn TokenCredential>),
        Auth::Workload => return Ok(Arc::new(WorkloadIdentity::from_env(http, authority)?)),
    };
    made.map_err(|e| login_error(&e))
}

/// Workload identity that reads its federated token file again for every new access token:
/// the platform (AKS, a projected service-account token) rotates that file, usually hourly,
/// and azure_identity 0.21's `WorkloadIdentityCredential` reads it once, when created.
#[derive(Debug)]
pub struct WorkloadIdentity {
    http: Arc<dyn HttpClient>,
    authority: url::Url,
    tenant_id: String,
    client_id: String,
    token_file: PathBuf,
    cached: Mutex<Option<(Vec<String>, AccessToken)>>,
}

/// A token this close to its expiry is replaced, as azure_identity's cache does.
const REFRESH_MARGIN: time::Duration = time::Duration::minutes(5);

impl WorkloadIdentity {
    /// From the variables AKS's workload identity webhook injects.
    pub fn from_env(
        http: Arc<dyn HttpClient>,
        authority: url::Url,
    ) -> Result<WorkloadIdentity, Error> {
        Ok(WorkloadIdentity::new(
            http,
            authority,
            var("AZURE_TENANT_ID")?,
            var("AZURE_CLIENT_ID")?,
            PathBuf::from(var("AZURE_FEDERATED_TOKEN_FILE")?),
        ))
    }

    pub fn new(
        http: Arc<dyn HttpClient>,
        authority: url::Url,
        tenant_id: String,
        client_id: String,
        token_file: PathBuf,
    ) -> WorkloadIdentity {
        WorkloadIdentity {
            http,
            authority,
            tenant_id,
            client_id,
            token_file,
            cached: Mutex::new(None),
        }
    }
}

impl WorkloadIdentity {
    /// The client-credentials grant with the federated token as client assertion (Entra's
    /// "Microsoft identity platform application authentication certificate credentials", the
    /// request azure_identity's federated flow sends). Sent here rather than through that flow
    /// because it drops Entra's error body, and with it the AADSTS code that says which
    /// federated credential did not match.
    async fn exchange(&self, assertion: &str, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        use azure_core::error::{ErrorKind, ResultExt};
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &scopes.join(" "))
            .append_pair(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            )
            .append_pair("client_assertion", assertion)
            .append_pair("grant_type", "client_credentials")
            .finish();
        let url = self
            .authority
            .join(&format!("/{}/oauth2/v2.0/token", self.tenant_id))
            .with_context(ErrorKind::DataConversion, || {
                format!("tenant id {:?} does not fit in a URL", self.tenant_id)
            })?;
        let mut request = azure_core::Request::new(url, azure_core::Method::Post);
        request.insert_header(
            azure_core::headers::CONTENT_TYPE,
            azure_core::content_type::APPLICATION_X_WWW_FORM_URLENCODED,
        );
        request.set_body(body);
        let response = self.http.execute_request(&request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?;
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Option<String>,
            expires_in: Option<u64>,
            error: Option<String>,
            error_description: Option<String>,
        }
        let answer: Answer = serde_json::from_slice(&bytes).map_err(|e| {
            azure_core::Error::full(
                ErrorKind::Credential,
                e,
                format!("the token endpoint answered {status} with a body that is not JSON"),
            )
        })?;
        match (answer.access_token, status.is_success()) {
            (Some(token), true) => Ok(AccessToken::new(
                token,
                time::OffsetDateTime::now_utc()
                    + time::Duration::seconds(answer.expires_in.unwrap_or(3599) as i64),
            )),
            _ => Err(azure_core::Error::message(
                ErrorKind::Credential,
                format!(
                    "the federated token was refused ({status}, {}): {}",
                    answer.error.unwrap_or_default(),
                    answer.error_description.unwrap_or_default()
                ),
            )),
        }
    }
}

#[async_trait::async_trait]
impl TokenCredential for WorkloadIdentity {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let wanted: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        if let Some((for_scopes, token)) = &*self.cached.lock().unwrap_or_else(|e| e.into_inner()) {
            if *for_scopes == wanted
                && token.expires_on - REFRESH_MARGIN > time::OffsetDateTime::now_utc()
            {
                return Ok(token.clone());
            }
        }
        let assertion = std::fs::read_to_string(&self.token_file).map_err(|e| {
            azure_core::Error::full(
                azure_core::error::ErrorKind::Credential,
                e,
                format!(
                    "cannot read the federated token file {}",
                    self.token_file.display()
                ),
            )
        })?;
        let token = self.exchange(assertion.trim(), scopes).await?;
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((wanted, token.clone()));
        Ok(token)
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_are_found_by_their_azure_cli_names() {
        let gov = Cloud::named("azureusgovernment").unwrap();
        assert_eq!(
            gov.resource_manager.as_str(),
            "https://management.usgovcloudapi.net/"
        );
        assert_eq!(
            gov.authority_host.as_str(),
            "https://login.microsoftonline.us/"
        );
        assert_eq!(
            Cloud::named("AzureChinaCloud")
                .unwrap()
                .authority_host
                .as_str(),
            "https://login.chinacloudapi.cn/"
        );
        assert!(Cloud::named("Mars")
            .unwrap_err()
            .message
            .contains("AzureCloud"));
    }

    #[test]
    fn credential_kinds_parse() {
        assert_eq!("msi".parse::<Auth>().unwrap(), Auth::ManagedIdentity);
        assert_eq!("Workload".parse::<Auth>().unwrap(), Auth::Workload);
        assert!("kerberos".parse::<Auth>().is_err());
    }
}
