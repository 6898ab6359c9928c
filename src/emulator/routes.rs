//! ARM paths → routes, with the SDK operation name each one is (for the request log and fault
//! rules) and the api-versions Azure accepts for it.

use super::arm::ArmError;
use super::operations::Family;
use super::resources::network::NetKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `rg: None`: the subscription-wide list.
    Disks {
        rg: Option<String>,
    },
    Disk {
        rg: String,
        name: String,
    },
    Snapshots {
        rg: Option<String>,
    },
    Snapshot {
        rg: String,
        name: String,
    },
    Vms {
        rg: Option<String>,
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
    /// AKS's Location URL of an operation (`.../Microsoft.ContainerService/locations/{loc}/operationresults/{id}`).
    OperationResult {
        id: String,
    },
    /// AKS managed clusters (`rg: None`: the subscription's).
    Clusters {
        rg: Option<String>,
    },
    Cluster {
        rg: String,
        name: String,
    },
    /// `.../managedClusters/{c}/agentPools[/{pool}[/{action}]]` (the action: deleteMachines).
    AgentPools {
        rg: String,
        cluster: String,
    },
    AgentPool {
        rg: String,
        cluster: String,
        pool: String,
        action: Option<String>,
    },
    /// Virtual machine scale sets (`rg: None`: the subscription's).
    ScaleSets {
        rg: Option<String>,
    },
    ScaleSet {
        rg: String,
        name: String,
    },
    /// A scale-set-wide action (`powerOff`, `start`, ... with `instanceIds`).
    ScaleSetAction {
        rg: String,
        name: String,
        action: String,
    },
    /// `.../virtualMachineScaleSets/{ss}/virtualMachines[/{id}[/instanceView|/{action}]]`.
    ScaleSetVms {
        rg: String,
        scale_set: String,
    },
    ScaleSetVm {
        rg: String,
        scale_set: String,
        id: String,
        /// `instanceView`, or an action (powerOff, start, deallocate, restart).
        action: Option<String>,
    },
    /// A boot diagnostics blob (a SAS-style URL, no bearer token): `{vmId}/{blob name}`.
    SerialLog {
        blob: String,
    },
    /// `/metadata/endpoints`: the cloud's endpoints, served without a token.
    Metadata,
    /// `/tenants`.
    Tenants,
    /// `/subscriptions`.
    Subscriptions,
    Subscription,
    /// `/subscriptions/{sub}/locations`.
    Locations,
    ResourceGroups,
    ResourceGroup {
        rg: String,
    },
    /// `/subscriptions/{sub}/resourceGroups/{rg}/resources`: every resource of the group.
    GroupResources {
        rg: String,
    },
    /// A VNet, NIC or NSG (`name: None`: the group's list of that type).
    Network {
        rg: String,
        kind: NetKind,
        name: Option<String>,
    },
    /// `.../virtualNetworks/{vnet}/subnets[/{name}]`.
    Subnet {
        rg: String,
        vnet: String,
        name: Option<String>,
    },
    /// `.../resourceGroups/{rg}/providers/Microsoft.Authorization/permissions`: what the caller
    /// may do there.
    Permissions {
        rg: String,
    },
    /// `.../Microsoft.ContainerService/managedClusters/{cluster}/listClusterAdminCredential`.
    ClusterAdminCredential {
        rg: String,
        cluster: String,
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
    match s.len() {
        2 if is(0, "metadata") && is(1, "endpoints") => return Ok((Route::Metadata, None)),
        1 if is(0, "tenants") => return Ok((Route::Tenants, None)),
        1 if is(0, "subscriptions") => return Ok((Route::Subscriptions, None)),
        _ => {}
    }
    if s.len() < 2 || !is(0, "subscriptions") {
        return Err(unknown(path));
    }
    let sub = Some(s[1].to_string());
    match s.len() {
        2 => return Ok((Route::Subscription, sub)),
        3 if is(2, "locations") => return Ok((Route::Locations, sub)),
        3 if is(2, "resourceGroups") => return Ok((Route::ResourceGroups, sub)),
        4 if is(2, "resourceGroups") => {
            let rg = s[3].to_string();
            return Ok((Route::ResourceGroup { rg }, sub));
        }
        5 if is(2, "resourceGroups") && is(4, "resources") => {
            let rg = s[3].to_string();
            return Ok((Route::GroupResources { rg }, sub));
        }
        7 if is(2, "resourceGroups")
            && is(4, "providers")
            && is(5, "Microsoft.Authorization")
            && is(6, "permissions") =>
        {
            let rg = s[3].to_string();
            return Ok((Route::Permissions { rg }, sub));
        }
        // /subscriptions/{sub}/providers/Microsoft.Compute/{disks|snapshots|virtualMachines}
        5 if is(2, "providers") && is(3, "Microsoft.Compute") => {
            let route = match s[4].to_ascii_lowercase().as_str() {
                "disks" => Route::Disks { rg: None },
                "snapshots" => Route::Snapshots { rg: None },
                "virtualmachines" => Route::Vms { rg: None },
                "virtualmachinescalesets" => Route::ScaleSets { rg: None },
                _ => return Err(unknown(path)),
            };
            return Ok((route, sub));
        }
        5 if is(2, "providers")
            && is(3, "Microsoft.ContainerService")
            && is(4, "managedClusters") =>
        {
            return Ok((Route::Clusters { rg: None }, sub));
        }
        _ => {}
    }
    // /subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/operations/{id}
    if s.len() == 8
        && is(2, "providers")
        && is(3, "Microsoft.Network")
        && is(4, "locations")
        && is(6, "operations")
    {
        let id = s[7].to_string();
        let family = Family::Network;
        return Ok((Route::Operation { id, family }, sub));
    }
    if s.len() >= 7 && is(2, "resourceGroups") && is(4, "providers") && is(5, "Microsoft.Network") {
        let rg = s[3].to_string();
        let kind = NetKind::from_segment(s[6]).ok_or_else(|| unknown_network(path))?;
        let route = match (kind, s.len()) {
            (_, 7) | (_, 8) => Route::Network {
                rg,
                kind,
                name: s.get(7).map(|n| n.to_string()),
            },
            (NetKind::VirtualNetwork, 9 | 10) if is(8, "subnets") => Route::Subnet {
                rg,
                vnet: s[7].to_string(),
                name: s.get(9).map(|n| n.to_string()),
            },
            _ => return Err(unknown_network(path)),
        };
        return Ok((route, sub));
    }
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
    if s.len() == 9
        && is(2, "resourceGroups")
        && is(4, "providers")
        && is(5, "Microsoft.ContainerService")
        && is(6, "managedClusters")
        && is(8, "listClusterAdminCredential")
    {
        let (rg, cluster) = (s[3].to_string(), s[7].to_string());
        return Ok((Route::ClusterAdminCredential { rg, cluster }, sub));
    }
    if is(2, "providers") && is(3, "Microsoft.ContainerService") {
        return match s.len() {
            8 if is(4, "locations") && is(6, "operations") => Ok((
                Route::Operation {
                    id: s[7].to_string(),
                    family: Family::ContainerService,
                },
                sub,
            )),
            8 if is(4, "locations") && is(6, "operationresults") => Ok((
                Route::OperationResult {
                    id: s[7].to_string(),
                },
                sub,
            )),
            _ => Err(unknown_aks(path)),
        };
    }
    if s.len() >= 7
        && is(2, "resourceGroups")
        && is(4, "providers")
        && is(5, "Microsoft.ContainerService")
    {
        let rg = s[3].to_string();
        if !is(6, "managedClusters") {
            return Err(unknown_aks(path));
        }
        let at = |i: usize| s[i].to_string();
        let route = match s.len() {
            7 => Route::Clusters { rg: Some(rg) },
            8 => Route::Cluster { rg, name: at(7) },
            9 if is(8, "agentPools") => Route::AgentPools { rg, cluster: at(7) },
            10 | 11 if is(8, "agentPools") => Route::AgentPool {
                rg,
                cluster: at(7),
                pool: at(9),
                action: s.get(10).map(|a| a.to_string()),
            },
            _ => return Err(unknown_aks(path)),
        };
        return Ok((route, sub));
    }
    if s.len() < 7 || !is(2, "resourceGroups") || !is(4, "providers") || !is(5, "Microsoft.Compute")
    {
        return Err(unknown(path));
    }
    if is(6, "virtualMachineScaleSets") {
        let rg = s[3].to_string();
        let at = |i: usize| s[i].to_string();
        let route = match s.len() {
            7 => Route::ScaleSets { rg: Some(rg) },
            8 => Route::ScaleSet { rg, name: at(7) },
            9 if is(8, "virtualMachines") => Route::ScaleSetVms {
                rg,
                scale_set: at(7),
            },
            9 => Route::ScaleSetAction {
                rg,
                name: at(7),
                action: at(8),
            },
            10 | 11 if is(8, "virtualMachines") => Route::ScaleSetVm {
                rg,
                scale_set: at(7),
                id: at(9),
                action: s.get(10).map(|a| a.to_string()),
            },
            _ => return Err(unknown(path)),
        };
        return Ok((route, sub));
    }
    let rg = s[3].to_string();
    let name = s.get(7).map(|n| n.to_string());
    let route = match (s[6].to_ascii_lowercase().as_str(), s.len()) {
        ("disks", 7) => Route::Disks { rg: Some(rg) },
        ("disks", 8) => Route::Disk {
            rg,
            name: name.unwrap(),
        },
        ("snapshots", 7) => Route::Snapshots { rg: Some(rg) },
        ("snapshots", 8) => Route::Snapshot {
            rg,
            name: name.unwrap(),
        },
        ("virtualmachines", 7) => Route::Vms { rg: Some(rg) },
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

fn unknown_network(path: &str) -> ArmError {
    ArmError::new(
        404,
        "InvalidResourceType",
        format!("The resource type for '{path}' could not be found in the namespace 'Microsoft.Network'."),
    )
}

fn unknown_aks(path: &str) -> ArmError {
    ArmError::new(
        404,
        "InvalidResourceType",
        format!("The resource type for '{path}' could not be found in the namespace 'Microsoft.ContainerService'."),
    )
}

fn unknown(path: &str) -> ArmError {
    ArmError::new(
        404,
        "InvalidResourceType",
        format!("The resource type for '{path}' could not be found in the namespace 'Microsoft.Compute'."),
    )
}

impl Route {
    /// The api-versions Azure accepts here (`None`: not checked).
    pub fn api(&self) -> Option<Api> {
        match self {
            Route::Disks { .. }
            | Route::Disk { .. }
            | Route::Snapshots { .. }
            | Route::Snapshot { .. }
            | Route::Operation {
                family: Family::Disk,
                ..
            } => Some(Api::Disk),
            Route::Vms { .. }
            | Route::Vm { .. }
            | Route::VmInstanceView { .. }
            | Route::VmAction { .. }
            | Route::VmRunCommands { .. }
            | Route::VmRunCommand { .. }
            | Route::ScaleSets { .. }
            | Route::ScaleSet { .. }
            | Route::ScaleSetAction { .. }
            | Route::ScaleSetVms { .. }
            | Route::ScaleSetVm { .. }
            | Route::Operation {
                family: Family::Compute,
                ..
            } => Some(Api::Compute),
            Route::Clusters { .. }
            | Route::Cluster { .. }
            | Route::ClusterAdminCredential { .. }
            | Route::AgentPools { .. }
            | Route::AgentPool { .. }
            | Route::OperationResult { .. }
            | Route::Operation {
                family: Family::ContainerService,
                ..
            } => Some(Api::ContainerService),
            Route::ResourceGroups | Route::ResourceGroup { .. } | Route::GroupResources { .. } => {
                Some(Api::Resources)
            }
            Route::Network { .. }
            | Route::Subnet { .. }
            | Route::Operation {
                family: Family::Network,
                ..
            } => Some(Api::Network),
            Route::Subscriptions | Route::Subscription | Route::Locations | Route::Tenants => {
                Some(Api::Subscriptions)
            }
            Route::Metadata => Some(Api::Metadata),
            Route::Permissions { .. } => Some(Api::Authorization),
            Route::SerialLog { .. } => None,
        }
    }

    /// (SDK operation name, short alias) for the request log and fault rules.
    pub fn operation(&self, method: &str) -> (&'static str, &'static str) {
        match (self, method) {
            (Route::Disks { rg: None }, _) => ("disks.list", "disk.list"),
            (Route::Disks { .. }, _) => ("disks.listByResourceGroup", "disk.list"),
            (Route::Disk { .. }, "GET") => ("disks.get", "disk.get"),
            (Route::Disk { .. }, "PUT") => ("disks.createOrUpdate", "disk.create"),
            (Route::Disk { .. }, "PATCH") => ("disks.update", "disk.update"),
            (Route::Disk { .. }, "DELETE") => ("disks.delete", "disk.delete"),
            (Route::Snapshots { rg: None }, _) => ("snapshots.list", "snapshot.list"),
            (Route::Snapshots { .. }, _) => ("snapshots.listByResourceGroup", "snapshot.list"),
            (Route::Snapshot { .. }, "GET") => ("snapshots.get", "snapshot.get"),
            (Route::Snapshot { .. }, "PUT") => ("snapshots.createOrUpdate", "snapshot.create"),
            (Route::Snapshot { .. }, "PATCH") => ("snapshots.update", "snapshot.update"),
            (Route::Snapshot { .. }, "DELETE") => ("snapshots.delete", "snapshot.delete"),
            (Route::Vms { rg: None }, _) => ("virtualMachines.listAll", "vm.list"),
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
            (Route::OperationResult { .. }, _) => ("operationResults.get", "operation.result"),
            (Route::Clusters { rg: None }, _) => ("managedClusters.list", "aks.list"),
            (Route::Clusters { .. }, _) => ("managedClusters.listByResourceGroup", "aks.list"),
            (Route::Cluster { .. }, _) => ("managedClusters.get", "aks.get"),
            (Route::AgentPools { .. }, _) => ("agentPools.list", "pool.list"),
            (
                Route::AgentPool {
                    action: Some(_), ..
                },
                _,
            ) => ("agentPools.deleteMachines", "pool.deleteMachines"),
            (Route::AgentPool { .. }, "PUT") => ("agentPools.createOrUpdate", "pool.update"),
            (Route::AgentPool { .. }, _) => ("agentPools.get", "pool.get"),
            (Route::ScaleSets { rg: None }, _) => ("virtualMachineScaleSets.listAll", "vmss.list"),
            (Route::ScaleSets { .. }, _) => ("virtualMachineScaleSets.list", "vmss.list"),
            (Route::ScaleSet { .. }, _) => ("virtualMachineScaleSets.get", "vmss.get"),
            (Route::ScaleSetAction { action, .. }, _) => match action.to_ascii_lowercase().as_str()
            {
                "poweroff" => ("virtualMachineScaleSets.powerOff", "vmss.powerOff"),
                "start" => ("virtualMachineScaleSets.start", "vmss.start"),
                "deallocate" => ("virtualMachineScaleSets.deallocate", "vmss.deallocate"),
                "restart" => ("virtualMachineScaleSets.restart", "vmss.restart"),
                _ => ("virtualMachineScaleSets.unknownAction", "vmss.unknown"),
            },
            (Route::ScaleSetVms { .. }, _) => ("virtualMachineScaleSetVMs.list", "vmssvm.list"),
            (Route::ScaleSetVm { action: None, .. }, "GET") => {
                ("virtualMachineScaleSetVMs.get", "vmssvm.get")
            }
            (Route::ScaleSetVm { action: None, .. }, _) => {
                ("virtualMachineScaleSetVMs.update", "vmssvm.update")
            }
            (
                Route::ScaleSetVm {
                    action: Some(action),
                    ..
                },
                _,
            ) => match action.to_ascii_lowercase().as_str() {
                "instanceview" => (
                    "virtualMachineScaleSetVMs.getInstanceView",
                    "vmssvm.instanceView",
                ),
                "poweroff" => ("virtualMachineScaleSetVMs.powerOff", "vmssvm.powerOff"),
                "start" => ("virtualMachineScaleSetVMs.start", "vmssvm.start"),
                "deallocate" => ("virtualMachineScaleSetVMs.deallocate", "vmssvm.deallocate"),
                "restart" => ("virtualMachineScaleSetVMs.restart", "vmssvm.restart"),
                _ => ("virtualMachineScaleSetVMs.unknownAction", "vmssvm.unknown"),
            },
            (Route::SerialLog { .. }, _) => ("bootDiagnostics.serialLog", "vm.serialLog"),
            (Route::Metadata, _) => ("metadata.endpoints", "metadata"),
            (Route::Tenants, _) => ("tenants.list", "tenant.list"),
            (Route::Subscriptions, _) => ("subscriptions.list", "subscription.list"),
            (Route::Subscription, _) => ("subscriptions.get", "subscription.get"),
            (Route::Locations, _) => ("subscriptions.listLocations", "subscription.locations"),
            (Route::ResourceGroups, _) => ("resourceGroups.list", "group.list"),
            (Route::ResourceGroup { .. }, "PUT") => {
                ("resourceGroups.createOrUpdate", "group.create")
            }
            (Route::ResourceGroup { .. }, "HEAD") => {
                ("resourceGroups.checkExistence", "group.exists")
            }
            (Route::ResourceGroup { .. }, _) => ("resourceGroups.get", "group.get"),
            (Route::GroupResources { .. }, _) => ("resources.listByResourceGroup", "resource.list"),
            (Route::Network { kind, name, .. }, m) => network_operation(*kind, name.is_none(), m),
            (Route::Subnet { name, .. }, m) => {
                network_operation(NetKind::Subnet, name.is_none(), m)
            }
            (Route::Permissions { .. }, _) => {
                ("permissions.listForResourceGroup", "permissions.list")
            }
            (Route::ClusterAdminCredential { .. }, _) => (
                "managedClusters.listClusterAdminCredentials",
                "aks.adminCredential",
            ),
            _ => ("unsupported", "unsupported"),
        }
    }

    /// Whether Azure reports Microsoft.Compute's `x-ms-ratelimit-remaining-resource` buckets here
    /// (the Network RP and ARM's own types count subscription reads and writes instead).
    pub fn compute_rates(&self) -> bool {
        !matches!(
            self,
            Route::Network { .. }
                | Route::Subnet { .. }
                | Route::GroupResources { .. }
                | Route::ClusterAdminCredential { .. }
                | Route::Clusters { .. }
                | Route::Cluster { .. }
                | Route::AgentPools { .. }
                | Route::AgentPool { .. }
                | Route::OperationResult { .. }
                | Route::Operation {
                    family: Family::ContainerService,
                    ..
                }
                | Route::Operation {
                    family: Family::Network,
                    ..
                }
        )
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

/// The SDK's names (azure-mgmt-network's operation groups) of a network call.
fn network_operation(kind: NetKind, list: bool, method: &str) -> (&'static str, &'static str) {
    macro_rules! names {
        ($group:literal, $alias:literal) => {
            match (list, method) {
                (true, _) => (concat!($group, ".list"), concat!($alias, ".list")),
                (_, "PUT") => (
                    concat!($group, ".createOrUpdate"),
                    concat!($alias, ".create"),
                ),
                (_, "DELETE") => (concat!($group, ".delete"), concat!($alias, ".delete")),
                _ => (concat!($group, ".get"), concat!($alias, ".get")),
            }
        };
    }
    match kind {
        NetKind::VirtualNetwork => names!("virtualNetworks", "vnet"),
        NetKind::Subnet => names!("subnets", "subnet"),
        NetKind::NetworkInterface => names!("networkInterfaces", "nic"),
        NetKind::NetworkSecurityGroup => names!("networkSecurityGroups", "nsg"),
    }
}

/// Which api-version table a route is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Microsoft.Compute's disk RP: disks, snapshots, DiskOperations.
    Disk,
    /// Microsoft.Compute: virtualMachines (incl. runCommand and the other actions), operations.
    Compute,
    /// Microsoft.Resources: resource groups (served by ARM itself, not by a provider).
    Resources,
    /// ARM's subscriptions, locations and tenants.
    Subscriptions,
    /// ARM's cloud metadata.
    Metadata,
    /// Microsoft.Network: virtualNetworks (and subnets), networkInterfaces,
    /// networkSecurityGroups, and their operations.
    Network,
    /// Microsoft.Authorization: the caller's permissions.
    Authorization,
    /// Microsoft.ContainerService: managedClusters (and their admin credential), agentPools, and
    /// their operations.
    ContainerService,
}

/// The versions each client we are judged by sends, each with where it comes from. Found by
/// reading the clients and confirmed from the emulator's request log while they ran the repair
/// (`tests/conformance/`).
///
/// Shapes: the emulator answers every listed version alike. No difference between these versions
/// is known for the fields it serves or reads (both judges and azure_mgmt_compute 0.21
/// deserialize the same answers, `tests/it/conformance/`, `tests/it/emulator/client.rs`); newer
/// versions add optional properties and operations (e.g. attachDetachDataDisks) that clients of
/// older versions simply do not send.
const DISK_VERSIONS: &[(&str, &str)] = &[
    ("2023-04-02", "azure-cli 2.91.0 profile latest, disks (azure/cli/core/profiles/_shared.py)"),
    ("2023-10-02", "azure-cli 2.91.0 profile latest, snapshots (same table)"),
    ("2024-03-02", "azure_mgmt_compute 0.21, package-2024-07-01 (rescue itself)"),
    ("2025-01-02", "azure-cli 2.91.0 aaz disk / snapshot commands (command_modules/vm/aaz/latest/{disk,snapshot})"),
    ("2026-03-02", "azure-mgmt-compute 39.0.0, disks and snapshots operations (operations/_operations.py)"),
];

const COMPUTE_VERSIONS: &[(&str, &str)] = &[
    ("2022-11-01", "azure-cli 2.91.0 aaz vm start / restart (aaz/latest/vm/_start.py, _restart.py)"),
    ("2024-07-01", "azure_mgmt_compute 0.21, package-2024-07-01 (rescue itself)"),
    ("2024-11-01", "azure-cli 2.91.0 profile latest, compute (profiles/_shared.py); aaz vm run-command invoke, vm patch"),
    ("2025-11-01", "azure-cli 2.91.0 aaz vm deallocate (aaz/latest/vm/_deallocate.py)"),
    ("2026-04-01", "azure-cli 2.91.0 aaz vm show / update / list-all; azure-mgmt-compute 39.0.0 virtual_machines"),
];

const CONTAINER_SERVICE_VERSIONS: &[(&str, &str)] = &[
    ("2016-03-30", "AKS's Azure-AsyncOperation URLs as recorded (...locations/westus2/operations/{id}?api-version=2016-03-30, an AKS support walkthrough)"),
    ("2017-08-31", "AKS's operationresults Location URLs (azure-rest-api-specs containerservice aks/stable/2025-10-01/examples/AgentPoolsDeleteMachines.json)"),
    ("2023-05-01", "azure-rest-api-specs containerservice aks/stable/2023-05-01 (examples/ManagedClustersListClusterAdminCredentials.json)"),
    ("2025-09-01", "azure-rest-api-specs containerservice aks/stable/2025-09-01 (AgentPools_DeleteMachines present)"),
    ("2025-10-01", "azure-rest-api-specs containerservice aks/stable/2025-10-01"),
    ("2026-01-01", "azure-rest-api-specs containerservice aks/stable/2026-01-01"),
    ("2026-06-01", "azure-cli 2.91.0 az aks: azure-mgmt-containerservice 41.6.0's default (_configuration.py), profile latest leaves MGMT_CONTAINERSERVICE unpinned"),
];

const RESOURCES_VERSIONS: &[(&str, &str)] = &[
    ("2024-11-01", "azure-cli 2.91.0 profile latest, MGMT_RESOURCE_RESOURCES (az snapshot/disk create read the group's location; az resource list)"),
];

const NETWORK_VERSIONS: &[(&str, &str)] = &[
    ("2022-01-01", "azure-cli 2.91.0 profile latest, MGMT_NETWORK; aaz network nsg commands (command_modules/network/aaz/latest/network/nsg)"),
    ("2023-11-01", "azure-cli 2.91.0 aaz network nic commands (aaz/latest/network/nic)"),
    ("2024-03-01", "azure_mgmt_network 0.21 default tag package-2024-03 (rescue itself, src/azure/network.rs)"),
    ("2024-07-01", "azure-cli 2.91.0 aaz network vnet subnet commands (aaz/latest/network/vnet/subnet)"),
    ("2025-07-01", "azure-cli 2.91.0 aaz network vnet commands (aaz/latest/network/vnet)"),
];

const SUBSCRIPTIONS_VERSIONS: &[(&str, &str)] = &[(
    "2022-12-01",
    "azure-cli 2.91.0 profile latest, MGMT_RESOURCE_SUBSCRIPTIONS (az login lists subscriptions)",
)];

const AUTHORIZATION_VERSIONS: &[(&str, &str)] = &[(
    "2022-04-01",
    "azure-rest-api-specs Microsoft.Authorization stable/2022-04-01 (Permissions_ListForResourceGroup, examples/GetPermissions.json); rescue doctor",
)];

const METADATA_VERSIONS: &[(&str, &str)] = &[(
    "2022-09-01",
    "azure-cli 2.91.0 az cloud register (command_modules/cloud/custom.py METADATA_ENDPOINT_SUFFIX)",
)];

impl Api {
    pub fn versions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Api::Disk => DISK_VERSIONS,
            Api::Compute => COMPUTE_VERSIONS,
            Api::Resources => RESOURCES_VERSIONS,
            Api::Subscriptions => SUBSCRIPTIONS_VERSIONS,
            Api::Metadata => METADATA_VERSIONS,
            Api::Network => NETWORK_VERSIONS,
            Api::Authorization => AUTHORIZATION_VERSIONS,
            Api::ContainerService => CONTAINER_SERVICE_VERSIONS,
        }
    }
}

impl Route {
    /// The resource type ARM names in `NoRegisteredProviderFound`.
    fn type_name(&self) -> &'static str {
        match self {
            Route::Disks { .. } | Route::Disk { .. } => "disks",
            Route::Snapshots { .. } | Route::Snapshot { .. } => "snapshots",
            Route::Operation {
                family: Family::Disk,
                ..
            } => "locations/DiskOperations",
            Route::Operation { .. } => "locations/operations",
            Route::Network { kind, .. } => kind.segment(),
            Route::Subnet { .. } => "virtualNetworks/subnets",
            Route::OperationResult { .. } => "locations/operationresults",
            Route::Clusters { .. }
            | Route::Cluster { .. }
            | Route::ClusterAdminCredential { .. } => "managedClusters",
            Route::AgentPools { .. } | Route::AgentPool { .. } => "managedClusters/agentPools",
            Route::ScaleSets { .. } | Route::ScaleSet { .. } | Route::ScaleSetAction { .. } => {
                "virtualMachineScaleSets"
            }
            Route::ScaleSetVms { .. } | Route::ScaleSetVm { .. } => {
                "virtualMachineScaleSets/virtualMachines"
            }
            _ => "virtualMachines",
        }
    }
}

/// ARM's answer to a missing or unknown api-version.
///
/// - Missing: 400 `MissingApiVersionParameter` (ARM's common error, "Azure Resource Manager
///   error codes", learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors).
/// - Unknown, for a resource provider's type: 400 `NoRegisteredProviderFound` listing the
///   supported versions and locations (samples: pulumi/pulumi-azure-nextgen#170,
///   Azure/azure-cli#28496, Azure/azure-resource-manager-schemas#154).
/// - Unknown, for ARM's own types (resource groups, subscriptions): 400
///   `InvalidApiVersionParameter` listing the versions (samples: Azure/azure-rest-api-specs#11711,
///   Azure/azure-cli#28038).
pub fn check_api_version(
    route: &Route,
    given: Option<&str>,
    location: &str,
) -> Result<(), ArmError> {
    let Some(api) = route.api() else {
        return Ok(());
    };
    let Some(v) = given else {
        return Err(ArmError::bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    let versions = api.versions();
    if versions.iter().any(|(known, _)| *known == v) {
        return Ok(());
    }
    // ARM lists the newest first.
    let mut list: Vec<&str> = versions.iter().map(|(v, _)| *v).collect();
    list.reverse();
    Err(match api {
        Api::Disk | Api::Compute | Api::Network | Api::ContainerService => ArmError::bad_request(
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{location}' and API version '{v}' for type '{}'. \
                 The supported api-versions are '{}'. The supported locations are '{location}'.",
                route.type_name(),
                list.join(", ")
            ),
        ),
        _ => ArmError::bad_request(
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '{}'.",
                list.join(",")
            ),
        ),
    })
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
