//! rescue signs in as Azure's clients do: azure_identity's client-secret credential at
//! AZURE_AUTHORITY_HOST (here the emulator's Entra endpoint), trusting RESCUE_EMULATOR_CA.

use crate::crash::support::{text, Served};

#[test]
fn rescue_gets_its_token_from_the_authority_host_and_a_wrong_secret_stops_before_arm() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&dir.path().join("data"), None);
    let state = dir.path().join("state");

    let out = served.repair(&state, &["--dry-run"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let signed_in = crate::support::logged_requests(&served.log);
    let token = signed_in
        .iter()
        .find(|r| r["operation"] == "entra.token")
        .expect("rescue asked the token endpoint");
    assert_eq!(token["status"], 200);
    assert_eq!(
        token["path"],
        format!("/{}/oauth2/v2.0/token", served.login.tenant)
    );
    let arm_before = served.requests().len();
    assert!(arm_before > 0, "the plan read Azure with the token");

    let out = served.repair(
        &state,
        &[],
        &[("AZURE_CLIENT_SECRET", "not-the-secret".to_string())],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("AADSTS7000215"),
        "Entra's reason is shown: {stderr}"
    );
    assert!(
        stderr.contains("AZURE_CLIENT_SECRET") && stderr.contains("rescue emulator serve"),
        "the error says how to sign in: {stderr}"
    );
    assert_eq!(
        served.requests().len(),
        arm_before,
        "no ARM request after a refused sign-in"
    );
    let refused = crate::support::logged_requests(&served.log);
    assert_eq!(
        refused.last().unwrap()["status"],
        401,
        "the last request was the refused sign-in"
    );
}
