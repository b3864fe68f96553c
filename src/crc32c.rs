//! CRC-32C (Castagnoli), as C memcached's crc32c.c computes it for objects on flash: the
//! checksum extstore stores with each object and checks when it reads one back.
//!
//! The CPU's CRC-32C instruction where there is one (SSE 4.2 on x86-64, the CRC extension on
//! arm64, checked at run time, as C's crc32c.c does), else slicing-by-8 over tables built at
//! compile time. Every value read back from flash is checksummed on an IO thread, so this is
//! on extstore's read path. A storage-layer module: only extstore uses it.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82f6_3b78;

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][n] = c;
        n += 1;
    }
    let mut n = 0;
    while n < 256 {
        let mut k = 1;
        while k < 8 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            k += 1;
        }
        n += 1;
    }
    t
}

static TABLES: [[u32; 256]; 8] = tables();

/// The register after `zeros` zero bytes, as a matrix over GF(2): column `i` is where bit `i`
/// goes. Squaring doubles the count, so any length takes log2 steps.
const fn zeros_matrix(zeros: usize) -> [u32; 32] {
    // One zero bit: shift right, folding the polynomial in when bit 0 falls out.
    let mut bit = [0u32; 32];
    bit[0] = POLY;
    let mut i = 1;
    while i < 32 {
        bit[i] = 1 << (i - 1);
        i += 1;
    }
    let mut byte = bit;
    let mut k = 0;
    while k < 3 {
        byte = mat_mul(&byte, &byte);
        k += 1;
    }
    // `byte` is now eight zero bits; raise it to `zeros`.
    let mut result = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        result[i] = 1 << i;
        i += 1;
    }
    let mut power = byte;
    let mut n = zeros;
    while n > 0 {
        if n & 1 != 0 {
            result = mat_mul(&power, &result);
        }
        power = mat_mul(&power, &power);
        n >>= 1;
    }
    result
}

const fn mat_vec(m: &[u32; 32], mut v: u32) -> u32 {
    let mut out = 0;
    let mut i = 0;
    while v != 0 {
        if v & 1 != 0 {
            out ^= m[i];
        }
        v >>= 1;
        i += 1;
    }
    out
}

/// `a` after `b`.
const fn mat_mul(a: &[u32; 32], b: &[u32; 32]) -> [u32; 32] {
    let mut out = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = mat_vec(a, b[i]);
        i += 1;
    }
    out
}

/// The zeros operator for `zeros` bytes as four byte-indexed tables: being linear, it is the
/// XOR of its images of the register's four bytes.
const fn shift_tables(zeros: usize) -> [[u32; 256]; 4] {
    let m = zeros_matrix(zeros);
    let mut t = [[0u32; 256]; 4];
    let mut k = 0;
    while k < 4 {
        let mut n = 0;
        while n < 256 {
            t[k][n] = mat_vec(&m, (n as u32) << (8 * k));
            n += 1;
        }
        k += 1;
    }
    t
}

/// Stream lengths for the three-way split: long buffers first, then short ones. The CRC
/// instruction takes three cycles but can start one every cycle, so three independent
/// streams keep it busy; the streams are joined by moving each register past the bytes
/// that follow it, a table lookup per byte of register.
const LONG: usize = 8192;
const SHORT: usize = 256;
static SHIFT_LONG: [[u32; 256]; 4] = shift_tables(LONG);
static SHIFT_SHORT: [[u32; 256]; 4] = shift_tables(SHORT);

/// The register `c` moved past the bytes the tables were built for (all zero: the stream
/// that followed contributes its own register).
#[inline(always)]
fn shift(t: &[[u32; 256]; 4], c: u32) -> u32 {
    t[0][(c & 0xff) as usize]
        ^ t[1][((c >> 8) & 0xff) as usize]
        ^ t[2][((c >> 16) & 0xff) as usize]
        ^ t[3][(c >> 24) as usize]
}

#[inline(always)]
fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// Extends `crc` (0 to start) over `data`: `crc32c(crc32c(0, a), b) == crc32c(0, a ++ b)`.
#[inline]
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2, which is all crc32c_sse42 needs.
        return unsafe { crc32c_sse42(crc, data) };
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("crc") {
        // SAFETY: the CPU has the CRC extension, which is all crc32c_arm needs.
        return unsafe { crc32c_arm(crc, data) };
    }
    crc32c_soft(crc, data)
}

