//! ARM resource ids and the deterministic names of what rescue creates.

use std::fmt;

use super::error::{Error, Kind as ErrorKind};

/// The kinds of resources rescue works with: compute (the repair) and network (a rescue VM's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    VirtualMachine,
    Disk,
    Snapshot,
    NetworkInterface,
    NetworkSecurityGroup,
    VirtualNetwork,
    /// A VNet's child: its name is `VNET/subnets/SUBNET`, so the id prints as ARM's.
    Subnet,
    /// An AKS cluster (`Microsoft.ContainerService/managedClusters`).
    ManagedCluster,
    /// A cluster's node pool: its name is `CLUSTER/agentPools/POOL`.
    AgentPool,
    /// A Uniform scale set's instance (an AKS node): its name is `VMSS/virtualMachines/ID`.
    ScaleSetVm,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::VirtualMachine,
        Kind::Disk,
        Kind::Snapshot,
        Kind::NetworkInterface,
        Kind::NetworkSecurityGroup,
        Kind::VirtualNetwork,
        Kind::Subnet,
        Kind::ManagedCluster,
        Kind::AgentPool,
        Kind::ScaleSetVm,
    ];

    /// A child kind's segment between its parent's name and its own (`VNET/subnets/SUBNET`).
    fn child_segment(self) -> Option<&'static str> {
        match self {
            Kind::Subnet => Some("subnets"),
            Kind::AgentPool => Some("agentPools"),
            Kind::ScaleSetVm => Some("virtualMachines"),
            _ => None,
        }
    }

    pub fn segment(self) -> &'static str {
        match self {
            Kind::VirtualMachine => "virtualMachines",
            Kind::Disk => "disks",
            Kind::Snapshot => "snapshots",
            Kind::NetworkInterface => "networkInterfaces",
            Kind::NetworkSecurityGroup => "networkSecurityGroups",
            Kind::VirtualNetwork | Kind::Subnet => "virtualNetworks",
            Kind::ManagedCluster | Kind::AgentPool => "managedClusters",
            Kind::ScaleSetVm => "virtualMachineScaleSets",
        }
    }

    pub fn provider(self) -> &'static str {
        if self.is_network() {
            "Microsoft.Network"
        } else if self.is_container_service() {
            "Microsoft.ContainerService"
        } else {
            "Microsoft.Compute"
        }
    }

    pub fn is_network(self) -> bool {
        matches!(
            self,
            Kind::NetworkInterface
                | Kind::NetworkSecurityGroup
                | Kind::VirtualNetwork
                | Kind::Subnet
        )
    }

    pub fn is_container_service(self) -> bool {
        matches!(self, Kind::ManagedCluster | Kind::AgentPool)
    }

    /// Read and written as typed REST on azure_core's pipeline rather than through
    /// azure_mgmt_compute (see `network` and `aks`).
    pub fn is_rest(self) -> bool {
        self.is_network() || self.is_container_service()
    }

    /// The api-version rescue sends for this kind: azure_mgmt_compute 0.21's for compute, and
    /// for network the same family's (azure_mgmt_network 0.21, default tag package-2024-03).
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::VirtualMachine | Kind::ScaleSetVm => "2024-07-01",
            Kind::Disk | Kind::Snapshot => "2024-03-02",
            // A stable version of the containerservice spec (aks/stable/2025-10-01) with
            // agentPools `deleteMachines` and `listClusterAdminCredential`, both stable since
            // 2024 (hashicorp/go-azure-sdk containerservice/2024-09-01 has them too).
            Kind::ManagedCluster | Kind::AgentPool => "2025-10-01",
            _ => "2024-03-01",
        }
    }

    /// The word used in journals and messages ("disk", "snapshot", "vm", "nic", ...).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::VirtualMachine => "vm",
            Kind::Disk => "disk",
            Kind::Snapshot => "snapshot",
            Kind::NetworkInterface => "nic",
            Kind::NetworkSecurityGroup => "nsg",
            Kind::VirtualNetwork => "vnet",
            Kind::Subnet => "subnet",
            Kind::ManagedCluster => "cluster",
            Kind::AgentPool => "node pool",
            Kind::ScaleSetVm => "instance",
        }
    }

    /// The kind a journal's noun names.
    pub fn from_noun(noun: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.noun() == noun)
    }
}

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceId {
    pub subscription: String,
    pub resource_group: String,
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(subscription: &str, resource_group: &str, kind: Kind, name: &str) -> Self {
        Self {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            kind,
            name: name.into(),
        }
    }

    /// The subnet `name` of the VNet `vnet`.
    pub fn subnet(vnet: &ResourceId, name: &str) -> Self {
        Self::new(
            &vnet.subscription,
            &vnet.resource_group,
            Kind::Subnet,
            &format!("{}/subnets/{name}", vnet.name),
        )
    }

    /// Parse an ARM id (case-insensitive segment names, as ARM itself treats them).
    pub fn parse(id: &str) -> Result<Self, Error> {
        let bad = || {
            Error::new(
                ErrorKind::Invalid,
                "read a resource id",
                format!(
                    "`{id}` is not a disk, snapshot, VM, NIC, NSG, VNet, subnet, AKS cluster, node \
                 pool or scale-set instance id (expected \
                 /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/disks/NAME)"
                ),
            )
        };
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        let is = |i: usize, s: &str| parts.get(i).is_some_and(|p| p.eq_ignore_ascii_case(s));
        if !(parts.len() == 8 || parts.len() == 10)
            || !is(0, "subscriptions")
            || !is(2, "resourceGroups")
            || !is(4, "providers")
            || parts.iter().any(|p| p.is_empty())
        {
            return Err(bad());
        }
        let of = |k: &Kind| is(5, k.provider()) && is(6, k.segment());
        let kind = match parts.len() {
            8 => Kind::ALL
                .into_iter()
                .find(|k| k.child_segment().is_none() && of(k)),
            _ => Kind::ALL
                .into_iter()
                .find(|k| k.child_segment().is_some_and(|c| is(8, c)) && of(k)),
        }
        .ok_or_else(bad)?;
        Ok(match kind.child_segment() {
            None => Self::new(parts[1], parts[3], kind, parts[7]),
            Some(c) => Self::new(
                parts[1],
                parts[3],
                kind,
                &format!("{}/{c}/{}", parts[7], parts[9]),
            ),
        })
    }

    /// The resource type as ARM writes it (`Microsoft.Compute/virtualMachineScaleSets/virtualMachines`).
    pub fn resource_type(&self) -> String {
        let base = format!("{}/{}", self.kind.provider(), self.kind.segment());
        match self.kind.child_segment() {
            Some(c) => format!("{base}/{c}"),
            None => base,
        }
    }

    /// The name a person knows it by: a child's own name, and an instance's as Azure names it
    /// (`VMSS_ID`).
    pub fn display_name(&self) -> String {
        match (self.kind, self.parent_and_child()) {
            (Kind::ScaleSetVm, Some((set, id))) => format!("{set}_{id}"),
            (_, Some((_, child))) => child.to_string(),
            _ => self.name.clone(),
        }
    }

    /// A child's parent name and own name (`VNET`, `SUBNET`).
    pub fn parent_and_child(&self) -> Option<(&str, &str)> {
        let c = self.kind.child_segment()?;
        self.name.split_once(&format!("/{c}/"))
    }

    /// A subnet's VNet.
    pub fn vnet(&self) -> Option<ResourceId> {
        let (vnet, _) = self.parent_and_child()?;
        (self.kind == Kind::Subnet).then(|| {
            ResourceId::new(
                &self.subscription,
                &self.resource_group,
                Kind::VirtualNetwork,
                vnet,
            )
        })
    }

    pub fn same_as(&self, other: &str) -> bool {
        self.to_string()
            .eq_ignore_ascii_case(other.trim_end_matches('/'))
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/{}/{}/{}",
            self.subscription,
            self.resource_group,
            self.kind.provider(),
            self.kind.segment(),
            self.name
        )
    }
}

