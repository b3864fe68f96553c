//! Items (C's `item`/`_stritem` of memcached.h and items.c). This part defines the item header
//! exactly as C lays it out, so that item sizes, and therefore slab class choice and memory
//! accounting, match C's; and the arithmetic over an item's variable-length body.
//!
//! Layout of one item in its slab chunk:
//! `[header: 48 bytes][cas: 8 bytes if ITEM_CAS][key][NUL][client flags: 4 if ITEM_CFLAGS][value]`
//! The value includes its trailing "\r\n".
//!
//! A value too large for one slab chunk (over `slab_chunk_max`) is chunked, as in C: the item
//! (ITEM_CHUNKED) holds CAS, key and flags followed by an embedded chunk header (C's
//! ITEM_schunk, at whatever alignment the key leaves it) whose `next` starts a list of chunks
//! (ITEM_CHUNK), each a slab chunk with a 48-byte `ItemChunk` header and part of the value.

use std::sync::atomic::AtomicU16;

mod crawl;
mod expand;
pub mod flash;
mod item_ref;
pub mod key_lock;
pub mod lookahead;
mod lru;
pub mod ops;
mod stats;
pub mod store;

/// Linked into the hash table and an LRU.
pub const ITEM_LINKED: u16 = 1;
/// Has an 8-byte CAS value after the header.
pub const ITEM_CAS: u16 = 2;
/// Sits on a slab class free list.
pub const ITEM_SLABBED: u16 = 4;
/// Was fetched at least once.
pub const ITEM_FETCHED: u16 = 8;
/// Was fetched again since it was last bumped.
pub const ITEM_ACTIVE: u16 = 16;
/// Value stored in chained chunks.
pub const ITEM_CHUNKED: u16 = 32;
/// This chunk belongs to a chunked item.
pub const ITEM_CHUNK: u16 = 64;
/// Value lives outside the item (extstore header).
pub const ITEM_HDR: u16 = 128;
/// Has 4 bytes of client flags after the key.
pub const ITEM_CFLAGS: u16 = 256;
/// Meta protocol: a win token was handed out.
pub const ITEM_TOKEN_SENT: u16 = 512;
/// Meta protocol: marked stale.
pub const ITEM_STALE: u16 = 2048;
/// Key was sent in base64 (meta protocol).
pub const ITEM_KEY_BINARY: u16 = 4096;
/// Flags kept when an item is replaced in place.
pub const ITEM_PRESERVE_FLAGS: u16 = ITEM_FETCHED | ITEM_TOKEN_SENT | ITEM_STALE | ITEM_KEY_BINARY;

/// The item header. Fields follow C's order and widths; `data` (CAS, key, flags, value)
/// follows the header in the same chunk.
#[repr(C)]
pub struct Item {
    /// LRU links (guarded by the LRU lock); the free list reuses them.
    pub next: *mut Item,
    pub prev: *mut Item,
    /// Hash chain link (guarded by the item lock).
    pub h_next: *mut Item,
    /// Last access time (server clock).
    pub time: u32,
    /// Expiry time (server clock), 0 for never.
    pub exptime: u32,
    /// Value length including "\r\n".
    pub nbytes: i32,
    pub refcount: AtomicU16,
    pub it_flags: u16,
    /// Slab class id in the low 6 bits, LRU id in the top 2.
    pub slabs_clsid: u8,
    /// Key length.
    pub nkey: u8,
    /// The key's hash, set when the item enters the hash table. It sits in what is padding
    /// in C's header (the size stays 48), so that the LRU maintainer and the crawler, which
    /// find items by walking lists, need not hash the key again to take its lock.
    pub hv: u32,
}

/// Header of one chunk of a chunked item (C's item_chunk), same layout and size.
#[repr(C)]
pub struct ItemChunk {
    /// Next chunk of the same item (free lists reuse it, as for items).
    pub next: *mut ItemChunk,
    pub prev: *mut ItemChunk,
    /// The item owning this chunk.
    pub head: *mut Item,
    /// Value bytes this chunk can hold.
    pub size: i32,
    /// Value bytes it holds.
    pub used: i32,
    pub nbytes: i32,
    pub refcount: u16,
    pub it_flags: u16,
    pub slabs_clsid: u8,
    /// In the embedded header: the slab class the item header itself came from.
    pub orig_clsid: u8,
}

