#!/bin/bash
# Check and repair the filesystems of a disk attached to this (rescue) VM.
#
# Runs through Azure Run Command. Values arrive as parameters, never spliced into this text:
#   LUN  LUN of the data disk to repair (0-63). A named parameter `LUN`. Managed Run Command puts
#        named parameters in the environment only; action Run Command (RunShellScript) adds
#        `export LUN=...` and `set -- ...` lines after this file's first line, so $1 carries it
#        too. `$1` is the fallback for callers that pass the LUN unnamed.
#   $2, or RESCUE_DISK_DIR: a directory holding lunN and lunN-partK links. Default: the udev links
#        of a SCSI VM (/dev/disk/azure/scsi1/lunN, WALinuxAgent's rules) or of an NVMe VM
#        (/dev/disk/azure/data/by-lun/N and N-partK, azure-vm-utils' 80-azure-disk.rules).
#
# Run Command returns only the last 4 KiB of output and always reports "succeeded", so the full
# log stays on this VM (/var/log/rescue/, readable by root only; rescue reads it back) and the
# LAST line printed is always
#   RESCUE-STATUS {"verdict":"clean|replayed|repaired|incomplete|failed",...}
# which rescue parses. Verdicts, worst first:
#   failed      a filesystem is still damaged after two repair passes (or cannot be repaired
#               without losing data: an XFS log that cannot be replayed)
#   incomplete  a partition could not be checked (LVM without device-mapper, encryption, an
#               unknown filesystem): nothing proves the disk is sound, so it must not be swapped
#   repaired    errors were corrected, and a read-only re-check then found none
#   replayed    only a journal (ext4) or log (XFS) replay was needed: no repair
#   clean       nothing to do
# Exit status: 0 clean/replayed/repaired, 1 failed, 2 incomplete.
#
# A repair is never taken at its word: after it, a read-only check (`e2fsck -fn`, `xfs_repair
# -n`, `fsck.vfat -n`) must come back clean; otherwise one more repair pass, then `failed`.

set -u -o pipefail
umask 077
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin

LUN="${LUN:-${1:-}}"
LOG_DIR="${RESCUE_LOG_DIR:-/var/log/rescue}"
# Repair passes before giving up: a second pass fixes what the first one uncovered.
PASSES=2

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

# A log whose gzip fits in this many base64 characters travels whole in the output, on a
# RESCUE-LOG-GZ line above the status line (which names its size and SHA-256): within Run
# Command's last 4 KiB, so rescue need not read it back through more Run Commands (each one
# takes tens of seconds on Azure).
INLINE_LOG_MAX=3000

# The status line: always last, always one line.
status() { # verdict reason partitions-json
    local line inline=""
    local gz=""
    [ -n "${LOG:-}" ] && gz="$(gzip -9c "$LOG" | base64 -w0)"
    if [ -n "$gz" ] && [ "${#gz}" -le "$INLINE_LOG_MAX" ]; then
        inline="$(printf ',"inline_log":{"bytes":%s,"sha256":"%s"}' "$(stat -c %s "$LOG")" "$(sha256sum "$LOG" | cut -d' ' -f1)")"
        echo "RESCUE-LOG-GZ $gz"
    fi
    line="$(printf 'RESCUE-STATUS {"verdict":"%s","lun":%s,"reason":%s,"log":%s,"partitions":[%s]%s}\n' \
        "$1" "$( [[ "$LUN" =~ ^[0-9]+$ ]] && echo "$LUN" || echo null)" "$(json_str "$2")" "$(json_str "${LOG:-}")" "$3" "$inline")"
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

# Run a command with its full output in the log and its last lines on stdout; OUT keeps it all.
OUT=""
run_logged() { # lines cmd...
    local lines="$1"; shift
    local out rc
    out="$(mktemp)"
    "$@" >"$out" 2>&1
    rc=$?
    { echo "\$ $* (exit $rc)"; cat "$out"; } >>"$LOG"
    tail -n "$lines" "$out"
    OUT="$(cat "$out")"
    rm -f "$out"
    return $rc
}

# Where the disk is: the caller's directory, else SCSI's or NVMe's udev links.
if [ -n "${2:-${RESCUE_DISK_DIR:-}}" ]; then
    CANDIDATES=("${2:-${RESCUE_DISK_DIR:-}}/lun$LUN")
else
    CANDIDATES=("/dev/disk/azure/scsi1/lun$LUN" "/dev/disk/azure/data/by-lun/$LUN")
fi
DEV_LINK=""
for _ in $(seq 1 30); do
    for c in "${CANDIDATES[@]}"; do [ -e "$c" ] && { DEV_LINK="$c"; break 2; }; done
    sleep 1
done
if [ -z "$DEV_LINK" ]; then
    say "no disk at ${CANDIDATES[*]}"
    status failed "no disk at LUN $LUN (${CANDIDATES[*]})" ""
    exit 1
fi
DEV="$(readlink -f "$DEV_LINK")"
say "rescue fsck: LUN $LUN -> $DEV ($DEV_LINK), full log in $LOG"
run_logged 20 fdisk -l "$DEV"

# Partitions: the udev links (lunN-partK, N-partK) on Azure; else read the table and map each
# partition with its own loop device (machines without udev). No table: the whole disk.
declare -a PARTS=() PNUMS=() PTYPES=() PNAMES=()
for link in "$DEV_LINK-part"*; do
    [ -e "$link" ] || continue
    num="${link##*-part}"
    PARTS+=("$(readlink -f "$link")"); PNUMS+=("$num"); PNAMES+=("$link")
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
        case "${type,,}" in 5|f|85) continue ;; esac # an MBR extended partition: a container
        if loop="$(losetup -f --show -o $((start * sector)) --sizelimit $((size * sector)) "$DEV" 2>>"$LOG")"; then
            LOOPS+=("$loop")
            PARTS+=("$loop"); PNUMS+=("${pnum:-$num}"); PTYPES+=("${type:-unknown}"); PNAMES+=("$DEV_LINK-part${pnum:-$num}")
        fi
    done <<<"$dump"
