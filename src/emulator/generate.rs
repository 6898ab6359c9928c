//! Generated disk content: a disk laid out as a [`Layout`] says (by default GPT like Azure's
//! Ubuntu images: partition 14 BIOS boot, 15 EFI, 1 root), its filesystems (ext4 or XFS, a FAT
//! EFI partition) holding a small, realistic node tree with the fstab and GRUB configuration
//! that name them, optionally corrupted in a named, reproducible way. Cached by recipe, so an
//! emulator start copies a cached image instead of re-running mke2fs. LVM layouts and XFS log
//! damage need root (a loop device, a mount); everything else is built without mounting.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bump when the generated content changes, so stale cached images are not reused.
const GENERATOR_VERSION: u32 = 3;
const MIB: u64 = 1 << 20;
/// The container layer whose `-init` directory the incident's corruption hits.
pub const OVERLAY_ID: &str = "5b0c6e8f4a9d2e71c3f08ab6d94e2c17f5a3b8e09d6c4f21a7e3b5d90c8f1a26";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fs {
    Ext4,
    Xfs,
    /// The EFI system partition's FAT (never a recipe's root).
    #[serde(skip)]
    Vfat,
}

/// How a disk is laid out: partition table and where the root filesystem is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// Azure's Ubuntu images: GPT, 14 BIOS boot, 15 EFI (FAT, label UEFI), 1 root.
    #[default]
    Gpt,
    /// An MBR (dos) table with one bootable Linux partition: older images, Gen1 VMs.
    Mbr,
    /// A filesystem on the whole disk, no partition table.
    Bare,
    /// Like `gpt`, with /var on its own partition 2 (where the incident's damage then is).
    Var,
    /// Like `gpt`, partition 1 an LVM physical volume: VG rootvg, LV rootlv is the root.
    Lvm,
    /// `lvm` with a separate /boot partition 2 (ext4), as RHEL-like images have.
    LvmBoot,
}

/// Named corruptions of the root filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Corruption {
    /// The incident: the first block of `/var/lib/docker/overlay2/<id>-init` zeroed on an ext4
    /// without metadata checksums; lstat says "Structure needs cleaning"; `e2fsck -fy` repairs it.
    /// On XFS the same directory's inode is damaged; `xfs_repair` repairs it.
    Overlay2Init,
    /// ext4 primary superblock zeroed; e2fsck repairs it from a backup superblock.
    Superblock,
    /// ext4 primary and every backup superblock zeroed: e2fsck cannot repair it (exit 8).
    Unrepairable,
    /// A journal (ext4) or log (XFS) left to replay, as after a crash: only a replay is needed.
    DirtyLog,
    /// XFS only: a dirty log whose tail record is damaged, so the mount that would replay it
    /// fails ("failed to locate log tail"); only `xfs_repair -L` (losing it) gets past it.
    UnreplayableLog,
}

/// What a data disk or OS disk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tree {
    /// An AKS node's root filesystem.
    Os,
    /// A database volume.
    Data,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    pub fs: Fs,
    pub tree: Tree,
    pub corrupt: Option<Corruption>,
    /// Size of the image file (the disk's reported size can be larger).
    pub image_mib: u64,
    #[serde(default)]
    pub layout: Layout,
}

impl Recipe {
    fn hash(&self) -> String {
        let text = format!(
            "{GENERATOR_VERSION}:{}",
            serde_json::to_string(self).expect("recipe serializes")
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..12])
    }

    /// The cache file's name: the recipe and this file's own source. The cache is shared by
    /// every checkout on the machine, so an image built by another revision of the generator
    /// (a branch, a worktree, an edit that forgot to bump GENERATOR_VERSION) must never be
    /// taken for this one's: a stale `var` image once came back undamaged.
    fn cache_key(&self) -> String {
        let text = format!("{}:{}", self.hash(), include_str!("generate.rs"));
        hex::encode(&Sha256::digest(text.as_bytes())[..12])
    }
}

/// The user-level cache of generated images.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("rescue").join("images")
}

