//! ARM paths → routes, with the SDK operation name each one is (for the request log and fault
//! rules) and the api-version Azure requires for it.

use super::arm::{ArmError, COMPUTE_API, DISK_API};
use super::operations::Family;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Disks {
        rg: String,
    },
    Disk {
        rg: String,
        name: String,
    },
    Snapshots {
        rg: String,
    },
    Snapshot {
        rg: String,
        name: String,
    },
    Vms {
        rg: String,
    },
    Vm {
        rg: String,
        name: String,
    },
    VmInstanceView {
        rg: String,
        name: String,
    },
    VmAction {
        rg: String,
        name: String,
        action: String,
    },
    /// Managed Run Commands of a VM (`.../virtualMachines/{vm}/runCommands`).
    VmRunCommands {
        rg: String,
        name: String,
    },
    VmRunCommand {
        rg: String,
        name: String,
        command: String,
    },
    Operation {
        id: String,
        family: Family,
    },
    /// A boot diagnostics blob (a SAS-style URL, no bearer token): `{vmId}/{blob name}`.
    SerialLog {
        blob: String,
    },
}

pub const SERIAL_LOG_PREFIX: &str = "/_emulator/bootdiagnostics/";

/// Parses a path; the subscription is returned for the caller to check.
pub fn parse(path: &str) -> Result<(Route, Option<String>), ArmError> {
    if let Some(rest) = path.strip_prefix(SERIAL_LOG_PREFIX) {
        return Ok((
            Route::SerialLog {
                blob: rest.to_string(),
            },
            None,
        ));
    }
    let s: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is = |i: usize, word: &str| s.get(i).is_some_and(|x| x.eq_ignore_ascii_case(word));
    if s.len() < 2 || !is(0, "subscriptions") {
        return Err(unknown(path));
    }
    let sub = Some(s[1].to_string());
    // /subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/{DiskOperations|operations}/{id}
    if s.len() == 8 && is(2, "providers") && is(3, "Microsoft.Compute") && is(4, "locations") {
        let family = if is(6, "DiskOperations") {
            Family::Disk
        } else if is(6, "operations") {
            Family::Compute
        } else {
            return Err(unknown(path));
        };
        return Ok((
            Route::Operation {
                id: s[7].to_string(),
                family,
            },
            sub,
        ));
    }
    if s.len() < 7 || !is(2, "resourceGroups") || !is(4, "providers") || !is(5, "Microsoft.Compute")
    {
        return Err(unknown(path));
    }
    let rg = s[3].to_string();
    let name = s.get(7).map(|n| n.to_string());
    let route = match (s[6].to_ascii_lowercase().as_str(), s.len()) {
        ("disks", 7) => Route::Disks { rg },
        ("disks", 8) => Route::Disk {
            rg,
            name: name.unwrap(),
        },
        ("snapshots", 7) => Route::Snapshots { rg },
        ("snapshots", 8) => Route::Snapshot {
            rg,
            name: name.unwrap(),
        },
        ("virtualmachines", 7) => Route::Vms { rg },
        ("virtualmachines", 8) => Route::Vm {
            rg,
            name: name.unwrap(),
        },
        ("virtualmachines", 9) if is(8, "runCommands") => Route::VmRunCommands {
            rg,
            name: name.unwrap(),
        },
        ("virtualmachines", 10) if is(8, "runCommands") => Route::VmRunCommand {
            rg,
            name: name.unwrap(),
            command: s[9].to_string(),
        },
        ("virtualmachines", 9) if is(8, "instanceView") => Route::VmInstanceView {
            rg,
            name: name.unwrap(),
        },
        ("virtualmachines", 9) => Route::VmAction {
            rg,
            name: name.unwrap(),
            action: s[8].to_string(),
        },
        _ => return Err(unknown(path)),
    };
    Ok((route, sub))
}

fn unknown(path: &str) -> ArmError {
    ArmError::new(
        404,
        "InvalidResourceType",
        format!("The resource type for '{path}' could not be found in the namespace 'Microsoft.Compute'."),
    )
}

