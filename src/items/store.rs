//! The item store (C's items.c `do_item_*` and the item-lock half of thread.c): the store's
//! shared state, item locks striped by hash, allocation with eviction from the LRU tails,
//! link/unlink/replace/get and flush. Its other concerns sit beside it: `lru` (the lists, tail
//! pulls, bumps and the maintainer's juggle), `crawl` (the crawler's walks), `expand` (hash
//! table growth), `stats` (item stats and cachedump) and `item_ref` (`ItemRef`).
//!
//! Lock order, as in C: item lock, then LRU lock, then slabs lock. Code walking an LRU tail
//! (holding the LRU lock) only *tries* item locks.

use super::crawl::CrawlerMarker;
pub use super::crawl::{CrawlStep, DumpItem};
pub use super::expand::{start_assoc_maintenance, stop_assoc_maintenance};
pub(crate) use super::item_ref::release_ref;
pub use super::item_ref::ItemRef;
use super::item_ref::{ntotal, release};
use super::lru::{BumpBuf, Lru};
pub use super::lru::{COLD_LRU, HOT_LRU, POWER_LARGEST, TEMP_LRU, WARM_LRU};
pub use super::stats::{ItemAutomoveStats, ItemStatsCounters};
use crate::assoc::HashTable;
use crate::items::{self, Item, ITEM_CHUNKED, ITEM_LINKED};
use crate::settings::{self, Settings};
use crate::slabs::with_slabs;
use crate::stats::{current_time, ThreadStats};
use crate::sys::{Lock, LockGuard};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// Items and bytes currently linked (C's stats_state.curr_items / curr_bytes) and items ever
/// linked (stats.total_items).
pub static CURR_ITEMS: AtomicI64 = AtomicI64::new(0);
pub static CURR_BYTES: AtomicI64 = AtomicI64::new(0);
pub static TOTAL_ITEMS: AtomicU64 = AtomicU64::new(0);

/// The store's shared state.
pub struct Store {
    pub(in crate::items) assoc: HashTable,
    pub(in crate::items) item_locks: Box<[Lock<()>]>,
    pub(in crate::items) item_lock_mask: u32,
    pub(in crate::items) lrus: Box<[Lock<Lru>]>,
    pub(in crate::items) cas_id: AtomicU64,
    pub(in crate::items) hash: fn(&[u8]) -> u32,
    pub(in crate::items) use_cas: bool,
    pub(in crate::items) slab_chunk_size_max: usize,
    /// Every thread's bump queue (C's bump_buf_head list).
    pub(in crate::items) bump_bufs: Mutex<Vec<Arc<BumpBuf>>>,
    /// One crawler marker per LRU id (C's crawlers[]): a pseudo item that walks up the list.
    pub(in crate::items) crawlers: Box<[CrawlerMarker]>,
    /// `stats sizes`: linked items per 32-byte size bucket, with `-o track_sizes`.
    pub(in crate::items) sizes_hist: Option<Box<[AtomicI32]>>,
    /// Set (and `expand_cond` signalled) to ask the expansion thread to grow the table.
    pub(in crate::items) expand_request: Mutex<bool>,
    pub(in crate::items) expand_cond: Condvar,
    /// Set to stop the expansion thread.
    pub(in crate::items) expand_stop: std::sync::atomic::AtomicBool,
    /// Held by the expansion thread while it expands and by a hash-table dump while it walks
    /// (C's maintenance_lock): a walk sees one stable array.
    pub(in crate::items) maintenance: Mutex<()>,
}

static STORE: OnceLock<Store> = OnceLock::new();

/// log2 of the item-lock stripes for a worker count (C's memcached_thread_init choice).
pub fn item_lock_power(nthreads: i32) -> u32 {
    match nthreads {
        ..=2 => 10,
        3 => 11,
        4 => 12,
        5..=10 => 13,
        11..=20 => 14,
        _ => 15,
    }
}

/// Starts loading the cache lines of a found item past its header: the value is copied out
/// when the reply is written, after the rest of the batch has run; without this the copy waits
/// on each line in turn.
///
/// # Safety
/// `it` is live (its header is read).
#[inline(always)]
unsafe fn prefetch_value(it: *const Item) {
    // SAFETY: per the contract; the lines past the header are only hinted at. Key and value
    // after the 48-byte header reach a second line past the first for most items; items
    // longer than these three lines are copied in a stream the CPU prefetches itself.
    let body = unsafe { (*it).nkey as usize + (*it).nbytes as usize };
    let base = it.cast::<u8>();
    crate::sys::prefetch(base.wrapping_add(64));
    if body > 64 {
        crate::sys::prefetch(base.wrapping_add(128));
    }
}

