//! The sstable footer: the last [`FOOTER_LEN`] bytes of the file (`docs/format.md`, "Footer").
//!
//! ```text
//! magic "TLSS" | version u8 | 3 zero bytes | file id u64
//! 4 × section {offset u64, length u64, xxh3 u64}   row index, partition index, filter, statistics
//! xxh3 u64 of everything above
//! ```
//!
//! All integers little-endian. Section checksums are xxh3-64 seeded with the file id, so a section
//! copied from another sstable fails. The sections lie back to back after the data blocks, in the
//! order listed, and the footer follows the last one: [`Footer::decode`] checks exactly that layout
//! against the file length, so no offset can point outside the file.
//!
//! Thread-safety: plain values and pure functions.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::error::{Error, Result};

/// Bytes of the footer.
pub const FOOTER_LEN: usize = 16 + SECTION_COUNT * 24 + 8;
/// The footer's magic bytes.
pub const SSTABLE_MAGIC: [u8; 4] = *b"TLSS";
/// The sstable format version this code writes and reads.
pub const SSTABLE_FORMAT_VERSION: u8 = 1;

const SECTION_COUNT: usize = 4;
const STRUCTURE: &str = "sstable footer";

/// One section's place and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Section {
    /// File offset.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// xxh3-64 of the section seeded with the file id.
    pub checksum: u64,
}

impl Section {
    /// Describes `bytes`, written at `offset` of file `file_id`.
    pub fn describe(bytes: &[u8], offset: u64, file_id: u64) -> Section {
        Section { offset, len: bytes.len() as u64, checksum: xxh3_64_with_seed(bytes, file_id) }
    }

    /// Checks `bytes` (read from this section of file `file_id`) against the checksum.
    pub fn verify(&self, bytes: &[u8], file_id: u64, structure: &'static str) -> Result<()> {
        let actual = xxh3_64_with_seed(bytes, file_id);
        if bytes.len() as u64 != self.len || actual != self.checksum {
            return Err(Error::Corrupt {
                structure,
                offset: usize::try_from(self.offset).unwrap_or(usize::MAX),
                reason: format!("section checksum mismatch: stored {:016x}, computed {actual:016x}", self.checksum),
            });
        }
        Ok(())
    }
}

/// The footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footer {
    /// The file id (the sstable's generation) every checksum is bound to.
    pub file_id: u64,
    /// Row indexes of wide partitions.
    pub row_index: Section,
    /// The partition index.
    pub partition_index: Section,
    /// The bloom filter.
    pub filter: Section,
    /// The statistics.
    pub statistics: Section,
}

impl Footer {
    fn sections(&self) -> [&Section; SECTION_COUNT] {
        [&self.row_index, &self.partition_index, &self.filter, &self.statistics]
    }

    /// The end of the data blocks (where the row index starts).
    pub fn data_end(&self) -> u64 {
        self.row_index.offset
    }

    /// Appends the footer's [`FOOTER_LEN`] bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&SSTABLE_MAGIC);
        out.extend_from_slice(&[SSTABLE_FORMAT_VERSION, 0, 0, 0]);
        out.extend_from_slice(&self.file_id.to_le_bytes());
        for s in self.sections() {
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&s.len.to_le_bytes());
            out.extend_from_slice(&s.checksum.to_le_bytes());
        }
        let sum = xxh3_64(&out[start..]);
        out.extend_from_slice(&sum.to_le_bytes());
    }

    /// Decodes the footer `bytes` (the last [`FOOTER_LEN`] bytes of a file of `file_len` bytes)
    /// and checks it belongs to file `expected_file_id` (when given) and fits the file.
    pub fn decode(bytes: &[u8], file_len: u64, expected_file_id: Option<u64>) -> Result<Footer> {
        let footer_offset = file_len.saturating_sub(FOOTER_LEN as u64);
        let corrupt = |at: usize, reason: String| Error::Corrupt {
            structure: STRUCTURE,
            offset: usize::try_from(footer_offset).ok().and_then(|f| f.checked_add(at)).unwrap_or(usize::MAX),
            reason,
        };
        if bytes.len() != FOOTER_LEN || file_len < FOOTER_LEN as u64 {
            return Err(corrupt(0, format!("file of {file_len} byte(s) is too short for a {FOOTER_LEN}-byte footer")));
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let stored = word(FOOTER_LEN - 8);
        let actual = xxh3_64(&bytes[..FOOTER_LEN - 8]);
        if stored != actual {
            return Err(corrupt(FOOTER_LEN - 8, format!("footer checksum mismatch: stored {stored:016x}, computed {actual:016x}")));
        }
        if bytes[..4] != SSTABLE_MAGIC {
            return Err(corrupt(0, format!("bad magic {:02x?}", &bytes[..4])));
        }
        if bytes[4] != SSTABLE_FORMAT_VERSION || bytes[5..8] != [0, 0, 0] {
            return Err(corrupt(4, format!("unsupported format version {} (expected {SSTABLE_FORMAT_VERSION})", bytes[4])));
        }
        let file_id = word(8);
        if let Some(expected) = expected_file_id.filter(|&e| e != file_id) {
            return Err(corrupt(8, format!("footer of file id {file_id}, expected {expected}")));
        }
        let section = |i: usize| Section { offset: word(16 + i * 24), len: word(24 + i * 24), checksum: word(32 + i * 24) };
        let footer = Footer { file_id, row_index: section(0), partition_index: section(1), filter: section(2), statistics: section(3) };
        // The sections are contiguous and end where the footer starts.
        let mut expected_offset = footer.row_index.offset;
        for (i, s) in footer.sections().into_iter().enumerate() {
            if s.offset != expected_offset {
                return Err(corrupt(
                    16 + i * 24,
                    format!("section {i} at {} does not follow the previous one (at {expected_offset})", s.offset),
                ));
            }
            expected_offset = s.offset.checked_add(s.len).ok_or_else(|| corrupt(24 + i * 24, "section length overflows".into()))?;
        }
        if expected_offset != footer_offset {
            return Err(corrupt(16, format!("sections end at {expected_offset}, the footer starts at {footer_offset}")));
        }
        Ok(footer)
    }
}

/// Runs [`Footer::decode`] on arbitrary bytes (taken as a whole file's last bytes) and checks that
/// a successful decode re-encodes to the same bytes. Used by the fuzz target and its corpus test.
#[doc(hidden)]
pub fn check_decode(bytes: &[u8]) -> std::result::Result<(), String> {
    let Some(tail) = bytes.len().checked_sub(FOOTER_LEN).map(|s| &bytes[s..]) else {
        return match Footer::decode(bytes, bytes.len() as u64, None) {
            Err(Error::Corrupt { .. }) => Ok(()),
            other => Err(format!("short input decoded to {other:?}")),
        };
    };
    match Footer::decode(tail, bytes.len() as u64, None) {
        Ok(footer) => {
            let mut again = Vec::new();
            footer.encode(&mut again);
            if again != tail {
                return Err("footer does not re-encode to the same bytes".into());
            }
            Ok(())
        }
        Err(Error::Corrupt { .. }) => Ok(()),
        Err(other) => Err(format!("untyped error {other}")),
    }
}
