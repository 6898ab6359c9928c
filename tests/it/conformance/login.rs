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

/// The issuer and subject of the incident scenario's federated credential: an AKS cluster's
/// OIDC issuer and the service account rescue runs as in the `ops` namespace.
const AKS_ISSUER: &str = "https://westeurope.oic.prod-aks.azure.com/00000000-0000-0000-0000-0000000000aa/4c8f3b1e-6a2d-4e9b-9f7a-1d3c5e7a9b2f/";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:ops:rescue";

/// A projected service-account token as AKS writes it to AZURE_FEDERATED_TOKEN_FILE. The
/// emulator checks its claims, not its signature (it has no cluster's signing keys), so any
/// key signs it here.
fn service_account_token(subject: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "iss": AKS_ISSUER,
        "sub": subject,
        "aud": ["api://AzureADTokenExchange"],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"not the cluster's key"),
    )
    .unwrap()
}

/// `rescue plan|run` of the incident repair signed in with `--auth auth` (a run says `--yes`).
fn repair_as(
    served: &Served,
    state: &std::path::Path,
    verb: &str,
    auth: &str,
) -> std::process::Command {
    let workflow = crate::crash::support::repo("workflows/os-disk-swap.yaml");
    let inputs = crate::crash::support::repo("examples/incident-inputs.yaml");
    let mut cmd = served.command(state);
    cmd.arg(verb)
        .arg(workflow)
        .arg("--inputs")
        .arg(inputs)
        .args(["--auth", auth]);
    if verb == "run" {
        cmd.arg("--yes");
    }
    cmd
}

fn token_requests(served: &Served, operation: &str) -> Vec<serde_json::Value> {
    crate::support::logged_requests(&served.log)
        .into_iter()
        .filter(|r| r["operation"] == operation)
        .collect()
}

/// `--auth workload` as in an AKS pod: no secret, a federated token file; Entra's refusal of a
/// token whose subject has no federated credential is shown with its AADSTS code.
#[test]
fn workload_identity_signs_in_with_the_federated_token_file_and_a_stranger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&dir.path().join("data"), None);
    let state = dir.path().join("state");
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, service_account_token(SERVICE_ACCOUNT)).unwrap();
    let workload = |verb: &str, auth: &str| {
        let mut cmd = repair_as(&served, &state, verb, auth);
        cmd.env_remove("AZURE_CLIENT_SECRET")
            .env("AZURE_FEDERATED_TOKEN_FILE", &token_file);
        cmd.output().unwrap()
    };

    let out = workload("plan", "workload");
    assert!(out.status.success(), "{}", text(&out));
    let tokens = token_requests(&served, "entra.token");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_eq!(tokens[0]["status"], 200);
    let arm = served.requests().len();
    assert!(arm > 0, "the plan read Azure with the exchanged token");

    std::fs::write(
        &token_file,
        service_account_token("system:serviceaccount:default:intruder"),
    )
    .unwrap();
    let out = workload("run", "workload");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr.contains("AADSTS70021"),
        "Entra's reason is shown: {stderr}"
    );
    assert!(
        stderr.contains("federated credential of the app"),
        "the hint is workload identity's, not a secret's: {stderr}"
    );
    assert_eq!(
        served.requests().len(),
        arm,
        "no ARM request after a refused sign-in"
    );

    // `--auth env` (azure_identity's environment credential) takes the same variables.
    std::fs::write(&token_file, service_account_token(SERVICE_ACCOUNT)).unwrap();
    let out = workload("plan", "env");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        token_requests(&served, "entra.token").last().unwrap()["status"],
        200
    );
}

/// AKS rotates the projected token file (hourly); a long repair must present the current one
/// when its access token is renewed, not the one it read at start.
#[test]
fn workload_identity_reads_the_rotated_token_file_for_each_new_token() {
    use azure_core::auth::TokenCredential as _;

    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&dir.path().join("data"), None);
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(&token_file, service_account_token(SERVICE_ACCOUNT)).unwrap();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(served.login.ca.as_ref().unwrap()).unwrap())
            .unwrap();
    let http: std::sync::Arc<dyn azure_core::HttpClient> = std::sync::Arc::new(
        reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap(),
    );
    let credential = rescue::azure::credential::WorkloadIdentity::new(
        http,
        url::Url::parse(&served.login.url).unwrap(),
        served.login.tenant.clone(),
        served.login.client_id.clone(),
        token_file.clone(),
    );
    let scope = format!("{}/.default", served.login.url.trim_end_matches('/'));
    let runtime = tokio::runtime::Runtime::new().unwrap();

    if let Err(e) = runtime.block_on(credential.get_token(&[&scope])) {
        panic!(
            "first token: {}",
            rescue::azure::credential::login_error(&e)
        );
    }
    std::fs::write(
        &token_file,
        service_account_token("system:serviceaccount:ops:rotated-away"),
    )
    .unwrap();
    runtime
        .block_on(credential.get_token(&[&scope]))
        .expect("a cached token needs no new exchange");
    assert_eq!(token_requests(&served, "entra.token").len(), 1);

    runtime.block_on(credential.clear_cache()).unwrap();
    let err = runtime
        .block_on(credential.get_token(&[&scope]))
        .expect_err("the rotated file's subject has no federated credential");
    assert!(
        rescue::azure::credential::login_error(&err)
            .to_string()
            .contains("AADSTS70021"),
        "{err}"
    );
    assert_eq!(
        token_requests(&served, "entra.token").len(),
        2,
        "the new file was presented"
    );
}

/// `--auth msi` on a host whose identity endpoint is App Service's shape (IDENTITY_ENDPOINT and
/// IDENTITY_HEADER): the token comes from there, not from Entra's token endpoint; a wrong
/// header is refused before any ARM request.
#[test]
fn managed_identity_takes_its_token_from_the_identity_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&dir.path().join("data"), None);
    let state = dir.path().join("state");
    let msi = |verb: &str, header: &str| {
        repair_as(&served, &state, verb, "msi")
            .env_remove("AZURE_CLIENT_SECRET")
            .env_remove("AZURE_CLIENT_ID")
            .env(
                "IDENTITY_ENDPOINT",
                format!("{}/msi/token", served.login.url.trim_end_matches('/')),
            )
            .env("IDENTITY_HEADER", header)
            .output()
            .unwrap()
    };

    let out = msi("plan", "emulator-identity-header-not-for-azure");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(token_requests(&served, "entra.token").len(), 0);
    let identity = token_requests(&served, "entra.managedIdentity");
    assert_eq!(identity.len(), 1, "{identity:?}");
    assert_eq!(identity[0]["status"], 200);
    let arm = served.requests().len();
    assert!(arm > 0);

    let out = msi("run", "a-guess");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        served.requests().len(),
        arm,
        "no ARM request after a refused sign-in"
    );
}