impl Store {
    /// A store for these settings (slabs must be initialised by the caller).
    pub fn new(s: &Settings) -> Store {
        let hashpower = if s.hashpower_init > 0 {
            s.hashpower_init as u32
        } else {
            crate::assoc::HASHPOWER_DEFAULT
        };
        Store::with_hashpower(s, hashpower)
    }

    /// A store whose table starts with 2^hashpower buckets.
    pub fn with_hashpower(s: &Settings, hashpower: u32) -> Store {
        let lock_power = item_lock_power(s.num_threads).min(hashpower.saturating_sub(1));
        let locks = (0..1u32 << lock_power).map(|_| Lock::new(())).collect();
        let lrus = (0..POWER_LARGEST)
            .map(|_| {
                Lock::new(Lru {
                    head: ptr::null_mut(),
                    tail: ptr::null_mut(),
                    size: 0,
                    size_bytes: 0,
                    stats: ItemStatsCounters::default(),
                })
            })
            .collect();
        Store {
            assoc: HashTable::new(hashpower),
            item_locks: locks,
            item_lock_mask: (1u32 << lock_power) - 1,
            lrus,
            // C's counter starts at 1 and is pre-incremented: the first CAS handed out is 2.
            cas_id: AtomicU64::new(1),
            hash: crate::hash::hash_fn(s.hash_algorithm),
            use_cas: s.use_cas,
            slab_chunk_size_max: s.slab_chunk_size_max.max(1) as usize,
            bump_bufs: Mutex::new(Vec::new()),
            crawlers: (0..POWER_LARGEST).map(|_| CrawlerMarker::new()).collect(),
            sizes_hist: s.track_sizes.load(Relaxed).then(|| {
                let buckets = s.track_sizes_item_size_max.max(0) as usize / 32 + 1;
                (0..buckets).map(|_| AtomicI32::new(0)).collect()
            }),
            expand_request: Mutex::new(false),
            expand_cond: Condvar::new(),
            expand_stop: std::sync::atomic::AtomicBool::new(false),
            maintenance: Mutex::new(()),
        }
    }

    /// The key's hash with the configured algorithm.
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u32 {
        (self.hash)(key)
    }

