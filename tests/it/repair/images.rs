//! Real disk images for the repair tests, built with the same tools an engineer would use
//! (sfdisk, mke2fs, debugfs, mkfs.xfs, xfs_db): no mocks, real corruption.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn sh(script: &str) {
    let out = Command::new("bash")
        .arg("-ceu")
        .arg(script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A populated ext4 image damaged exactly as in the incident: the overlay2 `-init` directory's
/// block zeroed ("structure needs cleaning"); `e2fsck -fy` repairs it.
pub fn incident_ext4(dir: &Path) -> PathBuf {
    let part = dir.join("root.ext4");
    let tree = dir.join("tree");
    sh(&format!(
        "mkdir -p {t}/var/lib/docker/overlay2/3f9a-init/diff {t}/etc && echo node > {t}/etc/hostname && \
         echo x > {t}/var/lib/docker/overlay2/3f9a-init/diff/f && \
         mke2fs -q -t ext4 -O ^metadata_csum -d {t} -F {p} 64M && \
         debugfs -w -R 'zap_block -f /var/lib/docker/overlay2/3f9a-init 0' {p} 2>/dev/null",
        t = tree.display(),
        p = part.display()
    ));
    part
}

/// An ext4 that e2fsck cannot handle (an unknown incompatible feature: exit 8).
pub fn unrepairable_ext4(dir: &Path) -> PathBuf {
    let part = dir.join("bad.ext4");
    sh(&format!(
        "mke2fs -q -t ext4 -F {p} 32M && debugfs -w -R 'ssv feature_incompat 0x10000000' {p} 2>/dev/null",
        p = part.display()
    ));
    part
}

/// A repaired-incident ext4 whose primary superblock is zeroed: no signature, backups intact.
pub fn no_primary_superblock_ext4(dir: &Path) -> PathBuf {
    let part = dir.join("nosb.ext4");
    sh(&format!("mke2fs -q -t ext4 -F {p} 64M && dd if=/dev/zero of={p} bs=1024 seek=1 count=1 conv=notrunc status=none", p = part.display()));
    part
}

/// An XFS whose directory inode has a wrong link count (xfs_repair -n finds it, xfs_repair fixes it),
/// with the /etc/fstab a boot looks for its root by. Populating XFS needs a mount, so this uses
/// (and always detaches) one loop device.
pub fn damaged_xfs(dir: &Path) -> PathBuf {
    let img = dir.join("root.xfs");
    let mnt = dir.join("mnt");
    sh(&format!(
        "truncate -s 300M {i} && mkfs.xfs -q -f -m uuid={XFS_ROOT_UUID} {i} && L=$(losetup -f --show {i}) && trap 'umount {m} 2>/dev/null || true; losetup -d $L' EXIT && \
         mkdir -p {m} && mount $L {m} && mkdir -p {m}/var/lib/docker/overlay2/3f9a-init/diff {m}/etc && \
         echo 'UUID={XFS_ROOT_UUID} / xfs defaults 0 0' > {m}/etc/fstab && umount {m} && \
         xfs_db -x -c 'path /var/lib/docker/overlay2/3f9a-init' -c 'write core.nlinkv2 9' $L >/dev/null",
        i = img.display(),
        m = mnt.display()
    ));
    img
}

/// The filesystem UUID of `damaged_xfs`, which its fstab mounts as /.
const XFS_ROOT_UUID: &str = "5e1f2d3c-4b5a-4697-8877-665544332211";

/// Where `gpt_disk` puts the root partition, in bytes.
pub const ROOT_OFFSET: u64 = 26624 * 512;

/// An Azure-Linux-like GPT disk: BIOS boot, EFI, then `root` as the Linux root partition.
pub fn gpt_disk(dir: &Path, root: &Path) -> PathBuf {
    let disk = dir.join("disk.img");
    let root_sectors = std::fs::metadata(root).unwrap().len().div_ceil(512);
    sh(&format!(
        "truncate -s {total} {d} && printf 'label: gpt\\nstart=2048, size=8192, type=21686148-6449-6E6F-744E-656564454649\\n\
         start=10240, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\\nstart=26624, size={root_sectors}, type=linux\\n' | sfdisk -q {d} && \
         dd if={r} of={d} bs=512 seek=26624 conv=notrunc status=none",
        total = ROOT_OFFSET + root_sectors * 512 + 1024 * 1024,
        d = disk.display(),
        r = root.display()
    ));
    disk
}

/// Exit code of `e2fsck -fn` on the partition at `offset` bytes of `image` (read-only check).
pub fn e2fsck_readonly(image: &Path, offset: u64) -> i32 {
    let out = Command::new("bash")
        .arg("-ceu")
        .arg(format!(
            "L=$(losetup -r -f --show -o {offset} {i}); trap 'losetup -d $L' EXIT; e2fsck -fn $L >/dev/null 2>&1 && echo 0 || echo $?",
            i = image.display()
        ))
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("an exit code")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// An XFS root (with its fstab) whose directory `/var/lib/docker/volumes` (300 entries, so its
/// entries span several directory blocks) has two bytes of its first data block flipped. The
/// block fails its CRC; `xfs_repair` junks it, moves the orphans to lost+found and leaves
/// lost+found's link count one short, which only a second pass corrects (found with this
/// machine's xfsprogs: `xfs_repair -n` after the first pass says "would have reset inode ...
/// nlinks from N to N+1").
pub fn xfs_needing_two_passes(dir: &Path) -> PathBuf {
    let img = dir.join("root2.xfs");
    let mnt = dir.join("mnt2");
    let d = "var/lib/docker/volumes";
    sh(&format!(
        "truncate -s 320M {i} && mkfs.xfs -q -f -m uuid={XFS_ROOT_UUID} {i} && L=$(losetup -f --show {i}) && trap 'umount {m} 2>/dev/null || true; losetup -d $L' EXIT && \
         mkdir -p {m} && mount $L {m} && mkdir -p {m}/{d} {m}/etc && \
         echo 'UUID={XFS_ROOT_UUID} / xfs defaults 0 0' > {m}/etc/fstab && \
         for i in $(seq 1 300); do mkdir -p {m}/{d}/dir$i/x; echo $i > {m}/{d}/file$i; done && umount {m} && \
         b=$(xfs_db -r -c 'path /{d}' -c bmap $L | sed -n 's/^data offset 0 startblock \\([0-9]*\\) .*/\\1/p') && \
         at=$(xfs_db -r -c \"convert fsb $b byte\" $L | sed -n 's/.*(\\([0-9]*\\)).*/\\1/p') && \
         printf '\\xbc' | dd of=$L bs=1 seek=$((at+1206)) conv=notrunc status=none && \
         printf '\\x7a' | dd of=$L bs=1 seek=$((at+1294)) conv=notrunc status=none",
        i = img.display(),
        m = mnt.display()
    ));
    img
}

/// The filesystem UUID of `ext4_with_many_orphans`, which its fstab mounts as /.
const EXT4_ROOT_UUID: &str = "0d6b1f3e-2a4c-4e5f-9a8b-7c6d5e4f3a21";

/// An ext4 root (with its fstab) whose `/var/lib/docker/containers` directory of 400 entries
/// has every block zeroed: e2fsck reconnects each of the 400 orphans to lost+found, one line
/// each, so its log is far longer than Run Command's 4 KiB.
pub fn ext4_with_many_orphans(dir: &Path) -> PathBuf {
    let part = dir.join("orphans.ext4");
    let tree = dir.join("orphans-tree");
    let d = "var/lib/docker/containers";
    sh(&format!(
        "mkdir -p {t}/{d} {t}/etc && echo 'UUID={EXT4_ROOT_UUID} / ext4 defaults 0 1' > {t}/etc/fstab && \
         for i in $(seq 1 400); do echo $i > {t}/{d}/container-log-$i; done && \
         mke2fs -q -t ext4 -O ^metadata_csum -U {EXT4_ROOT_UUID} -d {t} -F {p} 64M && \
         for blk in $(debugfs -R 'blocks /{d}' {p} 2>/dev/null); do debugfs -w -R \"zap_block $blk\" {p} 2>/dev/null; done",
        t = tree.display(),
        p = part.display()
    ));
    part
}
