//! Errors of the Azure layer as step errors: whether the engine may retry, and what the engineer
//! should do next. Decided by error kind and ARM code, never by the wording of a message.
//! `RUN_ID` in a hint is replaced with the real run id by the engine, `--from-step STEP` with
//! the failing step's id.

use crate::actions::ActionError;
use crate::azure::{Error, ErrorKind};

const LOGIN_HINT: &str = "log in with `az login` (and `az account set -s SUBSCRIPTION`), or set \
AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE) for a \
service principal; to rehearse without Azure, add `--emulator`";

fn hint(e: &Error) -> Option<&'static str> {
    Some(match (e.kind, e.code.as_str()) {
        (ErrorKind::Auth, _) => LOGIN_HINT,
        (ErrorKind::Forbidden, _) | (_, "AuthorizationFailed") => {
            "your identity needs `Virtual Machine Contributor` and `Disk Snapshot Contributor` (or Contributor) on the resource groups involved"
        }
        (_, "SubscriptionNotFound" | "InvalidSubscriptionId") => {
            "check --subscription / AZURE_SUBSCRIPTION_ID (`az account list -o table` shows the ones you can use)"
        }
        (_, "ResourceGroupNotFound") => "check the resource group name (`az group list -o table`)",
        (ErrorKind::NotFound, _) => {
            "check the resource name and resource group (`az vm list -g RG -o table`, `az disk list -g RG -o table`)"
        }
        (ErrorKind::Throttled, _) => {
            "Azure is throttling this subscription; wait until the time above (or raise --max-wait), then `rescue resume RUN_ID`"
        }
        (ErrorKind::Deadline, _) => {
            "the operation may still finish in Azure; `rescue resume RUN_ID` picks it up where it is"
        }
        (ErrorKind::Transient, _) => "Azure did not answer or had an internal error; `rescue resume RUN_ID` tries again",
        (_, "PropertyChangeNotAllowed") => {
            "Azure does not allow this change on this VM; see the message"
        }
        (_, "ConflictingUserInput") => {
            "the disk is attached to another VM; detach it there first (rescue never steals a disk that is in use)"
        }
        (ErrorKind::Setup, _) => "check the target flags (--subscription, --emulator-url) and the CA file",
        _ => return None,
    })
}

impl From<Error> for ActionError {
    fn from(e: Error) -> ActionError {
        // A throttle past --max-wait or a passed deadline would only be waited for again:
        // those stop the step (resumably); only a lost answer or a 5xx is retried here.
        let retryable = e.kind == ErrorKind::Transient;
        let mut out = ActionError::fatal(e.to_string());
        out.retryable = retryable;
        match hint(&e) {
            Some(h) => out.with_hint(h),
            None => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_retryable_and_say_resume() {
        let e = Error::new(
            ErrorKind::Transient,
            "create snapshot s",
            "Azure did not answer",
        );
        let a = ActionError::from(e);
        assert!(a.retryable);
        assert!(a.hint.unwrap().contains("rescue resume"));
    }

    #[test]
    fn refusals_are_not_retried() {
        let mut e = Error::new(ErrorKind::Conflict, "swap", "whatever the text");
        e.code = "OperationNotAllowed".into();
        assert!(!ActionError::from(e).retryable);
    }
}