    /// Takes the item lock for `hv`.
    #[inline]
    pub fn item_lock(&self, hv: u32) -> LockGuard<'_, ()> {
        self.item_locks[(hv & self.item_lock_mask) as usize].lock()
    }

    /// `debugitem unref <key>`: gives back a reference a debugger leaked with `debugitem ref`
    /// (takes one and releases two, as C does). False if the key is missing.
    #[cfg(feature = "debug-commands")]
    pub fn debug_unref(&self, key: &[u8]) -> bool {
        let Some(r) = self.get(key, None, false) else {
            return false;
        };
        // SAFETY: the extra release stands for the leaked reference; a debugger that never
        // leaked one underflows the count, as with C's command.
        unsafe { release(r.as_ptr()) };
        true
    }

    /// The stripe of the item-lock table that guards `hv`.
    pub fn item_lock_index(&self, hv: u32) -> u32 {
        hv & self.item_lock_mask
    }

    /// Tries the item lock for `hv` (C's item_trylock), for threads that hold a lock that
    /// comes later in the lock order.
    pub(crate) fn item_trylock(&self, hv: u32) -> Option<LockGuard<'_, ()>> {
        self.item_locks[(hv & self.item_lock_mask) as usize].try_lock()
    }

    pub(in crate::items) fn lru(&self, id: u8) -> LockGuard<'_, Lru> {
        self.lrus[id as usize].lock()
    }

    /// The hash table (for stats).
    pub fn assoc(&self) -> &HashTable {
        &self.assoc
    }

    /// Next CAS value (C's get_cas_id).
    pub fn next_cas(&self) -> u64 {
        self.cas_id.fetch_add(1, Relaxed) + 1
    }

    /// Allocates an unlinked item for `key` with room for `nbytes` of value (C's
    /// do_item_alloc). None: too large for any class, or no memory could be freed.
    pub fn alloc(
        &self,
        key: &[u8],
        client_flags: u32,
        exptime: u32,
        nbytes: i32,
    ) -> Option<ItemRef> {
        if nbytes < 2 || key.len() > 250 {
            return None;
        }
        let ntotal =
            items::item_make_header_total(key.len(), nbytes as usize, self.use_cas, client_flags);
        let id = with_slabs(|s| s.clsid(ntotal))?;
        if id == 0 {
            return None;
        }
        let chunked = ntotal > self.slab_chunk_size_max;
        // A large value gets a header from a small class now, its chunks below.
        let got = if chunked {
            let htotal = items::chunked_header_total(key.len(), self.use_cas, client_flags);
            let hdr_id = with_slabs(|s| s.clsid(htotal)).unwrap_or(0);
            self.alloc_pull(hdr_id).map(|it| (it, hdr_id))
        } else {
            self.alloc_pull(id).map(|it| (it, id))
        };
        let Some((it, hdr_id)) = got else {
            self.lru(id as u8).stats.outofmemory += 1;
            return None;
        };
        let s = settings::get();
        let lru = if s.temp_lru.load(Relaxed)
            && exptime.wrapping_sub(current_time()) <= s.temporary_ttl.load(Relaxed)
        {
            TEMP_LRU
        } else if s.lru_segmented.load(Relaxed) {
            HOT_LRU
        } else {
            COLD_LRU
        };
        let p = it.as_ptr();
        // SAFETY: a fresh chunk of a class holding the header (and, unchunked, the value);
        // nobody else has it.
        unsafe {
            (*p).slabs_clsid = id as u8 | lru;
            if chunked {
                (*p).it_flags |= ITEM_CHUNKED;
            }
            items::init_body(p, key, client_flags, exptime, nbytes, self.use_cas);
            if chunked {
                items::init_schunk(p, hdr_id as u8);
            }
        }
        let r = ItemRef { it };
        if chunked && !self.alloc_chunks(&r, nbytes as usize) {
            // Dropping `r` frees the header and the chunks attached so far.
            return None;
        }
        Some(r)
    }

    /// Attaches chunks holding `nbytes` of value to a new chunked item. Each chunk is sized
    /// for what remains, up to `slab_chunk_max`; if that class has no memory, a full-size
    /// chunk is tried instead (C's do_item_alloc_chunk, done before reading the value rather
    /// than while reading it).
    fn alloc_chunks(&self, r: &ItemRef, nbytes: usize) -> bool {
        let hdr = items::ITEM_CHUNK_HEADER_SIZE;
        let max = self.slab_chunk_size_max;
        let mut remaining = nbytes;
        let mut prev: *mut items::ItemChunk = ptr::null_mut();
        while remaining > 0 {
            let mut size = (remaining + hdr).min(max);
            let mut cid = with_slabs(|s| s.clsid(size)).unwrap_or(0);
            let mut got = self.alloc_pull(cid);
            if got.is_none() && size != max {
                size = max;
                cid = with_slabs(|s| s.clsid(size)).unwrap_or(0);
                got = self.alloc_pull(cid);
            }
            let Some(c) = got else {
                return false;
            };
            let ch = c.as_ptr() as *mut items::ItemChunk;
            let room = size - hdr;
            // SAFETY: a fresh slab chunk of at least `size` bytes, ours alone; the item is
            // not shared yet.
            unsafe {
                (*ch).next = ptr::null_mut();
                (*ch).prev = prev;
                (*ch).head = r.as_ptr();
                (*ch).size = room as i32;
                (*ch).used = room.min(remaining) as i32;
                (*ch).nbytes = 0;
                (*ch).slabs_clsid = cid as u8;
                (*ch).orig_clsid = 0;
                // Published last, with release ordering: the slab mover reads a chunk's
                // flags under the slabs lock only, and follows `head` once it sees ITEM_CHUNK.
                std::sync::atomic::AtomicU16::from_ptr(ptr::addr_of_mut!((*ch).it_flags))
                    .store(items::ITEM_CHUNK, std::sync::atomic::Ordering::Release);
                if prev.is_null() {
                    items::set_first_chunk(r.as_ptr(), ch);
                } else {
                    (*prev).next = ch;
                }
            }
            prev = ch;
            remaining -= room.min(remaining);
        }
        true
    }

    /// Whether an item of this size could be stored at all (C's item_size_ok).
    pub fn item_size_ok(&self, nkey: usize, client_flags: u32, nbytes: usize) -> bool {
        if nbytes < 2 {
            return false;
        }
        let ntotal = items::item_make_header_total(nkey, nbytes, self.use_cas, client_flags);
        with_slabs(|s| s.clsid(ntotal)).unwrap_or(0) != 0
    }

    /// Takes a chunk, evicting or reclaiming from the LRU tails when the class is full
    /// (C's do_item_alloc_pull).
    fn alloc_pull(&self, id: usize) -> Option<NonNull<Item>> {
        let segmented = settings::get().lru_segmented.load(Relaxed);
        let mut got = None;
        let mut tries = 0;
        for i in 0..10 {
            tries = i;
            if !segmented {
                self.pull_tail(id as u8, COLD_LRU, 0, false, 0);
            }
            got = with_slabs(|s| s.alloc(id, false)).flatten();
            if got.is_some() {
                break;
            }
            if self.pull_tail(id as u8, COLD_LRU, 0, true, 0) <= 0 {
                if segmented {
                    self.pull_tail(id as u8, HOT_LRU, 0, false, 0);
                } else {
                    break;
                }
            }
        }
        if tries > 0 {
            self.lru(id as u8).stats.direct_reclaims += tries as u64;
        }
        got
    }

    /// Unlinks an item whose own LRU lock (`l`) and item lock are held (C's
    /// do_item_unlink_nolock). Drops the table's reference.
    ///
    /// # Safety
    /// As stated: both locks held, `it` live and on list `l`.
    pub(in crate::items) unsafe fn unlink_locked(&self, l: &mut Lru, it: *mut Item, hv: u32) {
        // SAFETY: per the contract.
        unsafe { self.unlink_locked_flash(l, it, hv, true) }
    }

    /// `unlink_locked`; a header item's object on flash is let go too (C's STORAGE_delete at
    /// each unlink) unless the item only moves (`drop_flash` false: the slab mover).
    ///
    /// # Safety
    /// As `unlink_locked`.
    pub(in crate::items) unsafe fn unlink_locked_flash(
        &self,
        l: &mut Lru,
        it: *mut Item,
        hv: u32,
        drop_flash: bool,
    ) {
        // SAFETY: per the contract.
        unsafe {
            if (*it).it_flags & ITEM_LINKED != 0 {
                if drop_flash && (*it).it_flags & items::ITEM_HDR != 0 {
                    crate::storage::delete_hdr(super::flash::hdr_of(it), ntotal(it));
                }
                (*it).it_flags &= !ITEM_LINKED;
                self.sizes_count(ntotal(it), -1);
                CURR_BYTES.fetch_sub(ntotal(it) as i64, Relaxed);
                CURR_ITEMS.fetch_sub(1, Relaxed);
                self.assoc.delete(items::key(it), hv);
                Self::unlink_q(l, it);
                release(it);
            }
        }
    }

    /// Links a new item into the table and its LRU (C's do_item_link) under CAS `cas`, stored
    /// as given; the table takes a reference.
    ///
    /// # Safety
    /// The item lock for `hv` is held and `it` is an unlinked item from `alloc`.
    pub(in crate::items) unsafe fn link(&self, it: &ItemRef, hv: u32, cas: u64) {
        let p = it.as_ptr();
        // SAFETY: per the contract.
        unsafe {
            (*p).it_flags |= ITEM_LINKED;
            (*p).time = current_time();
            CURR_BYTES.fetch_add(ntotal(p) as i64, Relaxed);
            CURR_ITEMS.fetch_add(1, Relaxed);
            TOTAL_ITEMS.fetch_add(1, Relaxed);
            items::set_cas(p, cas);
            self.assoc.insert(p, hv);
            let mut l = self.lru((*p).slabs_clsid);
            Self::link_q(&mut l, p);
            (*p).refcount.fetch_add(1, Relaxed);
            self.sizes_count(ntotal(p), 1);
        }
    }

    /// Takes linked items of a reused memory file back into the table and their LRUs, where
    /// their own (already rebased) links put them, each with the table's reference only (C's
    /// do_item_link_fixup, a page's worth at a time: start-up has no other thread, so the
    /// item locks are not taken and the counters are added once).
    ///
    /// # Safety
    /// Start-up only, no other thread: every `it` is a linked item of the memory file.
    pub(crate) unsafe fn restart_link(&self, items: &[*mut Item]) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut lru: Option<(u8, LockGuard<'_, Lru>)> = None;
        for &it in items {
            // SAFETY: per the contract; no other thread can reach the table or the item.
            unsafe {
                let hv = self.hash(items::key(it));
                self.assoc.insert(it, hv);
                let id = (*it).slabs_clsid;
                let l = match &mut lru {
                    Some((held, g)) if *held == id => g,
                    _ => &mut lru.insert((id, self.lru(id))).1,
                };
                if (*it).prev.is_null() && l.head.is_null() {
                    l.head = it;
                }
                if (*it).next.is_null() && l.tail.is_null() {
                    l.tail = it;
                }
                let n = ntotal(it);
                l.size += 1;
                l.size_bytes += n as u64;
                // No connection holds it any more.
                (*it).refcount.store(1, Relaxed);
                self.sizes_count(n, 1);
                count += 1;
                bytes += n as i64;
            }
        }
        CURR_BYTES.fetch_add(bytes, Relaxed);
        CURR_ITEMS.fetch_add(count, Relaxed);
        TOTAL_ITEMS.fetch_add(count as u64, Relaxed);
    }

    /// Sets the CAS counter: the next value handed out is `cas + 1` (C's set_cas_id).
    pub fn set_cas_id(&self, cas: u64) {
        self.cas_id.store(cas, Relaxed);
    }

    /// Unlinks an item from the table and its LRU (C's do_item_unlink); drops the table's
    /// reference.
    ///
    /// # Safety
    /// The item lock for `hv` is held and `it` is live.
    pub(crate) unsafe fn unlink(&self, it: *mut Item, hv: u32) {
        // SAFETY: per the contract; the LRU lock is taken after the item lock.
        unsafe {
            if (*it).it_flags & ITEM_LINKED == 0 {
                return;
            }
            let mut l = self.lru((*it).slabs_clsid);
            self.unlink_locked(&mut l, it, hv);
        }
    }

    /// Replaces `old` with `new` under the same key (C's do_item_replace).
    ///
    /// # Safety
    /// The item lock for `hv` is held; `old` is live and `new` unlinked.
    pub(crate) unsafe fn replace(&self, old: *mut Item, new: &ItemRef, hv: u32, cas: u64) {
        // SAFETY: per the contract.
        unsafe {
            self.unlink(old, hv);
            self.link(new, hv, cas);
        }
    }

    /// Looks a key up, dropping it if expired or flushed (C's do_item_get). With `do_update`
    /// the item's activity bits are bumped as a fetch does.
    ///
    /// # Safety
    /// The item lock for `hv` is held.
    pub(in crate::items) unsafe fn get_locked(
        &self,
        key: &[u8],
        hv: u32,
        stats: Option<&ThreadStats>,
        do_update: bool,
    ) -> Option<ItemRef> {
        // SAFETY: under the item lock the chain is stable; the reference taken keeps the
        // item alive after the lock is released.
        unsafe {
            let it = self.assoc.find(key, hv);
            if it.is_null() {
                trace_get(key, "NOT FOUND", "");
                log_get(0, key, None);
                return None;
            }
            prefetch_value(it);
            (*it).refcount.fetch_add(1, Relaxed);
            let r = ItemRef {
                it: NonNull::new_unchecked(it),
            };
            let s = settings::get();
            let now = current_time();
            let oldest_live = s.oldest_live.load(Relaxed);
            if (*it).time <= oldest_live && oldest_live <= now {
                self.unlink(it, hv);
                if let Some(st) = stats {
                    crate::stats::bump(&st.get_flushed, 1);
                }
                trace_get(key, "FOUND KEY", " -removed by flush");
                log_get(2, key, None);
                return None;
            }
            if (*it).exptime != 0 && (*it).exptime <= now {
                self.unlink(it, hv);
                if let Some(st) = stats {
                    crate::stats::bump(&st.get_expired, 1);
                }
                trace_get(key, "FOUND KEY", " -removed by expire");
                log_get(3, key, None);
                return None;
            }
            trace_get(key, "FOUND KEY", "");
            if do_update {
                self.bump(it, hv);
            }
            log_get(1, key, Some(&r));
            Some(r)
        }
    }

    /// Unlinks every item stored at or after `oldest_live` (C's item_flush_expired): those are
    /// the ones `flush_all` must drop that the lazy age check on fetch would miss. Candidates are
    /// collected under each LRU lock, then unlinked under their item locks.
    pub fn flush_expired(&self, oldest_live: u32) {
        if oldest_live == 0 {
            return;
        }
        for id in 0..POWER_LARGEST {
            let mut victims = Vec::new();
            {
                let l = self.lru(id as u8);
                let mut it = l.head;
                // SAFETY: items on the list are live under its lock; the reference taken
                // keeps each one alive after the lock is released.
                unsafe {
                    while !it.is_null() && (*it).time >= oldest_live {
                        (*it).refcount.fetch_add(1, Relaxed);
                        victims.push(ItemRef {
                            it: NonNull::new_unchecked(it),
                        });
                        it = (*it).next;
                    }
                }
            }
            for r in victims {
                let hv = self.hash(r.key());
                let _g = self.item_lock(hv);
                // SAFETY: the item lock is held and our reference keeps the item live.
                unsafe {
                    if (*r.as_ptr()).time >= oldest_live {
                        self.unlink(r.as_ptr(), hv);
                    }
                }
            }
        }
    }

    /// Rewrites a linked item's value in place (C's incr/decr fast path) and gives it a new
    /// CAS. Returns false, changing nothing, if another reference exists or it does not fit.
    ///
    /// # Safety
    /// The item lock for the item's key is held (so no new reference can appear).
    pub(in crate::items) unsafe fn rewrite_in_place(&self, it: &ItemRef, digits: &[u8]) -> bool {
        let p = it.as_ptr();
        // SAFETY: under the item lock, a refcount of 2 (the table's and ours) means no reader
        // holds the item, so its value can change; the bytes stay inside the value area.
        unsafe {
            if (*p).refcount.load(Relaxed) != 2 || digits.len() + 2 > (*p).nbytes.max(0) as usize {
                return false;
            }
            items::set_cas(p, if self.use_cas { self.next_cas() } else { 0 });
            let d = items::data_mut(p);
            let n = d.len();
            d[..digits.len()].copy_from_slice(digits);
            d[digits.len()..n - 2].fill(b' ');
            self.touch_time(p);
        }
        true
    }

    /// Looks a key up under its item lock.
    pub fn get(&self, key: &[u8], stats: Option<&ThreadStats>, do_update: bool) -> Option<ItemRef> {
        let hv = self.hash(key);
        let _g = self.item_lock(hv);
        // SAFETY: the item lock for hv is held.
        unsafe { self.get_locked(key, hv, stats, do_update) }
    }

    /// Removes a key if present (the `delete` command), returning the class it was in (for
    /// per-class stats). Logs the deletion for `watch deletions`.
    pub fn delete_class(&self, key: &[u8], stats: Option<&ThreadStats>) -> Option<u8> {
        let hv = self.hash(key);
        let _g = self.item_lock(hv);
        // SAFETY: the item lock for hv is held; the reference keeps the item alive.
        unsafe {
            let r = self.get_locked(key, hv, stats, false)?;
            if crate::logger::enabled(crate::logger::LOG_DELETIONS) {
                crate::logger::deletion(
                    r.key(),
                    r.value_len() as i32,
                    crate::logger::DELETE_CMD,
                    r.class(),
                );
            }
            self.unlink(r.as_ptr(), hv);
            Some(r.clsid())
        }
    }

    /// Removes a key if present (the storage half of `delete`). Returns whether it existed.
    pub fn delete(&self, key: &[u8], stats: Option<&ThreadStats>) -> bool {
        let hv = self.hash(key);
        let _g = self.item_lock(hv);
        // SAFETY: the item lock for hv is held; the reference keeps the item alive.
        unsafe {
            match self.get_locked(key, hv, stats, false) {
                Some(r) => {
                    self.unlink(r.as_ptr(), hv);
                    true
                }
                None => false,
            }
        }
    }
}

