//! ARM's error body and the small wire vocabulary shared by every resource.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const DISK_API: &str = "2024-03-02";
pub const COMPUTE_API: &str = "2024-07-01";

/// An ARM error: HTTP status plus `{"error":{"code","message"[,"target"][,"innererror"]}}`, the
/// CloudError shape of the REST specs' common types. Recorded CRP errors carry no `details`
/// array unless there are details (e.g. kubernetes/kubernetes#96706 quotes a whole body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// What few errors carry besides code and message (boxed: errors travel in every Result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// CRP's `innererror.internalErrorCode`, where a recorded response shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_code: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Value>,
}

impl ArmError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code: code.to_string(),
            message: message.into(),
            extra: None,
        }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    pub fn with_target(mut self, target: &str) -> Self {
        self.extra().target = Some(target.to_string());
        self
    }

    pub fn with_internal_code(mut self, code: &str) -> Self {
        self.extra().internal_code = Some(code.to_string());
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.extra().details.push(detail);
        self
    }

    /// The `error` object (also what a Failed operation-status body carries).
    pub fn object(&self) -> Value {
        let mut e = json!({ "code": self.code, "message": self.message });
        if let Some(x) = &self.extra {
            if let Some(t) = &x.target {
                e["target"] = json!(t);
            }
            if let Some(c) = &x.internal_code {
                e["innererror"] = json!({ "internalErrorCode": c });
            }
            if !x.details.is_empty() {
                e["details"] = json!(x.details);
            }
        }
        e
    }

    pub fn body(&self) -> Value {
        json!({ "error": self.object() })
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(409, code, message)
    }

    /// ARM's 404 for a missing resource, as recorded (e.g. ansible-collections/azure#1199:
    /// "The Resource 'Microsoft.Compute/virtualMachines/rhel8-brboot' under resource group 'disks'
    /// was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix").
    pub fn not_found(kind: &str, rg: &str, name: &str) -> Self {
        Self::not_found_in("Microsoft.Compute", kind, rg, name)
    }

    /// The same 404 for a resource of another provider's namespace (ARM's text names it).
    pub fn not_found_in(namespace: &str, kind: &str, rg: &str, name: &str) -> Self {
        Self::new(
            404,
            "ResourceNotFound",
            format!(
                "The Resource '{namespace}/{kind}/{name}' under resource group '{rg}' was not found. \
                 For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// CRP's answer for an entity it does not know under a location (an unknown run command id
    /// in the Run Command docs, MicrosoftDocs azure-compute-docs linux/run-command.md: "The entity
    /// was not found in this Azure location"); used for unknown or expired operation ids too
    /// (inferred: no recording of an expired operation URL was found).
    pub fn entity_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "The entity was not found in this Azure location.",
        )
    }

    /// 500 for the emulator's own failures (an unwritable data dir, a failed image copy). Azure
    /// shows `InternalServerError` with a diagnostic sentence (see `faults`); here the sentence
    /// says what failed, since only an emulator bug or a full disk gets here.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalServerError", message)
    }
}

pub type ArmResult<T> = Result<T, ArmError>;

/// The current time as ARM writes it.
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 formatting")
}

/// A random GUID in ARM's lowercase form.
pub fn guid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}`.
pub fn resource_id(sub: &str, rg: &str, kind: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}")
}

/// Parses a Microsoft.Compute resource id into (resource group, kind, name); case-insensitive
/// on the fixed words as ARM is.
pub fn parse_resource_id(id: &str) -> Option<(String, String, String)> {
    let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
    if parts.len() == 8
        && parts[0].eq_ignore_ascii_case("subscriptions")
        && parts[2].eq_ignore_ascii_case("resourceGroups")
        && parts[4].eq_ignore_ascii_case("providers")
        && parts[5].eq_ignore_ascii_case("Microsoft.Compute")
    {
        Some((
            parts[3].to_string(),
            parts[6].to_ascii_lowercase(),
            parts[7].to_string(),
        ))
    } else {
        None
    }
}

/// Azure's naming rule for disks and snapshots (80 characters; word characters, '.', '-', '_';
/// begins with a word character, ends with one or '_').
pub fn check_volume_name(name: &str) -> ArmResult<()> {
    let ok = (1..=80).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "InvalidResourceName",
        format!(
            "Resource name {name} is invalid. The name can be up to 80 characters long. It must begin with a word \
             character, and it must end with a word character or with '_'. The name may contain word characters or \
             '.', '-', '_'."
        ),
    ))
}

/// The map key of a resource: ARM names are case-insensitive.
pub fn key(rg: &str, name: &str) -> String {
    format!("{}/{}", rg.to_ascii_lowercase(), name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_case_insensitively() {
        let id = "/subscriptions/s/resourcegroups/RG/providers/microsoft.compute/Disks/d1";
        assert_eq!(
            parse_resource_id(id),
            Some(("RG".into(), "disks".into(), "d1".into()))
        );
        assert_eq!(
            parse_resource_id("/subscriptions/s/resourceGroups/rg"),
            None
        );
    }

    #[test]
    fn volume_names_follow_azure() {
        assert!(check_volume_name(
            "aks-nodepool1-31415926-vm2_OsDisk_1_3a9f-snap-20261126-164500-ab12"
        )
        .is_ok());
        assert_eq!(
            check_volume_name(&"a".repeat(81)).unwrap_err().code,
            "InvalidResourceName"
        );
        assert!(check_volume_name("ends-with-dash-").is_err());
        assert!(check_volume_name("has space").is_err());
    }

    #[test]
    fn guids_look_like_guids() {
        let g = guid();
        assert_eq!(g.len(), 36);
        assert_eq!(g.matches('-').count(), 4);
    }
}
