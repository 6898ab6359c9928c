//! Secrets kept per data dir: created once, reused on restart, readable by the owner only.
//! Tokens issued before a restart stay valid after it, as Entra's do across its restarts.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to `path` (created with `mode`, replacing any previous file atomically).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    // The umask may have narrowed the mode; a CA certificate must be readable by other users.
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A directory with this mode (0700 for secrets only).
pub fn dir_with_mode(dir: &Path, mode: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A random 32-byte key at `DATA_DIR/keys/NAME`, made on first use.
pub fn key(data_dir: &Path, name: &str) -> anyhow::Result<[u8; 32]> {
    let dir = data_dir.join("keys");
    dir_with_mode(&dir, 0o700)?;
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key: [u8; 32] = rand::random();
            write_file(&path, &key, 0o600)?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
