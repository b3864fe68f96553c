//! What the store knows of values on flash (the ITEM_HDR parts of C's items.c and
//! memcached.h): the header an item keeps in place of its value, the COLD-tail pull the
//! extstore write thread uses (lru_pull_tail with LRU_PULL_RETURN_ITEM), and lookups for
//! compaction and recache, which run with an item lock they took themselves.

use super::lru::COLD_LRU;
use super::store::{ItemRef, Store};
use crate::items::{self, Item, ITEM_HDR, ITEM_LINKED};
use crate::sys::LockGuard;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::Relaxed;

/// Where an item's value sits on flash (C's item_hdr): kept in the value slot of a small
/// item whose `nbytes` still says how long the value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ItemHdr {
    pub page_version: u32,
    pub offset: u32,
    pub page_id: u16,
}

/// Bytes the header takes in the item (C's sizeof(item_hdr), padding included).
pub const ITEM_HDR_SIZE: usize = 12;

/// Offset of the value in an item (C's ITEM_data - item).
///
/// # Safety
/// `it` is live.
pub(crate) unsafe fn value_offset(it: *const Item) -> usize {
    // SAFETY: header fields of a live item.
    unsafe {
        let f = (*it).it_flags;
        let mut off = items::ITEM_HEADER_SIZE + (*it).nkey as usize + 1;
        if f & items::ITEM_CAS != 0 {
            off += 8;
        }
        if f & items::ITEM_CFLAGS != 0 {
            off += 4;
        }
        off
    }
}

/// The flash location a header item holds.
///
/// # Safety
/// `it` is a live item with ITEM_HDR, allocated with room for the header.
pub(crate) unsafe fn hdr_of(it: *const Item) -> ItemHdr {
    // SAFETY: the header sits in the value slot, unaligned.
    unsafe {
        let p = (it as *const u8).add(value_offset(it));
        ItemHdr {
            page_version: std::ptr::read_unaligned(p as *const u32),
            offset: std::ptr::read_unaligned(p.add(4) as *const u32),
            page_id: std::ptr::read_unaligned(p.add(8) as *const u16),
        }
    }
}

/// Writes the flash location into a header item.
///
/// # Safety
/// `it` has room for the header in its value slot and the caller may change it (not yet
/// linked, or its item lock held with no reader of the header other than under that lock).
pub(crate) unsafe fn set_hdr(it: *mut Item, h: ItemHdr) {
    // SAFETY: per the contract.
    unsafe {
        let p = (it as *mut u8).add(value_offset(it));
        std::ptr::write_unaligned(p as *mut u32, h.page_version);
        std::ptr::write_unaligned(p.add(4) as *mut u32, h.offset);
        std::ptr::write_unaligned(p.add(8) as *mut u16, h.page_id);
    }
}

/// Bytes an item takes from its LRU's share (C's do_item_link_q accounting): a header item
/// counts what it really holds, not the value on flash its `nbytes` describes.
///
/// # Safety
/// `it` is live.
#[inline]
pub(in crate::items) unsafe fn lru_bytes(it: *const Item, ntotal: usize) -> usize {
    // SAFETY: header fields of a live item.
    unsafe {
        if (*it).it_flags & ITEM_HDR != 0 {
            ntotal - (*it).nbytes.max(0) as usize + ITEM_HDR_SIZE
        } else {
            ntotal
        }
    }
}

/// A COLD tail item handed to the extstore write thread with its item lock held.
pub struct ColdTail<'a> {
    pub it: ItemRef,
    pub hv: u32,
    pub guard: LockGuard<'a, ()>,
}

impl ItemRef {
    /// The value is on flash: this item holds only where (ITEM_HDR).
    #[inline]
    pub fn is_hdr(&self) -> bool {
        self.flags() & ITEM_HDR != 0
    }

    /// Where the value is, for a header item.
    pub fn hdr(&self) -> Option<ItemHdr> {
        // SAFETY: the reference keeps the item live; a header item has the slot.
        self.is_hdr().then(|| unsafe { hdr_of(self.as_ptr()) })
    }
}

impl Store {
    /// Takes the COLD tail of class `cls` for the extstore write thread, reclaiming expired
    /// and flushed items on the way (up to five tries, crawler markers stepped over), with its
    /// item lock held and a reference (C's lru_pull_tail with LRU_PULL_RETURN_ITEM).
    pub fn pull_cold_tail(&self, cls: u8) -> Option<ColdTail<'_>> {
        self.pull_tail_walk(cls, COLD_LRU, 0, false, 0, false, true)
            .1
    }

    /// Looks a key up without expiry checks or bumps, under an item lock the caller holds
    /// (compaction and recache check the item themselves).
    ///
    /// # Safety
    /// The item lock for `hv` is held.
    pub(crate) unsafe fn find_locked(&self, key: &[u8], hv: u32) -> Option<ItemRef> {
        // SAFETY: per the contract the chain is stable; the reference keeps the item.
        unsafe {
            let it = self.assoc.find(key, hv);
            if it.is_null() {
                return None;
            }
            (*it).refcount.fetch_add(1, Relaxed);
            Some(ItemRef {
                it: NonNull::new_unchecked(it),
            })
        }
    }

    /// Replaces `old` by a copy of itself in another chunk (the slab mover): a header item's
    /// object on flash belongs to the copy, so it is not let go.
    ///
    /// # Safety
    /// As `replace`.
    pub(crate) unsafe fn replace_keep_flash(
        &self,
        old: *mut Item,
        new: &ItemRef,
        hv: u32,
        cas: u64,
    ) {
        // SAFETY: per the contract.
        unsafe {
            if (*old).it_flags & ITEM_LINKED != 0 {
                let mut l = self.lru((*old).slabs_clsid);
                self.unlink_locked_flash(&mut l, old, hv, false);
            }
            self.link(new, hv, cas);
        }
    }
}
