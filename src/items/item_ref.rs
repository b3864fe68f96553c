//! `ItemRef`, the counted reference to an item that code above the store holds (C's
//! refcount_incr / item_remove pairs), and the release that returns the last reference's
//! memory to its slab class (do_item_remove, item_free).

use crate::items::{self, Item, ITEM_CHUNKED, ITEM_LINKED, ITEM_SLABBED};
use crate::slabs::with_slabs;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;

/// Total bytes of an item (C's ITEM_ntotal).
///
/// # Safety
/// `it` is live.
#[inline]
pub(in crate::items) unsafe fn ntotal(it: *const Item) -> usize {
    // SAFETY: reads header fields of a live item.
    unsafe {
        let f = (*it).it_flags;
        items::item_make_header_total(
            (*it).nkey as usize,
            (*it).nbytes.max(0) as usize,
            f & items::ITEM_CAS != 0,
            if f & items::ITEM_CFLAGS != 0 { 1 } else { 0 },
        )
    }
}

/// Drops one reference; the last one returns the chunk to its slab class (C's do_item_remove
/// and item_free).
///
/// # Safety
/// The caller owns one reference to the live item `it` and gives it up.
#[inline]
pub(in crate::items) unsafe fn release(it: *mut Item) {
    // SAFETY: the caller's reference keeps `it` live until the decrement.
    unsafe {
        debug_assert!((*it).it_flags & ITEM_SLABBED == 0);
        if (*it).refcount.fetch_sub(1, Relaxed) == 1 {
            free_unreferenced(it);
        }
    }
}

/// Returns an item nobody references any more to its slab class (out of line: most releases
/// are not the last).
///
/// # Safety
/// `it` is live, unlinked and its count just reached zero.
#[inline(never)]
unsafe fn free_unreferenced(it: *mut Item) {
    // SAFETY: per the contract no one else can reach `it`.
    unsafe {
        {
            debug_assert!((*it).it_flags & ITEM_LINKED == 0);
            let Some(nn) = NonNull::new(it) else { return };
            if (*it).it_flags & ITEM_CHUNKED == 0 {
                let cls = items::clsid_of((*it).slabs_clsid) as usize;
                with_slabs(|s| s.free(nn, cls));
                return;
            }
            // A chunked item: every chunk to its own class, the header to the class it
            // came from (C's do_slabs_free_chunked).
            let hdr_cls = items::header_clsid(it) as usize;
            let mut ch = items::first_chunk(it);
            with_slabs(|s| {
                while let Some(c) = NonNull::new(ch) {
                    let next = (*ch).next;
                    let cls = (*ch).slabs_clsid as usize;
                    s.free(c.cast::<Item>(), cls);
                    ch = next;
                }
                (*it).it_flags &= !ITEM_CHUNKED;
                s.free(nn, hdr_cls);
            });
        }
    }
}

/// Drops one reference taken by hand (the slab mover's); see `release`.
///
/// # Safety
/// As for `release`.
pub(crate) unsafe fn release_ref(it: *mut Item) {
    // SAFETY: per the contract.
    unsafe { release(it) }
}

/// A counted reference to an item: the item cannot be freed while one exists. Dropping it
/// releases the reference (and frees the item if it was the last one).
pub struct ItemRef {
    pub(in crate::items) it: NonNull<Item>,
}

// SAFETY: the reference count is atomic and the item memory is shared; a reference may be
// released on any thread (the free goes through the slabs lock).
unsafe impl Send for ItemRef {}

impl ItemRef {
    /// Wraps a reference already counted in the item's refcount.
    ///
    /// # Safety
    /// The caller owns one counted reference to the live item `it` and hands it over.
    pub(crate) unsafe fn from_raw(it: NonNull<Item>) -> ItemRef {
        ItemRef { it }
    }

    pub(crate) fn as_ptr(&self) -> *mut Item {
        self.it.as_ptr()
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        // SAFETY: the reference keeps the item live and its key is immutable once written.
        unsafe { items::key(self.it.as_ptr()) }
    }

    /// The value with its "\r\n", if it is in one piece (not chunked).
    pub fn contiguous(&self) -> Option<&[u8]> {
        if self.is_chunked() || self.flags() & items::ITEM_HDR != 0 {
            return None;
        }
        // SAFETY: as in `key`; values of linked items are not modified in place.
        Some(unsafe { items::data(self.it.as_ptr()) })
    }

    /// Whether the item is in the hash table.
    pub fn is_linked(&self) -> bool {
        // SAFETY: the reference keeps the item live; ITEM_LINKED changes under the item lock,
        // and only a holder of that lock acts on its value.
        unsafe { (*self.it.as_ptr()).it_flags & ITEM_LINKED != 0 }
    }

    /// Sets ITEM_* flags of an item not linked yet (only this reference reaches it); a
    /// linked item is left alone.
    pub fn set_flags_unlinked(&mut self, set: u16) {
        if !self.is_linked() {
            // SAFETY: an unlinked item from `alloc` is only reachable through this reference.
            unsafe { self.update_flags(set, 0) }
        }
    }

    /// Whether the value is stored in chunks.
    pub fn is_chunked(&self) -> bool {
        // SAFETY: the reference keeps the item live; ITEM_CHUNKED never changes while it is.
        unsafe { (*self.it.as_ptr()).it_flags & ITEM_CHUNKED != 0 }
    }

    /// Length of the value, "\r\n" included.
    pub fn value_len(&self) -> usize {
        // SAFETY: the reference keeps the item live.
        unsafe { (*self.it.as_ptr()).nbytes.max(0) as usize }
    }

