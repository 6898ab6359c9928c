//! ARM resource ids and the deterministic names of what rescue creates.

use std::fmt;

use super::error::{Error, Kind as ErrorKind};

/// The kinds of compute resources rescue works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    VirtualMachine,
    Disk,
    Snapshot,
}

impl Kind {
    pub fn segment(self) -> &'static str {
        match self {
            Kind::VirtualMachine => "virtualMachines",
            Kind::Disk => "disks",
            Kind::Snapshot => "snapshots",
        }
    }

    /// The api-version azure_mgmt_compute 0.21 uses for this kind.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::VirtualMachine => "2024-07-01",
            Kind::Disk | Kind::Snapshot => "2024-03-02",
        }
    }

    /// The word used in journals and messages ("disk", "snapshot", "vm").
    pub fn noun(self) -> &'static str {
        match self {
            Kind::VirtualMachine => "vm",
            Kind::Disk => "disk",
            Kind::Snapshot => "snapshot",
        }
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

    /// Parse an ARM id (case-insensitive segment names, as ARM itself treats them).
    pub fn parse(id: &str) -> Result<Self, Error> {
        let bad = || {
            Error::new(
                ErrorKind::Invalid,
                "read a resource id",
                format!(
                    "`{id}` is not a Microsoft.Compute disk, snapshot or VM id (expected \
                 /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/disks/NAME)"
                ),
            )
        };
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        if parts.len() != 8
            || !parts[0].eq_ignore_ascii_case("subscriptions")
            || !parts[2].eq_ignore_ascii_case("resourceGroups")
            || !parts[4].eq_ignore_ascii_case("providers")
            || !parts[5].eq_ignore_ascii_case("Microsoft.Compute")
        {
            return Err(bad());
        }
        let kind = [Kind::VirtualMachine, Kind::Disk, Kind::Snapshot]
            .into_iter()
            .find(|k| k.segment().eq_ignore_ascii_case(parts[6]))
            .ok_or_else(bad)?;
        Ok(Self::new(parts[1], parts[3], kind, parts[7]))
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
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/{}/{}",
            self.subscription,
            self.resource_group,
            self.kind.segment(),
            self.name
        )
    }
}

/// Azure's limit for disk and snapshot names.
const MAX_NAME: usize = 80;

/// A deterministic name for what a run creates: `{source}-{suffix}-{run_id}`, characters outside
/// `[A-Za-z0-9_.-]` replaced, the source truncated (never the run id) to fit 80 characters.
pub fn derived_name(source: &str, suffix: &str, run_id: &str) -> String {
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
    let room = MAX_NAME.saturating_sub(tail.len());
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