/// Azure's limit for disk, snapshot, NIC and NSG names.
const MAX_NAME: usize = 80;

/// A deterministic name for what a run creates: `{source}-{suffix}-{run_id}`, characters outside
/// `[A-Za-z0-9_.-]` replaced, the source truncated (never the run id) to fit 80 characters.
pub fn derived_name(source: &str, suffix: &str, run_id: &str) -> String {
    derived_name_within(source, suffix, run_id, MAX_NAME)
}

/// [`derived_name`] for a kind with a shorter limit (a Linux VM's name: 64 characters).
pub fn derived_name_within(source: &str, suffix: &str, run_id: &str, max: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    let tail = format!("-{}-{}", clean(suffix), clean(run_id));
    let room = max.saturating_sub(tail.len());
    let mut head: String = clean(source).chars().take(room).collect();
    // A name must not end with '.' or '-' before the tail joins it: keep it tidy.
    while head.ends_with(['.', '-']) {
        head.pop();
    }
    format!("{head}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_ids() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d1";
        let parsed = ResourceId::parse(id).unwrap();
        assert_eq!(parsed.kind, Kind::Disk);
        assert_eq!(parsed.to_string(), id);
        assert!(ResourceId::parse("/subscriptions/s/resourceGroups/rg").is_err());
        let subnet =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/default";
        let parsed = ResourceId::parse(subnet).unwrap();
        assert_eq!(parsed.kind, Kind::Subnet);
        assert_eq!(parsed.to_string(), subnet);
        assert_eq!(parsed.vnet().unwrap().name, "v");
        let nic =
            "/subscriptions/s/resourceGroups/rg/providers/microsoft.network/networkinterfaces/n";
        assert_eq!(ResourceId::parse(nic).unwrap().kind, Kind::NetworkInterface);
        assert!(ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/networkInterfaces/n"
        )
        .is_err());
    }

    #[test]
    fn derived_names_keep_the_run_id_and_fit_80_chars() {
        let long = "aks-nodepool1-31415926-vm2_OsDisk_1_0123456789abcdef0123456789abcdef0123456789";
        let name = derived_name(long, "snap", "20261126-164500-ab12");
        assert!(name.len() <= 80, "{name}");
        assert!(name.ends_with("-snap-20261126-164500-ab12"), "{name}");
        assert_eq!(derived_name("a b/c", "fix", "r1"), "a-b-c-fix-r1");
        assert_eq!(name, derived_name(long, "snap", "20261126-164500-ab12"));
    }
}
