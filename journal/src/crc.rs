//! CRC-32C (Castagnoli) for frames, the same values as the `crc32c` crate,
//! faster on frame-sized buffers.
//!
//! The `crc32c` crate interleaves three `crc32` instructions only for
//! buffers of 768 bytes and more; below that it runs one dependent chain
//! (3-cycle latency per 8 bytes), ~180 cycles for an input record's 484
//! bytes — the largest cost of reading a record. Here buffers from 480
//! bytes on are taken in chunks of three 160-byte lanes computed side by
//! side, then joined: a CRC state is linear over GF(2), so the state after
//! lanes A‖B is `shift(state_A, |B|) ⊕ state_B(from 0)`, where `shift`
//! (feeding |B| zero bytes) is four table lookups. The tables are built at
//! compile time from the polynomial. Below 480 bytes, from 24 KiB on (the
//! crate's own long lanes) and without SSE 4.2, the crate's code runs.

/// Bytes per lane of a 3-lane chunk.
const LANE_BYTES: usize = 160;
const CHUNK_BYTES: usize = 3 * LANE_BYTES;
/// From this length on the crate interleaves long lanes itself (and its
/// fewer joins are cheaper).
const CRATE_LONG_BYTES: usize = 3 * 8192;

/// The reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;

/// `state · x^(8·bytes)`: the state after feeding `bytes` zero bytes.
const fn shift_zeros(mut state: u32, bytes: usize) -> u32 {
    let mut bit = 0;
    while bit < 8 * bytes {
        state = if state & 1 == 1 {
            (state >> 1) ^ POLY
        } else {
            state >> 1
        };
        bit += 1;
    }
    state
}

/// `SHIFT[j][b]` = shift of the state `b << 8j` by one lane.
static SHIFT: [[u32; 256]; 4] = shift_tables();

const fn shift_tables() -> [[u32; 256]; 4] {
    // The shift is linear: tabulate it per state bit, then per byte.
    let mut basis = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        basis[i] = shift_zeros(1 << i, LANE_BYTES);
        i += 1;
    }
    let mut tables = [[0u32; 256]; 4];
    let mut j = 0;
    while j < 4 {
        let mut b = 0;
        while b < 256 {
            let mut value = 0;
            let mut k = 0;
            while k < 8 {
                if b & (1 << k) != 0 {
                    value ^= basis[8 * j + k];
                }
                k += 1;
            }
            tables[j][b] = value;
            b += 1;
        }
        j += 1;
    }
    tables
}

#[inline]
fn shift_lane(state: u32) -> u32 {
    SHIFT[0][(state & 0xff) as usize]
        ^ SHIFT[1][((state >> 8) & 0xff) as usize]
        ^ SHIFT[2][((state >> 16) & 0xff) as usize]
        ^ SHIFT[3][(state >> 24) as usize]
}

/// CRC-32C of a frame: the length's 4 little-endian bytes, then the
/// payload (one pass, no call per part).
pub fn frame_crc(len: u32, payload: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if payload.len() < CRATE_LONG_BYTES && std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE 4.2.
            return unsafe { x86::frame_crc(len, payload) };
        }
    }
    crc32c_append(crc32c::crc32c(&len.to_le_bytes()), payload)
}

/// CRC-32C of `data` continuing from `crc` (as `crc32c::crc32c_append`).
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let frame_sized = (CHUNK_BYTES..CRATE_LONG_BYTES).contains(&data.len());
        if frame_sized && std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE 4.2.
            return unsafe { x86::crc32c_append(crc, data) };
        }
    }
    crc32c::crc32c_append(crc, data)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64, _mm_crc32_u8};

    use super::{shift_lane, CHUNK_BYTES, LANE_BYTES};

    #[inline]
    fn word(bytes: &[u8], i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    }

    /// # Safety
    /// The CPU must support SSE 4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn frame_crc(len: u32, payload: &[u8]) -> u32 {
        !update(_mm_crc32_u32(u32::MAX, len), payload)
    }

    /// # Safety
    /// The CPU must support SSE 4.2.
    #[target_feature(enable = "sse4.2")]
    pub(super) unsafe fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
        !update(!crc, data)
    }

    /// The raw state after `data` (no inversions).
    #[inline]
    #[target_feature(enable = "sse4.2")]
    fn update(state: u32, data: &[u8]) -> u32 {
        let mut state = u64::from(state);
        let mut chunks = data.chunks_exact(CHUNK_BYTES);
        for chunk in chunks.by_ref() {
            let (a, rest) = chunk.split_at(LANE_BYTES);
            let (b, c) = rest.split_at(LANE_BYTES);
            let (mut state_b, mut state_c) = (0u64, 0u64);
            for i in 0..LANE_BYTES / 8 {
                state = _mm_crc32_u64(state, word(a, i));
                state_b = _mm_crc32_u64(state_b, word(b, i));
                state_c = _mm_crc32_u64(state_c, word(c, i));
            }
            state = u64::from(shift_lane(state as u32)) ^ state_b;
            state = u64::from(shift_lane(state as u32)) ^ state_c;
        }
        let rest = chunks.remainder();
        let mut words = rest.chunks_exact(8);
        for w in words.by_ref() {
            state = _mm_crc32_u64(state, word(w, 0));
        }
        let mut state = state as u32;
        for &byte in words.remainder() {
            state = _mm_crc32_u8(state, byte);
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_values_as_the_crc32c_crate() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..30_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in (0..1500).chain([2399, 2400, 2401, 4000, 24_575, 24_576, 29_000]) {
            for start in [0usize, 1, 3, 8] {
                let buf = &data[start..(start + len).min(data.len())];
                for crc in [0u32, 1, 0xdead_beef, u32::MAX] {
                    assert_eq!(
                        crc32c_append(crc, buf),
                        crc32c::crc32c_append(crc, buf),
                        "len {len} start {start} crc {crc:#x}"
                    );
                }
            }
        }
        assert_eq!(crc32c_append(0, b"123456789"), 0xE306_9283);
        for len in [0usize, 1, 7, 8, 479, 480, 481, 1000, 24_576, 29_000] {
            let payload = &data[..len];
            let expected =
                crc32c::crc32c_append(crc32c::crc32c(&(len as u32).to_le_bytes()), payload);
            assert_eq!(frame_crc(len as u32, payload), expected, "len {len}");
        }
    }
}
