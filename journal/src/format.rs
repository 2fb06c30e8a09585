//! On-disk layout: segment header, frame header, placement rule, names.
//! FORMAT.md is the prose version of this file.

use core::mem::size_of;
use std::path::Path;

use crate::record::RecordKind;

/// First 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"LIQDJRNL";
/// Version of the segment and record format (header, framing, payload
/// layouts). Readers refuse any other version.
pub const FORMAT_VERSION: u16 = 1;
/// Bytes of the segment header; the first frame follows it.
pub const HEADER_BYTES: usize = 64;
/// Bytes of a frame header (`len`, `crc`).
pub const FRAME_HEADER_BYTES: usize = 8;
/// Segment file names: `{first_seq:020}.seg`.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Prepared (not yet named) segment files end with this.
pub const PREPARED_SUFFIX: &str = ".prepared";
/// Smallest segment the writer accepts.
pub const SEGMENT_BYTES_MIN: u64 = 64 * 1024;
/// Largest segment the writer accepts (lengths and offsets fit u32).
pub const SEGMENT_BYTES_MAX: u64 = 1 << 31;

/// The segment header as laid out on disk (little-endian, packed by
/// construction: every field is at its natural alignment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SegmentHeader {
    pub magic: [u8; 8],
    pub version: u16,
    /// [`RecordKind`] code.
    pub kind: u8,
    /// log2 of the payload alignment (3 → 8 bytes, 4 → 16 bytes).
    pub payload_align_log2: u8,
    pub header_bytes: u32,
    /// The segment's size as created (the file may be shorter if damaged).
    pub segment_bytes: u64,
    /// Sequence of the first record this segment holds (or would hold).
    pub first_seq: u64,
    /// Wall clock when the segment was started (creation info).
    pub created_unix_ns: u64,
    /// Process id of the writer that started it (creation info).
    pub writer_pid: u32,
    pub reserved: [u8; 16],
    /// CRC-32C of bytes 0..60.
    pub header_crc: u32,
}

const _: () = assert!(size_of::<SegmentHeader>() == HEADER_BYTES);

/// The frame header as laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct FrameHeader {
    /// Payload length; written last (the commit word). 0 = end of data.
    pub len: u32,
    /// CRC-32C of the 4 little-endian `len` bytes followed by the payload.
    pub crc: u32,
}

const _: () = assert!(size_of::<FrameHeader>() == FRAME_HEADER_BYTES);

/// Why a segment header is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    Magic,
    Version(u16),
    Checksum,
    Invalid(&'static str),
}

