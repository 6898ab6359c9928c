//! Engine speed figures: `cargo run --release --example bench_engine`.
//!
//! - `rescue plan` wall time on a 12-step workflow, spawning the real release binary (process
//!   start included); target < 50 ms.
//! - refusing a YAML alias bomb (`tests/it/engine/fixtures/bomb.yaml`, 10^9 nodes expanded) as
//!   `--inputs` of `rescue run`, process start included; target < 1 s.
//! - journal write latency (temp file + fsync + rename + fsync dir) on the disk that holds
//!   `target/`; target p99 < 5 ms. Printed next to the floor any durable write pays on that
//!   disk: one append + fdatasync.
//!
//! - journal save latency through the Blob store (`--state azblob://`) on a local Azurite,
//!   when `azurite-blob` is installed.
//!
//! `RESCUE_TEST_BIN=PATH` measures that binary instead of building the release one (worktrees
//! sharing a target dir overwrite each other's `target/release/rescue`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/azurite.rs"]
mod azurite;
#[path = "support/mod.rs"]
mod support;

use rescue::engine::journal::{Journal, StepRecord, StepStatus, WorkflowRecord};
use rescue::engine::store::{LocalStore, RunStore};
use rescue::workflow::Origin;
use serde_json::{json, Map};

const PLAN_RUNS: usize = 30;
const JOURNAL_WRITES: usize = 300;

fn main() {
    let rescue = support::release_binary();
    let work = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-engine");
    std::fs::create_dir_all(&work).expect("bench dir");

    let workflow = work.join("twelve-steps.yaml");
    std::fs::write(&workflow, twelve_step_workflow()).expect("write workflow");
    let plan = measure(PLAN_RUNS, || {
        let mut cmd = Command::new(&rescue);
        cmd.arg("plan")
            .arg(&workflow)
            .arg("--input")
            .arg("name=bench");
        expect_exit(&mut cmd, 0, "rescue plan");
    });
    report(
        "rescue plan, 12 steps (process start included)",
        &plan,
        Duration::from_millis(50),
        0.5,
    );

    let bomb = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/engine/fixtures/bomb.yaml");
    let refusal = measure(PLAN_RUNS, || {
        let mut cmd = Command::new(&rescue);
        cmd.arg("run").arg(&workflow).arg("--inputs").arg(&bomb);
        cmd.env("RESCUE_STATE_DIR", work.join("state"));
        expect_exit(&mut cmd, 2, "refusing the bomb");
    });
    report(
        "rescue run refusing a YAML alias bomb in --inputs",
        &refusal,
        Duration::from_secs(1),
        0.99,
    );

    let dir = tempfile::tempdir_in(&work).expect("journal dir");
    let local = LocalStore::new(dir.path().to_path_buf());
    let mut journal = sample_journal();
    std::fs::create_dir_all(local.run_dir(&journal.run_id)).expect("run dir");
    let mut i = 0;
    let writes = measure(JOURNAL_WRITES, || {
        i += 1;
        journal.steps[i % 12]
            .checkpoints
            .insert("n".into(), json!(i));
        journal.save(&local).expect("save journal");
    });
    report(
        "journal write with fsync",
        &writes,
        Duration::from_millis(5),
        0.99,
    );

    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("floor"))
        .expect("floor file");
    let record = vec![b'x'; serde_json::to_vec_pretty(&journal).expect("json").len()];
    let floor = measure(JOURNAL_WRITES, || {
        use std::io::Write;
        log.write_all(&record).expect("append");
        log.sync_data().expect("fdatasync");
    });
    report(
        "floor of this disk: one append + fdatasync",
        &floor,
        Duration::from_millis(5),
        0.99,
    );

    match shared_journal_saves(&work) {
        Some(saves) => report(
            "journal save to Azurite (--state azblob://: If-Match + lease, then the local copy)",
            &saves,
            Duration::from_millis(50),
            0.99,
        ),
        None => println!(
            "journal save to Azurite: azurite-blob not installed (bash .ci/setup installs it)"
        ),
    }
}

