#!/bin/bash
# Check and repair the filesystems of a disk attached to this (rescue) VM.
#
# Runs through Azure Run Command. Values arrive as parameters, never spliced into this text:
#   LUN  LUN of the data disk to repair (0-63); the disk is /dev/disk/azure/scsi1/lun$LUN.
#        A named parameter `LUN`. Managed Run Command puts named parameters in the environment
#        only; action Run Command (RunShellScript) adds `export LUN=...` and `set -- ...` lines
#        after this file's first line, so $1 carries it too. `$1` is the fallback for callers
#        that pass the LUN unnamed.
#   $2, or RESCUE_DISK_DIR: directory holding the lunN links (default /dev/disk/azure/scsi1)
#
# Run Command returns only the last 4 KiB of output and always reports "succeeded", so the full
# log stays on this VM (/var/log/rescue/, readable by root only) and the LAST line printed is
# always
#   RESCUE-STATUS {"verdict":"repaired|clean|failed",...}
# which rescue parses. Exit status: 0 repaired or clean, 1 failed.
#
# Per partition: ext2/3/4 -> e2fsck -fy (exit 0 clean, 1-3 repaired, 4 and up failed);
# xfs -> mount -o nouuid + umount (replays the log), xfs_repair -n, then xfs_repair if needed;
# a Linux partition without a signature gets e2fsck (backup superblocks);
# swap, EFI/vfat, BIOS boot, LVM and unknown partitions are left untouched.

set -u -o pipefail
umask 077
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

LUN="${LUN:-${1:-}}"
DISK_DIR="${2:-${RESCUE_DISK_DIR:-/dev/disk/azure/scsi1}}"
LOG_DIR="${RESCUE_LOG_DIR:-/var/log/rescue}"

LOOPS=()
MNT=""
cleanup() {
    [ -n "$MNT" ] && { umount "$MNT" 2>/dev/null; rmdir "$MNT" 2>/dev/null; }
    local l
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null; done
}
trap cleanup EXIT

# JSON string escaping for the few free-text fields (reasons, paths).
json_str() {
    local s="$1"
    s="${s//\\/\\\\}"; s="${s//\"/\\\"}"; s="${s//$'\n'/ }"; s="${s//$'\t'/ }"
    printf '"%s"' "$s"
}

# The status line: always last, always one line.
status() { # verdict reason partitions-json
    local line
    line="$(printf 'RESCUE-STATUS {"verdict":"%s","lun":%s,"reason":%s,"log":%s,"partitions":[%s]}\n' \
        "$1" "$( [[ "$LUN" =~ ^[0-9]+$ ]] && echo "$LUN" || echo null)" "$(json_str "$2")" "$(json_str "${LOG:-}")" "$3")"
    [ -n "${LOG:-}" ] && echo "$line" >>"$LOG"
    echo "$line"
}

if ! [[ "$LUN" =~ ^[0-9]+$ ]] || [ "$LUN" -gt 63 ]; then
    echo "usage: LUN=N fsck-disk.sh, or fsck-disk.sh N [DISK_DIR]   (LUN 0-63, got '${LUN}')"
    LOG=""; status failed "bad LUN parameter" ""
    exit 1
fi

mkdir -p "$LOG_DIR" && chmod 700 "$LOG_DIR"
LOG="$LOG_DIR/fsck-lun$LUN-$(date -u +%Y%m%dT%H%M%SZ).log"
: >"$LOG"

say() { echo "$*"; echo "$*" >>"$LOG"; }

# Run a command with its full output in the log and its last lines on stdout.
run_logged() { # lines cmd...
    local lines="$1"; shift
    local out rc
    out="$(mktemp)"
    "$@" >"$out" 2>&1
    rc=$?
    { echo "\$ $* (exit $rc)"; cat "$out"; } >>"$LOG"
    tail -n "$lines" "$out"
    rm -f "$out"
    return $rc
}

DEV_LINK="$DISK_DIR/lun$LUN"
for _ in $(seq 1 30); do [ -e "$DEV_LINK" ] && break; sleep 1; done
if [ ! -e "$DEV_LINK" ]; then
    say "no disk at $DEV_LINK"
    status failed "no disk at LUN $LUN ($DEV_LINK)" ""
    exit 1
fi
DEV="$(readlink -f "$DEV_LINK")"
say "rescue fsck: LUN $LUN -> $DEV, full log in $LOG"
run_logged 20 fdisk -l "$DEV"

# Partitions: the udev links lunN-partK on Azure; else read the table and map each partition
# with its own loop device (machines without udev). No table: the filesystem is the whole disk.
declare -a PARTS=() PNUMS=() PTYPES=()
for link in "$DISK_DIR/lun$LUN-part"*; do
    [ -e "$link" ] || continue
    num="${link##*-part}"
    PARTS+=("$(readlink -f "$link")"); PNUMS+=("$num")
    PTYPES+=("$(sfdisk --part-type "$DEV" "$num" 2>/dev/null || echo unknown)")
