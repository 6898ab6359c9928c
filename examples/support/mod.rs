//! What the benchmarks share: an in-process emulator and the release binary they measure.
//! (Not an example itself: `examples/support/` has no main.rs; each bench includes it with
//! `#[path]`.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The benchmark's TIME_SCALE argument (default 0.1: Azure's `Retry-After: 10` becomes one
/// second) and a two-thread runtime, one per core of the machines the figures are taken on.
pub fn scale_and_runtime() -> (f64, tokio::runtime::Runtime) {
    let scale: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("TIME_SCALE is a number"))
        .unwrap_or(0.1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    (scale, runtime)
}

pub struct Emulated {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub log: PathBuf,
    pub handle: rescue::emulator::Handle,
}

impl Emulated {
    /// Seeded from `scenario` (None: the incident), its latencies scaled by `scale`.
    pub fn start(
        runtime: &tokio::runtime::Runtime,
        scale: f64,
        scenario: Option<PathBuf>,
    ) -> Emulated {
        let dir = tempfile::tempdir().expect("tempdir");
        let (data, log) = (
            dir.path().join("emulator"),
            dir.path().join("requests.jsonl"),
        );
        let config = rescue::emulator::Config {
            scenario,
            data_dir: data.clone(),
            port: 0,
            time_scale: scale,
            log: Some(log.clone()),
            tls: true,
        };
        let handle = runtime
            .block_on(rescue::emulator::start(config))
            .expect("the emulator starts (are you root?)");
        Emulated {
            dir,
            data,
            log,
            handle,
        }
    }

    /// What `rescue emulator serve` prints: every client signs in with these.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let h = &self.handle;
        let url = h.endpoint.as_str().trim_end_matches('/').to_string();
        vec![
            ("RESCUE_EMULATOR_URL", url.clone()),
            (
                "RESCUE_EMULATOR_CA",
                h.ca_pem.as_ref().expect("HTTPS").display().to_string(),
            ),
            ("AZURE_SUBSCRIPTION_ID", h.subscription_id.clone()),
            ("AZURE_TENANT_ID", h.tenant_id.clone()),
            ("AZURE_CLIENT_ID", h.client_id.clone()),
            ("AZURE_CLIENT_SECRET", h.client_secret.clone()),
            ("AZURE_AUTHORITY_HOST", url),
        ]
    }
}

/// The release `rescue` next to this example (built here so the figure is always current);
/// `RESCUE_BENCH_BIN` (or `RESCUE_TEST_BIN`) measures another build instead. Built together
/// with this example: `--bin rescue` alone resolves the dependencies' features without the
/// dev-dependencies, and the two builds would rebuild each other's whole tree every time.
pub fn release_binary() -> PathBuf {
    if let Some(bin) =
        std::env::var_os("RESCUE_BENCH_BIN").or_else(|| std::env::var_os("RESCUE_TEST_BIN"))
    {
        return PathBuf::from(bin);
    }
    let this = std::env::current_exe().expect("current exe");
    let example = this
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("the example's name")
        .to_string();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "--bin",
            "rescue",
            "--example",
            &example,
        ])
        .status()
        .expect("cargo build");
    assert!(built.success(), "cannot build the release binary");
    this.parent()
        .and_then(Path::parent)
        .map(|release| release.join("rescue"))
        .filter(|b| b.is_file())
        .expect("target/release/rescue")
}