/// Returns the cached image for `recipe`, building it first if needed.
pub fn cached(recipe: &Recipe) -> anyhow::Result<PathBuf> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating image cache {}", dir.display()))?;
    let path = dir.join(format!("{}.img", recipe.cache_key()));
    if path.exists() {
        return Ok(path);
    }
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&dir)?;
    let img = work.path().join("disk.img");
    build(recipe, work.path(), &img)
        .with_context(|| format!("generating a {:?} disk image", recipe.fs))?;
    // Rename is atomic: concurrent emulators either see the whole image or build their own.
    std::fs::rename(&img, &path)?;
    Ok(path)
}

/// One filesystem of a layout: where it is mounted, what it is, where its bytes go.
struct Volume {
    mount: &'static str,
    fs: Fs,
    label: &'static str,
    uuid: String,
    /// Bytes in the image: (offset, length).
    at: (u64, u64),
}

/// Partition sectors of the layouts (512-byte sectors; Azure's Ubuntu images start partition
/// 14 at 2048, 15 after it, the root partition after that and to the end of the disk).
const BIOS_BOOT: (u64, u64) = (2048, 8192);
const ESP: (u64, u64) = (10240, 32768);
const AFTER_ESP: u64 = 43008;
const BOOT_SECTORS: u64 = 131072;

fn build(recipe: &Recipe, work: &Path, img: &Path) -> anyhow::Result<()> {
    let layout = recipe.layout;
    // mkfs.xfs refuses filesystems under 300 MB.
    let fs_min = match recipe.fs {
        Fs::Ext4 | Fs::Vfat => 64,
        Fs::Xfs => 320,
    };
    let needed = 24 + fs_min * if layout == Layout::Var { 2 } else { 1 } + 72;
    let image_mib = recipe.image_mib.max(needed);
    let sectors = image_mib * MIB / 512;
    let end = sectors - 2048; // the backup GPT
    let tree = work.join("tree");
    match recipe.tree {
        Tree::Os => populate(&tree, OS_FILES, OS_DIRS)?,
        Tree::Data => populate(&tree, DATA_FILES, DATA_DIRS)?,
    }
    std::fs::File::create(img)?.set_len(image_mib * MIB)?;
    let uuid = |tag: &str| uuid_of(&format!("{}:{tag}", recipe.hash()));
    let bytes = |(start, count): (u64, u64)| (start * 512, count * 512);
    let n = img.display();
    let gpt_head = format!(
        "label: gpt\nfirst-lba: 2048\n\
         {n}14 : start={}, size={}, type=21686148-6449-6E6F-744E-656564454649\n\
         {n}15 : start={}, size={}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=UEFI\n",
        BIOS_BOOT.0, BIOS_BOOT.1, ESP.0, ESP.1
    );
    let root_label = if recipe.fs == Fs::Ext4 {
        "cloudimg-rootfs"
    } else {
        ""
    };
    let esp = Volume {
        mount: "/boot/efi",
        fs: Fs::Vfat,
        label: "UEFI",
        uuid: uuid("esp")[..9].replace('-', "").to_uppercase(),
        at: bytes(ESP),
    };
    let root = |at| Volume {
        mount: "/",
        fs: recipe.fs,
        label: root_label,
        uuid: uuid("root"),
        at,
    };
    let mut lvm_pv = None;
    let (table, volumes) = match layout {
        Layout::Gpt => (
            format!(
                "{gpt_head}{n}1 : start={AFTER_ESP}, size={}, type=linux, name=cloudimg-rootfs\n",
                end - AFTER_ESP
            ),
            vec![root(bytes((AFTER_ESP, end - AFTER_ESP))), esp],
        ),
        Layout::Var => {
            let half = (end - AFTER_ESP) / 2;
            (
                format!("{gpt_head}{n}1 : start={AFTER_ESP}, size={half}, type=linux, name=cloudimg-rootfs\n{n}2 : start={}, size={}, type=linux, name=var\n", AFTER_ESP + half, end - AFTER_ESP - half),
                vec![
                    root(bytes((AFTER_ESP, half))),
                    Volume { mount: "/var", fs: recipe.fs, label: "", uuid: uuid("var"), at: bytes((AFTER_ESP + half, end - AFTER_ESP - half)) },
                    esp,
                ],
            )
        }
        Layout::Mbr => (
            format!(
                "label: dos\n{n}1 : start=2048, size={}, type=83, bootable\n",
                sectors - 2048
            ),
            vec![root(bytes((2048, sectors - 2048)))],
        ),
        Layout::Bare => (String::new(), vec![root((0, image_mib * MIB))]),
        Layout::Lvm | Layout::LvmBoot => {
            let mut vols = vec![root((0, 0)), esp];
            let mut boot = String::new();
            let mut pv_start = AFTER_ESP;
            if layout == Layout::LvmBoot {
                vols.push(Volume {
                    mount: "/boot",
                    fs: Fs::Ext4,
                    label: "boot",
                    uuid: uuid("boot"),
                    at: bytes((AFTER_ESP, BOOT_SECTORS)),
                });
                boot = format!(
                    "{n}2 : start={AFTER_ESP}, size={BOOT_SECTORS}, type=linux, name=boot\n"
                );
                pv_start += BOOT_SECTORS;
            }
            lvm_pv = Some(bytes((pv_start, end - pv_start)));
            (
                format!("{gpt_head}{boot}{n}1 : start={pv_start}, size={}, type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name=lvm\n", end - pv_start),
                vols,
            )
        }
    };
    let mut volumes = volumes;
    if !table.is_empty() {
        run_stdin(Command::new("sfdisk").arg("-q").arg(img), &table)?;
    }
    if let Some(pv) = lvm_pv {
        volumes[0].at = lvm_root(img, pv, work)?;
    }
    if recipe.tree == Tree::Os {
        boot_files(&tree, layout, &volumes)?;
    }
    // Deepest mount first: each filesystem takes its subtree out of the one above it.
    let mut order: Vec<usize> = (0..volumes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(volumes[i].mount.len()));
    for i in order {
        let v = &volumes[i];
        let dir = work.join(format!("fs{i}"));
        if v.mount == "/" {
            std::fs::rename(&tree, &dir)?;
        } else {
            let from = tree.join(v.mount.trim_start_matches('/'));
            std::fs::create_dir_all(&from)?;
            std::fs::rename(&from, &dir)?;
            std::fs::create_dir_all(&from)?;
        }
        let part = work.join(format!("fs{i}.img"));
        std::fs::File::create(&part)?.set_len(v.at.1)?;
        mkfs(v, &dir, &part, work)?;
        let target = match recipe.corrupt {
            Some(Corruption::Overlay2Init) => {
                if layout == Layout::Var {
                    "/var"
                } else {
                    "/"
                }
            }
            Some(_) => "/",
            None => "",
        };
        if v.mount == target {
            corrupt(
                &part,
                v.fs,
                recipe.corrupt.expect("a target only with a corruption"),
                v.mount,
            )?;
        }
        super::images::implant(&part, img, v.at.0)?;
    }
    Ok(())
}