/// C's `sizeof(item_chunk)`.
pub const ITEM_CHUNK_HEADER_SIZE: usize = std::mem::size_of::<ItemChunk>();
const _: () = assert!(ITEM_CHUNK_HEADER_SIZE == 48);
// Free lists treat a chunk as an item: the fields they touch must sit at the same offsets.
const _: () =
    assert!(std::mem::offset_of!(ItemChunk, it_flags) == std::mem::offset_of!(Item, it_flags));
const _: () = assert!(
    std::mem::offset_of!(ItemChunk, slabs_clsid) == std::mem::offset_of!(Item, slabs_clsid)
);
const _: () =
    assert!(std::mem::offset_of!(ItemChunk, refcount) == std::mem::offset_of!(Item, refcount));

/// C's `sizeof(item)`.
pub const ITEM_HEADER_SIZE: usize = std::mem::size_of::<Item>();
const _: () = assert!(ITEM_HEADER_SIZE == 48);
const _: () = assert!(ITEM_HEADER_SIZE as u32 == crate::slabs::ITEM_HEADER_SIZE);

/// Bytes an item with this key and value needs (C's `ITEM_ntotal` as computed by
/// `do_item_alloc` before choosing a slab class). `nbytes` includes the "\r\n".
#[inline]
pub fn item_make_header_total(
    nkey: usize,
    nbytes: usize,
    use_cas: bool,
    client_flags: u32,
) -> usize {
    let mut ntotal = ITEM_HEADER_SIZE + nkey + 1 + nbytes;
    if use_cas {
        ntotal += 8;
    }
    if client_flags != 0 {
        ntotal += 4;
    }
    ntotal
}

/// Bytes of the header chunk of a chunked item (C's `htotal` in do_item_alloc).
#[inline]
pub fn chunked_header_total(nkey: usize, use_cas: bool, client_flags: u32) -> usize {
    item_make_header_total(nkey, 0, use_cas, client_flags) + ITEM_CHUNK_HEADER_SIZE
}

/// Where the item's body starts: right after the header.
///
/// # Safety
/// `it` must point at a live item chunk.
#[inline]
unsafe fn body(it: *const Item) -> *const u8 {
    // SAFETY: the body follows the header inside the same chunk.
    unsafe { (it as *const u8).add(ITEM_HEADER_SIZE) }
}

/// The item's key (C's ITEM_key).
///
/// # Safety
/// `it` must point at a live item whose header and key were written, and stay so for `'a`
/// (the caller holds a reference or the item lock).
#[inline]
pub unsafe fn key<'a>(it: *const Item) -> &'a [u8] {
    // SAFETY: per the contract the item is live; the key sits after the optional CAS and is
    // `nkey` bytes long inside the chunk.
    unsafe {
        let cas = if (*it).it_flags & ITEM_CAS != 0 { 8 } else { 0 };
        std::slice::from_raw_parts(body(it).add(cas), (*it).nkey as usize)
    }
}

/// Writes the CAS, key and client flags of a freshly allocated item and sets the matching
/// flags (the tail of C's do_item_alloc). The value area is left for the caller to fill.
///
/// # Safety
/// `it` must be an item chunk just taken from the slab allocator, large enough for
/// `item_make_header_total(key.len(), nbytes, use_cas, client_flags)` bytes, not yet shared.
pub unsafe fn init_body(
    it: *mut Item,
    key: &[u8],
    client_flags: u32,
    exptime: u32,
    nbytes: i32,
    use_cas: bool,
) {
    // SAFETY: per the contract the chunk is ours and big enough for header and body.
    unsafe {
        (*it).next = std::ptr::null_mut();
        (*it).prev = std::ptr::null_mut();
        (*it).h_next = std::ptr::null_mut();
        if use_cas {
            (*it).it_flags |= ITEM_CAS;
        }
        if client_flags != 0 {
            (*it).it_flags |= ITEM_CFLAGS;
        }
        (*it).nkey = key.len() as u8;
        (*it).nbytes = nbytes;
        (*it).exptime = exptime;
        let b = body(it) as *mut u8;
        let cas = if use_cas { 8 } else { 0 };
        if use_cas {
            std::ptr::write_unaligned(b as *mut u64, 0);
        }
        std::ptr::copy_nonoverlapping(key.as_ptr(), b.add(cas), key.len());
        *b.add(cas + key.len()) = 0;
        if client_flags != 0 {
            std::ptr::write_unaligned(b.add(cas + key.len() + 1) as *mut u32, client_flags);
        }
    }
}

