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

/// Eight bytes per CRC32 instruction.
///
/// # Safety
/// The CPU supports SSE 4.2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn crc32c_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = u64::from(!crc);
    let mut chunks = data.chunks_exact(8);
    for w in &mut chunks {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        c = _mm_crc32_u64(c, v);
    }
    let mut c = c as u32;
    for &b in chunks.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

/// Eight bytes per CRC32CX instruction.
///
/// # Safety
/// The CPU has the CRC extension.
#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "crc")]
unsafe fn crc32c_arm(crc: u32, data: &[u8]) -> u32 {
    use std::arch::aarch64::{__crc32cb, __crc32cd};
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for w in &mut chunks {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        c = __crc32cd(c, v);
    }
    for &b in chunks.remainder() {
        c = __crc32cb(c, b);
    }
    !c
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
}