/// A UUID from a name: the same recipe always gets the same filesystem UUIDs.
fn uuid_of(name: &str) -> String {
    let h = hex::encode(&Sha256::digest(name.as_bytes())[..16]);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn mkfs(v: &Volume, dir: &Path, part: &Path, work: &Path) -> anyhow::Result<()> {
    match v.fs {
        Fs::Ext4 => {
            let mut cmd = Command::new("mke2fs");
            cmd.args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-O",
                "^metadata_csum",
                "-U",
                &v.uuid,
            ]);
            if !v.label.is_empty() {
                cmd.args(["-L", v.label]);
            }
            run(cmd.args(["-E", "root_owner=0:0", "-d"]).arg(dir).arg(part))?;
        }
        Fs::Xfs => {
            let proto = work.join("proto");
            std::fs::write(&proto, protofile(dir)?)?;
            run(Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", &format!("uuid={}", v.uuid), "-p"])
                .arg(&proto)
                .arg(part))?;
        }
        Fs::Vfat => {
            run(Command::new("mkfs.vfat")
                .args(["-n", v.label, "-i", &v.uuid])
                .arg(part))?;
        }
    }
    Ok(())
}

/// The fstab and GRUB configuration of a layout, naming its filesystems as an image build
/// does: Azure's Ubuntu images by label, others by UUID, an LVM root by its mapper path.
fn boot_files(tree: &Path, layout: Layout, volumes: &[Volume]) -> anyhow::Result<()> {
    let spec = |v: &Volume| match (layout, v.mount) {
        (Layout::Lvm | Layout::LvmBoot, "/") => "/dev/mapper/rootvg-rootlv".to_string(),
        _ if !v.label.is_empty() => format!("LABEL={}", v.label),
        _ => format!("UUID={}", v.uuid),
    };
    let mut fstab = String::from(
        "# CLOUD_IMG: This file was created/modified by the Cloud Image build process\n",
    );
    for v in volumes {
        let (ty, opts, pass) = match (v.fs, v.mount) {
            (Fs::Vfat, _) => ("vfat", "umask=0077", 1),
            (Fs::Ext4, "/") => ("ext4", "discard,errors=remount-ro", 1),
            (Fs::Ext4, _) => ("ext4", "defaults", 2),
            (Fs::Xfs, _) => ("xfs", "defaults", 0),
        };
        fstab.push_str(&format!(
            "{}\t{}\t{ty}\t{opts}\t0 {pass}\n",
            spec(v),
            v.mount
        ));
    }
    fstab.push_str("/dev/disk/cloud/azure_resource-part1\t/mnt\tauto\tdefaults,nofail,x-systemd.requires=cloud-init.service,_netdev,comment=cloudconfig\t0\t2\n");
    std::fs::write(tree.join("etc/fstab"), fstab)?;
    let root = volumes.iter().find(|v| v.mount == "/").expect("a root");
    let kernel = if layout == Layout::LvmBoot {
        "/vmlinuz-5.15.0-1075-azure"
    } else {
        "/boot/vmlinuz-5.15.0-1075-azure"
    };
    std::fs::write(
        tree.join("boot/grub/grub.cfg"),
        format!("set timeout=1\nmenuentry 'Ubuntu' {{\n  linux {kernel} root={} ro console=tty1 console=ttyS0 earlyprintk=ttyS0\n}}\n", spec(root)),
    )?;
    std::fs::write(tree.join("boot/vmlinuz-5.15.0-1075-azure"), "kernel\n")?;
    Ok(())
}