/// The item's CAS value (0 if the item has none).
///
/// # Safety
/// `it` must point at a live item.
#[inline]
pub unsafe fn get_cas(it: *const Item) -> u64 {
    // SAFETY: the CAS slot exists when ITEM_CAS is set.
    unsafe {
        if (*it).it_flags & ITEM_CAS != 0 {
            std::ptr::read_unaligned(body(it) as *const u64)
        } else {
            0
        }
    }
}

/// Sets the item's CAS value (ignored if the item has no CAS slot).
///
/// # Safety
/// `it` must point at a live item the caller may modify (item lock held or not yet linked).
#[inline]
pub unsafe fn set_cas(it: *mut Item, cas: u64) {
    // SAFETY: the CAS slot exists when ITEM_CAS is set.
    unsafe {
        if (*it).it_flags & ITEM_CAS != 0 {
            std::ptr::write_unaligned(body(it) as *mut u64, cas);
        }
    }
}

/// The item's client flags (C's FLAGS_CONV).
///
/// # Safety
/// `it` must point at a live item.
#[inline]
pub unsafe fn client_flags(it: *const Item) -> u32 {
    // SAFETY: the flags slot exists when ITEM_CFLAGS is set, after the key's NUL.
    unsafe {
        if (*it).it_flags & ITEM_CFLAGS == 0 {
            return 0;
        }
        let cas = if (*it).it_flags & ITEM_CAS != 0 { 8 } else { 0 };
        std::ptr::read_unaligned(body(it).add(cas + (*it).nkey as usize + 1) as *const u32)
    }
}

/// The value bytes, "\r\n" included (C's ITEM_data, for items that are not chunked).
///
/// # Safety
/// `it` must point at a live, non-chunked item and stay live for `'a`.
#[inline]
pub unsafe fn data<'a>(it: *const Item) -> &'a [u8] {
    // SAFETY: the value follows CAS, key, NUL and flags inside the chunk; nbytes >= 2.
    unsafe {
        let mut off = (*it).nkey as usize + 1;
        if (*it).it_flags & ITEM_CAS != 0 {
            off += 8;
        }
        if (*it).it_flags & ITEM_CFLAGS != 0 {
            off += 4;
        }
        std::slice::from_raw_parts(body(it).add(off), (*it).nbytes.max(0) as usize)
    }
}

/// The value area to fill while reading a value from a client.
///
/// # Safety
/// As `data`, and the caller must be the only user of the item (not yet linked).
#[inline]
pub unsafe fn data_mut<'a>(it: *mut Item) -> &'a mut [u8] {
    // SAFETY: as in `data`; exclusivity is the caller's contract.
    unsafe {
        let d = data(it);
        std::slice::from_raw_parts_mut(d.as_ptr() as *mut u8, d.len())
    }
}

/// The embedded chunk header of a chunked item (C's ITEM_schunk); possibly unaligned, so it
/// is only accessed through the helpers below.
///
/// # Safety
/// `it` points at a live item with ITEM_CHUNKED set.
#[inline]
unsafe fn schunk(it: *const Item) -> *mut u8 {
    // SAFETY: the embedded header follows CAS, key, NUL and flags inside the header chunk.
    unsafe {
        let mut off = (*it).nkey as usize + 1;
        if (*it).it_flags & ITEM_CAS != 0 {
            off += 8;
        }
        if (*it).it_flags & ITEM_CFLAGS != 0 {
            off += 4;
        }
        body(it).add(off) as *mut u8
    }
}

