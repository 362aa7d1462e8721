//! Compressed inputs (.xz, .gz, .bz2, .zst), recognised by their magic number rather than by
//! their name, and decompressed as a stream into a sparse file.

use super::cancel::Cancel;
use super::{Error, IoAt, Result};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Xz,
    Gzip,
    /// As virt-maker's download importer (.qcow2.bz2, .img.bz2).
    Bzip2,
    Zstd,
}

impl Compression {
    /// Recognise a compressed stream by its first bytes (at least 6 for xz).
    pub(crate) fn detect(header: &[u8]) -> Compression {
        if header.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if header.starts_with(&[0x1F, 0x8B]) {
            Compression::Gzip
        } else if header.len() >= 4
            && header.starts_with(b"BZh")
            && (b'1'..=b'9').contains(&header[3])
        {
            Compression::Bzip2
        } else if header.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression of a file, from its first bytes.
    pub(crate) fn of_file(path: &Path) -> Result<Compression> {
        let mut header = [0u8; 6];
        let mut file = File::open(path).at(path)?;
        let mut got = 0;
        while got < header.len() {
            match file.read(&mut header[got..]).at(path)? {
                0 => break,
                n => got += n,
            }
        }
        Ok(Compression::detect(&header[..got]))
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Zstd => "zstd",
        }
    }

    /// A reader of the decompressed stream (concatenated streams/members included).
    pub(crate) fn decoder<'a, R: Read + 'a>(self, reader: R) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(reader)
                    .map_err(|e| Error::Invalid(format!("zstd: {e}")))?,
            ),
        })
    }
}

/// Copy `reader` to a new file at `dest`, leaving holes where whole blocks are zero (disk
/// images are mostly empty). Returns the number of bytes written (the logical size).
pub(crate) fn write_sparse(mut reader: impl Read, dest: &Path, cancel: &Cancel) -> Result<u64> {
    const BLOCK: usize = 64 << 10;
    let mut out = File::create(dest).at(dest)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total: u64 = 0;
    let mut pending_hole = false;
    loop {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Invalid(format!(
                    "cannot decompress the input (at byte {total} of its content): {e}"
                )))
            }
        };
        for block in buf[..n].chunks(BLOCK) {
            if block.iter().all(|&b| b == 0) {
                out.seek(SeekFrom::Current(block.len() as i64)).at(dest)?;
                pending_hole = true;
            } else {
                out.write_all(block).at(dest)?;
                pending_hole = false;
            }
        }
        total += n as u64;
    }
    if pending_hole {
        // A trailing hole: give the file its full length.
        out.set_len(total).at(dest)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn content() -> Vec<u8> {
        let mut v = vec![0u8; 4 << 20];
        v[..5].copy_from_slice(b"hello");
        v[(2 << 20)..(2 << 20) + 5].copy_from_slice(b"world");
        v
    }

    fn round_trip(c: Compression, compressed: Vec<u8>) {
        assert_eq!(Compression::detect(&compressed), c);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let reader = c.decoder(std::io::Cursor::new(compressed)).unwrap();
        let n = write_sparse(reader, &dest, &Cancel::new()).unwrap();
        assert_eq!(n, 4 << 20);
        let back = std::fs::read(&dest).unwrap();
        assert!(back == content(), "{c:?} content differs");
        // Mostly holes: far fewer blocks allocated than 4 MiB.
        assert!(std::fs::metadata(&dest).unwrap().blocks() * 512 < (1 << 20));
    }

    #[test]
    fn xz_gzip_bzip2_zstd_and_plain_round_trip_sparsely() {
        let data = content();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        round_trip(Compression::Xz, xz.finish().unwrap());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        round_trip(Compression::Gzip, gz.finish().unwrap());
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data).unwrap();
        round_trip(Compression::Bzip2, bz.finish().unwrap());
        round_trip(Compression::Zstd, zstd::encode_all(&data[..], 1).unwrap());
        round_trip(Compression::None, data);
    }

    #[test]
    fn qcow2_and_raw_are_not_compressed() {
        assert_eq!(Compression::detect(b"QFI\xfb\0\0"), Compression::None);
        assert_eq!(Compression::detect(b""), Compression::None);
    }

    #[test]
    fn corrupt_stream_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut bad = vec![0xFD, b'7', b'z', b'X', b'Z', 0x00];
        bad.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let reader = Compression::Xz.decoder(std::io::Cursor::new(bad)).unwrap();
        let err = write_sparse(reader, &dir.path().join("o"), &Cancel::new()).unwrap_err();
        assert!(err.to_string().contains("cannot decompress"), "{err}");
    }
}