/// An LVM physical volume on the partition at `pv` holding volume group `rootvg` with one
/// linear logical volume `rootlv`, written by lvm2's own tools through a loop device of the
/// partition. Without device-mapper, `lvcreate --driverloaded n --activate n --zero n` still
/// writes the metadata (checked on this project's machines). Returns where the LV's bytes are.
fn lvm_root(img: &Path, pv: (u64, u64), work: &Path) -> anyhow::Result<(u64, u64)> {
    let out = run(Command::new("losetup")
        .args([
            "-f",
            "--show",
            "-o",
            &pv.0.to_string(),
            "--sizelimit",
            &pv.1.to_string(),
        ])
        .arg(img))
    .context("an LVM layout needs a loop device (root)")?;
    let dev = out.trim().to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _guard = Detach(dev.clone());
    let etc = work.join("lvm-etc");
    std::fs::create_dir_all(&etc)?;
    let lvm = |args: &[&str]| -> anyhow::Result<String> {
        run(Command::new(args[0])
            .args(&args[1..])
            .args([
                "--devices",
                &dev,
                "--config",
                "backup { backup=0 archive=0 }",
            ])
            .env("LVM_SYSTEM_DIR", &etc))
        .with_context(|| format!("{} (is lvm2 installed?)", args[0]))
    };
    lvm(&["pvcreate", "-y", &dev])?;
    lvm(&["vgcreate", "rootvg", &dev])?;
    lvm(&[
        "lvcreate",
        "--driverloaded",
        "n",
        "--activate",
        "n",
        "--zero",
        "n",
        "-y",
        "-n",
        "rootlv",
        "-l",
        "100%FREE",
        "rootvg",
    ])?;
    let lv = super::lvm::volumes(img, pv.0)?
        .into_iter()
        .find(|l| l.name == "rootlv")
        .context("lvcreate made no readable rootlv")?;
    anyhow::ensure!(lv.extents.len() == 1, "rootlv is not one linear segment");
    Ok(lv.extents[0])
}