/// Fills the embedded chunk header of a fresh chunked item: no chunks yet, header class
/// `orig_clsid`.
///
/// # Safety
/// `it` is a fresh chunked item from the allocator, its key and flags written (`init_body`),
/// in a chunk of `chunked_header_total` bytes or more.
pub unsafe fn init_schunk(it: *mut Item, orig_clsid: u8) {
    // SAFETY: per the contract the embedded header lies inside the chunk; unaligned writes.
    unsafe {
        let h = schunk(it);
        std::ptr::write_bytes(h, 0, ITEM_CHUNK_HEADER_SIZE);
        std::ptr::write_unaligned(
            h.add(std::mem::offset_of!(ItemChunk, head)) as *mut *mut Item,
            it,
        );
        *h.add(std::mem::offset_of!(ItemChunk, orig_clsid)) = orig_clsid;
    }
}

/// First chunk of a chunked item (null before any is attached).
///
/// # Safety
/// `it` points at a live chunked item.
#[inline]
pub unsafe fn first_chunk(it: *const Item) -> *mut ItemChunk {
    // SAFETY: unaligned read of the embedded header's `next`.
    unsafe { std::ptr::read_unaligned(schunk(it) as *const *mut ItemChunk) }
}

/// Attaches the first chunk of a chunked item.
///
/// # Safety
/// `it` points at a chunked item only the caller uses.
pub unsafe fn set_first_chunk(it: *mut Item, ch: *mut ItemChunk) {
    // SAFETY: unaligned write of the embedded header's `next`.
    unsafe { std::ptr::write_unaligned(schunk(it) as *mut *mut ItemChunk, ch) }
}

/// Moves every pointer a chunk holds by the offset between two addresses of the same memory
/// file (a restart, `crate::restart`): LRU links of a linked item, and the chunk links of a
/// chunked item's embedded header or of one of its chunks. Null pointers stay null.
///
/// # Safety
/// `it` is a chunk of the reused memory file and nothing else runs.
pub unsafe fn rebase_pointers(it: *mut Item, rebase: &dyn Fn(usize) -> usize) {
    let moved = |p: usize| if p == 0 { 0 } else { rebase(p) };
    // SAFETY: per the contract; the embedded header may be unaligned, hence the unaligned
    // accesses for chunk links.
    unsafe {
        let flags = (*it).it_flags;
        if flags & ITEM_LINKED != 0 {
            (*it).next = moved((*it).next as usize) as *mut Item;
            (*it).prev = moved((*it).prev as usize) as *mut Item;
        }
        let links = if flags & ITEM_CHUNKED != 0 {
            schunk(it)
        } else if flags & ITEM_CHUNK != 0 {
            it as *mut u8
        } else {
            return;
        };
        for off in [
            std::mem::offset_of!(ItemChunk, next),
            std::mem::offset_of!(ItemChunk, prev),
            std::mem::offset_of!(ItemChunk, head),
        ] {
            let at = links.add(off) as *mut usize;
            std::ptr::write_unaligned(at, moved(std::ptr::read_unaligned(at)));
        }
    }
}

/// The item a chunk belongs to.
///
/// # Safety
/// `ch` is a live chunk (ITEM_CHUNK).
pub unsafe fn chunk_head(ch: *const Item) -> *mut Item {
    // SAFETY: per the contract, `ch` starts with an ItemChunk header.
    unsafe { (*(ch as *const ItemChunk)).head }
}

/// The slab class the header chunk of a chunked item came from.
///
/// # Safety
/// `it` points at a live chunked item.
pub unsafe fn header_clsid(it: *const Item) -> u8 {
    // SAFETY: reads a byte of the embedded header.
    unsafe { *schunk(it).add(std::mem::offset_of!(ItemChunk, orig_clsid)) }
}

/// The value bytes held by chunk `ch`.
///
/// # Safety
/// `ch` is a live chunk; the slice must not outlive its item.
#[inline]
unsafe fn chunk_data<'a>(ch: *const ItemChunk) -> &'a mut [u8] {
    // SAFETY: a chunk's value area follows its header and holds `used` bytes.
    unsafe {
        std::slice::from_raw_parts_mut(
            (ch as *mut u8).add(ITEM_CHUNK_HEADER_SIZE),
            (*ch).used.max(0) as usize,
        )
    }
}

