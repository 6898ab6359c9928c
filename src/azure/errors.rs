//! ARM errors turned into messages that say what to do next.

use azure_core::error::ErrorKind;
use serde_json::Value;

use crate::actions::ActionError;

/// The parts of an ARM error rescue reasons about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArmError {
    pub status: Option<u16>,
    pub code: String,
    pub message: String,
}

impl ArmError {
    fn from_core(error: &azure_core::Error) -> Self {
        let mut out = ArmError {
            message: error.to_string(),
            ..Default::default()
        };
        if let ErrorKind::HttpResponse { status, error_code } = error.kind() {
            out.status = Some(u16::from(*status));
            out.code = error_code.clone().unwrap_or_default();
        }
        if let Some(http) = error.as_http_error() {
            if let Some(message) = http.error_message() {
                out.message = message.to_string();
            }
            if out.code.is_empty() {
                out.code = http.error_code().unwrap_or_default().to_string();
            }
        }
        out
    }

    /// What the engineer should do about it, when we know.
    fn hint(&self) -> Option<&'static str> {
        let message = self.message.to_ascii_lowercase();
        let code = self.code.as_str();
        Some(match (self.status, code) {
            (Some(401), _) | (_, "InvalidAuthenticationToken" | "ExpiredAuthenticationToken") => {
                "log in again with `az login` (or refresh the service principal's secret), then `rescue resume RUN_ID`"
            }
            (Some(403), _) | (_, "AuthorizationFailed") => {
                "your identity needs `Virtual Machine Contributor` and `Disk Snapshot Contributor` (or Contributor) on the resource groups involved"
            }
            (_, "SubscriptionNotFound" | "InvalidSubscriptionId") => {
                "check --subscription / AZURE_SUBSCRIPTION_ID (`az account list -o table` shows the ones you can use)"
            }
            (_, "ResourceGroupNotFound") => "check the resource group name (`az group list -o table`)",
            (Some(404), _) | (_, "ResourceNotFound" | "NotFound") => {
                "check the resource name and resource group (`az vm list -g RG -o table`, `az disk list -g RG -o table`)"
            }
            _ if message.contains("not deallocated") || message.contains("must be deallocated") => {
                "the VM must be deallocated first: run the workflow's deallocate step (`azure.vm.deallocate`) before this one"
            }
            _ if message.contains("another operation") => {
                "another operation on this resource is still running (portal, CLI, AKS?); wait for it, then `rescue resume RUN_ID`"
            }
            _ if message.contains("is attached to") || code == "ConflictingUserInput" => {
                "the disk is attached to another VM; detach it there first (rescue never steals a disk that is in use)"
            }
            _ if message.contains("same zone") || message.contains("zone") && code == "BadRequest" => {
                "the disk and the VM must be in the same availability zone; pick a rescue VM in the broken VM's zone"
            }
            _ if message.contains("lun") && message.contains("already") => {
                "that LUN is taken on the rescue VM; leave `lun` unset so rescue picks the first free one"
            }
            _ if message.contains("hypervisor") || message.contains("hyperv") => {
                "the disk's Hyper-V generation must match the VM's; the copy keeps the source disk's generation"
            }
            (Some(429), _) => "Azure is throttling this subscription; wait a few minutes, then `rescue resume RUN_ID`",
            (Some(s), _) if s >= 500 => "Azure had an internal error; `rescue resume RUN_ID` retries the step",
            _ => return None,
        })
    }

    fn retryable(&self) -> bool {
        matches!(self.status, Some(408 | 429) | Some(500..=599))
            || self.busy()
            || self
                .message
                .to_ascii_lowercase()
                .contains("another operation")
    }

    /// 409 `Conflict`: ARM's "conflict with a concurrent request" and Run Command's "execution is
    /// in progress" both say the resource is busy for now.
    fn busy(&self) -> bool {
        self.status == Some(409) && self.code == "Conflict"
    }

    fn into_action_error(self, doing: &str) -> ActionError {
        let code = if self.code.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.code)
        };
        let status = self
            .status
            .map(|s| format!(" [HTTP {s}]"))
            .unwrap_or_default();
        let mut error = ActionError {
            message: format!("cannot {doing}{code}{status}: {}", self.message),
            hint: None,
            retryable: self.retryable(),
            locked: false,
        };
        if let Some(hint) = self.hint() {
            error = error.with_hint(hint);
        }
        error
    }
}

/// Translate an azure_core error from a request made to `doing` ("create snapshot X").
pub fn translate(error: azure_core::Error, doing: &str) -> ActionError {
    if matches!(error.kind(), ErrorKind::Io) {
        return ActionError::retryable(format!("cannot {doing}: Azure did not answer ({error})"))
            .with_hint("check the network (or that the emulator is still running), then `rescue resume RUN_ID`");
    }
    ArmError::from_core(&error).into_action_error(doing)
}

/// An operation that ended Failed or Canceled: its `error` object, verbatim.
pub fn operation_failed(label: &str, status: &str, error: Option<&Value>) -> ActionError {
    let code = error
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = error
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            error
                .map(Value::to_string)
                .unwrap_or_else(|| "no error details".into())
        });
    let arm = ArmError {
        status: None,
        code: code.to_string(),
        message,
    };
    let mut out = arm
        .clone()
        .into_action_error(&format!("{label}: the operation ended {status}"));
    out.retryable = out.retryable || status.eq_ignore_ascii_case("canceled");
    out
}

/// Did Azure refuse because another operation is running on the resource? (For example our own
/// request, accepted just before its connection dropped, then sent again by the retry policy.)
pub fn is_busy(error: &ActionError) -> bool {
    let m = error.message.to_ascii_lowercase();
    m.contains("(conflict) [http 409]")
        || m.contains("another operation")
        || m.contains("provisioning state is updating")
        || m.contains("provisioning state is creating")
}

/// Is this the error of a GET on something that does not exist?
pub fn is_not_found(error: &azure_core::Error) -> bool {
    matches!(error.kind(), ErrorKind::HttpResponse { status, .. } if u16::from(*status) == 404)
}

/// 412: an `If-Match` ETag no longer matches (someone else changed the resource first).
pub fn is_precondition_failed(error: &azure_core::Error) -> bool {
    matches!(error.kind(), ErrorKind::HttpResponse { status, .. } if u16::from(*status) == 412)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_on_a_running_vm_says_deallocate_first() {
        let e = operation_failed(
            "swap OS disk",
            "Failed",
            Some(
                &serde_json::json!({"code":"OperationNotAllowed","message":"Cannot change OS disk since the VM is not deallocated."}),
            ),
        );
        assert!(
            e.message.contains("OperationNotAllowed") && e.message.contains("not deallocated"),
            "{e}"
        );
        assert!(e.hint.unwrap().contains("deallocate"));
    }

    #[test]
    fn failed_operation_error_is_verbatim() {
        let e = operation_failed(
            "snapshot s",
            "Failed",
            Some(&serde_json::json!({"code":"InternalDiskManagementError","message":"boom 42"})),
        );
        assert!(
            e.message.contains("InternalDiskManagementError") && e.message.contains("boom 42"),
            "{e}"
        );
    }
}