/// Damages the filesystem mounted at `mount` (paths inside it lose that prefix).
fn corrupt(part: &Path, fs: Fs, how: Corruption, mount: &str) -> anyhow::Result<()> {
    let init = format!("/var/lib/docker/overlay2/{OVERLAY_ID}-init");
    let init = init
        .strip_prefix(mount.trim_end_matches('/'))
        .unwrap_or(&init)
        .to_string();
    match (fs, how) {
        (_, Corruption::DirtyLog) => return dirty_log(part, fs, false),
        (Fs::Xfs, Corruption::UnreplayableLog) => return dirty_log(part, fs, true),
        (_, Corruption::UnreplayableLog) => {
            bail!("corruption `unreplayable-log` applies to XFS only")
        }
        _ => {}
    }
    if fs == Fs::Xfs {
        if how != Corruption::Overlay2Init {
            bail!(
                "corruption `{}` applies to ext4 only; XFS supports overlay2-init",
                serde_yaml::to_string(&how)?.trim()
            );
        }
        // The directory's inode loses its mode: XFS answers EFSCORRUPTED ("Structure needs
        // cleaning") on lstat; `xfs_repair -n` exits 1 and `xfs_repair` fixes it.
        let path = format!("path {init}");
        return run(Command::new("xfs_db")
            .args(["-x", "-c", &path, "-c", "write core.mode 0"])
            .arg(part))
        .map(drop);
    }
    match how {
        Corruption::Overlay2Init => {
            let req = format!("zap_block -f {init} 0");
            run(Command::new("debugfs").args(["-w", "-R", &req]).arg(part)).map(drop)
        }
        Corruption::Superblock => zero(part, 1024, 1024),
        Corruption::DirtyLog | Corruption::UnreplayableLog => unreachable!("handled above"),
        Corruption::Unrepairable => {
            let out = run(Command::new("dumpe2fs").arg(part))?;
            let block_size: u64 =
                field(&out, "Block size:").context("dumpe2fs shows no block size")?;
            for line in out.lines().filter(|l| l.contains("superblock at ")) {
                let at = line.split("superblock at ").nth(1).unwrap_or("");
                let block: u64 = at
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap_or("")
                    .parse()?;
                if block > 0 {
                    zero(part, block * block_size, block_size)?;
                }
            }
            zero(part, 1024, 1024)
        }
    }
}

/// A filesystem left as a crash leaves it: metadata changes in its journal or log, not yet
/// written in place. ext4: a transaction written with debugfs' journal commands, for a block
/// that is free (so replaying it changes no file). XFS: the kernel's own log, written by
/// creating files in synced batches and then shutting the filesystem down (`xfs_io -x -c
/// shutdown`, as xfstests' godown does), so the unmount writes no clean record. `damage_tail`
/// then garbles the record at the log's tail: the mount's recovery cannot find the tail.
fn dirty_log(part: &Path, fs: Fs, damage_tail: bool) -> anyhow::Result<()> {
    if fs == Fs::Ext4 {
        let free = run(Command::new("debugfs")
            .args(["-R", "ffb 1 20000"])
            .arg(part))?;
        let block = free
            .split_whitespace()
            .filter_map(|w| w.parse::<u64>().ok())
            .next_back()
            .context("debugfs found no free block")?;
        let cmds = part.with_extension("jcmds");
        std::fs::write(&cmds, format!("jo\njw -b {block} /dev/zero\njc\n"))?;
        run(Command::new("debugfs")
            .arg("-w")
            .arg("-f")
            .arg(&cmds)
            .arg(part))?;
        return Ok(());
    }
    let mnt = part.with_extension("mnt");
    std::fs::create_dir_all(&mnt)?;
    run(Command::new("mount")
        .arg("-o")
        .arg("loop,nouuid")
        .arg(part)
        .arg(&mnt))
    .context("an XFS log needs a mount (root)")?;
    let written = (|| -> anyhow::Result<()> {
        for batch in 0..30 {
            let dir = mnt.join(format!("var/lib/docker/volumes/batch{batch}"));
            std::fs::create_dir_all(&dir)?;
            for i in 0..20 {
                std::fs::write(dir.join(format!("f{i}")), format!("{batch}.{i}\n"))?;
            }
            run(Command::new("sync").arg("-f").arg(&dir))?;
        }
        run(Command::new("xfs_io")
            .args(["-x", "-c", "shutdown"])
            .arg(&mnt))
        .map(drop)
    })();
    let _ = Command::new("umount").arg(&mnt).status();
    written?;
    if damage_tail {
        let logstart = run(Command::new("xfs_db")
            .args(["-r", "-c", "sb 0", "-c", "p logstart"])
            .arg(part))?;
        let fsb = logstart.split('=').nth(1).unwrap_or("").trim().to_string();
        let at = run(Command::new("xfs_db")
            .args(["-r", "-c", &format!("convert fsb {fsb} byte")])
            .arg(part))?;
        let base: u64 = at
            .split(['(', ')'])
            .nth(1)
            .and_then(|b| b.trim().parse().ok())
            .context("xfs_db gave no log offset")?;
        garble_log_tail(part, base)?;
        let probe = Command::new("mount")
            .arg("-o")
            .arg("loop,ro,nouuid")
            .arg(part)
            .arg(&mnt)
            .output()?
            .status;
        if probe.success() {
            let _ = Command::new("umount").arg(&mnt).status();
            bail!("the damaged XFS log still replays: the generator's log damage no longer works");
        }
    }
    Ok(())
}