/// The value of an item as its contiguous pieces: one for a plain item, one per chunk for a
/// chunked one ("\r\n" included at the end of the last).
pub struct ValueSegments<'a> {
    single: Option<&'a [u8]>,
    chunk: *const ItemChunk,
}

impl<'a> Iterator for ValueSegments<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if let Some(s) = self.single.take() {
            return Some(s);
        }
        if self.chunk.is_null() {
            return None;
        }
        // SAFETY: the chunks of a live item are live; the caller's reference to the item
        // (the lifetime 'a) keeps them so.
        unsafe {
            let d = chunk_data(self.chunk);
            self.chunk = (*self.chunk).next;
            Some(d)
        }
    }
}

/// The value's pieces.
///
/// # Safety
/// `it` is live for `'a`.
pub unsafe fn value_segments<'a>(it: *const Item) -> ValueSegments<'a> {
    // SAFETY: per the contract.
    unsafe {
        if (*it).it_flags & ITEM_HDR != 0 {
            // The value is on flash; the item's `nbytes` describes it, not its own memory.
            return ValueSegments {
                single: None,
                chunk: std::ptr::null(),
            };
        }
        if (*it).it_flags & ITEM_CHUNKED != 0 {
            ValueSegments {
                single: None,
                chunk: first_chunk(it),
            }
        } else {
            ValueSegments {
                single: Some(data(it)),
                chunk: std::ptr::null(),
            }
        }
    }
}

/// The writable part of the value from byte `offset` to the end of the piece holding it
/// (empty past the end).
///
/// # Safety
/// As `data_mut`: the caller is the item's only user.
pub unsafe fn value_window_mut<'a>(it: *mut Item, offset: usize) -> &'a mut [u8] {
    // SAFETY: per the contract.
    unsafe {
        if (*it).it_flags & ITEM_CHUNKED == 0 {
            let d = data_mut(it);
            let o = offset.min(d.len());
            return &mut d[o..];
        }
        let mut rest = offset;
        let mut ch = first_chunk(it);
        while !ch.is_null() {
            let d = chunk_data(ch);
            if rest < d.len() {
                return &mut d[rest..];
            }
            rest -= d.len();
            ch = (*ch).next;
        }
        &mut []
    }
}

/// The LRU id bits of a class id byte.
#[inline]
pub fn clsid_of(slabs_clsid: u8) -> u8 {
    slabs_clsid & !(3 << 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_c_sized() {
        assert_eq!(ITEM_HEADER_SIZE, 48);
        assert_eq!(std::mem::align_of::<Item>(), 8);
    }

    #[test]
    fn body_accessors() {
        use crate::slabs::{compute_classes, SlabAllocator};
        let classes = compute_classes(48, 1.25, 512 * 1024, 1024 * 1024, None);
        let mut a = SlabAllocator::new(
            &classes,
            64 << 20,
            1024 * 1024,
            true,
            512 * 1024,
            1024 * 1024,
        );
        for (use_cas, flags) in [(true, 0u32), (true, 0xdead_beef), (false, 0), (false, 7)] {
            let total = item_make_header_total(3, 7, use_cas, flags);
            let id = a.clsid(total);
            let it = a.alloc(id, false).unwrap().as_ptr();
            // SAFETY: `it` is a fresh chunk of a class big enough for `total` bytes.
            unsafe {
                init_body(it, b"foo", flags, 10, 7, use_cas);
                data_mut(it).copy_from_slice(b"hello\r\n");
                set_cas(it, 42);
                assert_eq!(key(it), b"foo");
                assert_eq!(client_flags(it), flags);
                assert_eq!(data(it), b"hello\r\n");
                assert_eq!(get_cas(it), if use_cas { 42 } else { 0 });
                assert_eq!((*it).exptime, 10);
            }
        }
    }

    #[test]
    fn totals() {
        // "set foo 0 0 3" with CAS on: 48 + 3 + 1 + 5 + 8 = 65 bytes, class 1 (96).
        assert_eq!(item_make_header_total(3, 5, true, 0), 65);
        assert_eq!(item_make_header_total(3, 5, true, 7), 69);
        assert_eq!(item_make_header_total(3, 5, false, 0), 57);
        assert_eq!(clsid_of(0b1100_0011), 3);
    }
}
