//! A stack buffer for a decoded binary key (meta commands' `b` flag) that costs nothing until
//! a key is decoded into it: a zeroed `[u8; 250]` per request cost ~17 instructions on every
//! meta command, though few carry a binary key.

use std::mem::MaybeUninit;

pub struct KeyBuf<const N: usize> {
    buf: [MaybeUninit<u8>; N],
    /// Bytes `[0, len)` are initialised and hold the key.
    len: usize,
}

impl<const N: usize> Default for KeyBuf<N> {
    fn default() -> KeyBuf<N> {
        KeyBuf::new()
    }
}

impl<const N: usize> KeyBuf<N> {
    pub const fn new() -> KeyBuf<N> {
        KeyBuf {
            buf: [MaybeUninit::uninit(); N],
            len: 0,
        }
    }

    /// Hands `decode` the first `n` bytes (at most N), zeroed, and keeps as many as it
    /// returns (at most `n`) as the key.
    pub fn fill(&mut self, n: usize, decode: impl FnOnce(&mut [u8]) -> usize) -> usize {
        let n = n.min(N);
        for b in &mut self.buf[..n] {
            b.write(0);
        }
        // SAFETY: bytes [0, n) were just written.
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<u8>(), n) };
        self.len = decode(bytes).min(n);
        self.len
    }

    /// The key decoded by the last `fill` (empty before any).
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: bytes [0, len) were written by `fill`.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<u8>(), self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::KeyBuf;

    #[test]
    fn keeps_what_was_decoded() {
        let mut k = KeyBuf::<8>::new();
        assert_eq!(k.as_slice(), b"");
        assert_eq!(
            k.fill(4, |b| {
                assert_eq!(b, [0, 0, 0, 0]);
                b[..3].copy_from_slice(b"abc");
                3
            }),
            3
        );
        assert_eq!(k.as_slice(), b"abc");
        // Never more than asked for or than fits.
        assert_eq!(k.fill(20, |b| b.len() + 5), 8);
    }
}
