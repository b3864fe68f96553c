//! Items (C's `item`/`_stritem` of memcached.h and items.c). This part defines the item header
//! exactly as C lays it out, so that item sizes, and therefore slab class choice and memory
//! accounting, match C's; and the arithmetic over an item's variable-length body.
//!
//! Layout of one item in its slab chunk:
//! `[header: 48 bytes][cas: 8 bytes if ITEM_CAS][key][NUL][client flags: 4 if ITEM_CFLAGS][value]`
//! The value includes its trailing "\r\n".

use std::sync::atomic::AtomicU16;

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
}

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
    fn totals() {
        // "set foo 0 0 3" with CAS on: 48 + 3 + 1 + 5 + 8 = 65 bytes, class 1 (96).
        assert_eq!(item_make_header_total(3, 5, true, 0), 65);
        assert_eq!(item_make_header_total(3, 5, true, 7), 69);
        assert_eq!(item_make_header_total(3, 5, false, 0), 57);
        assert_eq!(clsid_of(0b1100_0011), 3);
    }
}
