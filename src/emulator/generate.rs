//! Generated disk content: a GPT disk laid out like Azure's Ubuntu images (partition 14 BIOS
//! boot, 15 EFI, 1 root) whose root filesystem (ext4 or XFS) holds a small, realistic node tree,
//! optionally corrupted in a named, reproducible way. Built without mounting anything, and
//! cached by recipe so an emulator start copies a cached image instead of re-running mke2fs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bump when the generated content changes, so stale cached images are not reused.
const GENERATOR_VERSION: u32 = 2;
const MIB: u64 = 1 << 20;
/// The container layer whose `-init` directory the incident's corruption hits.
pub const OVERLAY_ID: &str = "5b0c6e8f4a9d2e71c3f08ab6d94e2c17f5a3b8e09d6c4f21a7e3b5d90c8f1a26";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fs {
    Ext4,
    Xfs,
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
}

impl Recipe {
    fn hash(&self) -> String {
        let text = format!(
            "{GENERATOR_VERSION}:{}",
            serde_json::to_string(self).expect("recipe serializes")
        );
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
    let path = dir.join(format!("{}.img", recipe.hash()));
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

fn build(recipe: &Recipe, work: &Path, img: &Path) -> anyhow::Result<()> {
    let min_mib = match recipe.fs {
        Fs::Ext4 => 64,
        Fs::Xfs => 384, // mkfs.xfs refuses filesystems under 300 MB
    };
    let image_mib = recipe.image_mib.max(min_mib);
    let tree = work.join("tree");
    match recipe.tree {
        Tree::Os => populate(&tree, OS_FILES, OS_DIRS)?,
        Tree::Data => populate(&tree, DATA_FILES, DATA_DIRS)?,
    }
    std::fs::File::create(img)?.set_len(image_mib * MIB)?;
    let table = format!(
        "label: gpt\nfirst-lba: 2048\n\
         {n}14 : start=2048, size=8192, type=21686148-6449-6E6F-744E-656564454649\n\
         {n}15 : start=10240, size=32768, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=UEFI\n\
         {n}1 : start=43008, type=linux, name=cloudimg-rootfs\n",
        n = img.display()
    );
    run_stdin(Command::new("sfdisk").arg("-q").arg(img), &table)?;
    let parts = super::gpt::partitions(img)?;
    let root = parts
        .iter()
        .find(|p| p.number == 1)
        .context("sfdisk made no partition 1")?;
    let part = work.join("root.img");
    std::fs::File::create(&part)?.set_len(root.size)?;
    match recipe.fs {
        Fs::Ext4 => {
            run(Command::new("mke2fs")
                .args([
                    "-q",
                    "-F",
                    "-t",
                    "ext4",
                    "-O",
                    "^metadata_csum",
                    "-L",
                    "cloudimg-rootfs",
                ])
                .args(["-E", "root_owner=0:0", "-d"])
                .arg(&tree)
                .arg(&part))?;
        }
        Fs::Xfs => {
            let proto = work.join("proto");
            std::fs::write(&proto, protofile(&tree)?)?;
            run(Command::new("mkfs.xfs")
                .args(["-q", "-f", "-L", "rootfs", "-p"])
                .arg(&proto)
                .arg(&part))?;
        }
    }
    if let Some(c) = recipe.corrupt {
        corrupt(&part, recipe.fs, c)?;
    }
    super::images::implant(&part, img, root.offset)?;
    Ok(())
}

fn corrupt(part: &Path, fs: Fs, how: Corruption) -> anyhow::Result<()> {
    if fs == Fs::Xfs {
        if how != Corruption::Overlay2Init {
            bail!(
                "corruption `{}` applies to ext4 only; XFS supports overlay2-init",
                serde_yaml::to_string(&how)?.trim()
            );
        }
        // The directory's inode loses its mode: XFS answers EFSCORRUPTED ("Structure needs
        // cleaning") on lstat; `xfs_repair -n` exits 1 and `xfs_repair` fixes it.
        let path = format!("path /var/lib/docker/overlay2/{OVERLAY_ID}-init");
        return run(Command::new("xfs_db")
            .args(["-x", "-c", &path, "-c", "write core.mode 0"])
            .arg(part))
        .map(drop);
    }
    match how {
        Corruption::Overlay2Init => {
            let req = format!("zap_block -f /var/lib/docker/overlay2/{OVERLAY_ID}-init 0");
            run(Command::new("debugfs").args(["-w", "-R", &req]).arg(part)).map(drop)
        }
        Corruption::Superblock => zero(part, 1024, 1024),
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
