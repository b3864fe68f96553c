//! Base64 as memcached uses it for binary keys (C's base64.c): the standard alphabet with
//! padding; decoding skips characters outside the alphabet, as C's does.

/// Decodes base64 the way C's base64_decode does: characters outside the alphabet are
/// skipped, '=' pads; 0 on malformed input. `out` must hold `src.len()` bytes.
pub fn base64_decode(src: &[u8], out: &mut [u8]) -> usize {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            b'=' => Some(0),
            _ => None,
        }
    }
    let count = src.iter().filter(|&&c| val(c).is_some()).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return 0;
    }
    let (mut n, mut quad, mut have, mut pad) = (0usize, [0u8; 4], 0usize, 0usize);
    for &c in src {
        let Some(v) = val(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        quad[have] = v;
        have += 1;
        if have == 4 {
            out[n] = (quad[0] << 2) | (quad[1] >> 4);
            out[n + 1] = (quad[1] << 4) | (quad[2] >> 2);
            out[n + 2] = (quad[2] << 6) | quad[3];
            n += 3;
            have = 0;
            if pad > 0 {
                match pad {
                    1 => n -= 1,
                    2 => n -= 2,
                    _ => return 0,
                }
                break;
            }
        }
    }
    n
}

/// Appends the base64 form of `src` (standard alphabet, padded).
pub fn base64_encode(src: &[u8], out: &mut Vec<u8>) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in src.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        out.push(T[(b[0] >> 2) as usize]);
        out.push(T[(((b[0] & 3) << 4) | (b[1] >> 4)) as usize]);
        out.push(if c.len() > 1 {
            T[(((b[1] & 0x0f) << 2) | (b[2] >> 6)) as usize]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            T[(b[2] & 0x3f) as usize]
        } else {
            b'='
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_like_c() {
        for s in [&b"a"[..], b"ab", b"abc", b"abcd", b"\x00\xff\x10 key"] {
            let mut e = Vec::new();
            base64_encode(s, &mut e);
            let mut d = vec![0u8; e.len()];
            let n = base64_decode(&e, &mut d);
            assert_eq!(&d[..n], s);
        }
        let mut e = Vec::new();
        base64_encode(b"foo", &mut e);
        assert_eq!(e, b"Zm9v");
        let mut d = [0u8; 16];
        assert_eq!(base64_decode(b"Zm9", &mut d), 0, "not a multiple of four");
        assert_eq!(base64_decode(b"!!!!", &mut d), 0, "no alphabet characters");
        assert_eq!(base64_decode(b"Zm9v!", &mut d), 3, "strays are skipped");
    }
}