fi
if [ ${#PARTS[@]} -eq 0 ]; then
    say "no partition table: checking the whole disk"
    PARTS=("$DEV"); PNUMS=(0); PTYPES=(none); PNAMES=("$DEV_LINK")
fi

is_mounted() { findmnt -rn -S "$1" >/dev/null 2>&1 || grep -q "^$1 " /proc/mounts; }

RESULTS=()
failed=0; incomplete=0; repaired=0; replayed=0; checked=0
PROBLEMS=()
record() { # id(json) device fstype action exit result note
    RESULTS+=("$(printf '{"partition":%s,"device":%s,"fstype":%s,"action":%s,"exit":%s,"result":"%s","note":%s}' \
        "$1" "$(json_str "$2")" "$(json_str "$3")" "$(json_str "$4")" "$5" "$6" "$(json_str "$7")")")
    say "partition ${1//\"/} ($2, ${3:-no filesystem}): $6${7:+ - $7}"
    case "$6" in
        failed) failed=$((failed + 1)); PROBLEMS+=("partition ${1//\"/}: $7") ;;
        incomplete) incomplete=$((incomplete + 1)); PROBLEMS+=("partition ${1//\"/}: $7") ;;
        repaired) repaired=$((repaired + 1)); checked=$((checked + 1)) ;;
        replayed) replayed=$((replayed + 1)); checked=$((checked + 1)) ;;
        clean) checked=$((checked + 1)) ;;
    esac
}

# Mount and unmount an XFS: the kernel replays its log. 0 when it mounts.
xfs_mounts() {
    local rc
    MNT="$(mktemp -d)"
    run_logged 5 mount -o nouuid "$1" "$MNT"; rc=$?
    [ $rc -eq 0 ] && umount "$MNT"
    rmdir "$MNT"; MNT=""
    return $rc
}

xfs_log_lost() { # name
    RESULT=failed; CODE=32
    NOTE="the XFS log cannot be replayed: the mount that replays it fails. \`xfs_repair -L $1\` would discard the log, and with it the last metadata changes written before the crash; rescue never runs it by itself. Run it on this VM only if losing them is acceptable, then run the fsck step again"
}