impl SegmentHeader {
    pub fn new(kind: RecordKind, payload_align: usize, segment_bytes: u64, first_seq: u64) -> Self {
        SegmentHeader {
            magic: SEGMENT_MAGIC,
            version: FORMAT_VERSION,
            kind: kind as u8,
            payload_align_log2: payload_align.trailing_zeros() as u8,
            header_bytes: HEADER_BYTES as u32,
            segment_bytes,
            first_seq,
            created_unix_ns: unix_now_ns(),
            writer_pid: std::process::id(),
            reserved: [0; 16],
            header_crc: 0,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[0..8].copy_from_slice(&self.magic);
        out[8..10].copy_from_slice(&self.version.to_le_bytes());
        out[10] = self.kind;
        out[11] = self.payload_align_log2;
        out[12..16].copy_from_slice(&self.header_bytes.to_le_bytes());
        out[16..24].copy_from_slice(&self.segment_bytes.to_le_bytes());
        out[24..32].copy_from_slice(&self.first_seq.to_le_bytes());
        out[32..40].copy_from_slice(&self.created_unix_ns.to_le_bytes());
        out[40..44].copy_from_slice(&self.writer_pid.to_le_bytes());
        out[44..60].copy_from_slice(&self.reserved);
        let crc = crc32c::crc32c(&out[0..60]);
        out[60..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes and validates `bytes` (at least [`HEADER_BYTES`] long).
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderProblem> {
        let bytes = &bytes[..HEADER_BYTES];
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(HeaderProblem::Magic);
        }
        let version = u16_at(8);
        if version != FORMAT_VERSION {
            return Err(HeaderProblem::Version(version));
        }
        let header_crc = u32_at(60);
        if crc32c::crc32c(&bytes[0..60]) != header_crc {
            return Err(HeaderProblem::Checksum);
        }
        let mut reserved = [0u8; 16];
        reserved.copy_from_slice(&bytes[44..60]);
        let header = SegmentHeader {
            magic: SEGMENT_MAGIC,
            version,
            kind: bytes[10],
            payload_align_log2: bytes[11],
            header_bytes: u32_at(12),
            segment_bytes: u64_at(16),
            first_seq: u64_at(24),
            created_unix_ns: u64_at(32),
            writer_pid: u32_at(40),
            reserved,
            header_crc,
        };
        if header.header_bytes as usize != HEADER_BYTES {
            return Err(HeaderProblem::Invalid("header length"));
        }
        if !(3..=12).contains(&header.payload_align_log2) {
            return Err(HeaderProblem::Invalid("payload alignment"));
        }
        if header.segment_bytes > SEGMENT_BYTES_MAX || header.segment_bytes < HEADER_BYTES as u64 {
            return Err(HeaderProblem::Invalid("segment size"));
        }
        if header.first_seq == 0 {
            return Err(HeaderProblem::Invalid("first sequence 0"));
        }
        if RecordKind::from_code(header.kind).is_none() {
            return Err(HeaderProblem::Invalid("record kind"));
        }
        Ok(header)
    }

    pub fn payload_align(&self) -> usize {
        1 << self.payload_align_log2
    }
}

/// Offset of the first frame: the first offset after the header whose
/// payload (8 bytes on) is aligned.
pub const fn first_frame_offset(payload_align: usize) -> usize {
    next_frame_offset_raw(HEADER_BYTES, payload_align)
}

/// The first frame position at or after `at` (frames start where
/// `position + 8` is a multiple of the payload alignment).
const fn next_frame_offset_raw(at: usize, payload_align: usize) -> usize {
    (at + FRAME_HEADER_BYTES).next_multiple_of(payload_align) - FRAME_HEADER_BYTES
}

/// Where the frame after one at `frame` with a payload of `len` starts.
pub const fn next_frame_offset(frame: usize, len: usize, payload_align: usize) -> usize {
    next_frame_offset_raw(frame + FRAME_HEADER_BYTES + len, payload_align)
}

/// CRC-32C of a frame: the length's 4 little-endian bytes, then the payload.
pub fn frame_crc(len: u32, payload: &[u8]) -> u32 {
    crate::crc::frame_crc(len, payload)
}

/// `{first_seq:020}.seg`: sorts in sequence order.
pub fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The first sequence a segment file name claims, if it is one.
pub fn parse_segment_file_name(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn is_prepared_file_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(PREPARED_SUFFIX))
}

/// Wall clock in ns (creation info only; never in the engine).
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub fn page_bytes() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        // The standard check value of CRC-32C (iSCSI, RFC 3720).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn header_round_trips_and_is_checked() {
        let header = SegmentHeader::new(RecordKind::Output, 16, 1 << 20, 42);
        let bytes = header.encode();
        assert_eq!(
            SegmentHeader::decode(&bytes),
            Ok(SegmentHeader {
                header_crc: u32::from_le_bytes(bytes[60..64].try_into().unwrap()),
                ..header
            })
        );
        let mut bad = bytes;
        bad[30] ^= 1;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderProblem::Checksum));
        bad = bytes;
        bad[0] = b'X';
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderProblem::Magic));
        bad = bytes;
        bad[8] = 9;
        assert_eq!(SegmentHeader::decode(&bad), Err(HeaderProblem::Version(9)));
    }

    #[test]
    fn frames_are_placed_so_payloads_align() {
        assert_eq!(first_frame_offset(8), 64);
        assert_eq!(first_frame_offset(16), 72);
        assert_eq!(next_frame_offset(64, 480, 8), 552);
        for align in [8usize, 16] {
            let mut frame = first_frame_offset(align);
            for len in [1usize, 7, 8, 15, 16, 17, 128, 176, 480] {
                assert_eq!((frame + FRAME_HEADER_BYTES) % align, 0);
                let next = next_frame_offset(frame, len, align);
                assert!(next >= frame + FRAME_HEADER_BYTES + len);
                assert!(next < frame + FRAME_HEADER_BYTES + len + align);
                frame = next;
            }
        }
    }

    #[test]
    fn names_sort_and_parse() {
        assert_eq!(segment_file_name(1), "00000000000000000001.seg");
        assert_eq!(
            parse_segment_file_name(Path::new("/x/00000000000000000042.seg")),
            Some(42)
        );
        assert_eq!(parse_segment_file_name(Path::new("42.seg")), None);
        assert_eq!(
            parse_segment_file_name(Path::new("0000000000000000004x.seg")),
            None
        );
    }
}
