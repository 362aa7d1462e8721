//! libvirt's QEMU save image header, read and rewritten so that one saved guest can be
//! restored many times under other names (warm clones).
//!
//! The layout (libvirt's `qemu_saveimage.h`, version 2): the 16-byte magic
//! `LibvirtQemudSave`, then little-endian u32s: version, `data_len`, `was_running`,
//! `compressed`, `cookieOffset` and 15 unused, 92 bytes in all. Then `data_len` bytes: the
//! domain XML (NUL-terminated), the cookie at `cookieOffset` (NUL-terminated), zeros.
//! QEMU's migration stream starts at 92 + `data_len`. libvirt refuses to restore a save
//! image under another name or UUID through its API (its ABI check), so a clone's image is
//! the template's with the XML of this region replaced: keeping `data_len` keeps the
//! stream where it is, and only the first 92 + `data_len` bytes differ between clones.

use crate::error::{Error, Result};

const MAGIC: &[u8; 16] = b"LibvirtQemudSave";
/// The size of the fixed header before the XML region.
pub const HEADER_LEN: usize = 92;

/// A save image's header and XML region, as read from its first bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SaveHeader {
    pub version: u32,
    pub data_len: u32,
    pub was_running: u32,
    pub compressed: u32,
    pub xml: String,
    pub cookie: String,
    /// The 15 unused words, kept as they were.
    unused: Vec<u8>,
}

fn word(bytes: &[u8], index: usize) -> u32 {
    let at = 16 + index * 4;
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn unusable(why: impl Into<String>) -> Error {
    Error::SaveImage(why.into())
}

/// The NUL-terminated text at the start of `bytes`.
fn text_at(bytes: &[u8], what: &str) -> Result<String> {
    let end = bytes
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| unusable(format!("its {what} has no end")))?;
    String::from_utf8(bytes[..end].to_vec())
        .map_err(|_| unusable(format!("its {what} is not UTF-8")))
}

impl SaveHeader {
    /// How many bytes from the image's start [`SaveHeader::parse`] needs, from its first
    /// [`HEADER_LEN`] bytes.
    pub fn region_len(first: &[u8]) -> Result<usize> {
        if first.len() < HEADER_LEN || &first[..16] != MAGIC {
            return Err(unusable(
                "it is not a libvirt QEMU save image (no 'LibvirtQemudSave' header)",
            ));
        }
        Ok(HEADER_LEN + word(first, 1) as usize)
    }

    /// Parse the first 92 + `data_len` bytes of a save image. Only version 2, the one this
    /// code was written against, uncompressed (the stream is then QEMU's own, unchanged).
    pub fn parse(bytes: &[u8]) -> Result<SaveHeader> {
        let region = SaveHeader::region_len(bytes)?;
        let version = word(bytes, 0);
        if version != 2 {
            return Err(unusable(format!(
                "its header version is {version}; only version 2 is known"
            )));
        }
        if bytes.len() < region {
            return Err(unusable(format!(
                "it ends after {} bytes, inside its {region}-byte header",
                bytes.len()
            )));
        }
        let compressed = word(bytes, 3);
        if compressed != 0 {
            return Err(unusable(format!("it is compressed (format {compressed})")));
        }
        let data = &bytes[HEADER_LEN..region];
        let xml = text_at(data, "domain XML")?;
        let cookie_offset = word(bytes, 4) as usize;
        let cookie = if cookie_offset == 0 {
            String::new()
        } else if cookie_offset >= data.len() {
            return Err(unusable("its cookie offset is past its XML region"));
        } else {
            text_at(&data[cookie_offset..], "cookie")?
        };
        Ok(SaveHeader {
            version,
            data_len: word(bytes, 1),
            was_running: word(bytes, 2),
            compressed,
            xml,
            cookie,
            unused: bytes[36..HEADER_LEN].to_vec(),
        })
    }

