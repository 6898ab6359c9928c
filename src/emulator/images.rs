//! Disk image files: sparse-aware copies (reflink when the filesystem can, else only the data
//! extents), partition extraction, and reading users' raw or fixed-VHD images.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use anyhow::Context;

/// Disk images hold a VM's data: readable by their owner only.
pub const IMAGE_MODE: u32 = 0o600;

/// Linux `FICLONE` ioctl: share all extents (btrfs, XFS with reflink, ...).
const FICLONE: libc::c_ulong = 0x4004_9409;

/// Copies an image file, keeping holes; the destination must not exist.
pub fn copy_image(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let from = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let len = from.metadata()?.len();
    let to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(IMAGE_MODE)
        .open(dst)
        .with_context(|| format!("creating {}", dst.display()))?;
    // SAFETY: both descriptors are open for the duration of the call.
    let cloned = unsafe { libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) } == 0;
    if !cloned {
        copy_range(&from, 0, len, &to, 0)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        to.set_len(len)?;
    }
    to.sync_all()?;
    Ok(())
}

/// Copies `len` bytes of `from` at `src_off` into `to` at `dst_off`, skipping holes.
pub fn copy_range(from: &File, src_off: u64, len: u64, to: &File, dst_off: u64) -> io::Result<()> {
    let end = src_off + len;
    let mut pos = src_off;
    while pos < end {
        let Some(data) = seek(from, pos, libc::SEEK_DATA)? else {
            break;
        };
        if data >= end {
            break;
        }
        let hole = seek(from, data, libc::SEEK_HOLE)?.unwrap_or(end).min(end);
        copy_bytes(from, data, hole - data, to, dst_off + (data - src_off))?;
        pos = hole;
    }
    Ok(())
}

/// `lseek` with SEEK_DATA/SEEK_HOLE; `None` when there is no more data.
fn seek(f: &File, off: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    // SAFETY: plain syscall on an open descriptor.
    let r = unsafe { libc::lseek(f.as_raw_fd(), off as libc::off_t, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENXIO) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    Ok(Some(r as u64))
}

fn copy_bytes(from: &File, mut src: u64, mut len: u64, to: &File, mut dst: u64) -> io::Result<()> {
    while len > 0 {
        let mut s = src as libc::loff_t;
        let mut d = dst as libc::loff_t;
        // SAFETY: offsets point to valid locals; descriptors are open.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut s,
                to.as_raw_fd(),
                &mut d,
                len.min(1 << 30) as usize,
                0,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP)
            ) {
                return copy_plain(from, src, len, to, dst);
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        src += n as u64;
        dst += n as u64;
        len -= n as u64;
    }
    Ok(())
}

fn copy_plain(from: &File, mut src: u64, mut len: u64, to: &File, mut dst: u64) -> io::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    while len > 0 {
        let want = len.min(buf.len() as u64) as usize;
        let n = from.read_at(&mut buf[..want], src)?;
        if n == 0 {
            break;
        }
        // Zero blocks stay holes in the destination.
        if buf[..n].iter().any(|b| *b != 0) {
            to.write_all_at(&buf[..n], dst)?;
        }
        src += n as u64;
        dst += n as u64;
        len -= n as u64;
    }
    Ok(())
}

/// Creates an all-zero sparse image of `bytes`.
pub fn create_sparse(path: &Path, bytes: u64) -> anyhow::Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(IMAGE_MODE)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.set_len(bytes)?;
    Ok(())
}

/// Writes a whole file into an image at `offset` (a filesystem into its partition).
pub fn implant(part: &Path, image: &Path, offset: u64) -> anyhow::Result<()> {
    let from = File::open(part)?;
    let len = from.metadata()?.len();
    let to = OpenOptions::new().write(true).open(image)?;
    copy_range(&from, 0, len, &to, offset)?;
    Ok(())
}

/// Imports a user's image: raw as is, fixed VHD without its 512-byte footer. The source is
/// only read.
pub fn import(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let from = File::open(src).with_context(|| format!("opening disk image {}", src.display()))?;
    let len = from.metadata()?.len();
    let mut footer = [0u8; 8];
    let vhd =
        len >= 512 && from.read_exact_at(&mut footer, len - 512).is_ok() && &footer == b"conectix";
    if vhd {
        let mut disk_type = [0u8; 4];
        from.read_exact_at(&mut disk_type, len - 512 + 60)?;
        anyhow::ensure!(
            u32::from_be_bytes(disk_type) == 2,
            "{} is a dynamic or differencing VHD; convert it to a fixed VHD or raw first \
             (qemu-img convert -O raw {} disk.img)",
            src.display(),
            src.display()
        );
    }
    let data_len = if vhd { len - 512 } else { len };
    let to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(IMAGE_MODE)
        .open(dst)?;
    copy_range(&from, 0, data_len, &to, 0)?;
    to.set_len(data_len)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copy_keeps_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.img");
        let f = File::create(&src).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"hello", 1 << 20).unwrap();
        f.write_all_at(b"world", 40 << 20).unwrap();
        let dst = dir.path().join("b.img");
        copy_image(&src, &dst).unwrap();
        let g = File::open(&dst).unwrap();
        assert_eq!(g.metadata().unwrap().len(), 64 << 20);
        let mut buf = [0u8; 5];
        g.read_exact_at(&mut buf, 40 << 20).unwrap();
        assert_eq!(&buf, b"world");
        assert!(
            g.metadata().unwrap().blocks() * 512 < 4 << 20,
            "copy is not sparse"
        );
    }

    #[test]
    fn fixed_vhd_loses_its_footer() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.vhd");
        let f = File::create(&src).unwrap();
        f.set_len(1 << 20).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        let mut footer = [0u8; 512];
        footer[..8].copy_from_slice(b"conectix");
        footer[60..64].copy_from_slice(&2u32.to_be_bytes());
        f.write_all_at(&footer, 1 << 20).unwrap();
        let dst = dir.path().join("b.img");
        import(&src, &dst).unwrap();
        assert_eq!(std::fs::metadata(&dst).unwrap().len(), 1 << 20);
    }
}
