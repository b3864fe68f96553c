//! A connection's read buffer whose memory is only touched where bytes arrive (C mallocs its
//! read buffers and never clears them). A `Vec<u8>` would be zeroed when made: glibc's calloc
//! clears a reused or thread-arena chunk whole, so every connection stopped in the middle of
//! a request held a fully resident 16 KiB buffer where C's holds the pages its bytes are in.
//!
//! Bytes below a watermark (`init`) have been written (by a read or a copy) and may be looked
//! at; the rest is never exposed, only handed to the kernel (or OpenSSL) to write into.

use super::{cvt, SockAddr};
use std::alloc::{self, Layout};
use std::io;
use std::ops::{Index, Range};
use std::os::unix::io::RawFd;
use std::ptr::NonNull;

pub struct ReadBuf {
    ptr: NonNull<u8>,
    cap: usize,
    /// Bytes `[0, init)` are initialised.
    init: usize,
}

// SAFETY: the buffer is owned memory with no thread affinity; `&ReadBuf` only reads.
unsafe impl Send for ReadBuf {}
// SAFETY: as above.
unsafe impl Sync for ReadBuf {}

impl Default for ReadBuf {
    fn default() -> ReadBuf {
        ReadBuf::empty()
    }
}

impl ReadBuf {
    /// No buffer (a connection between requests).
    pub const fn empty() -> ReadBuf {
        ReadBuf {
            ptr: NonNull::dangling(),
            cap: 0,
            init: 0,
        }
    }

    /// A buffer of `cap` bytes, none of them touched yet.
    pub fn new(cap: usize) -> ReadBuf {
        if cap == 0 {
            return ReadBuf::empty();
        }
        let layout = Self::layout(cap);
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(p) else {
            alloc::handle_alloc_error(layout)
        };
        ReadBuf { ptr, cap, init: 0 }
    }

    fn layout(cap: usize) -> Layout {
        // Sizes are the fixed buffer sizes and at most a few doublings of them, never near
        // isize::MAX; a layout that did not describe `cap` bytes would make every access unsound.
        Layout::array::<u8>(cap).expect("read buffer size")
    }

    /// Its size.
    pub fn len(&self) -> usize {
        self.cap
    }

    pub fn is_empty(&self) -> bool {
        self.cap == 0
    }

    /// The bytes `[from, from + n)`, which a read or copy must have filled.
    fn checked(&self, from: usize, n: usize) -> &[u8] {
        let end = from.checked_add(n).filter(|&e| e <= self.init);
        assert!(end.is_some(), "read buffer range past its filled bytes");
        // SAFETY: `[from, from + n)` lies within `[0, init)`, initialised memory we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(from), n) }
    }

    /// The unfilled space from `from` (at most `max` bytes), for a read to write into.
    /// Returns the pointer and length; `mark_filled` then records what the read wrote.
    pub fn spare(&mut self, from: usize, max: usize) -> (*mut u8, usize) {
        let from = from.min(self.cap);
        // SAFETY: `from` is within the allocation (or one past its end, with length 0).
        (
            unsafe { self.ptr.as_ptr().add(from) },
            (self.cap - from).min(max),
        )
    }

    /// Records that a read wrote `[from, from + n)`.
    ///
    /// # Safety
    /// Those bytes were written (by the kernel or OpenSSL through `spare`).
    pub unsafe fn mark_filled(&mut self, from: usize, n: usize) {
        let end = from.saturating_add(n).min(self.cap);
        if from <= self.init {
            self.init = self.init.max(end);
        }
    }

    /// read(2) into `[from, from + max)` (see sys::read: no cancellation point).
    pub fn read(&mut self, fd: RawFd, from: usize, max: usize) -> io::Result<usize> {
        let (p, len) = self.spare(from, max);
        // SAFETY: `p` and `len` describe memory we own; the kernel writes at most `len` bytes.
        let n = cvt(unsafe { libc::syscall(libc::SYS_read, fd, p, len) as isize })?;
        // SAFETY: the kernel wrote `n` bytes at `from`.
        unsafe { self.mark_filled(from, n) };
        Ok(n)
    }

