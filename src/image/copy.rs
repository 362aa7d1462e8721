//! A byte copy of an image file that is already what the output must be (same format,
//! self-contained): the data is written straight from the page cache (a memory map) with
//! O_DIRECT where the file system allows it, so the copy costs little CPU next to the
//! checksum computed alongside, and is on disk when it returns.

// unsafe: early write-back of the output (libc::sync_file_range); each block says why it is sound.
#![allow(unsafe_code)]

use super::cancel::Cancel;
use super::checksum::Mapping;
use super::progress::Progress;
use super::{Error, IoAt, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

const CHUNK: usize = 4 << 20;
/// Holes are made in blocks of this size (raw images).
const BLOCK: usize = 64 << 10;
/// O_DIRECT needs offsets and lengths in whole blocks of the device.
const ALIGN: usize = 4096;

/// Copy `src` to a new `dst`; with `sparse`, whole zero blocks become holes. The copy is
/// fsynced. Returns the number of bytes (the logical size). With `progress`, a bar on a
/// terminal.
pub(crate) fn copy_image(
    src: &Path,
    dst: &Path,
    sparse: bool,
    cancel: &Cancel,
    progress: bool,
) -> Result<u64> {
    let input = File::open(src).at(src)?;
    let len = input.metadata().at(src)?.len();
    let buffered = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dst)
        .at(dst)?;
    let direct = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(dst)
        .ok();
    let Some(map) = Mapping::new(&input, len) else {
        // Not mappable (empty, or a special file): a plain copy.
        drop(buffered);
        std::fs::copy(src, dst).at(dst)?;
        crate::fsutil::sync_file(dst)?;
        return Ok(len);
    };
    let data = map.bytes();
    let bar = Progress::bytes(progress, "Copying", Some(len));
    let write = |offset: usize, bytes: &[u8]| -> Result<()> {
        let aligned = offset.is_multiple_of(ALIGN) && bytes.len().is_multiple_of(ALIGN);
        match (&direct, aligned) {
            (Some(d), true) => d.write_all_at(bytes, offset as u64),
            _ => buffered.write_all_at(bytes, offset as u64),
        }
        .at(dst)
    };
    let mut offset = 0;
    while offset < data.len() {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let end = (offset + CHUNK).min(data.len());
        if sparse {
            // Runs of non-zero blocks are written together; zero blocks are skipped.
            let mut run: Option<usize> = None;
            let mut at = offset;
            while at < end {
                let block_end = (at + BLOCK).min(end);
                let zero = data[at..block_end].iter().all(|&b| b == 0);
                match (zero, run) {
                    (true, Some(start)) => {
                        write(start, &data[start..at])?;
                        run = None;
                    }
                    (false, None) => run = Some(at),
                    _ => {}
                }
                at = block_end;
            }
            if let Some(start) = run {
                write(start, &data[start..end])?;
            }
        } else {
            write(offset, &data[offset..end])?;
        }
        if direct.is_none() {
            start_writeback(&buffered);
        }
        offset = end;
        bar.set(offset as u64);
    }
    buffered.set_len(len).at(dst)?;
    buffered.sync_all().at(dst)?;
    Ok(len)
}

fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor; SYNC_FILE_RANGE_WRITE only initiates writeback.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copies_exactly_with_holes_where_asked() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        // Data, a long zero stretch, data, and an unaligned tail.
        let mut content = vec![0u8; (9 << 20) + 1234];
        content[..100].fill(7);
        content[(5 << 20)..(5 << 20) + 70_000].fill(9);
        let n = content.len();
        content[n - 10..].fill(3);
        std::fs::write(&src, &content).unwrap();
        for sparse in [false, true] {
            let dst = dir.path().join(format!("dst-{sparse}"));
            assert_eq!(
                copy_image(&src, &dst, sparse, &Cancel::new(), false).unwrap(),
                n as u64
            );
            assert!(std::fs::read(&dst).unwrap() == content, "sparse={sparse}");
            let allocated = std::fs::metadata(&dst).unwrap().blocks() * 512;
            if sparse {
                assert!(allocated < (1 << 20), "{allocated} bytes allocated");
            }
        }
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let dst = dir.path().join("empty-copy");
        assert_eq!(
            copy_image(&empty, &dst, true, &Cancel::new(), false).unwrap(),
            0
        );
        assert_eq!(std::fs::metadata(&dst).unwrap().len(), 0);
    }

    #[test]
    fn cancelled_copy_stops() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![1u8; 1 << 20]).unwrap();
        let c = Cancel::new();
        c.cancel();
        let err = copy_image(&src, &dir.path().join("d"), false, &c, false).unwrap_err();
        assert!(matches!(err, Error::Interrupted));
    }
}
