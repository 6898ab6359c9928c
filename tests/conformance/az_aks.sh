#!/usr/bin/env bash
# AKS's Azure side with azure-cli, as a user drives it against Azure: show the cluster and its
# pool, find the nodes' scale set instances, stop and start one, scale the pool out, delete a
# machine. Run against `rescue emulator serve --scenario examples/emulator/aks-cluster.yaml`
# (eval its export lines first); configured by az_common.sh.
# Usage: AZ=path/to/az az_aks.sh   (exits non-zero at the first step that goes wrong)
set -euo pipefail
RG=prod-rg
CLUSTER=prod-aks
POOL=nodepool1
# shellcheck source=tests/conformance/az_common.sh
. "$(dirname "$0")/az_common.sh"
"$AZ" login --service-principal -u "$AZURE_CLIENT_ID" -p "$AZURE_CLIENT_SECRET" --tenant "$AZURE_TENANT_ID" -o none

step "aks show"
NODE_RG=$("$AZ" aks show -g "$RG" -n "$CLUSTER" --query nodeResourceGroup -o tsv)
expect "node resource group" MC_prod-rg_prod-aks_westeurope "$NODE_RG"
expect "cluster running" "Running Succeeded" \
  "$("$AZ" aks show -g "$RG" -n "$CLUSTER" --query '[powerState.code, provisioningState]' -o tsv | tr '\n' ' ' | sed 's/ $//')"
expect "one cluster listed" "$CLUSTER" "$("$AZ" aks list --query '[].name' -o tsv)"
expect "cluster listed in its group" "$CLUSTER" "$("$AZ" aks list -g "$RG" --query '[].name' -o tsv)"

step "aks nodepool show"
expect "pool of 4" 4 "$("$AZ" aks nodepool show -g "$RG" --cluster-name "$CLUSTER" -n "$POOL" --query count -o tsv)"
expect "pool listed" "$POOL" "$("$AZ" aks nodepool list -g "$RG" --cluster-name "$CLUSTER" --query '[].name' -o tsv)"

step "vmss list / list-instances"
VMSS=$("$AZ" vmss list -g "$NODE_RG" --query '[0].name' -o tsv)
printf '  scale set %s\n' "$VMSS"
expect "4 instances" "0 1 2 3" \
  "$("$AZ" vmss list-instances -g "$NODE_RG" -n "$VMSS" --query '[].instanceId' -o tsv | tr '\n' ' ' | sed 's/ $//')"
NODE2=$("$AZ" vmss list-instances -g "$NODE_RG" -n "$VMSS" --query "[?instanceId=='2'].osProfile.computerName | [0]" -o tsv)
expect "node name of instance 2" "${VMSS}000002" "$NODE2"

step "vmss get-instance-view"
expect "instance 2 runs, its agent is down" "VM running Not Ready" \
  "$("$AZ" vmss get-instance-view -g "$NODE_RG" -n "$VMSS" --instance-id 2 --query '[statuses[1].displayStatus, vmAgent.statuses[0].displayStatus]' -o tsv | tr '\n' ' ' | sed 's/ $//')"
expect "instance 0 is Ready" Ready \
  "$("$AZ" vmss get-instance-view -g "$NODE_RG" -n "$VMSS" --instance-id 0 --query 'vmAgent.statuses[0].displayStatus' -o tsv)"

step "vmss stop --instance-ids 2"
"$AZ" vmss stop -g "$NODE_RG" -n "$VMSS" --instance-ids 2 -o none
expect "instance 2 stopped" "VM stopped" \
  "$("$AZ" vmss get-instance-view -g "$NODE_RG" -n "$VMSS" --instance-id 2 --query 'statuses[1].displayStatus' -o tsv)"
expect "instance 0 still running" "VM running" \
  "$("$AZ" vmss get-instance-view -g "$NODE_RG" -n "$VMSS" --instance-id 0 --query 'statuses[1].displayStatus' -o tsv)"

step "vmss start --instance-ids 2"
"$AZ" vmss start -g "$NODE_RG" -n "$VMSS" --instance-ids 2 -o none
expect "instance 2 running again" "VM running" \
  "$("$AZ" vmss get-instance-view -g "$NODE_RG" -n "$VMSS" --instance-id 2 --query 'statuses[1].displayStatus' -o tsv)"

step "aks nodepool scale --node-count 5"
expect "pool scaled" "5 Succeeded" \
  "$("$AZ" aks nodepool scale -g "$RG" --cluster-name "$CLUSTER" -n "$POOL" --node-count 5 --query '[count, provisioningState]' -o tsv | tr '\n' ' ' | sed 's/ $//')"
expect "instance 4 added" "0 1 2 3 4" \
  "$("$AZ" vmss list-instances -g "$NODE_RG" -n "$VMSS" --query '[].instanceId' -o tsv | tr '\n' ' ' | sed 's/ $//')"
step "vmss get-instance-view (until the new node's agent reports: the guest boots first)"
expect "new node's agent Ready" Ready "$(await_value Ready \
  "$AZ" vmss get-instance-view -g "$NODE_RG" -n "$VMSS" --instance-id 4 --query 'vmAgent.statuses[0].displayStatus' -o tsv)"

step "aks nodepool delete-machines --machine-names $NODE2"
"$AZ" aks nodepool delete-machines -g "$RG" --cluster-name "$CLUSTER" --nodepool-name "$POOL" --machine-names "$NODE2" -o none
expect "pool of 4 again" 4 "$("$AZ" aks nodepool show -g "$RG" --cluster-name "$CLUSTER" -n "$POOL" --query count -o tsv)"
expect "instance 2 gone" "0 1 3 4" \
  "$("$AZ" vmss list-instances -g "$NODE_RG" -n "$VMSS" --query '[].instanceId' -o tsv | tr '\n' ' ' | sed 's/ $//')"
expect "its data disk released" Unattached \
  "$("$AZ" disk show -g "$NODE_RG" -n pvc-8e2f4a61-93c7-4d0b-b5e8-2a7f1c9d3b40 --query diskState -o tsv)"
echo "azure-cli aks: done"