/// Garbles the payload of the log record at the tail the newest record names (each record
/// header, `xlog_rec_header`: magic 0xFEEDBABE, cycle, version, len at 12, lsn at 16, tail_lsn
/// at 24, all big-endian; an LSN's low 32 bits are a block of the log).
fn garble_log_tail(part: &Path, base: u64) -> anyhow::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(part)?;
    let mut log = vec![0u8; 8 << 20];
    let n = f.read_at(&mut log, base)?;
    log.truncate(n);
    let be32 = |b: &[u8], o: usize| u32::from_be_bytes(b[o..o + 4].try_into().unwrap());
    let records: Vec<usize> = (0..log.len() / 512)
        .map(|s| s * 512)
        .filter(|&o| log[o..o + 4] == [0xfe, 0xed, 0xba, 0xbe] && be32(&log, o + 12) > 0)
        .collect();
    let newest = *records
        .iter()
        .max_by_key(|&&o| be32(&log, o + 20))
        .context("no log records")?;
    let tail = be32(&log, newest + 28) as usize * 512;
    let len = be32(&log, tail + 12) as usize;
    anyhow::ensure!(
        log[tail..tail + 4] == [0xfe, 0xed, 0xba, 0xbe] && len > 128,
        "no record at the log tail"
    );
    let mut payload = log[tail + 512..tail + 512 + len].to_vec();
    for b in payload.iter_mut().skip(64).step_by(32).take(len / 32 - 4) {
        *b ^= 0xff;
    }
    f.write_all_at(&payload, base + tail as u64 + 512)?;
    Ok(())
}

fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().parse().ok())
}

fn zero(path: &Path, offset: u64, len: u64) -> anyhow::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(&vec![0u8; len as usize], offset)?;
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is e2fsprogs/xfsprogs/fdisk installed?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_stdin(cmd: &mut Command, input: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?} (is fdisk installed?)"))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// An AKS Ubuntu node's root filesystem, in miniature (`{layer}` and `{init}` are a container
/// layer and its `-init` layer under /var/lib/docker/overlay2).
const OS_FILES: &[(&str, &str)] = &[
    ("etc/os-release", "PRETTY_NAME=\"Ubuntu 22.04.5 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nVERSION=\"22.04.5 LTS (Jammy Jellyfish)\"\nID=ubuntu\nID_LIKE=debian\n"),
    ("etc/hostname", "aks-nodepool1-31415926-vm2\n"),
    ("etc/fstab", "# CLOUD_IMG: This file was created/modified by the Cloud Image build process\nLABEL=cloudimg-rootfs\t/\t ext4\tdiscard,errors=remount-ro\t0 1\nLABEL=UEFI\t/boot/efi\tvfat\tumask=0077\t0 1\n/dev/disk/cloud/azure_resource-part1\t/mnt\tauto\tdefaults,nofail,x-systemd.requires=cloud-init.service,_netdev,comment=cloudconfig\t0\t2\n"),
    ("etc/docker/daemon.json", "{\n  \"live-restore\": true,\n  \"log-driver\": \"json-file\",\n  \"log-opts\": {\"max-size\": \"50m\", \"max-file\": \"5\"}\n}\n"),
    ("etc/systemd/system/kubelet.service", "[Unit]\nDescription=Kubelet\nConditionPathExists=/usr/local/bin/kubelet\n\n[Service]\nRestart=always\nExecStart=/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml\n"),
    ("var/lib/kubelet/config.yaml", "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nmaxPods: 110\n"),
    ("var/lib/kubelet/kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- name: localcluster\n  cluster:\n    server: https://prod-aks-dns-0f3c2a1b.hcp.westeurope.azmk8s.io:443\n"),
    ("{init}/diff/etc/hostname", ""),
    ("{init}/diff/etc/hosts", ""),
    ("{init}/diff/etc/resolv.conf", ""),
    ("{init}/link", "B3XKQ7ZL6N2JH4T5VWMR8PDYCE\n"),
    ("{init}/lower", "l/U4Q2D7KX3MZ9HN5WJB6ETCPRSA\n"),
    ("{layer}/diff/app/server.js", "require('http').createServer((q, r) => r.end('ok')).listen(8080);\n"),
    ("{layer}/link", "U4Q2D7KX3MZ9HN5WJB6ETCPRSA\n"),
    ("{layer}/lower", "l/B3XKQ7ZL6N2JH4T5VWMR8PDYCE\n"),
    ("var/log/syslog", "Nov 26 18:02:11 aks-nodepool1-31415926-vm2 kubelet[1544]: I1126 18:02:11.104 kubelet_node_status.go:497] \"Fast updating node status as it just became ready\"\n"),
    ("home/azureuser/.bashrc", "# ~/.bashrc\n"),
    ("boot/grub/grub.cfg", "set timeout=1\nmenuentry 'Ubuntu' {\n  linux /boot/vmlinuz-5.15.0-1075-azure root=LABEL=cloudimg-rootfs ro console=tty1 console=ttyS0 earlyprintk=ttyS0\n}\n"),
];

