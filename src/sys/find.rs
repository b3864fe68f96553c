//! The byte search of request framing and key tokenizing (C uses memchr and strtok-like
//! loops): every request's line end and key end are found with it, so it is vectorised.

/// Index of the first `needle` in `b` at or after `from`, or `b.len()`. Sixteen bytes at a
/// time with SSE2 (part of every x86_64 CPU) for slices of 16 bytes or more.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn find_byte(b: &[u8], mut from: usize, needle: u8) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let len = b.len();
    if len < 16 || from >= len {
        return find_byte_words(b, from, needle);
    }
    let p = b.as_ptr();
    // SAFETY: SSE2 is part of x86_64. Every load reads 16 bytes at an offset at most
    // len - 16, so it stays inside `b`; unaligned loads are allowed.
    unsafe {
        let needles = _mm_set1_epi8(needle as i8);
        while from + 16 <= len {
            let v = _mm_loadu_si128(p.add(from).cast::<__m128i>());
            let hits = _mm_movemask_epi8(_mm_cmpeq_epi8(v, needles)) as u32;
            if hits != 0 {
                return from + hits.trailing_zeros() as usize;
            }
            from += 16;
        }
        if from < len {
            // The last 1-15 bytes: the slice's last sixteen, without the bytes before `from`.
            let base = len - 16;
            let v = _mm_loadu_si128(p.add(base).cast::<__m128i>());
            let hits = (_mm_movemask_epi8(_mm_cmpeq_epi8(v, needles)) as u32) >> (from - base);
            if hits != 0 {
                return from + hits.trailing_zeros() as usize;
            }
        }
    }
    len
}

/// Index of the first `needle` in `b` at or after `from`, or `b.len()`.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
pub fn find_byte(b: &[u8], from: usize, needle: u8) -> usize {
    find_byte_words(b, from, needle)
}

/// The portable search: eight bytes at a time (a zero byte of `word ^ needles` marks a
/// match).
#[inline]
fn find_byte_words(b: &[u8], mut from: usize, needle: u8) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let needles = ONES * needle as u64;
    while let Some(chunk) = b.get(from..from + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ needles;
        // Exact for the lowest zero byte: borrows only reach bytes above it.
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return from + (zero.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    if from < b.len() && b.len() >= 8 {
        // The last 1-7 bytes: the slice's last eight, shifted so that `from` is the lowest
        // byte. The bytes shifted in are zero (they look like matches) but lie above every
        // real byte, and the lowest zero byte is exact, so a real match is found first.
        let base = b.len() - 8;
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[base..]);
        let shift = (from - base) * 8;
        let x = (u64::from_le_bytes(word) ^ needles) >> shift;
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        let at = from + (zero.trailing_zeros() / 8) as usize;
        return at.min(b.len());
    }
    while from < b.len() {
        if b[from] == needle {
            return from;
        }
        from += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both searches against a plain scan at every offset, for the two needles they are
    /// used for, over bytes one bit away from the needle, zero and high bytes (where a
    /// word-at-a-time search could see false matches) and lengths on both sides of 8 and 16.
    #[test]
    fn both_searches_agree_with_a_plain_scan() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for needle in [b'\n', b' '] {
            let alphabet = [b'a', needle, needle ^ 1, needle ^ 0x80, 0, 0xff, needle + 1];
            for _ in 0..5000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = (seed % 80) as usize;
                let hay: Vec<u8> = (0..len)
                    .map(|i| {
                        let pick = (seed >> (i % 16 * 4)) ^ (i as u64 / 3);
                        alphabet[pick as usize % alphabet.len()]
                    })
                    .collect();
                for from in 0..=len + 1 {
                    let want = hay
                        .get(from..)
                        .and_then(|rest| rest.iter().position(|&b| b == needle))
                        .map_or(len, |p| p + from);
                    assert_eq!(find_byte(&hay, from, needle), want, "{hay:?} from {from}");
                    assert_eq!(
                        find_byte_words(&hay, from, needle),
                        want,
                        "{hay:?} from {from}"
                    );
                }
            }
        }
    }
}