impl Route {
    /// The api-version Azure requires here (`None`: not checked).
    pub fn api_version(&self) -> Option<&'static str> {
        match self {
            Route::Disks { .. }
            | Route::Disk { .. }
            | Route::Snapshots { .. }
            | Route::Snapshot { .. } => Some(DISK_API),
            Route::Vms { .. }
            | Route::Vm { .. }
            | Route::VmInstanceView { .. }
            | Route::VmAction { .. }
            | Route::VmRunCommands { .. }
            | Route::VmRunCommand { .. } => Some(COMPUTE_API),
            Route::Operation { .. } | Route::SerialLog { .. } => None,
        }
    }

    /// (SDK operation name, short alias) for the request log and fault rules.
    pub fn operation(&self, method: &str) -> (&'static str, &'static str) {
        match (self, method) {
            (Route::Disks { .. }, _) => ("disks.listByResourceGroup", "disk.list"),
            (Route::Disk { .. }, "GET") => ("disks.get", "disk.get"),
            (Route::Disk { .. }, "PUT") => ("disks.createOrUpdate", "disk.create"),
            (Route::Disk { .. }, "PATCH") => ("disks.update", "disk.update"),
            (Route::Disk { .. }, "DELETE") => ("disks.delete", "disk.delete"),
            (Route::Snapshots { .. }, _) => ("snapshots.listByResourceGroup", "snapshot.list"),
            (Route::Snapshot { .. }, "GET") => ("snapshots.get", "snapshot.get"),
            (Route::Snapshot { .. }, "PUT") => ("snapshots.createOrUpdate", "snapshot.create"),
            (Route::Snapshot { .. }, "PATCH") => ("snapshots.update", "snapshot.update"),
            (Route::Snapshot { .. }, "DELETE") => ("snapshots.delete", "snapshot.delete"),
            (Route::Vms { .. }, _) => ("virtualMachines.list", "vm.list"),
            (Route::Vm { .. }, "GET") => ("virtualMachines.get", "vm.get"),
            (Route::Vm { .. }, "PUT") => ("virtualMachines.createOrUpdate", "vm.update"),
            (Route::Vm { .. }, "PATCH") => ("virtualMachines.update", "vm.update"),
            (Route::Vm { .. }, "DELETE") => ("virtualMachines.delete", "vm.delete"),
            (Route::VmInstanceView { .. }, _) => {
                ("virtualMachines.instanceView", "vm.instanceView")
            }
            (Route::VmAction { action, .. }, _) => match action.to_ascii_lowercase().as_str() {
                "deallocate" => ("virtualMachines.deallocate", "vm.deallocate"),
                "start" => ("virtualMachines.start", "vm.start"),
                "poweroff" => ("virtualMachines.powerOff", "vm.powerOff"),
                "restart" => ("virtualMachines.restart", "vm.restart"),
                "attachdetachdatadisks" => {
                    ("virtualMachines.attachDetachDataDisks", "vm.attachDetach")
                }
                "runcommand" => ("virtualMachines.runCommand", "vm.runCommand"),
                "retrievebootdiagnosticsdata" => (
                    "virtualMachines.retrieveBootDiagnosticsData",
                    "vm.bootDiagnostics",
                ),
                _ => ("virtualMachines.unknownAction", "vm.unknown"),
            },
            (Route::VmRunCommands { .. }, _) => (
                "virtualMachineRunCommands.listByVirtualMachine",
                "runCommand.list",
            ),
            (Route::VmRunCommand { .. }, "GET") => (
                "virtualMachineRunCommands.getByVirtualMachine",
                "runCommand.get",
            ),
            (Route::VmRunCommand { .. }, "PUT") => {
                ("virtualMachineRunCommands.createOrUpdate", "runCommand.put")
            }
            (Route::VmRunCommand { .. }, "DELETE") => {
                ("virtualMachineRunCommands.delete", "runCommand.delete")
            }
            (Route::Operation { .. }, _) => ("operations.get", "operation.get"),
            (Route::SerialLog { .. }, _) => ("bootDiagnostics.serialLog", "vm.serialLog"),
            _ => ("unsupported", "unsupported"),
        }
    }

    /// The `x-ms-ratelimit-remaining-resource` bucket family Azure reports for this call.
    pub fn rate_bucket(&self, method: &str) -> &'static str {
        match (self, method) {
            (Route::Operation { .. }, _) => "GetOperationStatus",
            (_, "GET") => "LowCostGet",
            (Route::Snapshot { .. }, _) => "HighCostSnapshotCreateHydrate",
            (Route::Disk { .. }, _) => "CreateUpdateDisks",
            (Route::Vm { .. }, "DELETE") => "DeleteVM",
            (Route::Vm { .. }, _) => "PutVM",
            _ => "UpdateVM",
        }
    }
}

/// ARM's answer to a missing or wrong api-version.
pub fn check_api_version(given: Option<&str>, wanted: &str) -> Result<(), ArmError> {
    match given {
        None => Err(ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if v == wanted => Ok(()),
        Some(v) => Err(ArmError::bad_request(
            "InvalidApiVersionParameter",
            format!("The api-version '{v}' is invalid. The supported versions are '{wanted}'."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arm_paths_case_insensitively() {
        let (r, sub) = parse("/subscriptions/s/resourcegroups/RG/providers/microsoft.compute/virtualMachines/vm1/runCommand").unwrap();
        assert_eq!(sub.as_deref(), Some("s"));
        assert_eq!(
            r,
            Route::VmAction {
                rg: "RG".into(),
                name: "vm1".into(),
                action: "runCommand".into()
            }
        );
        assert_eq!(r.operation("POST").0, "virtualMachines.runCommand");
        let (r, _) = parse(
            "/subscriptions/s/providers/Microsoft.Compute/locations/westeurope/DiskOperations/abc",
        )
        .unwrap();
        assert_eq!(
            r,
            Route::Operation {
                id: "abc".into(),
                family: Family::Disk
            }
        );
        assert_eq!(
            parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/x/y")
                .unwrap_err()
                .status,
            404
        );
    }
}
