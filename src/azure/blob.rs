//! Blob Storage, for state a team shares: one container, read and written with the conditions
//! that make it safe for several writers (`If-Match`, `If-None-Match: *`, leases). A typed
//! layer over `azure_storage_blobs` (the 0.21 family, like the other Azure crates) that speaks in
//! this layer's [`Error`], so that callers decide by kind (409, 412, 404), never by message.
//!
//! Access, as azure-cli's `az storage` takes it: `AZURE_STORAGE_CONNECTION_STRING` (an account
//! key or SAS, and the endpoint; what Azurite is reached with), `AZURE_STORAGE_SAS_TOKEN`,
//! `AZURE_STORAGE_KEY`, else an Entra token for `https://storage.azure.com` from the same
//! credential chain as ARM's (the identity needs *Storage Blob Data Contributor*). Without a
//! connection string, `AZURE_STORAGE_SERVICE_ENDPOINT` names the account's blob endpoint.
//!
//! Every request is sent once: azure_core's retry policy would re-send a conditional write
//! whose first attempt may have landed, and then read its own success as a conflict.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use azure_core::prelude::{IfMatchCondition, LeaseBreakPeriod, LeaseDuration, LeaseId, Metadata};
use azure_core::RetryOptions;
use azure_storage::{ConnectionString, StorageCredentials};
use azure_storage_blobs::prelude::{ClientBuilder, ContainerClient};
use futures::StreamExt;

use super::error::{Error, Kind};

/// Where the container is and how to sign in to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub account: String,
    pub container: String,
}

/// The blob's state besides its content.
#[derive(Clone, Debug, Default)]
pub struct Properties {
    /// `leased` while someone holds a lease (Blob Storage's `x-ms-lease-state`).
    pub leased: bool,
    pub metadata: HashMap<String, String>,
}

/// What a write requires of the blob as it is.
#[derive(Clone, Copy, Debug)]
pub enum Condition<'a> {
    /// Only if it does not exist yet (`If-None-Match: *`).
    Absent,
    /// Only if it is still this version (`If-Match`).
    Version(&'a str),
    Any,
}

#[derive(Clone)]
pub struct Container {
    client: ContainerClient,
    location: Location,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Container({})", self.location)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "azblob://{}/{}", self.account, self.container)
    }
}

fn setup(message: impl Into<String>) -> Error {
    Error::new(Kind::Setup, "connect to Blob Storage", message)
}