done
if [ ${#PARTS[@]} -eq 0 ]; then
    dump="$(sfdisk -d "$DEV" 2>/dev/null || true)"
    sector="$(sed -n 's/^sector-size: *\([0-9]*\).*/\1/p' <<<"$dump")"
    sector="${sector:-512}"
    num=0
    while IFS= read -r line; do
        [[ "$line" == *" : start="* ]] || continue
        num=$((num + 1))
        start="$(sed -n 's/.*start= *\([0-9]*\).*/\1/p' <<<"$line")"
        size="$(sed -n 's/.*size= *\([0-9]*\).*/\1/p' <<<"$line")"
        type="$(sed -n 's/.*type= *\([^,]*\).*/\1/p' <<<"$line")"
        pnum="$(sed -n 's/^[^ ]*[^0-9]\([0-9]*\) : .*/\1/p' <<<"$line")"
        if loop="$(losetup -f --show -o $((start * sector)) --sizelimit $((size * sector)) "$DEV" 2>>"$LOG")"; then
            LOOPS+=("$loop")
            PARTS+=("$loop"); PNUMS+=("${pnum:-$num}"); PTYPES+=("${type:-unknown}")
        fi
    done <<<"$dump"
fi
if [ ${#PARTS[@]} -eq 0 ]; then
    say "no partition table: checking the whole disk"
    PARTS=("$DEV"); PNUMS=(0); PTYPES=(none)
fi

is_mounted() { findmnt -rn -S "$1" >/dev/null 2>&1 || grep -q "^$1 " /proc/mounts; }

RESULTS=()
checked=0; repaired=0; failed=0
record() { # num device fstype action exit result note
    RESULTS+=("$(printf '{"partition":%s,"device":%s,"fstype":%s,"action":%s,"exit":%s,"result":"%s","note":%s}' \
        "$1" "$(json_str "$2")" "$(json_str "$3")" "$(json_str "$4")" "$5" "$6" "$(json_str "$7")")")
    say "partition $1 ($2, ${3:-no filesystem}): $6${7:+ - $7}"
}

for i in "${!PARTS[@]}"; do
    p="${PARTS[$i]}"; n="${PNUMS[$i]}"; ptype="${PTYPES[$i],,}"
    fstype="$(blkid -p -o value -s TYPE "$p" 2>/dev/null || true)"
    case "$ptype" in
        21686148-6449-6e6f-744e-656564454649|*"bios boot"*)
            record "$n" "$p" "$fstype" none null skipped "BIOS boot partition"; continue ;;
        c12a7328-f81f-11d2-ba4b-00a0c93ec93b|ef|*"efi system"*)
            record "$n" "$p" "$fstype" none null skipped "EFI system partition"; continue ;;
    esac
    if is_mounted "$p"; then
        record "$n" "$p" "$fstype" none null failed "mounted on this VM: refusing to touch it"
        failed=$((failed + 1)); continue
    fi
    case "$fstype" in
        ext2|ext3|ext4)
            checked=$((checked + 1))
            say "e2fsck -fy on partition $n ($fstype)"
            run_logged 15 e2fsck -fy "$p"; rc=$?
            if [ $rc -ge 4 ]; then
                record "$n" "$p" "$fstype" "e2fsck -fy" $rc failed "errors left uncorrected (exit $rc)"; failed=$((failed + 1))
            elif [ $rc -ge 1 ]; then
                record "$n" "$p" "$fstype" "e2fsck -fy" $rc repaired "errors corrected"; repaired=$((repaired + 1))
            else
                record "$n" "$p" "$fstype" "e2fsck -fy" 0 clean ""
            fi ;;
        xfs)
            checked=$((checked + 1))
            MNT="$(mktemp -d)"
            note=""
            if run_logged 5 mount -o nouuid "$p" "$MNT"; then
                umount "$MNT"
            else
                note="log replay mount failed; "
            fi
            rmdir "$MNT"; MNT=""
            run_logged 10 xfs_repair -n "$p"; rc=$?
            if [ $rc -eq 0 ]; then
                record "$n" "$p" xfs "xfs_repair -n" 0 clean "${note%; }"
            else
                run_logged 15 xfs_repair "$p"; rc=$?
                if [ $rc -eq 0 ]; then
                    record "$n" "$p" xfs xfs_repair 0 repaired "${note}errors corrected"; repaired=$((repaired + 1))
                else
                    record "$n" "$p" xfs xfs_repair $rc failed "${note}xfs_repair exit $rc (a dirty log needs xfs_repair -L, which rescue never runs on its own)"
                    failed=$((failed + 1))
                fi
            fi ;;
        swap) record "$n" "$p" swap none null skipped "swap" ;;
        vfat) record "$n" "$p" vfat none null skipped "FAT (EFI/boot) partition" ;;
        LVM2_member) record "$n" "$p" LVM2_member none null skipped "LVM: not handled by this script" ;;
        "")
            # A Linux partition whose primary superblock is gone: e2fsck finds the backups itself.
            case "$ptype" in
                0fc63daf-8483-4772-8e79-3d69d8477de4|83|none) ;;
                *) record "$n" "$p" "" none null skipped "no filesystem found"; continue ;;
            esac
            checked=$((checked + 1))
            say "no filesystem signature on partition $n: trying e2fsck with the backup superblocks"
            run_logged 15 e2fsck -fy "$p"; rc=$?
            if [ $rc -ge 4 ]; then
                record "$n" "$p" "" "e2fsck -fy" $rc failed "no readable filesystem: primary and backup superblocks are damaged (exit $rc)"; failed=$((failed + 1))
            else
                record "$n" "$p" ext4 "e2fsck -fy" $rc repaired "rebuilt from a backup superblock"; repaired=$((repaired + 1))
            fi ;;
        *) record "$n" "$p" "$fstype" none null skipped "filesystem type not handled" ;;
    esac
done

joined="$(IFS=,; echo "${RESULTS[*]}")"
if [ $failed -gt 0 ]; then
    status failed "$failed partition(s) could not be repaired" "$joined"; exit 1
elif [ $checked -eq 0 ]; then
    status failed "no ext2/3/4 or XFS filesystem found on the disk" "$joined"; exit 1
elif [ $repaired -gt 0 ]; then
    status repaired "$repaired partition(s) repaired" "$joined"; exit 0
else
    status clean "all filesystems clean" "$joined"; exit 0
fi
