//! Reads a GPT or MBR partition table from an image file (512-byte sectors), so that loop devices
//! per partition and the boot check know where each partition is without udev or `losetup -P`.
//! Numbering is the kernel's: GPT entries by index, MBR primaries 1-4 and logical partitions
//! from 5 in the order of the extended partition's chain (the `msdos` partition parser).

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
    /// The type as sfdisk prints it: a GPT type GUID (lowercase) or an MBR type byte in hex.
    pub type_id: String,
}

/// The partitions of an image: GPT, else MBR; empty when it has neither (a bare filesystem, or
/// zeros).
pub fn table(image: &Path) -> anyhow::Result<Vec<Partition>> {
    let parts = partitions(image)?;
    if !parts.is_empty() {
        return Ok(parts);
    }
    mbr(image)
}

fn guid(b: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        u32::from_le_bytes(b[0..4].try_into().unwrap()),
        u16::from_le_bytes(b[4..6].try_into().unwrap()),
        u16::from_le_bytes(b[6..8].try_into().unwrap()),
        hex::encode(&b[8..10]),
        hex::encode(&b[10..16])
    )
}

/// MBR primaries and the logical partitions of an extended one (types 0x05, 0x0f, 0x85). A
/// protective MBR (0xee) is GPT's, read by `partitions`.
fn mbr(image: &Path) -> anyhow::Result<Vec<Partition>> {
    let f = File::open(image).with_context(|| format!("opening {}", image.display()))?;
    let read = |lba: u64| -> Option<[u8; 512]> {
        let mut s = [0u8; 512];
        f.read_exact_at(&mut s, lba * SECTOR).ok()?;
        (s[510] == 0x55 && s[511] == 0xaa).then_some(s)
    };
    let entries = |s: &[u8; 512]| -> Vec<(u8, u64, u64)> {
        (0..4)
            .map(|i| {
                let e = &s[446 + i * 16..446 + (i + 1) * 16];
                let start = u32::from_le_bytes(e[8..12].try_into().unwrap()) as u64;
                let count = u32::from_le_bytes(e[12..16].try_into().unwrap()) as u64;
                (e[4], start, count)
            })
            .collect()
    };
    let Some(first) = read(0) else {
        return Ok(Vec::new());
    };
    let is_extended = |t: u8| matches!(t, 0x05 | 0x0f | 0x85);
    let mut parts = Vec::new();
    let mut extended = None;
    for (i, (t, start, count)) in entries(&first).into_iter().enumerate() {
        if t == 0 || count == 0 {
            continue;
        }
        if t == 0xee {
            return Ok(Vec::new());
        }
        if is_extended(t) {
            extended = Some(start);
            continue;
        }
        parts.push(mbr_partition(i as u32 + 1, t, start, count));
    }
    // Each EBR holds a logical partition (relative to the EBR) and a link to the next EBR
    // (relative to the extended partition's start).
    if let Some(ext) = extended {
        let mut ebr = ext;
        for number in 5..64 {
            let Some(s) = read(ebr) else { break };
            let e = entries(&s);
            let (t, start, count) = e[0];
            if t != 0 && count > 0 {
                parts.push(mbr_partition(number, t, ebr + start, count));
            }
            match e[1] {
                (t, next, _) if is_extended(t) && next > 0 => ebr = ext + next,
                _ => break,
            }
        }
    }
    Ok(parts)
}

fn mbr_partition(number: u32, t: u8, start: u64, count: u64) -> Partition {
    Partition {
        number,
        offset: start * SECTOR,
        size: count * SECTOR,
        linux_fs: t == 0x83,
        type_id: format!("{t:x}"),
    }
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
            type_id: guid(&e[0..16]),
        });
    }
    Ok(parts)
}