impl Container {
    /// A client for the container; `credential` signs in when no storage key, SAS or
    /// connection string is in the environment. Sends nothing.
    pub fn connect(
        location: Location,
        credential: impl FnOnce() -> Result<Arc<dyn azure_core::auth::TokenCredential>, Error>,
    ) -> Result<Container, Error> {
        let env = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let builder = if let Some(text) = env("AZURE_STORAGE_CONNECTION_STRING") {
            let parsed = ConnectionString::new(&text)
                .map_err(|e| setup(format!("AZURE_STORAGE_CONNECTION_STRING: {e}")))?;
            if let Some(named) = parsed.account_name {
                if named != location.account {
                    return Err(setup(format!(
                        "AZURE_STORAGE_CONNECTION_STRING is for account `{named}`, not `{}`",
                        location.account
                    )));
                }
            }
            let credentials = parsed
                .storage_credentials()
                .map_err(|e| setup(format!("AZURE_STORAGE_CONNECTION_STRING: {e}")))?;
            let mut builder = ClientBuilder::new(location.account.clone(), credentials);
            if let Some(endpoint) = parsed.blob_endpoint {
                builder = builder.cloud_location(azure_storage::CloudLocation::Custom {
                    account: location.account.clone(),
                    uri: endpoint.trim_end_matches('/').to_string(),
                });
            }
            builder
        } else {
            let credentials = if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
                StorageCredentials::sas_token(sas)
                    .map_err(|e| setup(format!("AZURE_STORAGE_SAS_TOKEN: {e}")))?
            } else if let Some(key) = env("AZURE_STORAGE_KEY") {
                StorageCredentials::access_key(location.account.clone(), key)
            } else {
                StorageCredentials::token_credential(credential()?)
            };
            let builder = ClientBuilder::new(location.account.clone(), credentials);
            // The account's blob endpoint when it is not ACCOUNT.blob.core.windows.net (a
            // national cloud, Azure Stack Hub, a local Azurite): azure-cli's
            // `--blob-endpoint`, from the same variable.
            match env("AZURE_STORAGE_SERVICE_ENDPOINT") {
                Some(endpoint) => {
                    let uri = url::Url::parse(&endpoint).map_err(|e| {
                        setup(format!(
                            "AZURE_STORAGE_SERVICE_ENDPOINT {endpoint:?} is not a URL: {e}"
                        ))
                    })?;
                    builder.cloud_location(azure_storage::CloudLocation::Custom {
                        account: location.account.clone(),
                        uri: uri.as_str().trim_end_matches('/').to_string(),
                    })
                }
                None => builder,
            }
        };
        let client = builder
            .retry(RetryOptions::none())
            .container_client(location.container.clone());
        Ok(Container { client, location })
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    fn fail(&self, doing: &str, name: &str) -> impl Fn(azure_core::Error) -> Error + '_ {
        let doing = format!("{doing} {}/{name}", self.location);
        move |e| Error::from_core(&e, &doing)
    }

    /// Creates the container unless it exists (as `terraform init` expects it to, but a team's
    /// first run should not need a portal visit).
    pub async fn ensure(&self) -> Result<(), Error> {
        match self.client.create().await {
            Ok(_) => Ok(()),
            Err(e) => match Error::from_core(&e, &format!("create {}", self.location)) {
                e if e.kind == Kind::Conflict => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Writes the whole blob; its new version (ETag).
    pub async fn put(
        &self,
        name: &str,
        bytes: Vec<u8>,
        condition: Condition<'_>,
        lease: Option<&LeaseId>,
        metadata: &[(String, String)],
    ) -> Result<String, Error> {
        let mut request = self.client.blob_client(name).put_block_blob(bytes);
        match condition {
            Condition::Absent => request = request.if_match(IfMatchCondition::NotMatch("*".into())),
            Condition::Version(etag) => {
                request = request.if_match(IfMatchCondition::Match(etag.to_string()))
            }
            Condition::Any => {}
        }
        if let Some(lease) = lease {
            request = request.lease_id(*lease);
        }
        if !metadata.is_empty() {
            let mut m = Metadata::new();
            for (k, v) in metadata {
                m.insert(k.clone(), v.clone());
            }
            request = request.metadata(m);
        }
        let response = request.await.map_err(self.fail("write", name))?;
        Ok(response.etag)
    }

    /// The blob's content, None if there is no such blob.
    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.client.blob_client(name).get_content().await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => match self.fail("read", name)(e) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    pub async fn properties(&self, name: &str) -> Result<Option<Properties>, Error> {
        match self.client.blob_client(name).get_properties().await {
            Ok(r) => Ok(Some(Properties {
                leased: matches!(
                    r.blob.properties.lease_state,
                    Some(azure_core::LeaseState::Leased)
                ),
                metadata: r.blob.metadata.unwrap_or_default(),
            })),
            Err(e) => match self.fail("read the properties of", name)(e) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
            },
        }
    }

    /// A lease of `duration` on the blob; 409 while someone else holds one.
    pub async fn acquire_lease(&self, name: &str, duration: Duration) -> Result<LeaseId, Error> {
        let seconds = duration.as_secs().clamp(15, 60) as u8;
        let r = self
            .client
            .blob_client(name)
            .acquire_lease(LeaseDuration::Seconds(seconds))
            .await
            .map_err(self.fail("lease", name))?;
        Ok(r.lease_id)
    }

    pub async fn renew_lease(&self, name: &str, lease: &LeaseId) -> Result<(), Error> {
        self.client
            .blob_client(name)
            .blob_lease_client(*lease)
            .renew()
            .await
            .map(|_| ())
            .map_err(self.fail("renew the lease of", name))
    }

    pub async fn release_lease(&self, name: &str, lease: &LeaseId) -> Result<(), Error> {
        self.client
            .blob_client(name)
            .blob_lease_client(*lease)
            .release()
            .await
            .map(|_| ())
            .map_err(self.fail("release the lease of", name))
    }

    /// Ends whoever's lease at once (break period 0).
    pub async fn break_lease(&self, name: &str) -> Result<(), Error> {
        self.client
            .blob_client(name)
            .break_lease()
            .lease_break_period(LeaseBreakPeriod::from(Duration::ZERO))
            .await
            .map(|_| ())
            .map_err(self.fail("break the lease of", name))
    }

    /// Replaces the blob's metadata; its new version.
    pub async fn set_metadata(
        &self,
        name: &str,
        lease: &LeaseId,
        metadata: &[(String, String)],
    ) -> Result<String, Error> {
        let mut m = Metadata::new();
        for (k, v) in metadata {
            m.insert(k.clone(), v.clone());
        }
        self.client
            .blob_client(name)
            .set_metadata()
            .lease_id(*lease)
            .metadata(m)
            .await
            .map(|r| r.etag)
            .map_err(self.fail("write the metadata of", name))
    }

    /// Deletes the blob (under `lease` when one is held); a blob already gone is fine.
    pub async fn delete(&self, name: &str, lease: Option<&LeaseId>) -> Result<(), Error> {
        let mut request = self.client.blob_client(name).delete();
        if let Some(lease) = lease {
            request = request.lease_id(*lease);
        }
        match request.await {
            Ok(_) => Ok(()),
            Err(e) => match self.fail("delete", name)(e) {
                e if e.is_not_found() => Ok(()),
                e => Err(e),
            },
        }
    }

    /// The names of the blobs under `prefix`, in Blob Storage's (lexical) order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_blobs()
            .prefix(prefix.to_string())
            .into_stream();
        while let Some(page) = pages.next().await {
            let page = page.map_err(self.fail("list", prefix))?;
            names.extend(page.blobs.blobs().map(|b| b.name.clone()));
        }
        Ok(names)
    }
}
