#!/usr/bin/env python3
"""The OS-disk swap through Microsoft's Python SDK (azure-mgmt-compute + azure-identity), as a
user would write it against Azure, with the SDK's own LRO pollers (begin_*().result()).

Run against `rescue emulator serve`: eval its export lines, then run this script. Only
configuration differs from real Azure: the authority host, the ARM base URL, the CA bundle and
instance discovery off (MSAL would otherwise ask login.microsoftonline.com about the authority).

Prints `sdk_arm_requests=N` on one line: the ARM requests the repair procedure sent (sign-ins
go to the token endpoint and are not counted), for comparison with rescue's count, and
`sdk_arm_polls=N`: how many of them polled an operation's status.
"""

import os
import sys
import time

from azure.core.exceptions import ResourceNotFoundError
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute.models import (
    CreationData,
    DataDisk,
    Disk,
    DiskSku,
    DiskUpdate,
    ManagedDiskParameters,
    RunCommandInput,
    Snapshot,
    SnapshotSku,
)

RG = os.environ.get("RG", "MC_prod-rg_prod-aks_westeurope")
VM = os.environ.get("VM", "aks-nodepool1-31415926-vm2")
RESCUE = os.environ.get("RESCUE_VM", "rescue-vm")
SNAP = "vm2-os-sdk-snap"
COPY = "vm2-os-sdk-fixed"


class Counter(SansIOHTTPPolicy):
    """Counts every request the pipeline sends, retries and LRO polls included."""

    def __init__(self):
        self.count = 0
        self.polls = 0

    def on_request(self, request):
        self.count += 1
        path = request.http_request.url.split("?")[0].lower()
        if "/locations/" in path and "operations/" in path:
            self.polls += 1


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    url = os.environ["RESCUE_EMULATOR_URL"]
    if os.environ.get("RESCUE_EMULATOR_CA"):
        # Trust the emulator's CA (requests, under both azure-core and MSAL, reads this).
        os.environ["REQUESTS_CA_BUNDLE"] = os.environ["RESCUE_EMULATOR_CA"]
    cred = ClientSecretCredential(
        os.environ["AZURE_TENANT_ID"],
        os.environ["AZURE_CLIENT_ID"],
        os.environ["AZURE_CLIENT_SECRET"],
        authority=os.environ["AZURE_AUTHORITY_HOST"],
        disable_instance_discovery=True,
    )
    counter = Counter()
    compute = ComputeManagementClient(
        cred,
        os.environ["AZURE_SUBSCRIPTION_ID"],
        base_url=url,
        per_retry_policies=[counter],
    )
    vms, disks, snapshots = compute.virtual_machines, compute.disks, compute.snapshots

    # The repair, counted.
    vm = vms.get(RG, VM)
    os_disk = disks.get(RG, vm.storage_profile.os_disk.name)
    vms.begin_deallocate(RG, VM).result()
    snap = snapshots.begin_create_or_update(
        RG,
        SNAP,
        Snapshot(
            location=vm.location,
            sku=SnapshotSku(name="Standard_LRS"),
            creation_data=CreationData(create_option="Copy", source_resource_id=os_disk.id),
            incremental=True,
        ),
    ).result()
    check(snap.provisioning_state == "Succeeded", "snapshot created")
    copy = disks.begin_create_or_update(
        RG,
        COPY,
        Disk(
            location=vm.location,
            zones=vm.zones,
            sku=DiskSku(name=os_disk.sku.name),
            hyper_v_generation=os_disk.hyper_v_generation,
            os_type=os_disk.os_type,
            creation_data=CreationData(create_option="Copy", source_resource_id=snap.id),
        ),
    ).result()
    check(copy.provisioning_state == "Succeeded", "disk copied from the snapshot")
    rescue = vms.get(RG, RESCUE)
    used = {d.lun for d in rescue.storage_profile.data_disks}
    lun = min(set(range(64)) - used)
    rescue.storage_profile.data_disks.append(
        DataDisk(lun=lun, create_option="Attach", managed_disk=ManagedDiskParameters(id=copy.id))
    )
    rescue = vms.begin_create_or_update(RG, RESCUE, rescue).result()
    check(any(d.lun == lun for d in rescue.storage_profile.data_disks), f"copy attached at LUN {lun}")
    result = vms.begin_run_command(
        RG,
        RESCUE,
        RunCommandInput(
            command_id="RunShellScript",
            script=["fdisk -l", f"e2fsck -fy /dev/disk/azure/scsi1/lun{lun}-part1; echo fsck-exit=$?"],
        ),
    ).result()
    message = result.value[0].message
    check("fsck-exit=1" in message, "e2fsck repaired the copy (exit 1: errors corrected)")
    rescue = vms.get(RG, RESCUE)
    rescue.storage_profile.data_disks = [d for d in rescue.storage_profile.data_disks if d.lun != lun]
    vms.begin_create_or_update(RG, RESCUE, rescue).result()
    check(disks.get(RG, COPY).disk_state == "Unattached", "copy detached")
    vm = vms.get(RG, VM)
    vm.storage_profile.os_disk.managed_disk.id = copy.id
    vm.storage_profile.os_disk.name = COPY
    vm = vms.begin_create_or_update(RG, VM, vm).result()
    check(vm.storage_profile.os_disk.name == COPY, "OS disk swapped")
    vms.begin_start(RG, VM).result()
    # The guest boots after the start completes; its agent reports Ready some time later.
    for _ in range(120):
        view = vms.instance_view(RG, VM)
        statuses = view.vm_agent.statuses if view.vm_agent else []
        if statuses and statuses[0].display_status == "Ready":
            break
        time.sleep(0.5)
    check(statuses and statuses[0].display_status == "Ready", "VM agent Ready")
    print(f"sdk_arm_requests={counter.count}")
    print(f"sdk_arm_polls={counter.polls}")

    # Beyond the repair.
    names = [v.name for v in vms.list_all()]
    check(len(names) == 5 and VM in names, f"list by subscription follows nextLink ({len(names)} VMs)")
    check(COPY in [d.name for d in disks.list()], "disks listed by subscription")
    check(SNAP in [s.name for s in snapshots.list()], "snapshots listed by subscription")
    try:
        vms.get(RG, "no-such-vm")
        check(False, "a missing VM raises")
    except ResourceNotFoundError as e:
        check(e.error.code == "ResourceNotFound", f"404 raises ResourceNotFoundError ({e.error.code})")
    patched = disks.begin_update(RG, COPY, DiskUpdate(tags={"repaired": "yes"})).result()
    check(patched.tags == {"repaired": "yes"}, "disk PATCH")
    vms.begin_power_off(RG, VM).result()
    check(vms.instance_view(RG, VM).statuses[1].code == "PowerState/stopped", "powered off")
    # Restart needs a running VM (Azure: OperationNotAllowed on a stopped one).
    vms.begin_start(RG, VM).result()
    vms.begin_restart(RG, VM).result()
    check(vms.instance_view(RG, VM).statuses[1].code == "PowerState/running", "restarted")


if __name__ == "__main__":
    main()
