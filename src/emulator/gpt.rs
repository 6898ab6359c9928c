//! Reads a GPT partition table from an image file (512-byte sectors), so that loop devices per
//! partition and the boot check know where each partition is without udev or `losetup -P`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::Context;

const SECTOR: u64 = 512;
/// The GPT type GUID of a "Linux filesystem" partition, as stored on disk (mixed endian).
const LINUX_FS: [u8; 16] = [
    0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// 1-based, as in `lun0-part1`.
    pub number: u32,
    pub offset: u64,
    pub size: u64,
    pub linux_fs: bool,
}

/// The partitions of an image; empty when it has no GPT (a bare filesystem, or zeros).
pub fn partitions(image: &Path) -> anyhow::Result<Vec<Partition>> {
    let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let mut header = [0u8; 92];
    if f.read_exact_at(&mut header, SECTOR).is_err() || &header[0..8] != b"EFI PART" {
        return Ok(Vec::new());
    }
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let entries_lba = u64_at(&header, 72);
    let count = u32_at(&header, 80).min(256);
    let entry_size = u32_at(&header, 84) as usize;
    anyhow::ensure!(
        entry_size >= 128,
        "{}: GPT entry size {entry_size} is invalid",
        image.display()
    );
    let mut table = vec![0u8; entry_size * count as usize];
    f.read_exact_at(&mut table, entries_lba * SECTOR)?;
    let mut parts = Vec::new();
    for (i, e) in table.chunks(entry_size).enumerate() {
        if e[0..16].iter().all(|b| *b == 0) {
            continue;
        }
        let first = u64_at(e, 32);
        let last = u64_at(e, 40);
        if last < first {
            continue;
        }
        parts.push(Partition {
            number: i as u32 + 1,
            offset: first * SECTOR,
            size: (last - first + 1) * SECTOR,
            linux_fs: e[0..16] == LINUX_FS,
        });
    }
    Ok(parts)
}

/// The root filesystem's partition: the largest Linux filesystem partition (partition 1 on
/// Azure's Linux images), else the largest partition.
pub fn root_partition(parts: &[Partition]) -> Option<&Partition> {
    parts
        .iter()
        .filter(|p| p.linux_fs)
        .max_by_key(|p| p.size)
        .or_else(|| parts.iter().max_by_key(|p| p.size))
}