# Check one filesystem: replay its journal/log on its own first (so a replay is told from a
# repair), then a read-only check; if it finds errors, repair and check again, up to PASSES
# times. Sets RESULT, NOTE, ACTION and CODE.
check_fs() { # device fstype name
    local p="$1" fs="$2" name="$3" ro rw pass rc note=""
    RESULT=""; NOTE=""; ACTION=""; CODE=null
    local replay=0
    XFS_LOG_BAD=0
    case "$fs" in
        ext2|ext3|ext4)
            ro=(e2fsck -fn "$p"); rw=(e2fsck -fy "$p")
            if dumpe2fs -h "$p" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery'; then
                say "replaying the $fs journal of $name"
                run_logged 5 e2fsck -E journal_only -y "$p" && replay=1
            fi ;;
        xfs)
            ro=(xfs_repair -n "$p"); rw=(xfs_repair "$p")
            # The kernel replays the log at mount (xfs_repair(8): "mount the filesystem to
            # replay the log"); xfs_repair alone may not even see a log it cannot replay, so
            # the filesystem must also mount before any verdict but `failed`.
            run_logged 10 "${ro[@]}"
            grep -q "valuable metadata changes in a log" <<<"$OUT" && replay=1
            if ! xfs_mounts "$p"; then
                XFS_LOG_BAD=1
            else
                XFS_LOG_BAD=0
            fi ;;
        vfat)
            if ! command -v fsck.vfat >/dev/null; then
                RESULT=incomplete; NOTE="FAT filesystem not checked: fsck.vfat (dosfstools) is not installed on this VM"; return
            fi
            ro=(fsck.vfat -n "$p"); rw=(fsck.vfat -a "$p") ;;
        *) RESULT=incomplete; NOTE="filesystem type $fs is not one this script checks"; return ;;
    esac
    say "${ro[*]} on $name ($fs)"
    run_logged 15 "${ro[@]}"; rc=$?
    ACTION="${ro[*]:0:${#ro[@]}-1}"; CODE=$rc
    if [ "$fs" = xfs ] && [ $rc -eq 0 ] && [ "$XFS_LOG_BAD" = 1 ]; then
        ACTION="mount -o nouuid (log replay)"; xfs_log_lost "$name"; return
    fi
    if [ $rc -eq 0 ]; then
        if [ $replay -eq 1 ]; then
            RESULT=replayed; NOTE="journal/log replayed; no errors after it"
        else
            RESULT=clean
        fi
        return
    fi
    for pass in $(seq 1 $PASSES); do
        say "repair pass $pass: ${rw[*]}"
        run_logged 15 "${rw[@]}"; rc=$?
        ACTION="${rw[*]:0:${#rw[@]}-1}"; CODE=$rc
        if [ "$fs" = xfs ] && [ $rc -eq 2 ]; then
            xfs_log_lost "$name"; return
        fi
        say "re-check after pass $pass: ${ro[*]}"
        run_logged 10 "${ro[@]}"; rc=$?
        if [ "$fs" = xfs ] && [ $rc -eq 0 ] && ! xfs_mounts "$p"; then
            xfs_log_lost "$name"; return
        fi
        if [ $rc -eq 0 ]; then
            RESULT=repaired
            note="errors corrected"
            [ $pass -gt 1 ] && note="errors corrected in $pass passes (the first left some)"
            [ $replay -eq 1 ] && note="journal/log replayed, then $note"
            NOTE="$note; a read-only re-check (${ro[*]:0:${#ro[@]}-1}) is clean"
            return
        fi
    done
    RESULT=failed
    NOTE="still damaged after $PASSES repair passes: the read-only re-check (${ro[*]:0:${#ro[@]}-1}) exits $rc"
}

check_part() { # id(json) device fstype name ptype
    local id="$1" p="$2" fstype="$3" name="$4" ptype="$5"
    case "$fstype" in
        swap) record "$id" "$p" swap none null skipped "swap space"; return ;;
        crypto_LUKS|BitLocker)
            record "$id" "$p" "$fstype" none null incomplete "encrypted ($fstype): it cannot be checked without its key (for Azure Disk Encryption: \`az vm repair create --unlock-encrypted-vm\`)"; return ;;
        LVM2_member) check_lvm "$id" "$p" "$name"; return ;;
        "")
            # A Linux partition whose primary superblock is gone: e2fsck finds the backups.
            case "$ptype" in
                0fc63daf-8483-4772-8e79-3d69d8477de4|83|none)
                    say "no filesystem signature on $name: trying e2fsck with the backup superblocks"
                    check_fs "$p" ext4 "$name"
                    [ "$RESULT" = failed ] && NOTE="no readable filesystem: primary and backup superblocks are damaged ($NOTE)"
                    [ "$RESULT" = repaired ] && NOTE="rebuilt from a backup superblock; $NOTE"
                    record "$id" "$p" ext4 "$ACTION" "$CODE" "$RESULT" "$NOTE" ;;
                5|f|85) record "$id" "$p" "" none null skipped "MBR extended partition (a container of others)" ;;
                c12a7328-f81f-11d2-ba4b-00a0c93ec93b|ef) record "$id" "$p" "" none null skipped "EFI system partition without a filesystem (nothing to check)" ;;
                *) record "$id" "$p" "" none null incomplete "no filesystem signature (partition type $ptype): nothing could be checked" ;;
            esac
            return ;;
    esac
    check_fs "$p" "$fstype" "$name"
    record "$id" "$p" "$fstype" "$ACTION" "$CODE" "$RESULT" "$NOTE"
}