/// Logs a lookup for `watch fetchers` (C's LOGGER_ITEM_GET in do_item_get).
#[inline]
fn log_get(was_found: u8, key: &[u8], it: Option<&ItemRef>) {
    if crate::logger::enabled(crate::logger::LOG_FETCHERS) {
        let (nbytes, clsid) = it.map_or((0, 0), |r| (r.value_len() as i32, r.class()));
        crate::logger::item_get(was_found, key, nbytes, clsid);
    }
}

/// `-vvv` lookup trace (C's do_item_get at verbose > 2): "> FOUND KEY key -removed by ...".
#[inline]
fn trace_get(key: &[u8], what: &str, why: &str) {
    if settings::verbose() > 2 {
        trace_get_write(key, what, why);
    }
}

#[cold]
fn trace_get_write(key: &[u8], what: &str, why: &str) {
    {
        use std::io::Write;
        let mut line = Vec::with_capacity(key.len() + 40);
        line.extend_from_slice(b"> ");
        line.extend_from_slice(what.as_bytes());
        line.push(b' ');
        line.extend_from_slice(key);
        line.extend_from_slice(why.as_bytes());
        line.push(b'\n');
        let _ = std::io::stderr().write_all(&line);
    }
}

/// Locks a mutex, ignoring poisoning (no code panics while holding these).
pub(in crate::items) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the process's store (after `slabs::slabs_init`).
pub fn init(s: &Settings) {
    let _ = STORE.set(Store::new(s));
}

