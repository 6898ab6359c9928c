//! Run state a team shares: `--state azblob://ACCOUNT/CONTAINER` opens the runs kept in a Blob
//! Storage container ([`blob::BlobStore`]) as the engine's [`RunStore`]; without it, runs live
//! in the local state directory. Modelled on how Terraform's azurerm backend keeps and locks
//! state: one blob per journal, written with `If-Match`, locked with a lease whose holder is in
//! the blob's metadata.

pub mod blob;

use std::path::Path;
use std::sync::Arc;

use crate::azure::blob::Location;
use crate::engine::store::{LocalStore, RunStore};

const SCHEME: &str = "azblob://";

/// `azblob://ACCOUNT/CONTAINER`, checked against Blob Storage's naming rules so that a typo is
/// refused here rather than as a DNS failure.
pub fn parse(url: &str) -> Result<Location, String> {
    let shape = "expected azblob://ACCOUNT/CONTAINER (a storage account and a blob container)";
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| format!("--state {url:?}: {shape}"))?;
    let (account, container) = rest
        .trim_end_matches('/')
        .split_once('/')
        .ok_or_else(|| format!("--state {url:?}: {shape}"))?;
    // https://learn.microsoft.com/azure/storage/common/storage-account-overview#storage-account-name
    if !(3..=24).contains(&account.len())
        || !account
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "--state {url:?}: `{account}` is not a storage account name (3 to 24 lowercase letters and digits)"
        ));
    }
    // https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata#container-names
    let container_ok = (3..=63).contains(&container.len())
        && container
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !container.starts_with('-')
        && !container.ends_with('-')
        && !container.contains("--");
    if !container_ok {
        return Err(format!(
            "--state {url:?}: `{container}` is not a container name (3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit)"
        ));
    }
    Ok(Location {
        account: account.to_string(),
        container: container.to_string(),
    })
}

/// The store runs are kept in: the local directory, or the shared container with the local
/// directory as its working copy.
pub fn open(
    state_dir: &Path,
    shared: Option<&Location>,
    auth: crate::azure::Auth,
) -> anyhow::Result<Arc<dyn RunStore>> {
    let local = LocalStore::new(state_dir.to_path_buf());
    Ok(match shared {
        None => Arc::new(local),
        Some(location) => Arc::new(blob::BlobStore::open(local, location.clone(), auth)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_urls_are_checked_by_blob_storage_rules() {
        let l = parse("azblob://teamstate/rescue-runs").unwrap();
        assert_eq!(
            (l.account.as_str(), l.container.as_str()),
            ("teamstate", "rescue-runs")
        );
        for (bad, says) in [
            ("https://teamstate/runs", "expected azblob://"),
            ("azblob://teamstate", "expected azblob://"),
            ("azblob://Team/runs", "`Team` is not a storage account"),
            ("azblob://teamstate/Runs", "`Runs` is not a container"),
            ("azblob://teamstate/a--b", "`a--b` is not a container"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