const OS_DIRS: &[&str] = &[
    "var/lib/kubelet/pods",
    "var/lib/kubelet/plugins/kubernetes.io/csi",
    "var/lib/containerd",
    "boot/efi",
    "tmp",
    "mnt",
    "proc",
    "sys",
    "dev",
    "run",
    "{init}/diff/dev/shm",
    "{init}/diff/proc",
    "{init}/diff/sys",
    "{init}/work/work",
    "var/lib/docker/overlay2/l",
    "var/lib/docker/containers",
    "var/lib/docker/image/overlay2",
];

/// A PostgreSQL volume as a StatefulSet's persistent volume holds it.
const DATA_FILES: &[(&str, &str)] = &[
    ("pgdata/PG_VERSION", "16\n"),
    (
        "pgdata/postgresql.auto.conf",
        "# Do not edit this file manually!\n",
    ),
    ("pgdata/base/16384/PG_VERSION", "16\n"),
    (
        "pgdata/global/pg_control",
        "pg_control version number: 1300\n",
    ),
];

const DATA_DIRS: &[&str] = &["pgdata/pg_wal/archive_status", "lost+found"];

/// Writes a tree of files and directories below `root`.
fn populate(root: &Path, files: &[(&str, &str)], dirs: &[&str]) -> anyhow::Result<()> {
    let expand = |p: &str| {
        p.replace(
            "{init}",
            &format!("var/lib/docker/overlay2/{OVERLAY_ID}-init"),
        )
        .replace("{layer}", &format!("var/lib/docker/overlay2/{OVERLAY_ID}"))
    };
    for d in dirs {
        std::fs::create_dir_all(root.join(expand(d)))?;
    }
    for (path, content) in files {
        let p = root.join(expand(path));
        std::fs::create_dir_all(p.parent().expect("relative path has a parent"))?;
        std::fs::write(p, content)?;
    }
    Ok(())
}

/// An `mkfs.xfs -p` prototype file describing `tree` (regular files and directories).
fn protofile(tree: &Path) -> anyhow::Result<String> {
    fn walk(dir: &Path, depth: usize, out: &mut String) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let indent = " ".repeat(depth);
            if e.file_type()?.is_dir() {
                out.push_str(&format!("{indent}{name} d--755 0 0\n"));
                walk(&e.path(), depth + 1, out)?;
                out.push_str(&format!("{indent}$\n"));
            } else {
                out.push_str(&format!(
                    "{indent}{name} ---644 0 0 {}\n",
                    e.path().display()
                ));
            }
        }
        Ok(())
    }
    let mut out = String::from("/dev/null\n0 0\nd--755 0 0\n");
    walk(tree, 1, &mut out)?;
    out.push_str("$\n");
    Ok(out)
}