/// The instruction's CRC over `data`, three streams at a time while there are enough bytes:
/// `step` folds in eight bytes, `step_byte` one. Inlined into the callers below, which enable
/// the instruction.
#[inline(always)]
fn crc32c_hw(
    crc: u32,
    data: &[u8],
    step: impl Fn(u32, u64) -> u32,
    step_byte: impl Fn(u32, u8) -> u32,
) -> u32 {
    let mut c = !crc;
    let mut rest = data;
    for (block, table) in [(LONG, &SHIFT_LONG), (SHORT, &SHIFT_SHORT)] {
        while rest.len() >= 3 * block {
            let (mut a, mut b, mut d) = (c, 0, 0);
            let (x, yz) = rest.split_at(block);
            let (y, z) = yz.split_at(block);
            let words = x
                .chunks_exact(8)
                .zip(y.chunks_exact(8))
                .zip(z.chunks_exact(8));
            for ((p, q), r) in words {
                a = step(a, word(p));
                b = step(b, word(q));
                d = step(d, word(r));
            }
            c = shift(table, shift(table, a) ^ b) ^ d;
            rest = &rest[3 * block..];
        }
    }
    let mut chunks = rest.chunks_exact(8);
    for w in &mut chunks {
        c = step(c, word(w));
    }
    for &byte in chunks.remainder() {
        c = step_byte(c, byte);
    }
    !c
}

/// With the CRC32 instruction of SSE 4.2.
///
/// # Safety
/// The CPU supports SSE 4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    crc32c_hw(
        crc,
        data,
        |c, w| _mm_crc32_u64(u64::from(c), w) as u32,
        |c, b| _mm_crc32_u8(c, b),
    )
}

/// With the CRC32C instructions of arm64's CRC extension.
///
/// # Safety
/// The CPU has the CRC extension.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "crc")]
unsafe fn crc32c_arm(crc: u32, data: &[u8]) -> u32 {
    use std::arch::aarch64::{__crc32cb, __crc32cd};
    crc32c_hw(crc, data, |c, w| __crc32cd(c, w), |c, b| __crc32cb(c, b))
}

/// Slicing-by-8, for CPUs without the instruction.
fn crc32c_soft(crc: u32, data: &[u8]) -> u32 {
    let t = &TABLES;
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for w in &mut chunks {
        let lo = u32::from_le_bytes([w[0], w[1], w[2], w[3]]) ^ c;
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        c = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ t[0][((c ^ u32::from(b)) & 0xff) as usize];
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit by bit, straight from the definition.
    fn reference(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn known_values() {
        // The check value of CRC-32C, and RFC 3720's test patterns.
        assert_eq!(crc32c(0, b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(0, &[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(0, &[0xffu8; 32]), 0x62a8_ab43);
        let inc: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(0, &inc), 0x46dd_794e);
        assert_eq!(crc32c(0, b""), 0);
    }

    #[test]
    fn matches_the_definition_and_extends() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 + 7) as u8).collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 999, 1000] {
            assert_eq!(
                crc32c(0, &data[..len]),
                reference(&data[..len]),
                "len {len}"
            );
        }
        let (a, b) = data.split_at(333);
        assert_eq!(crc32c(crc32c(0, a), b), crc32c(0, &data));
    }

    #[test]
    fn instruction_and_tables_agree() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 131 + i / 7) as u8).collect();
        for (start, len) in [(0, 0), (1, 1), (3, 8), (5, 13), (0, 4096), (7, 4993)] {
            let d = &data[start..start + len];
            assert_eq!(crc32c(17, d), crc32c_soft(17, d), "{start}+{len}");
        }
    }

    #[test]
    fn three_streams_join_at_every_boundary() {
        // Lengths at, around and past both three-way splits, from odd starting addresses.
        let data: Vec<u8> = (0..80_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let short = 3 * SHORT;
        let long = 3 * LONG;
        for len in [
            short - 1,
            short,
            short + 1,
            2 * short + 9,
            4096,
            4096 + 48,
            long - 8,
            long,
            long + short + 13,
            2 * long + 7,
        ] {
            for start in [0, 3] {
                let d = &data[start..start + len];
                assert_eq!(crc32c(0, d), reference(d), "{start}+{len}");
                assert_eq!(
                    crc32c(0x1234_5678, d),
                    crc32c_soft(0x1234_5678, d),
                    "{start}+{len}"
                );
            }
        }
        let (a, b) = data.split_at(long + 5);
        assert_eq!(crc32c(crc32c(0, a), b), crc32c(0, &data));
    }

    #[test]
    fn zeros_tables_move_a_register_past_zero_bytes() {
        // Feeding SHORT zero bytes through the table code from a register equals the tables.
        for c in [1u32, 0x8000_0000, 0xdead_beef] {
            let moved = !crc32c_soft(!c, &[0u8; SHORT]);
            assert_eq!(shift(&SHIFT_SHORT, c), moved, "{c:#x}");
        }
    }
}
