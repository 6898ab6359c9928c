//! The emulator's Entra endpoint and ARM's token check, answered in Entra's and ARM's shapes.

use serde_json::{json, Value};

use super::support::*;

async fn token_request(emu: &Emu, form: &[(&str, &str)]) -> (u16, Value) {
    let r = emu
        .http
        .post(emu.url(&format!("/{}/oauth2/v2.0/token", emu.login.tenant)))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_points_clients_at_this_host() {
    let emu = start(0.01).await;
    let tenant = emu.login.tenant.clone();
    let (_, v2) = emu
        .get_anonymous(&format!("/{tenant}/v2.0/.well-known/openid-configuration"))
        .await;
    assert_eq!(
        v2["token_endpoint"],
        emu.url(&format!("/{tenant}/oauth2/v2.0/token"))
    );
    assert_eq!(
        v2["authorization_endpoint"],
        emu.url(&format!("/{tenant}/oauth2/v2.0/authorize"))
    );
    let (_, d) = emu
        .get_anonymous("/common/discovery/instance?api-version=1.1&authorization_endpoint=x")
        .await;
    assert_eq!(
        d["tenant_discovery_endpoint"],
        emu.url(&format!("/{tenant}/v2.0/.well-known/openid-configuration"))
    );
    let (status, e) = emu
        .get_anonymous("/no-such-tenant/v2.0/.well-known/openid-configuration")
        .await;
    assert_eq!(status, 400);
    assert_eq!(e["error_codes"], json!([90002]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_errors_have_entra_s_codes_and_shape() {
    let emu = start(0.01).await;
    let id = emu.login.client_id.clone();
    let scope = "https://management.azure.com/.default";
    let (status, e) = token_request(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "wrong"),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(e["error"], "invalid_client");
    assert_eq!(e["error_codes"], json!([7000215]));
    let description = e["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("AADSTS7000215: Invalid client secret provided."),
        "{description}"
    );
    for field in ["timestamp", "trace_id", "correlation_id"] {
        assert!(e[field].is_string(), "{field} in {e}");
    }
    assert!(description.contains(&format!("Trace ID: {}", e["trace_id"].as_str().unwrap())));

    let (status, e) = token_request(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-0000-0000-0000-00000000dead"),
            ("client_secret", "x"),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(
        (status, e["error"].as_str().unwrap()),
        (400, "unauthorized_client")
    );
    assert_eq!(e["error_codes"], json!([700016]));

    let secret = emu.login.secret.clone();
    let (status, e) = token_request(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://vault.azure.net/.default"),
        ],
    )
    .await;
    assert_eq!((status, e["error_codes"].clone()), (400, json!([500011])));

    let (status, ok) = token_request(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", scope),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok["token_type"], "Bearer");
    assert!(ok["expires_in"].as_i64().unwrap() > 3000);

    // Storage is a resource of every tenant: its token is issued, and ARM refuses it.
    let (status, storage) = token_request(
        &emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://storage.azure.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{storage}");
    let r = emu
        .http
        .get(emu.url(&format!("{}?{VM_API}", vm(BROKEN))))
        .bearer_auth(storage["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "InvalidAuthenticationTokenAudience");
}

/// A token with these claims signed with `key`.
fn forge(key: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arm_accepts_only_unexpired_tokens_it_issued_for_its_audiences() {
    let emu = start(0.01).await;
    let key = std::fs::read(emu.dir.path().join("data/keys/token-signing")).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = |aud: &str, exp: i64| {
        json!({"aud": aud, "iss": format!("https://sts.windows.net/{}/", emu.login.tenant),
               "iat": now - 7200, "nbf": now - 7200, "exp": exp, "appid": emu.login.client_id,
               "tid": emu.login.tenant, "oid": "x", "sub": "x"})
    };
    let url = emu.url(&format!("{}?{VM_API}", vm(BROKEN)));
    let code = |token: String| {
        let (http, url) = (emu.http.clone(), url.clone());
        async move {
            let r = http.get(&url).bearer_auth(token).send().await.unwrap();
            assert_eq!(r.status(), 401);
            let auth = r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_string();
            assert!(auth.starts_with("Bearer authorization_uri="), "{auth}");
            let e: Value = r.json().await.unwrap();
            (
                e["error"]["code"].as_str().unwrap().to_string(),
                e["error"]["message"].as_str().unwrap().to_string(),
            )
        }
    };
    let (c, m) = code(forge(
        &key,
        claims("https://management.azure.com/", now - 60),
    ))
    .await;
    assert_eq!(c, "ExpiredAuthenticationToken");
    assert!(
        m.starts_with("The access token expiry UTC time '")
            && m.contains("is earlier than current UTC time"),
        "{m}"
    );
    let (c, m) = code(forge(&key, claims("https://vault.azure.net", now + 600))).await;
    assert_eq!(c, "InvalidAuthenticationTokenAudience");
    assert!(m.contains("'https://vault.azure.net'"), "{m}");
    let (c, _) = code(forge(
        b"another key entirely, 32 bytes..",
        claims("https://management.azure.com/", now + 600),
    ))
    .await;
    assert_eq!(c, "InvalidAuthenticationToken");
    // The emulator's own key and a good audience: accepted.
    let r = emu
        .http
        .get(&url)
        .bearer_auth(forge(
            &key,
            claims("https://management.core.windows.net/", now + 600),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_and_keys_are_kept_across_restarts_so_tokens_stay_valid() {
    use std::os::unix::fs::PermissionsExt;
    let mut emu = start(0.01).await;
    let data = emu.dir.path().join("data");
    let mode = |p: &str| {
        std::fs::metadata(data.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("tls/ca.pem"), 0o644);
    assert_eq!(mode("tls/server.key"), 0o600);
    assert_eq!(mode("keys/token-signing"), 0o600);
    assert_eq!(mode("keys/sas"), 0o600);
    let ca = std::fs::read(data.join("tls/ca.pem")).unwrap();
    let token = emu.token.clone();
    emu.stop().await;
    let dir = std::mem::replace(&mut emu.dir, tempfile::tempdir().unwrap());
    let again = start_with(dir, |d| config(d, 0.01)).await;
    assert_eq!(
        std::fs::read(again.dir.path().join("data/tls/ca.pem")).unwrap(),
        ca
    );
    // A client that trusted the CA before trusts the restarted emulator; its token still works.
    let r = again
        .http
        .get(again.url(&format!("{}?{VM_API}", vm(BROKEN))))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