/// Journal saves through the Blob store on a local Azurite: what every step pays with
/// team-shared state (Azurite on loopback: the storage service's own latency is not in it).
fn shared_journal_saves(work: &Path) -> Option<Vec<Duration>> {
    let azurite = azurite::Azurite::start()?;
    std::env::set_var(
        "AZURE_STORAGE_CONNECTION_STRING",
        azurite.connection_string(),
    );
    let dir = tempfile::tempdir_in(work).expect("state dir");
    let location = rescue::shared_state::parse("azblob://devstoreaccount1/bench").expect("url");
    let store = rescue::shared_state::open(dir.path(), Some(&location), Default::default())
        .expect("open the blob store");
    let run_id = store.create_run().expect("create run");
    let _lease = store.lock(&run_id, false).expect("lease");
    let mut journal = sample_journal();
    journal.run_id = run_id;
    let mut i = 0;
    let saves = measure(JOURNAL_WRITES, || {
        i += 1;
        journal.steps[i % 12]
            .checkpoints
            .insert("n".into(), json!(i));
        journal.save(store.as_ref()).expect("save journal");
    });
    drop(_lease);
    Some(saves)
}

fn expect_exit(cmd: &mut Command, code: i32, what: &str) {
    let out = cmd.output().expect("spawn rescue");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn measure(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    f(); // warm the page cache; not counted
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, sorted: &[Duration], target: Duration, target_p: f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = percentile(sorted, 0.5);
    let p99 = percentile(sorted, 0.99);
    let judged = percentile(sorted, target_p);
    let verdict = if judged < target { "meets" } else { "MISSES" };
    println!(
        "{what}: n={} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({verdict} target p{} < {} ms)",
        sorted.len(),
        ms(p50),
        ms(p99),
        ms(*sorted.last().unwrap()),
        (target_p * 100.0) as u32,
        target.as_millis()
    );
}

fn twelve_step_workflow() -> String {
    let mut text = String::from(
        "name: bench\ndescription: twelve steps whose arguments flow from step to step\ninputs:\n  name:\n    type: string\nsteps:\n",
    );
    text.push_str(
        "  - id: s1\n    uses: core.echo\n    with:\n      message: \"start ${{ inputs.name }}\"\n",
    );
    for n in 2..=12 {
        let prev = n - 1;
        match n % 3 {
            0 => text.push_str(&format!(
                "  - id: s{n}\n    uses: core.write_file\n    with:\n      path: /tmp/bench-{n}\n      content: \"${{{{ steps.s{prev}.outputs.message }}}}\"\n"
            )),
            1 => text.push_str(&format!(
                "  - id: s{n}\n    uses: core.echo\n    with:\n      message: \"${{{{ steps.s{prev}.outputs.path }}}}\"\n"
            )),
            _ => text.push_str(&format!(
                "  - id: s{n}\n    uses: core.echo\n    with:\n      message: \"step {n} after ${{{{ steps.s{prev}.outputs.message }}}}\"\n"
            )),
        }
    }
    text.push_str("outputs:\n  last: \"${{ steps.s12.outputs.path }}\"\n");
    text
}

/// A journal the size of a real repair run: 12 steps with arguments, intents and outputs.
fn sample_journal() -> Journal {
    let text = twelve_step_workflow();
    let steps = (1..=12)
        .map(|n| {
            let mut s = StepRecord::pending(format!("s{n}"), "azure.snapshot.create");
            s.status = StepStatus::Succeeded;
            s.attempts = 1;
            let mut args = Map::new();
            args.insert("disk".into(), json!(format!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/MC_prod-rg_prod-aks_westeurope/providers/Microsoft.Compute/disks/disk-{n}")));
            s.args = args.clone();
            s.outputs = args;
            s
        })
        .collect();
    let record = WorkflowRecord::new(&Origin::File("/bench.yaml".into()), &text);
    Journal::new(
        "20261126-120000-beef".into(),
        record,
        Map::new(),
        json!({"emulator": {"data_dir": "/x"}}),
        steps,
    )
}
