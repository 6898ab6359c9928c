//! Shared helpers for the integration tests: how a client reaches and signs in to an emulator
//! (its endpoint, CA and service principal, as `rescue emulator serve` prints them).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every line of an emulator's request log (`--log`), sign-ins to its Entra endpoint included.
pub fn logged_requests(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The requests that reached ARM: the log without the Entra (`entra.*`) ones.
pub fn arm_requests(log: &Path) -> Vec<serde_json::Value> {
    logged_requests(log)
        .into_iter()
        .filter(|r| !r["operation"].as_str().unwrap_or("").starts_with("entra."))
        .collect()
}

/// An emulator's coordinates and its first service principal.
#[derive(Clone, Debug)]
pub struct Login {
    pub url: String,
    pub ca: Option<PathBuf>,
    pub subscription: String,
    pub tenant: String,
    pub client_id: String,
    pub secret: String,
}

impl Login {
    pub fn from_handle(h: &rescue::emulator::Handle) -> Login {
        Login {
            url: h.endpoint.as_str().trim_end_matches('/').to_string(),
            ca: h.ca_pem.clone(),
            subscription: h.subscription_id.clone(),
            tenant: h.tenant_id.clone(),
            client_id: h.client_id.clone(),
            secret: h.client_secret.clone(),
        }
    }

    /// From the `export NAME=VALUE` lines of `rescue emulator serve`.
    pub fn from_exports(lines: &[String]) -> Login {
        let get = |name: &str| {
            let prefix = format!("export {name}=");
            lines
                .iter()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {name} in {lines:?}"))
                .trim_matches('\'')
                .to_string()
        };
        let ca = get("RESCUE_EMULATOR_CA");
        Login {
            url: get("RESCUE_EMULATOR_URL"),
            ca: (!ca.is_empty()).then(|| PathBuf::from(ca)),
            subscription: get("AZURE_SUBSCRIPTION_ID"),
            tenant: get("AZURE_TENANT_ID"),
            client_id: get("AZURE_CLIENT_ID"),
            secret: get("AZURE_CLIENT_SECRET"),
        }
    }

    /// The variables `serve` exports, as a shell would pass them on.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RESCUE_EMULATOR_URL", self.url.clone()),
            (
                "RESCUE_EMULATOR_CA",
                self.ca
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("AZURE_SUBSCRIPTION_ID", self.subscription.clone()),
            ("AZURE_TENANT_ID", self.tenant.clone()),
            ("AZURE_CLIENT_ID", self.client_id.clone()),
            ("AZURE_CLIENT_SECRET", self.secret.clone()),
            ("AZURE_AUTHORITY_HOST", self.url.clone()),
        ]
    }

    /// Points a `rescue` command at this emulator.
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Our own client's target, signing in as the binary does.
    pub fn target(&self) -> rescue::azure::Target {
        let url: url::Url = format!("{}/", self.url).parse().unwrap();
        rescue::azure::Target {
            cloud: rescue::azure::Cloud::custom(url.clone(), url.clone()),
            login: rescue::azure::Login::Secret(rescue::azure::ClientSecret {
                authority_host: url,
                tenant_id: self.tenant.clone(),
                client_id: self.client_id.clone(),
                client_secret: self.secret.clone(),
            }),
            subscription: Some(self.subscription.clone()),
            extra_ca: self.ca.clone(),
        }
    }

    /// An HTTP client that trusts the emulator's CA (and nothing is switched off).
    pub fn http(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).expect("the emulator's CA");
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }

    /// A plain ARM GET's JSON body (path and query after the emulator's URL), signed in with
    /// `token` (from [`Login::token`]) through `http` (from [`Login::http`]).
    pub async fn get_json(
        &self,
        http: &reqwest::Client,
        token: &str,
        path: &str,
    ) -> serde_json::Value {
        http.get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// An ARM token from the emulator's Entra endpoint (client credentials, as the SDKs ask).
    pub async fn token(&self) -> String {
        self.token_for("https://management.azure.com/.default")
            .await
    }

    /// A token for `scope` (`RESOURCE/.default`).
    pub async fn token_for(&self, scope: &str) -> String {
        let r = self
            .http()
            .post(format!("{}/{}/oauth2/v2.0/token", self.url, self.tenant))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &self.client_id),
                ("client_secret", &self.secret),
                ("scope", scope),
            ])
            .send()
            .await
            .expect("the token endpoint answers");
        assert_eq!(r.status(), 200, "token endpoint");
        let body: serde_json::Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }
}
