//! Who and where rescue acts, for the go-ahead and `rescue doctor`: the subscription's name,
//! the identity the token speaks for, and that identity's permissions on a resource group.

use serde_json::Value;

use super::error::{Error, Result};
use super::Azure;

/// The identity an access token was issued to, from its claims ("Access token claims
/// reference", Microsoft Learn: `idtyp`, `appid`/`azp`, `upn`/`unique_name`, `oid`,
/// `xms_mirid` for managed identities). Read, not verified: ARM verifies it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Identity {
    /// `user`, `service principal`, or `managed identity`.
    pub kind: String,
    /// The user's name, the application (client) id, or the managed identity's resource id.
    pub name: String,
    pub object_id: Option<String>,
    pub tenant_id: Option<String>,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

fn claims(token: &str) -> Option<Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The identity of a token's claims.
pub fn identity_of(token: &str) -> Identity {
    let Some(c) = claims(token) else {
        return Identity {
            kind: "unknown identity".into(),
            name: "(the token is not a JWT)".into(),
            ..Default::default()
        };
    };
    let get = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    let user = get("upn")
        .or_else(|| get("unique_name"))
        .or_else(|| get("preferred_username"));
    let (kind, name) = match (get("xms_mirid"), user, get("idtyp").as_deref()) {
        (Some(mi), _, _) => ("managed identity", mi),
        (None, Some(user), Some("user") | None) => ("user", user),
        _ => (
            "service principal",
            get("appid")
                .or_else(|| get("azp"))
                .unwrap_or_else(|| "?".into()),
        ),
    };
    Identity {
        kind: kind.into(),
        name,
        object_id: get("oid"),
        tenant_id: get("tid"),
    }
}

/// The permissions list's api-version (azure-rest-api-specs, Microsoft.Authorization
/// stable/2022-04-01 authorization-Permissions: `Permissions_ListForResourceGroup`).
pub const PERMISSIONS_API: &str = "2022-04-01";
/// The subscriptions API azure-cli uses (Microsoft.Resources subscriptions 2022-12-01).
pub const SUBSCRIPTIONS_API: &str = "2022-12-01";

impl Azure {
    async fn get_path(&self, path: &str, doing: &str) -> Result<Value> {
        let url = self
            .endpoint()
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::setup(format!("bad path {path}: {e}")))?;
        Ok(self.get_url(url.as_str(), doing).await?.2)
    }

    /// `GET /subscriptions/{id}`: its `displayName` and `state`.
    pub async fn subscription_details(&self) -> Result<Value> {
        let path = format!(
            "/subscriptions/{}?api-version={SUBSCRIPTIONS_API}",
            self.subscription()
        );
        self.get_path(&path, "read the subscription").await
    }

    /// The identity the current token speaks for.
    pub async fn identity(&self) -> Result<Identity> {
        Ok(identity_of(&self.token().await?))
    }

    /// What the caller may do in `resource_group`: `[{actions, notActions, ...}]`.
    pub async fn permissions(&self, resource_group: &str) -> Result<Vec<Value>> {
        let path = format!(
            "/subscriptions/{}/resourceGroups/{resource_group}/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS_API}",
            self.subscription()
        );
        let body = self.get_path(&path, "read your permissions").await?;
        Ok(body
            .get("value")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }
}

/// Whether `permissions` allow `operation` (e.g. `Microsoft.Compute/disks/write`): some entry's
/// `actions` match it (`*` wildcards, case-insensitive, as Azure RBAC matches) and none of that
/// entry's `notActions` do.
pub fn allows(permissions: &[Value], operation: &str) -> bool {
    let matches = |pattern: &str| {
        let pattern = regex::escape(&pattern.to_ascii_lowercase()).replace(r"\*", ".*");
        regex::Regex::new(&format!("^{pattern}$"))
            .is_ok_and(|r| r.is_match(&operation.to_ascii_lowercase()))
    };
    let list = |p: &Value, key: &str| -> Vec<String> {
        p.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    permissions.iter().any(|p| {
        list(p, "actions").iter().any(|a| matches(a))
            && !list(p, "notActions").iter().any(|a| matches(a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_and_not_actions() {
        let contributor =
            [json!({"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]})];
        assert!(allows(&contributor, "Microsoft.Compute/disks/write"));
        assert!(!allows(
            &contributor,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        let reader = [json!({"actions": ["*/read"], "notActions": []})];
        assert!(!allows(&reader, "Microsoft.Compute/virtualMachines/write"));
        assert!(allows(&reader, "Microsoft.Compute/virtualMachines/read"));
    }

    #[test]
    fn an_app_token_is_a_service_principal() {
        use base64::Engine;
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"appid":"abc","idtyp":"app","oid":"o"}"#);
        let id = identity_of(&format!("h.{body}.s"));
        assert_eq!(
            (id.kind.as_str(), id.name.as_str()),
            ("service principal", "abc")
        );
    }
}