/// Creates the process's store with 2^hashpower buckets (a restart brings back the size the
/// table had grown to).
pub fn init_with_hashpower(s: &Settings, hashpower: u32) {
    let _ = STORE.set(Store::with_hashpower(s, hashpower));
}

/// The process's store, if initialised.
pub fn store() -> Option<&'static Store> {
    STORE.get()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Process-wide settings and slabs for unit tests (the first caller's arguments win).
    pub(crate) fn test_settings(args: &[&str]) -> &'static Settings {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let mut argv = vec!["memcached".to_string()];
            argv.extend(args.iter().map(|s| s.to_string()));
            let s = settings::parse_args(&argv).expect("settings");
            settings::init_global(s);
            crate::slabs::slabs_init(settings::get(), None);
            // The server clock never reads 0 once running (it starts 62 seconds in).
            crate::stats::CURRENT_TIME.store(100, Relaxed);
        });
        settings::get()
    }

    #[test]
    fn store_get_delete_and_evict() {
        let s = test_settings(&["-m", "2"]);
        let st = Store::new(s);
        // Fill far more than 2 MB of 1000-byte values in one class: the oldest get evicted.
        let value = vec![b'x'; 998];
        let mut kept = 0;
        for i in 0..5000 {
            let key = format!("key{}", i);
            let mut r = st
                .alloc(key.as_bytes(), 5, 0, 1000)
                .expect("allocation evicts when full");
            r.data_mut()[..998].copy_from_slice(&value);
            r.data_mut()[998..].copy_from_slice(b"\r\n");
            let hv = st.hash(key.as_bytes());
            let _g = st.item_lock(hv);
            // SAFETY: item lock held; `r` is a fresh unlinked item.
            unsafe { st.link(&r, hv, 0) };
        }
        for i in 0..5000 {
            let key = format!("key{}", i);
            if let Some(r) = st.get(key.as_bytes(), None, true) {
                assert_eq!(r.key(), key.as_bytes());
                // Linking kept the key's hash in the header, where the LRU walks read it.
                // SAFETY: the reference keeps the item live.
                assert_eq!(unsafe { (*r.as_ptr()).hv }, st.hash(key.as_bytes()));
                assert_eq!(r.client_flags(), 5);
                assert_eq!(&r.contiguous().expect("plain item")[998..], b"\r\n");
                kept += 1;
            }
        }
        assert!(kept > 500 && kept < 5000, "kept {}", kept);
        assert!(st.get(b"key4999", None, false).is_some(), "newest survives");
        assert!(st.get(b"key0", None, false).is_none(), "oldest evicted");
        assert!(st.delete(b"key4999", None));
        assert!(!st.delete(b"key4999", None));
        assert!(st.get(b"key4999", None, false).is_none());
        let evicted: u64 = (0..POWER_LARGEST as u16)
            .map(|id| st.lru_stats(id as u8).2.evicted)
            .sum();
        assert!(evicted > 0);
    }

    #[test]
    fn chunked_items_hold_large_values_and_free_their_chunks() {
        let s = test_settings(&["-m", "2"]);
        let st = Store::new(s);
        let max = s.slab_chunk_size_max as usize;
        for len in [max - 10, max, max + 1, 3 * max / 2, 900_000] {
            let value: Vec<u8> = (0..len - 2)
                .map(|i| b'a' + (i % 23) as u8)
                .chain(*b"\r\n")
                .collect();
            let key = format!("big{}", len);
            let mut r = st.alloc(key.as_bytes(), 1, 0, len as i32).expect("alloc");
            // Fill in odd-sized steps, as reads from a socket would.
            let mut off = 0;
            while off < len {
                let w = r.window_mut(off);
                assert!(!w.is_empty());
                let n = w.len().min(7777).min(len - off);
                w[..n].copy_from_slice(&value[off..off + n]);
                off += n;
            }
            assert!(r.window_mut(len).is_empty());
            assert!(r.ends_with_crlf());
            let hv = st.hash(key.as_bytes());
            {
                let _g = st.item_lock(hv);
                // SAFETY: item lock held; `r` is fresh and unlinked.
                unsafe { st.link(&r, hv, 0) };
            }
            drop(r);
            let got = st.get(key.as_bytes(), None, false).expect("stored");
            assert_eq!(got.is_chunked(), len + 60 > max);
            assert_eq!(got.value_len(), len);
            let joined: Vec<u8> = got.segments().flatten().copied().collect();
            assert_eq!(joined, value);
            drop(got);
            assert!(st.delete(key.as_bytes(), None));
        }
        // Everything went back to the free lists: a 2 MB cache can still take 900 KB values
        // again and again.
        for i in 0..20 {
            let key = format!("again{}", i);
            let r = st
                .alloc(key.as_bytes(), 0, 0, 900_000)
                .expect("memory came back");
            drop(r);
        }
    }

    #[test]
    fn table_grows_while_clients_write_and_read() {
        let s = test_settings(&["-m", "2"]);
        let st: &'static Store = Box::leak(Box::new(Store::with_hashpower(s, 10)));
        std::thread::spawn(move || st.run_assoc_maintenance(1));
        let per_thread = 3000u32;
        let writers: Vec<_> = (0..3u32)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let key = format!("grow:{}:{}", t, i);
                        let mut r = st.alloc(key.as_bytes(), i, 0, 10).expect("alloc");
                        r.data_mut()
                            .copy_from_slice(format!("{:08}\r\n", i).as_bytes());
                        let hv = st.hash(key.as_bytes());
                        {
                            let _g = st.item_lock(hv);
                            // SAFETY: item lock held; `r` is fresh and the key is new.
                            unsafe { st.link(&r, hv, 0) };
                        }
                        st.start_expand_if_needed_for(u64::from(t * per_thread + i) * 3);
                        // A key written a moment ago is readable mid-expansion.
                        let back = st.get(key.as_bytes(), None, false);
                        if let Some(b) = back {
                            assert_eq!(b.client_flags(), i);
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        // Wait for the expansion thread to have grown the table and finished.
        for _ in 0..500 {
            if st.assoc().power() > 10 && !st.assoc().is_expanding() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(st.assoc().power() > 10, "the table grew");
        let (mut found, mut evicted) = (0u64, 0u64);
        for t in 0..3u32 {
            for i in 0..per_thread {
                let key = format!("grow:{}:{}", t, i);
                if let Some(r) = st.get(key.as_bytes(), None, false) {
                    assert_eq!(
                        r.contiguous().expect("plain item"),
                        format!("{:08}\r\n", i).as_bytes()
                    );
                    found += 1;
                }
            }
        }
        for id in 0..POWER_LARGEST {
            evicted += st.lru_stats(id as u8).2.evicted;
        }
        assert_eq!(found + evicted, 3 * per_thread as u64, "no item lost");
    }

    #[test]
    fn concurrent_set_get_delete_under_eviction() {
        let s = test_settings(&["-m", "2"]);
        let st = std::sync::Arc::new(Store::new(s));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let st = std::sync::Arc::clone(&st);
                std::thread::spawn(move || {
                    for i in 0..4000u32 {
                        let key = format!("k{}", (i * 7 + t * 13) % 900);
                        match i % 3 {
                            0 | 1 => {
                                let n = 100 + (i % 7) as i32 * 300;
                                if let Some(mut r) = st.alloc(key.as_bytes(), t, 0, n) {
                                    let d = r.data_mut();
                                    let len = d.len();
                                    d[..len - 2].fill(b'a' + t as u8);
                                    d[len - 2..].copy_from_slice(b"\r\n");
                                    let hv = st.hash(key.as_bytes());
                                    let _g = st.item_lock(hv);
                                    // SAFETY: item lock held; `r` is unlinked.
                                    unsafe {
                                        match st.get_locked(key.as_bytes(), hv, None, false) {
                                            Some(old) => st.replace(old.as_ptr(), &r, hv, 0),
                                            None => st.link(&r, hv, 0),
                                        }
                                    }
                                }
                            }
                            _ => {
                                if let Some(r) = st.get(key.as_bytes(), None, true) {
                                    let d = r.contiguous().expect("plain item");
                                    assert_eq!(r.key(), key.as_bytes());
                                    assert_eq!(&d[d.len() - 2..], b"\r\n");
                                    let c = d[0];
                                    assert!(d[..d.len() - 2].iter().all(|&b| b == c), "torn value");
                                }
                                if i % 9 == 2 {
                                    st.delete(key.as_bytes(), None);
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("worker thread");
        }
        assert!(CURR_ITEMS.load(Relaxed) >= 0);
    }
}