# LVM, as az vm repair's scripts do it: import the VG under another name when this VM has one of
# the same name (a rescue VM from the same image does), activate it, check every LV, deactivate,
# and give the VG its name back. Activation needs device-mapper; without it the LVs cannot be
# reached at all, which is `incomplete`, never `clean`.
check_lvm() { # id device name
    local id="$1" p="$2" name="$3" lvm=(--devices "$p")
    if ! command -v pvs >/dev/null; then
        record "$id" "$p" LVM2_member none null incomplete "LVM physical volume: the lvm2 tools are not installed on this VM"; return
    fi
    local vg lvs
    vg="$(pvs --readonly "${lvm[@]}" --noheadings -o vg_name "$p" 2>>"$LOG" | tr -d ' ')"
    lvs="$(lvs --readonly "${lvm[@]}" --noheadings -o lv_name "$vg" 2>>"$LOG" | tr -d ' ' | paste -sd, -)"
    say "$name: LVM physical volume of volume group ${vg:-?} (logical volumes: ${lvs:-none})"
    if [ -z "$vg" ]; then
        record "$id" "$p" LVM2_member none null incomplete "LVM physical volume whose volume group metadata cannot be read"; return
    fi
    if ! { [ -e /dev/mapper/control ] && dmsetup version >/dev/null 2>&1; }; then
        record "$id" "$p" LVM2_member none null incomplete "LVM volume group $vg (logical volumes $lvs): device-mapper is not available on this VM, so they cannot be activated and checked"; return
    fi
    local as="$vg" own
    own="$(vgs --readonly --noheadings -o vg_name 2>/dev/null | tr -d ' ')"
    if grep -qx "$vg" <<<"$own"; then
        as="rescue_$vg"
        say "this VM has a volume group named $vg too: importing the copy's as $as"
        if ! run_logged 5 vgimportclone --basevgname "$as" "$p"; then
            record "$id" "$p" LVM2_member vgimportclone null incomplete "LVM volume group $vg: vgimportclone failed, its logical volumes were not checked"; return
        fi
    fi
    if ! run_logged 5 vgchange "${lvm[@]}" -ay "$as"; then
        record "$id" "$p" LVM2_member "vgchange -ay" null incomplete "LVM volume group $vg could not be activated: its logical volumes were not checked"
    else
        record "$id" "$p" LVM2_member "vgchange -ay" 0 skipped "volume group $vg, checked volume by volume below"
        local lv path fs
        for lv in ${lvs//,/ }; do
            path="/dev/$as/$lv"
            fs="$(blkid -p -o value -s TYPE "$path" 2>/dev/null || true)"
            check_part "\"${id//\"/}:$lv\"" "$path" "$fs" "$path" none
        done
        run_logged 5 vgchange "${lvm[@]}" -an "$as"
    fi
    if [ "$as" != "$vg" ]; then
        run_logged 5 vgrename "${lvm[@]}" "$as" "$vg" || PROBLEMS+=("volume group $as could not be renamed back to $vg: rename it before swapping the disk in")
    fi
}

for i in "${!PARTS[@]}"; do
    p="${PARTS[$i]}"; n="${PNUMS[$i]}"; ptype="${PTYPES[$i],,}"; name="${PNAMES[$i]}"
    fstype="$(blkid -p -o value -s TYPE "$p" 2>/dev/null || true)"
    case "$ptype" in
        21686148-6449-6e6f-744e-656564454649|*"bios boot"*)
            record "$n" "$p" "$fstype" none null skipped "BIOS boot partition"; continue ;;
    esac
    if is_mounted "$p"; then
        record "$n" "$p" "$fstype" none null failed "mounted on this VM: refusing to touch it"
        continue
    fi
    check_part "$n" "$p" "$fstype" "$name" "$ptype"
done

joined="$(IFS=,; echo "${RESULTS[*]}")"
problems="$(printf '%s; ' "${PROBLEMS[@]}")"; problems="${problems%; }"
if [ $failed -gt 0 ]; then
    status failed "$failed partition(s) could not be repaired: $problems" "$joined"; exit 1
elif [ $incomplete -gt 0 ]; then
    status incomplete "$incomplete partition(s) could not be checked: $problems" "$joined"; exit 2
elif [ $checked -eq 0 ]; then
    status incomplete "no filesystem found on the disk: nothing was checked" "$joined"; exit 2
elif [ $repaired -gt 0 ]; then
    status repaired "$repaired filesystem(s) repaired, each re-checked clean" "$joined"; exit 0
elif [ $replayed -gt 0 ]; then
    status replayed "$replayed journal/log replay(s), no repair needed" "$joined"; exit 0
else
    status clean "all filesystems clean" "$joined"; exit 0
fi
