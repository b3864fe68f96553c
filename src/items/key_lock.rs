//! The item lock of one key, held (C's item_lock/item_unlock of thread.c around the `do_item_*`
//! calls of items.c). Every operation that needs the lock is a method here, so code above the
//! storage layer cannot call one without holding it, and holds no raw item pointer.

use super::store::{ItemRef, Store};
use crate::stats::ThreadStats;
use crate::sys::LockGuard;

/// The item lock for a key's hash stripe. Items handed to its methods must belong to that
/// stripe: their key is the locked key, or hashes to the same lock (checked; a mismatch is a
/// bug in the caller and stops the process rather than touch an item unlocked).
pub struct KeyLock<'a> {
    st: &'a Store,
    key: &'a [u8],
    hv: u32,
    _guard: LockGuard<'a, ()>,
}

impl Store {
    /// Takes the item lock for `key`.
    #[inline]
    pub fn lock<'a>(&'a self, key: &'a [u8]) -> KeyLock<'a> {
        let hv = self.hash(key);
        KeyLock {
            st: self,
            key,
            hv,
            _guard: self.item_lock(hv),
        }
    }
}

impl<'a> KeyLock<'a> {
    /// The store this lock belongs to.
    pub fn store(&self) -> &'a Store {
        self.st
    }

    /// The locked key.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// Whether `it` is guarded by this lock.
    #[inline]
    fn guards(&self, it: &ItemRef) -> bool {
        let k = it.key();
        k == self.key
            || self.st.item_lock_index(self.st.hash(k)) == self.st.item_lock_index(self.hv)
    }

    #[inline]
    fn check(&self, it: &ItemRef) {
        assert!(self.guards(it), "item operation under another key's lock");
    }

    /// Looks the key up, dropping it if expired or flushed (C's do_item_get); with
    /// `do_update` the fetch is recorded for the LRU (C's do_item_bump).
    #[inline]
    pub fn get(&self, stats: Option<&ThreadStats>, do_update: bool) -> Option<ItemRef> {
        // SAFETY: this guard holds the item lock for `hv`, the hash of `key`.
        unsafe { self.st.get_locked(self.key, self.hv, stats, do_update) }
    }

    /// Links an unlinked item from `Store::alloc` under CAS `cas`, stored as given (C's
    /// do_item_link). An item already linked is left alone.
    pub fn link(&self, it: &ItemRef, cas: u64) {
        self.check(it);
        if it.is_linked() {
            return;
        }
        // SAFETY: the item's lock is held (checked above) and it is not linked.
        unsafe { self.st.link(it, self.hv, cas) }
    }

    /// Unlinks an item from the table and its LRU (C's do_item_unlink); a no-op when it is
    /// not linked.
    pub fn unlink(&self, it: &ItemRef) {
        self.check(it);
        // SAFETY: the item's lock is held; our reference keeps it live.
        unsafe { self.st.unlink(it.as_ptr(), self.hv) }
    }

    /// Replaces `old` with the unlinked `new` under the same key (C's do_item_replace).
    pub fn replace(&self, old: &ItemRef, new: &ItemRef, cas: u64) {
        self.check(old);
        self.check(new);
        if new.is_linked() {
            return;
        }
        // SAFETY: both items' lock is held; `old` is live (our reference) and `new` unlinked.
        unsafe { self.st.replace(old.as_ptr(), new, self.hv, cas) }
    }

    /// Records a fetch for the LRU (C's do_item_bump).
    pub fn bump(&self, it: &ItemRef) {
        self.check(it);
        // SAFETY: the item's lock is held and our reference keeps it live.
        unsafe { self.st.bump(it.as_ptr(), self.hv) }
    }

    /// Refreshes the access time, moving an active COLD item to WARM (C's do_item_update).
    pub fn update(&self, it: &ItemRef) {
        self.check(it);
        // SAFETY: the item's lock is held and our reference keeps it live.
        unsafe { self.st.touch_time(it.as_ptr()) }
    }

    /// Rewrites a linked number in place with a new CAS (incr/decr): false, changing
    /// nothing, if another reference exists or the digits do not fit.
    pub fn rewrite_in_place(&self, it: &ItemRef, digits: &[u8]) -> bool {
        self.check(it);
        // SAFETY: the item's lock is held, so no new reference can appear meanwhile.
        unsafe { self.st.rewrite_in_place(it, digits) }
    }

    /// Sets the expiry time (`touch`, `gat`, meta `T`/`N`).
    pub fn set_exptime(&self, it: &ItemRef, exptime: u32) {
        self.check(it);
        // SAFETY: the item's lock is held.
        unsafe { it.set_exptime_locked(exptime) }
    }

    /// Sets the CAS (meta `E`, stale marking).
    pub fn set_cas(&self, it: &ItemRef, cas: u64) {
        self.check(it);
        // SAFETY: the item's lock is held.
        unsafe { it.set_cas_locked(cas) }
    }

    /// Sets and clears ITEM_* flags (meta win token, stale, binary key).
    pub fn update_flags(&self, it: &ItemRef, set: u16, clear: u16) {
        self.check(it);
        // SAFETY: the item's lock is held.
        unsafe { it.update_flags(set, clear) }
    }
}