    /// The first 92 + `data_len` bytes of a save image that holds `xml` instead of this
    /// one's, and starts running when restored. An error if `xml` and the cookie do not fit
    /// in the region.
    pub fn with_xml(&self, xml: &str) -> Result<Vec<u8>> {
        let data_len = self.data_len as usize;
        let needed = xml.len()
            + 1
            + if self.cookie.is_empty() {
                0
            } else {
                self.cookie.len() + 1
            };
        if needed > data_len || xml.as_bytes().contains(&0) {
            return Err(unusable(format!(
                "the new domain XML and cookie need {needed} bytes and its XML region has {data_len}"
            )));
        }
        let cookie_offset = if self.cookie.is_empty() {
            0
        } else {
            xml.len() + 1
        };
        let mut out = Vec::with_capacity(HEADER_LEN + data_len);
        out.extend_from_slice(MAGIC);
        for value in [
            self.version,
            self.data_len,
            1, // was_running: the clone runs once restored
            self.compressed,
            cookie_offset as u32,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&self.unused);
        out.extend_from_slice(xml.as_bytes());
        out.push(0);
        if !self.cookie.is_empty() {
            out.extend_from_slice(self.cookie.as_bytes());
            out.push(0);
        }
        out.resize(HEADER_LEN + data_len, 0);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as libvirt 9 writes one: XML, cookie, zero padding.
    fn image(version: u32, compressed: u32, xml: &str, cookie: &str, data_len: u32) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let cookie_offset = xml.len() as u32 + 1;
        for v in [version, data_len, 1, compressed, cookie_offset] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.resize(HEADER_LEN, 0);
        out.extend_from_slice(xml.as_bytes());
        out.push(0);
        out.extend_from_slice(cookie.as_bytes());
        out.push(0);
        out.resize(HEADER_LEN + data_len as usize, 0);
        out.extend_from_slice(b"QEVM stream");
        out
    }

    #[test]
    fn a_header_is_read_and_its_xml_replaced_in_the_same_region() {
        let original = image(2, 0, "<domain><name>t</name></domain>", "<cookie/>", 4096);
        let header = SaveHeader::parse(&original).unwrap();
        assert_eq!(header.xml, "<domain><name>t</name></domain>");
        assert_eq!(header.cookie, "<cookie/>");
        assert_eq!(
            SaveHeader::region_len(&original).unwrap(),
            HEADER_LEN + 4096
        );

        let new_xml = "<domain><name>a-longer-name</name></domain>";
        let rewritten = header.with_xml(new_xml).unwrap();
        assert_eq!(
            rewritten.len(),
            HEADER_LEN + 4096,
            "the stream stays where it was"
        );
        let again = SaveHeader::parse(&rewritten).unwrap();
        assert_eq!(again.xml, new_xml);
        assert_eq!(
            again.cookie, "<cookie/>",
            "the cookie moves behind the new XML"
        );
        assert_eq!(again.data_len, 4096);
        assert_eq!(word(&rewritten, 2), 1, "restored running");
    }

    #[test]
    fn what_cannot_be_rewritten_is_an_error_saying_why() {
        let not_one = SaveHeader::parse(b"TestGuestMagic and more bytes than a header has, surely, yes: 92 of them at least......");
        assert!(not_one
            .unwrap_err()
            .to_string()
            .contains("not a libvirt QEMU save image"));
        let v3 = image(3, 0, "<domain/>", "", 512);
        assert!(SaveHeader::parse(&v3)
            .unwrap_err()
            .to_string()
            .contains("version is 3"));
        let compressed = image(2, 1, "<domain/>", "", 512);
        assert!(SaveHeader::parse(&compressed)
            .unwrap_err()
            .to_string()
            .contains("compressed"));
        let short = &image(2, 0, "<domain/>", "", 512)[..200];
        assert!(SaveHeader::parse(short)
            .unwrap_err()
            .to_string()
            .contains("inside its"));

        let header = SaveHeader::parse(&image(2, 0, "<domain/>", "<cookie/>", 64)).unwrap();
        let err = header.with_xml(&"x".repeat(60)).unwrap_err().to_string();
        assert!(
            err.contains("need 71 bytes and its XML region has 64"),
            "{err}"
        );
    }
}
