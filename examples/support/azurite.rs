//! Azurite, the Blob Storage emulator, on a free loopback port with a fresh data directory;
//! stopped when dropped. Shared by the benchmarks and the shared-state tests (included with
//! `#[path]`).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's well-known development account and key (documented, not a secret):
/// https://learn.microsoft.com/azure/storage/common/storage-use-azurite#well-known-storage-account-and-key
pub const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    child: Child,
    pub port: u16,
    https: bool,
    _data: tempfile::TempDir,
}

/// How Azurite is reached: plain HTTP with the account key, or HTTPS taking Entra tokens.
pub enum Access<'a> {
    SharedKey,
    /// `--oauth basic` (Azurite checks a bearer token's issuer, audience and lifetime, not
    /// its signature) over HTTPS, which it requires for bearer tokens: its certificate and key.
    Entra {
        cert: &'a Path,
        key: &'a Path,
    },
}

impl Azurite {
    /// None when `azurite-blob` is not installed (`bash .ci/setup` installs it).
    pub fn start() -> Option<Azurite> {
        Self::start_with(Access::SharedKey)
    }

    pub fn start_with(access: Access<'_>) -> Option<Azurite> {
        let program = which("azurite-blob")?;
        let data = tempfile::tempdir().expect("Azurite's data dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut cmd = Command::new(program);
        let https = matches!(access, Access::Entra { .. });
        if let Access::Entra { cert, key } = access {
            cmd.args(["--oauth", "basic", "--cert"])
                .arg(cert)
                .arg("--key")
                .arg(key);
        }
        let child = cmd
            // Telemetry off: Azurite otherwise reports to Application Insights, and nothing
            // may leave loopback.
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .args(["--blobHost", "127.0.0.1"])
            .arg("--blobPort")
            .arg(port.to_string())
            .arg("--location")
            .arg(data.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn azurite-blob");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Azurite {
            child,
            port,
            https,
            _data: data,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.https {
            "https"
        } else {
            "http"
        }
    }

    /// The account's blob endpoint.
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}/{ACCOUNT}", self.scheme(), self.port)
    }

    /// What rescue (and any Azure Storage client) reaches it with by the account key.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol={};AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.scheme(),
            self.endpoint()
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}
