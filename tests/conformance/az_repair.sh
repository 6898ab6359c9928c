#!/usr/bin/env bash
# The manual OS-disk swap with azure-cli, command for command as a user types it against Azure,
# run against `rescue emulator serve` (eval its export lines first). Only the configuration
# (az_common.sh) differs from real Azure.
# Usage: AZ=path/to/az az_repair.sh   (exits non-zero at the first step that goes wrong)
set -euo pipefail
RG=${RG:-MC_prod-rg_prod-aks_westeurope}
VM=${VM:-aks-nodepool1-31415926-vm2}
RESCUE=${RESCUE_VM:-rescue-vm}
# shellcheck source=tests/conformance/az_common.sh
. "$(dirname "$0")/az_common.sh"

# --- the procedure
step login
expect "signed in to the subscription" "$AZURE_SUBSCRIPTION_ID" \
  "$("$AZ" login --service-principal -u "$AZURE_CLIENT_ID" -p "$AZURE_CLIENT_SECRET" --tenant "$AZURE_TENANT_ID" --query '[0].id' -o tsv)"
step "vm show"
OS_DISK=$("$AZ" vm show -g "$RG" -n "$VM" --query storageProfile.osDisk.managedDisk.id -o tsv)
ZONE=$("$AZ" vm show -g "$RG" -n "$VM" --query 'zones[0]' -o tsv)
# A copy must keep the source's Hyper-V generation or the swap is refused; az does not carry it
# over by itself (Azure/azure-cli#27266; Microsoft's "Create a VM from a snapshot" sample).
GEN=$("$AZ" disk show --ids "$OS_DISK" --query hyperVGeneration -o tsv)
step "vm deallocate"
"$AZ" vm deallocate -g "$RG" -n "$VM"
expect "VM deallocated" "VM deallocated" \
  "$("$AZ" vm get-instance-view -g "$RG" -n "$VM" --query 'instanceView.statuses[1].displayStatus' -o tsv)"
step "snapshot create"
expect "snapshot created" Succeeded \
  "$("$AZ" snapshot create -g "$RG" -n vm2-os-snap --source "$OS_DISK" --hyper-v-generation "$GEN" --query provisioningState -o tsv)"
step "disk create --source"
expect "disk copied" Succeeded \
  "$("$AZ" disk create -g "$RG" -n vm2-os-fixed --source vm2-os-snap --zone "$ZONE" --hyper-v-generation "$GEN" --query provisioningState -o tsv)"
step "vm disk attach"
"$AZ" vm disk attach -g "$RG" --vm-name "$RESCUE" --name vm2-os-fixed -o none
LUN=$("$AZ" vm show -g "$RG" -n "$RESCUE" --query "storageProfile.dataDisks[?name=='vm2-os-fixed'].lun | [0]" -o tsv)
expect "copy attached at LUN 0" 0 "$LUN"
step "vm run-command invoke (fdisk -l, e2fsck -fy)"
OUT=$("$AZ" vm run-command invoke -g "$RG" -n "$RESCUE" --command-id RunShellScript \
  --scripts "fdisk -l" "e2fsck -fy /dev/disk/azure/scsi1/lun$LUN-part1; echo fsck-exit=\$?" \
  --query 'value[0].message' -o tsv)
printf '%s\n' "$OUT" | sed 's/^/  | /'
expect "fdisk shows the copy's partitions" yes "$(grep -q 'lun0-part1\|Linux filesystem' <<<"$OUT" && echo yes || echo no)"
expect "e2fsck corrected errors (exit 1)" yes "$(grep -q 'fsck-exit=1' <<<"$OUT" && echo yes || echo no)"
step "vm disk detach"
"$AZ" vm disk detach -g "$RG" --vm-name "$RESCUE" --name vm2-os-fixed -o none
expect "copy detached" Unattached "$("$AZ" disk show -g "$RG" -n vm2-os-fixed --query diskState -o tsv)"
step "vm update --os-disk"
expect "OS disk swapped" vm2-os-fixed \
  "$("$AZ" vm update -g "$RG" -n "$VM" --os-disk vm2-os-fixed --query storageProfile.osDisk.name -o tsv)"
step "vm start"
"$AZ" vm start -g "$RG" -n "$VM"
step "vm get-instance-view (until the agent reports, as after any start: the guest boots first)"
expect "VM agent Ready" Ready "$(await_value Ready \
  "$AZ" vm get-instance-view -g "$RG" -n "$VM" --query 'instanceView.vmAgent.statuses[0].displayStatus' -o tsv)"
echo "azure-cli repair: done"
