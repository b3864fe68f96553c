//! The hash table (C's assoc.c): 2^hashpower buckets of item chains linked through the item
//! header's `h_next`.
//!
//! Concurrency follows C: a bucket and the chain hanging from it are only read or changed by a
//! thread holding the item lock for that hash (item locks are striped by hash with fewer
//! stripes than buckets, so each bucket maps to one lock). Buckets are atomics so that
//! different buckets can be touched by different threads without a data race.

use crate::items::{self, Item};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

/// Default `-o hashpower` (C's HASHPOWER_DEFAULT).
pub const HASHPOWER_DEFAULT: u32 = 16;

/// A bucket array of 2^power chains.
pub struct HashTable {
    power: u32,
    buckets: Box<[AtomicPtr<Item>]>,
}

impl HashTable {
    /// An empty table with 2^power buckets (`power` 0 means the default).
    pub fn new(power: u32) -> HashTable {
        let power = if power == 0 { HASHPOWER_DEFAULT } else { power };
        let buckets = (0..1u64 << power)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        HashTable { power, buckets }
    }

    /// log2 of the bucket count (`hash_power_level`).
    pub fn power(&self) -> u32 {
        self.power
    }

    /// Bytes of the bucket array (`hash_bytes`).
    pub fn bytes(&self) -> u64 {
        (self.buckets.len() * std::mem::size_of::<*mut Item>()) as u64
    }

    fn bucket(&self, hv: u32) -> &AtomicPtr<Item> {
        &self.buckets[(hv as u64 & ((1u64 << self.power) - 1)) as usize]
    }

    /// The linked item with this key, or null (C's assoc_find).
    ///
    /// # Safety
    /// The caller holds the item lock for `hv`, so the chain is not changing and its items are
    /// live.
    pub unsafe fn find(&self, key: &[u8], hv: u32) -> *mut Item {
        let mut it = self.bucket(hv).load(Relaxed);
        while !it.is_null() {
            // SAFETY: items on a chain are live while the bucket's lock is held.
            unsafe {
                if (*it).nkey as usize == key.len() && items::key(it) == key {
                    return it;
                }
                it = (*it).h_next;
            }
        }
        ptr::null_mut()
    }

    /// Puts `it` at the head of its chain (C's assoc_insert).
    ///
    /// # Safety
    /// The caller holds the item lock for `hv`; `it` is live, has its key written and is not
    /// on any chain.
    pub unsafe fn insert(&self, it: *mut Item, hv: u32) {
        let b = self.bucket(hv);
        // SAFETY: per the contract, `it` is ours to link and the chain is stable.
        unsafe { (*it).h_next = b.load(Relaxed) };
        b.store(it, Relaxed);
    }

    /// Removes the item with this key from its chain, if there (C's assoc_delete).
    ///
    /// # Safety
    /// The caller holds the item lock for `hv`.
    pub unsafe fn delete(&self, key: &[u8], hv: u32) {
        let b = self.bucket(hv);
        let mut prev: *mut Item = ptr::null_mut();
        let mut it = b.load(Relaxed);
        // SAFETY: the chain is stable and its items live under the lock.
        unsafe {
            while !it.is_null() {
                if (*it).nkey as usize == key.len() && items::key(it) == key {
                    let next = (*it).h_next;
                    if prev.is_null() {
                        b.store(next, Relaxed);
                    } else {
                        (*prev).h_next = next;
                    }
                    (*it).h_next = ptr::null_mut();
                    return;
                }
                prev = it;
                it = (*it).h_next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{init_body, item_make_header_total};
    use crate::slabs::{compute_classes, SlabAllocator};

    #[test]
    fn insert_find_delete_with_collisions() {
        let classes = compute_classes(48, 1.25, 512 * 1024, 1024 * 1024, None);
        let mut a = SlabAllocator::new(
            &classes,
            64 << 20,
            1024 * 1024,
            true,
            512 * 1024,
            1024 * 1024,
        );
        // A tiny table so that chains form.
        let t = HashTable::new(2);
        assert_eq!(t.bytes(), 32);
        let keys: Vec<Vec<u8>> = (0..50).map(|i| format!("key{}", i).into_bytes()).collect();
        let mut its = Vec::new();
        for k in &keys {
            let id = a.clsid(item_make_header_total(k.len(), 2, true, 0));
            let it = a.alloc(id, false).unwrap().as_ptr();
            let hv = crate::hash::murmur3_32(k);
            // SAFETY: a fresh chunk, big enough; the test is single-threaded (no locks needed).
            unsafe {
                init_body(it, k, 0, 0, 2, true);
                t.insert(it, hv);
            }
            its.push(it);
        }
        for (k, it) in keys.iter().zip(&its) {
            let hv = crate::hash::murmur3_32(k);
            // SAFETY: single-threaded; all items live.
            unsafe { assert_eq!(t.find(k, hv), *it) };
        }
        // Delete every other key; the rest stay findable.
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            let hv = crate::hash::murmur3_32(k);
            // SAFETY: single-threaded; all items live.
            unsafe {
                t.delete(k, hv);
                assert!(t.find(k, hv).is_null(), "key {} deleted", i);
            }
        }
        for (i, k) in keys.iter().enumerate() {
            let hv = crate::hash::murmur3_32(k);
            // SAFETY: single-threaded; all items live.
            let found = unsafe { t.find(k, hv) };
            assert_eq!(found.is_null(), i % 2 == 0);
        }
        // SAFETY: single-threaded.
        unsafe { assert!(t.find(b"missing", 12345).is_null()) };
    }
}
