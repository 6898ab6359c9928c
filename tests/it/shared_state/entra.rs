//! The shared store signed in to with Entra alone: no account key, SAS or connection string,
//! only the credential chain ARM's sign-in uses, against an Azurite that checks bearer tokens
//! (`--oauth basic`: issuer, audience, lifetime) over HTTPS.

use std::process::Command;

use super::*;
use crate::crash::support::{text, Served};

/// What a team member on Entra sets: the state URL, the account's endpoint (Azurite's, not
/// ACCOUNT.blob.core.windows.net) and the lab CA as the system's trust.
fn on_entra<'c>(cmd: &'c mut Command, emulator: &Served, store: &Azurite) -> &'c mut Command {
    cmd.env("RESCUE_STATE", store.state_url())
        .env("AZURE_STORAGE_SERVICE_ENDPOINT", store.endpoint())
        .env("SSL_CERT_FILE", emulator.login.ca.as_ref().expect("a CA"))
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("AZURE_STORAGE_KEY")
        .env_remove("AZURE_STORAGE_SAS_TOKEN")
}

#[test]
fn runs_are_kept_in_blob_storage_signed_in_with_entra_alone() {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Served::start(&dir.path().join("emulator"), None);
    let store = Azurite::start_entra(&emulator);
    let (a, b) = (Machine::new(dir.path(), "a"), Machine::new(dir.path(), "b"));
    let signed_in_before = entra_tokens(&emulator);
    let notes = a.cwd.join("notes.txt");
    let out = on_entra(&mut emulator.command(&a.state), &emulator, &store)
        .current_dir(&a.cwd)
        .args(["run", "demo", "--input", "patient=vm2", "--input", "wait=0"])
        .arg("--input")
        .arg(format!("notes={}", notes.display()))
        .args(["--yes", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        entra_tokens(&emulator) > signed_in_before,
        "the run signed in at the emulator's Entra"
    );

    // Another machine lists it, signed in the same way.
    let out = on_entra(&mut emulator.command(&b.state), &emulator, &store)
        .current_dir(&b.cwd)
        .args(["runs", "-o", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{doc}");
    let run = runs[0]["id"].as_str().unwrap();

    // Azurite took the run's token for Storage, and refuses ARM's: the check is real.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let list = |token: String| {
        let url = format!(
            "{}/{CONTAINER}?restype=container&comp=list",
            store.endpoint()
        );
        let http = emulator.login.http();
        runtime.block_on(async move {
            let r = http
                .get(url)
                .bearer_auth(token)
                .header("x-ms-version", "2021-12-02")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let storage = runtime.block_on(
        emulator
            .login
            .token_for("https://storage.azure.com/.default"),
    );
    let (status, listing) = list(storage);
    assert_eq!(status, 200, "{listing}");
    assert!(
        listing.contains(&format!("runs/{run}/journal.json")),
        "{listing}"
    );
    let (status, refusal) = list(runtime.block_on(emulator.login.token()));
    assert_eq!(status, 403, "an ARM token is not Storage's: {refusal}");
    assert!(refusal.contains("Invalid token audience"), "{refusal}");
}

/// Tokens the emulator's Entra issued so far.
fn entra_tokens(emulator: &Served) -> usize {
    crate::support::logged_requests(&emulator.log)
        .iter()
        .filter(|r| r["operation"] == "entra.token" && r["status"] == 200)
        .count()
}