    /// The value's pieces in order (one unless chunked).
    pub fn segments(&self) -> items::ValueSegments<'_> {
        // SAFETY: the reference keeps the item and its chunks live.
        unsafe { items::value_segments(self.it.as_ptr()) }
    }

    /// Whether the value ends in "\r\n" (the two bytes may sit in different chunks).
    pub fn ends_with_crlf(&self) -> bool {
        let mut last = [0u8; 2];
        let mut have = 0;
        for seg in self.segments() {
            match seg.len() {
                0 => {}
                1 => {
                    last[0] = last[1];
                    last[1] = seg[0];
                    have += 1;
                }
                n => {
                    last.copy_from_slice(&seg[n - 2..]);
                    have += 2;
                }
            }
        }
        have >= 2 && &last == b"\r\n"
    }

    /// The writable value area from `offset` to the end of its piece, for an item being
    /// filled from a client (not linked yet).
    pub fn window_mut(&mut self, offset: usize) -> &mut [u8] {
        // SAFETY: an unlinked item from `alloc` is only reachable through this reference.
        unsafe { items::value_window_mut(self.it.as_ptr(), offset) }
    }

    /// Copies `src` into the value at `offset`, across pieces (an item being filled).
    pub fn write_at(&mut self, mut offset: usize, mut src: &[u8]) {
        while !src.is_empty() {
            let w = self.window_mut(offset);
            if w.is_empty() {
                return;
            }
            let n = w.len().min(src.len());
            w[..n].copy_from_slice(&src[..n]);
            offset += n;
            src = &src[n..];
        }
    }

    /// Copies the first `len` bytes of `src`'s value into this item's value at `offset`
    /// (append/prepend); returns the offset after them.
    pub fn copy_value_from(&mut self, mut offset: usize, src: &ItemRef, mut len: usize) -> usize {
        for seg in src.segments() {
            if len == 0 {
                break;
            }
            let n = seg.len().min(len);
            self.write_at(offset, &seg[..n]);
            offset += n;
            len -= n;
        }
        offset
    }

    /// The value of a plain item being filled (tests and small values).
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.window_mut(0)
    }

    pub fn client_flags(&self) -> u32 {
        // SAFETY: the reference keeps the item live.
        unsafe { items::client_flags(self.it.as_ptr()) }
    }

    pub fn cas(&self) -> u64 {
        // SAFETY: the reference keeps the item live.
        unsafe { items::get_cas(self.it.as_ptr()) }
    }

    /// Sets the CAS slot of an item that is not linked yet (a storage command keeps the
    /// client's CAS there to compare against, as C does).
    pub fn set_cas_unlinked(&mut self, cas: u64) {
        // SAFETY: an unlinked item is only reachable through this reference.
        unsafe {
            debug_assert!((*self.it.as_ptr()).it_flags & ITEM_LINKED == 0);
            items::set_cas(self.it.as_ptr(), cas);
        }
    }

    /// The class id byte: slab class in the low 6 bits, LRU in the top 2.
    pub fn clsid(&self) -> u8 {
        // SAFETY: the reference keeps the item live; the id changes only under the item lock
        // and an LRU lock, and a stale read only misfiles a statistic.
        unsafe { (*self.it.as_ptr()).slabs_clsid }
    }

    pub fn exptime(&self) -> u32 {
        // SAFETY: the reference keeps the item live.
        unsafe { (*self.it.as_ptr()).exptime }
    }

    /// References held (the table's included).
    pub fn refcount(&self) -> u16 {
        // SAFETY: the reference keeps the item live; the count is atomic.
        unsafe { (*self.it.as_ptr()).refcount.load(Relaxed) }
    }

    /// Last access time (server clock).
    pub fn time(&self) -> u32 {
        // SAFETY: the reference keeps the item live.
        unsafe { (*self.it.as_ptr()).time }
    }

    /// The item's ITEM_* flags.
    pub fn flags(&self) -> u16 {
        // SAFETY: the reference keeps the item live; flags change under the item lock.
        unsafe { (*self.it.as_ptr()).it_flags }
    }

    /// Sets and clears ITEM_* flags (meta protocol: win token, stale, binary key).
    ///
    /// # Safety
    /// The item lock for the key is held, or the item is not linked yet.
    pub(in crate::items) unsafe fn update_flags(&self, set: u16, clear: u16) {
        // SAFETY: per the contract no one else changes the flags now.
        unsafe {
            let p = self.it.as_ptr();
            (*p).it_flags = ((*p).it_flags | set) & !clear;
        }
    }

    /// Sets the CAS of a linked item (meta delete's stale marking, ma's E flag).
    ///
    /// # Safety
    /// The item lock for the key is held.
    pub(in crate::items) unsafe fn set_cas_locked(&self, cas: u64) {
        // SAFETY: per the contract.
        unsafe { items::set_cas(self.it.as_ptr(), cas) };
    }

    /// Sets the expiry time.
    ///
    /// # Safety
    /// The item lock for the key is held, or the item is not linked yet.
    pub(in crate::items) unsafe fn set_exptime_locked(&self, exptime: u32) {
        // SAFETY: per the contract.
        unsafe { (*self.it.as_ptr()).exptime = exptime };
    }

    /// Total size as `stats sizes` and `me` count it (C's ITEM_ntotal).
    pub fn ntotal(&self) -> usize {
        // SAFETY: the reference keeps the item live.
        unsafe { ntotal(self.it.as_ptr()) }
    }

    /// Slab class without the LRU bits.
    pub fn class(&self) -> u8 {
        items::clsid_of(self.clsid())
    }
}

impl Drop for ItemRef {
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference.
        unsafe { release(self.it.as_ptr()) }
    }
}
