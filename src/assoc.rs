//! The hash table (C's assoc.c): 2^hashpower buckets of item chains linked through the item
//! header's `h_next`.
//!
//! Concurrency follows C: a bucket and the chain hanging from it are only read or changed by a
//! thread holding the item lock for that hash (item locks are striped by hash with fewer
//! stripes than buckets, so each bucket maps to one lock). Buckets are atomics so that
//! different buckets can be touched by different threads without a data race.

use crate::items::{self, Item};
use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Default `-o hashpower` (C's HASHPOWER_DEFAULT).
pub const HASHPOWER_DEFAULT: u32 = 16;
/// The table stops growing at 2^32 buckets (C's HASHPOWER_MAX).
pub const HASHPOWER_MAX: u32 = 32;

type Buckets = Box<[AtomicPtr<Item>]>;

/// The bucket arrays. Replaced or dropped only with every item lock held (a stop of all
/// table users, C's pause_threads); read by threads holding one item lock.
struct Tables {
    power: u32,
    primary: Buckets,
    /// While expanding: the previous array, whose buckets from `expand_bucket` on have not
    /// moved yet.
    old: Option<Buckets>,
}

/// A bucket array of 2^power chains, grown by the expansion thread.
pub struct HashTable {
    tables: UnsafeCell<Tables>,
    /// Next bucket of `old` to move; advanced under that bucket's item lock.
    expand_bucket: AtomicU64,
    // Copies for `stats`, which reads without item locks.
    power: AtomicU32,
    bytes: AtomicU64,
    expanding: AtomicBool,
}

// SAFETY: `tables` is only changed with every item lock held and only read with at least one
// held (see `Tables`), so reads never race with writes; each bucket is an atomic, and a
// bucket's chain is only touched under its item lock.
unsafe impl Sync for HashTable {}

/// 2^power empty buckets from zeroed memory, as C's calloc: a large table is mapped lazily,
/// so its pages only become resident as buckets are filled (writing every null pointer
/// would make the whole table resident at start-up).
fn empty_buckets(power: u32) -> Option<Buckets> {
    let n = usize::try_from(1u64 << power).ok()?;
    let layout = std::alloc::Layout::array::<AtomicPtr<Item>>(n).ok()?;
    // SAFETY: `layout` has a non-zero size (n >= 1). All-zero bytes are a null AtomicPtr, so
    // the zeroed block is n valid buckets; it was allocated by the global allocator with the
    // layout of a boxed slice of n buckets, which is what Box::from_raw frees it with.
    unsafe {
        let p = std::alloc::alloc_zeroed(layout).cast::<AtomicPtr<Item>>();
        if p.is_null() {
            return None;
        }
        Some(Box::from_raw(ptr::slice_from_raw_parts_mut(p, n)))
    }
}

#[inline]
fn mask(power: u32) -> u64 {
    (1u64 << power) - 1
}

impl HashTable {
    /// An empty table with 2^power buckets (`power` 0 means the default).
    pub fn new(power: u32) -> HashTable {
        let power = if power == 0 { HASHPOWER_DEFAULT } else { power };
        let Some(primary) = empty_buckets(power) else {
            eprintln!("Failed to init hashtable.");
            std::process::exit(1);
        };
        HashTable {
            tables: UnsafeCell::new(Tables {
                power,
                primary,
                old: None,
            }),
            expand_bucket: AtomicU64::new(0),
            power: AtomicU32::new(power),
            bytes: AtomicU64::new((1u64 << power) * std::mem::size_of::<*mut Item>() as u64),
            expanding: AtomicBool::new(false),
        }
    }

    /// log2 of the bucket count (`hash_power_level`).
    pub fn power(&self) -> u32 {
        self.power.load(Relaxed)
    }

    /// Bytes of the bucket arrays, both while expanding (`hash_bytes`).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// Whether buckets are being moved to a larger array (`hash_is_expanding`).
    pub fn is_expanding(&self) -> bool {
        self.expanding.load(Relaxed)
    }

    /// Whether the table should grow for this many items (C's assoc_start_expand test).
    pub fn wants_expand(&self, curr_items: u64) -> bool {
        let power = self.power();
        !self.is_expanding()
            && power < HASHPOWER_MAX
            && curr_items > (1u64 << power).saturating_mul(3) / 2
    }

    /// The chain head for `hv`: in the old array if its bucket has not moved yet.
    ///
    /// # Safety
    /// The caller holds an item lock (the one for `hv` to use the chain): the arrays are
    /// only replaced with every lock held.
    unsafe fn bucket(&self, hv: u32) -> &AtomicPtr<Item> {
        // SAFETY: with an item lock held the arrays are not replaced (see `Tables`).
        let t = unsafe { &*self.tables.get() };
        if let Some(old) = &t.old {
            let ob = hv as u64 & mask(t.power - 1);
            if ob >= self.expand_bucket.load(Relaxed) {
                return &old[ob as usize];
            }
        }
        &t.primary[(hv as u64 & mask(t.power)) as usize]
    }

    /// Switches to the larger array `bigger` (from `next_buckets`) and starts moving buckets
    /// (C's assoc_expand).
    ///
    /// # Safety
    /// Every item lock is held by the caller.
    pub unsafe fn begin_expand(&self, bigger: Buckets) {
        // SAFETY: per the contract no other thread is inside the table.
        let t = unsafe { &mut *self.tables.get() };
        let old = std::mem::replace(&mut t.primary, bigger);
        t.old = Some(old);
        t.power += 1;
        self.expand_bucket.store(0, Relaxed);
        self.power.store(t.power, Relaxed);
        self.bytes.fetch_add(
            (1u64 << t.power) * std::mem::size_of::<*mut Item>() as u64,
            Relaxed,
        );
        self.expanding.store(true, Relaxed);
    }

    /// An empty array for the next expansion, allocated before the table users are stopped.
    pub fn next_buckets(&self) -> Option<Buckets> {
        empty_buckets(self.power() + 1)
    }

    /// The next old bucket to move, or None when none is left.
    pub fn expand_bucket(&self) -> Option<u64> {
        if !self.is_expanding() {
            return None;
        }
        Some(self.expand_bucket.load(Relaxed))
    }

    /// Moves old bucket `b` into the new array (one step of C's assoc_maintenance_thread).
    /// Returns true when that was the last one; the old array is then dropped by `finish`.
    ///
    /// # Safety
    /// The caller holds the item lock that covers `b` (the lock of any hash whose low bits
    /// are `b`) and `b` is `expand_bucket()`.
    pub unsafe fn move_bucket(&self, b: u64) -> bool {
        // SAFETY: per the contract: the arrays are not replaced while a lock is held, and the
        // chain of `b` and every new bucket its items land in (same low bits) are ours.
        unsafe {
            let t = &*self.tables.get();
            let Some(old) = &t.old else { return true };
            let mut it = old[b as usize].swap(ptr::null_mut(), Relaxed);
            while !it.is_null() {
                let next = (*it).h_next;
                let nb = &t.primary[((*it).hv as u64 & mask(t.power)) as usize];
                (*it).h_next = nb.load(Relaxed);
                nb.store(it, Relaxed);
                it = next;
            }
            let next = b + 1;
            self.expand_bucket.store(next, Relaxed);
            next == 1u64 << (t.power - 1)
        }
    }

    /// Drops the emptied old array (end of an expansion).
    ///
    /// # Safety
    /// Every item lock is held by the caller, and every old bucket has moved.
    pub unsafe fn finish_expand(&self) {
        // SAFETY: per the contract no other thread is inside the table.
        let t = unsafe { &mut *self.tables.get() };
        if t.old.take().is_some() {
            self.bytes.fetch_sub(
                (1u64 << (t.power - 1)) * std::mem::size_of::<*mut Item>() as u64,
                Relaxed,
            );
        }
        self.expanding.store(false, Relaxed);
    }

    /// The head of bucket `b` of the current array (for walks of the whole table).
    ///
    /// # Safety
    /// No expansion is under way and the caller holds the item lock covering `b`.
    pub unsafe fn primary_head(&self, b: u64) -> *mut Item {
        // SAFETY: per the contract the arrays are stable and the bucket is ours.
        let t = unsafe { &*self.tables.get() };
        t.primary
            .get(b as usize)
            .map_or(ptr::null_mut(), |p| p.load(Relaxed))
    }

    /// The linked item with this key, or null (C's assoc_find).
    ///
    /// # Safety
    /// The caller holds the item lock for `hv`, so the chain is not changing and its items are
    /// live.
    pub unsafe fn find(&self, key: &[u8], hv: u32) -> *mut Item {
        // SAFETY: the caller holds the item lock for hv.
        let mut it = unsafe { self.bucket(hv) }.load(Relaxed);
        while !it.is_null() {
            // SAFETY: items on a chain are live while the bucket's lock is held.
            unsafe {
                if (*it).nkey as usize == key.len() && key_eq(items::key(it), key) {
                    return it;
                }
                it = (*it).h_next;
            }
        }
        ptr::null_mut()
    }

    /// Starts loading the bucket of `hv`, for a lookup that comes soon. Only the current
    /// array is looked at: while the table grows, a bucket not moved yet is simply not
    /// prefetched.
    ///
    /// # Safety
    /// The caller holds an item lock, any one, so the arrays are not replaced meanwhile.
    #[inline]
    pub unsafe fn prefetch_bucket(&self, hv: u32) {
        // SAFETY: per the contract; only the bucket's address is taken.
        let t = unsafe { &*self.tables.get() };
        let b = t
            .primary
            .as_ptr()
            .wrapping_add((hv as u64 & mask(t.power)) as usize);
        crate::sys::prefetch(b);
    }

    /// Starts loading the first item of the chain of `hv` (whose bucket was asked for
    /// earlier), in the current array as `prefetch_bucket`. The head is read without `hv`'s
    /// own lock: another thread may be changing the chain, so the pointer is only a hint and
    /// is never followed.
    ///
    /// # Safety
    /// The caller holds an item lock, any one, so the arrays are not replaced meanwhile.
    #[inline]
    pub unsafe fn prefetch_chain(&self, hv: u32) {
        // SAFETY: per the contract; the bucket is an atomic, read once.
        let t = unsafe { &*self.tables.get() };
        if let Some(b) = t.primary.get((hv as u64 & mask(t.power)) as usize) {
            crate::sys::prefetch(b.load(Relaxed));
        }
    }

    /// Puts `it` at the head of its chain (C's assoc_insert).
    ///
    /// # Safety
    /// The caller holds the item lock for `hv`; `it` is live, has its key written and is not
    /// on any chain.
    pub unsafe fn insert(&self, it: *mut Item, hv: u32) {
        // SAFETY: the caller holds the item lock for hv.
        let b = unsafe { self.bucket(hv) };
        // SAFETY: per the contract, `it` is ours to link and the chain is stable.
        unsafe {
            (*it).hv = hv;
            (*it).h_next = b.load(Relaxed);
        }
        b.store(it, Relaxed);
    }

    /// Removes the item with this key from its chain, if there (C's assoc_delete).
    ///
    /// # Safety
    /// The caller holds the item lock for `hv`.
    pub unsafe fn delete(&self, key: &[u8], hv: u32) {
        // SAFETY: the caller holds the item lock for hv.
        let b = unsafe { self.bucket(hv) };
        let mut prev: *mut Item = ptr::null_mut();
        let mut it = b.load(Relaxed);
        // SAFETY: the chain is stable and its items live under the lock.
        unsafe {
            while !it.is_null() {
                if (*it).nkey as usize == key.len() && key_eq(items::key(it), key) {
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

/// Key equality for the lookup of every request: keys of up to 32 bytes (most) compare as a
/// few overlapping word loads instead of a call to memcmp (~25 instructions per lookup).
#[inline]
fn key_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // SAFETY (all reads below): each arm reads only within [0, n) of both slices, which
    // have n bytes; the reads are unaligned loads.
    let word = |at: usize| unsafe {
        pa.add(at).cast::<u64>().read_unaligned() == pb.add(at).cast::<u64>().read_unaligned()
    };
    let half = |at: usize| unsafe {
        pa.add(at).cast::<u32>().read_unaligned() == pb.add(at).cast::<u32>().read_unaligned()
    };
    match n {
        4..=7 => half(0) & half(n - 4),
        8..=16 => word(0) & word(n - 8),
        17..=32 => word(0) & word(8) & word(n - 16) & word(n - 8),
        _ => a == b,
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

    #[test]
    fn key_eq_matches_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for n in 0..=40 {
            let a = &base[..n];
            assert!(super::key_eq(a, &base[..n]));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 1;
                assert!(!super::key_eq(a, &b), "len {n}, differing at {at}");
            }
            if n > 0 {
                assert!(!super::key_eq(a, &base[..n - 1]));
            }
        }
    }
}