    /// recvfrom(2) of one datagram into the whole buffer, with its sender.
    pub fn recvfrom(&mut self, fd: RawFd) -> io::Result<(usize, SockAddr)> {
        let mut a = SockAddr::empty();
        a.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let (p, len) = self.spare(0, usize::MAX);
        // SAFETY: `p`/`len` describe memory we own; the address points at a sockaddr_storage
        // and its length.
        let r = unsafe {
            libc::recvfrom(
                fd,
                p.cast(),
                len,
                0,
                (&mut a.storage as *mut libc::sockaddr_storage).cast(),
                &mut a.len,
            )
        };
        let n = cvt(r as isize)?;
        // SAFETY: the kernel wrote `n` bytes at the start.
        unsafe { self.mark_filled(0, n) };
        Ok((n, a))
    }

    /// Moves `[from, from + n)` to the start (the unparsed rest of a request, before the next
    /// read appends to it).
    pub fn compact(&mut self, from: usize, n: usize) {
        self.checked(from, n);
        // SAFETY: both ranges lie within the allocation; `copy` allows overlap.
        unsafe { std::ptr::copy(self.ptr.as_ptr().add(from), self.ptr.as_ptr(), n) };
    }

    /// A larger buffer (for a huge multiget line) holding this one's filled bytes.
    pub fn grow(&mut self, cap: usize) {
        if cap <= self.cap {
            return;
        }
        let mut bigger = ReadBuf::new(cap);
        let n = self.init;
        // SAFETY: `[0, n)` is initialised here and fits in the new buffer, which is distinct.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), bigger.ptr.as_ptr(), n);
        }
        bigger.init = n;
        *self = bigger;
    }

    /// A buffer of `cap` bytes starting with `prefix`.
    pub fn with_prefix(cap: usize, prefix: &[u8]) -> ReadBuf {
        let mut b = ReadBuf::new(cap.max(prefix.len()));
        // SAFETY: the new buffer holds at least `prefix.len()` bytes and is distinct from it.
        unsafe {
            std::ptr::copy_nonoverlapping(prefix.as_ptr(), b.ptr.as_ptr(), prefix.len());
        }
        b.init = prefix.len();
        b
    }
}

impl Drop for ReadBuf {
    fn drop(&mut self) {
        if self.cap != 0 {
            // SAFETY: allocated in `new` with this layout.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) };
        }
    }
}

impl Index<Range<usize>> for ReadBuf {
    type Output = [u8];
    fn index(&self, r: Range<usize>) -> &[u8] {
        assert!(r.start <= r.end, "bad read buffer range");
        self.checked(r.start, r.end - r.start)
    }
}

impl Index<usize> for ReadBuf {
    type Output = u8;
    fn index(&self, i: usize) -> &u8 {
        &self.checked(i, 1)[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_filled_bytes_are_seen() {
        let mut b = ReadBuf::new(64);
        assert_eq!(b.len(), 64);
        let (p, len) = b.spare(0, 10);
        assert_eq!(len, 10);
        // SAFETY: writing within the spare space, then recording it.
        unsafe {
            std::ptr::copy_nonoverlapping(b"get k\r\nset".as_ptr(), p, 10);
            b.mark_filled(0, 10);
        }
        assert_eq!(&b[0..7], b"get k\r\n");
        assert_eq!(b[7], b's');
        b.compact(7, 3);
        assert_eq!(&b[0..3], b"set");
        b.grow(128);
        assert_eq!(b.len(), 128);
        assert_eq!(&b[0..3], b"set");
        let c = ReadBuf::with_prefix(32, b"abc");
        assert_eq!(&c[0..3], b"abc");
        assert!(ReadBuf::default().is_empty());
    }

    #[test]
    #[should_panic(expected = "past its filled bytes")]
    fn unfilled_bytes_are_refused() {
        let b = ReadBuf::new(64);
        let _ = &b[0..1];
    }

    #[test]
    fn reads_fill_from_a_pipe() {
        let mut fds = [0; 2];
        // SAFETY: a valid two-element array for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        super::super::write(fds[1], b"hello world").unwrap();
        let mut b = ReadBuf::new(16);
        assert_eq!(b.read(fds[0], 0, 5).unwrap(), 5);
        assert_eq!(&b[0..5], b"hello");
        assert_eq!(b.read(fds[0], 5, 100).unwrap(), 6);
        assert_eq!(&b[0..11], b"hello world");
        super::super::close(fds[0]);
        super::super::close(fds[1]);
    }
}
