//! The item store (the rest of C's items.c, and the item-lock half of thread.c): item locks striped by hash,
//! per-class LRU lists, allocation with eviction from the LRU tail, link/unlink/get/replace, and
//! `ItemRef`, the reference-counted handle the protocol code holds.
//!
//! Lock order, as in C: item lock, then LRU lock, then slabs lock. Code walking an LRU tail
//! (holding the LRU lock) only *tries* item locks.

use crate::assoc::HashTable;
use crate::items::{
    self, Item, ITEM_ACTIVE, ITEM_CHUNKED, ITEM_FETCHED, ITEM_LINKED, ITEM_SLABBED,
};
use crate::settings::{self, Settings};
use crate::slabs::with_slabs;
use crate::stats::{current_time, ThreadStats};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

/// LRU ids live in the top two bits of `slabs_clsid`.
pub const HOT_LRU: u8 = 0;
pub const WARM_LRU: u8 = 64;
pub const COLD_LRU: u8 = 128;
pub const TEMP_LRU: u8 = 192;
/// Number of (class, LRU) list ids.
pub const POWER_LARGEST: usize = 256;

/// Per-(class, LRU) counters (C's itemstats_t).
#[derive(Default, Clone, Copy, Debug)]
pub struct ItemStatsCounters {
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub reclaimed: u64,
    pub outofmemory: u64,
    pub tailrepairs: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub lrutail_reflocked: u64,
    pub moves_to_cold: u64,
    pub moves_to_warm: u64,
    pub moves_within_lru: u64,
    pub direct_reclaims: u64,
    pub evicted_time: u32,
}

impl ItemStatsCounters {
    /// Adds another list's counters (all but `evicted_time`, which is a last value).
    fn add(&mut self, c: &ItemStatsCounters) {
        self.evicted += c.evicted;
        self.evicted_nonzero += c.evicted_nonzero;
        self.reclaimed += c.reclaimed;
        self.outofmemory += c.outofmemory;
        self.tailrepairs += c.tailrepairs;
        self.expired_unfetched += c.expired_unfetched;
        self.evicted_unfetched += c.evicted_unfetched;
        self.evicted_active += c.evicted_active;
        self.crawler_reclaimed += c.crawler_reclaimed;
        self.crawler_items_checked += c.crawler_items_checked;
        self.lrutail_reflocked += c.lrutail_reflocked;
        self.moves_to_cold += c.moves_to_cold;
        self.moves_to_warm += c.moves_to_warm;
        self.moves_within_lru += c.moves_within_lru;
        self.direct_reclaims += c.direct_reclaims;
    }
}

/// One LRU list and its counters, guarded by its LRU lock.
struct Lru {
    head: *mut Item,
    tail: *mut Item,
    size: u64,
    size_bytes: u64,
    stats: ItemStatsCounters,
}

// SAFETY: the list pointers are only followed with the list's mutex held.
unsafe impl Send for Lru {}

/// Items and bytes currently linked (C's stats_state.curr_items / curr_bytes) and items ever
/// linked (stats.total_items).
pub static CURR_ITEMS: AtomicI64 = AtomicI64::new(0);
pub static CURR_BYTES: AtomicI64 = AtomicI64::new(0);
pub static TOTAL_ITEMS: AtomicU64 = AtomicU64::new(0);

/// A crawler's place in an LRU list: an item header with no key or value (C marks these
/// with it_flags == 1, nkey == 0, nbytes == 0), plus the crawl's counters.
struct CrawlerMarker {
    it: std::cell::UnsafeCell<Item>,
    /// Items left to look at (0: no limit), reclaimed, reclaimed unfetched, checked.
    counts: std::cell::UnsafeCell<[u64; 4]>,
}

// SAFETY: a marker and its counts are only touched with the lock of the LRU it serves held.
unsafe impl Sync for CrawlerMarker {}
// SAFETY: as above; the raw pointers inside point at list members guarded the same way.
unsafe impl Send for CrawlerMarker {}

impl CrawlerMarker {
    fn new() -> CrawlerMarker {
        CrawlerMarker {
            it: std::cell::UnsafeCell::new(Item {
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
                h_next: ptr::null_mut(),
                time: 0,
                exptime: 0,
                nbytes: 0,
                refcount: std::sync::atomic::AtomicU16::new(0),
                it_flags: 0,
                slabs_clsid: 0,
                nkey: 0,
            }),
            counts: std::cell::UnsafeCell::new([0; 4]),
        }
    }
}

/// Whether a list entry is a crawler marker.
///
/// # Safety
/// `it` is on a list whose lock is held.
#[inline]
unsafe fn is_crawler(it: *const Item) -> bool {
    // SAFETY: per the contract.
    unsafe { (*it).nbytes == 0 && (*it).nkey == 0 && (*it).it_flags == 1 }
}

/// One class's item figures as the automover reads them (C's item_stats_automove).
#[derive(Clone, Copy, Default)]
pub struct ItemAutomoveStats {
    pub evicted: u64,
    pub outofmemory: u64,
    /// Seconds since COLD's tail item was last used.
    pub age: u64,
}

/// What one crawler step did.
pub enum CrawlStep {
    /// The list is done (or its limit reached); the marker was taken off.
    Done,
    /// An item was skipped (locked or in use).
    Went,
    /// An expired or flushed item was reclaimed.
    Reclaimed,
    /// A live item was looked at; its expiry time (0: never) feeds the crawl schedule.
    Seen(u32),
}

/// Entries one thread's bump queue holds before dropping bumps (C's LRU_BUMP_BUF_SIZE).
const BUMP_BUF_SIZE: usize = 8192;

/// One thread's queue of COLD hits waiting for the LRU maintainer to move them to WARM (C's
/// lru_bump_buf): a fetch never takes a second LRU lock. Each entry holds a reference.
struct BumpBuf {
    queue: Mutex<VecDeque<(ItemRef, u32)>>,
    dropped: AtomicU64,
}

thread_local! {
    /// This thread's bump queue, per store (tests build several stores in one process).
    static BUMP_BUF: RefCell<Option<(usize, Arc<BumpBuf>)>> = const { RefCell::new(None) };
}

/// The store's shared state.
pub struct Store {
    assoc: HashTable,
    item_locks: Box<[Mutex<()>]>,
    item_lock_mask: u32,
    lrus: Box<[Mutex<Lru>]>,
    cas_id: AtomicU64,
    hash: fn(&[u8]) -> u32,
    use_cas: bool,
    slab_chunk_size_max: usize,
    /// Every thread's bump queue (C's bump_buf_head list).
    bump_bufs: Mutex<Vec<Arc<BumpBuf>>>,
    /// One crawler marker per LRU id (C's crawlers[]): a pseudo item that walks up the list.
    crawlers: Box<[CrawlerMarker]>,
    /// `stats sizes`: linked items per 32-byte size bucket, with `-o track_sizes`.
    sizes_hist: Option<Box<[AtomicI32]>>,
    /// Set (and `expand_cond` signalled) to ask the expansion thread to grow the table.
    expand_request: Mutex<bool>,
    expand_cond: Condvar,
    /// Held by the expansion thread while it expands and by a hash-table dump while it walks
    /// (C's maintenance_lock): a walk sees one stable array.
    maintenance: Mutex<()>,
}

/// What a crawler dump shows of one live item, read under its item lock.
pub struct DumpItem<'a> {
    pub key: &'a [u8],
    pub exptime: u32,
    pub time: u32,
    pub cas: u64,
    pub it_flags: u16,
    /// Slab class without the LRU bits.
    pub clsid: u8,
    /// C's ITEM_ntotal.
    pub ntotal: usize,
    pub client_flags: u32,
}

impl DumpItem<'_> {
    /// # Safety
    /// `it` is live and its item lock is held for as long as the result is used.
    unsafe fn of<'a>(it: *const Item) -> DumpItem<'a> {
        // SAFETY: per the contract.
        unsafe {
            DumpItem {
                key: items::key(it),
                exptime: (*it).exptime,
                time: (*it).time,
                cas: items::get_cas(it),
                it_flags: (*it).it_flags,
                clsid: items::clsid_of((*it).slabs_clsid),
                ntotal: ntotal(it),
                client_flags: items::client_flags(it),
            }
        }
    }
}

/// Outcome of one dump step on an LRU (see `Store::crawler_step_visit`).
pub enum VisitStep {
    /// The list is done; the marker is off it.
    Done,
    /// An item was shown to the visitor.
    Visited,
    /// The marker moved past an item that was busy (or another marker).
    Went,
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
        let locks = (0..1u32 << lock_power).map(|_| Mutex::new(())).collect();
        let lrus = (0..POWER_LARGEST)
            .map(|_| {
                Mutex::new(Lru {
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
    pub fn item_lock(&self, hv: u32) -> MutexGuard<'_, ()> {
        let m = &self.item_locks[(hv & self.item_lock_mask) as usize];
        m.lock().unwrap_or_else(|e| e.into_inner())
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
    pub(crate) fn item_trylock(&self, hv: u32) -> Option<MutexGuard<'_, ()>> {
        self.item_locks[(hv & self.item_lock_mask) as usize]
            .try_lock()
            .ok()
    }

    fn lru(&self, id: u8) -> MutexGuard<'_, Lru> {
        self.lrus[id as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The hash table (for stats).
    pub fn assoc(&self) -> &HashTable {
        &self.assoc
    }

    /// Next CAS value (C's get_cas_id).
    pub fn next_cas(&self) -> u64 {
        self.cas_id.fetch_add(1, Relaxed) + 1
    }

    /// Counters of one LRU id.
    pub fn lru_stats(&self, id: u8) -> (u64, u64, ItemStatsCounters) {
        let l = self.lru(id);
        (l.size, l.size_bytes, l.stats)
    }

    /// Per class: allocation failures (recorded in HOT), COLD evictions and the age of
    /// COLD's tail, for the automover (C's fill_item_stats_automove).
    pub fn automove_item_stats(&self, out: &mut [ItemAutomoveStats]) {
        let now = current_time();
        for (n, cur) in out.iter_mut().enumerate().take(crate::stats::MAX_CLASSES) {
            cur.outofmemory = self.lru(n as u8 | HOT_LRU).stats.outofmemory;
            let l = self.lru(n as u8 | COLD_LRU);
            cur.evicted = l.stats.evicted;
            let mut tail = l.tail;
            // SAFETY: list entries are live while the list's lock is held; a crawler marker
            // at the tail is looked past, as C does.
            unsafe {
                if !tail.is_null() && is_crawler(tail) {
                    tail = (*tail).prev;
                }
                cur.age = if tail.is_null() {
                    0
                } else {
                    now.wrapping_sub((*tail).time) as u64
                };
            }
        }
    }

    /// Puts the crawler marker at the tail of LRU `id` (C's do_lru_crawler_start). False
    /// if a crawl of that list is already under way. `remaining` 0 means the whole list.
    pub fn crawler_start(&self, id: u8, remaining: u64) -> bool {
        let mut l = self.lru(id);
        let m = &self.crawlers[id as usize];
        // SAFETY: the marker is only touched under this list's lock, which is held.
        unsafe {
            let it = m.it.get();
            if (*it).it_flags != 0 {
                return false;
            }
            (*it).nbytes = 0;
            (*it).nkey = 0;
            (*it).it_flags = 1;
            (*it).time = 0;
            (*it).slabs_clsid = id;
            (*it).next = ptr::null_mut();
            (*it).prev = l.tail;
            if !l.tail.is_null() {
                (*l.tail).next = it;
            }
            l.tail = it;
            if l.head.is_null() {
                l.head = it;
            }
            // C counts one more than asked and stops when the count reaches 1.
            *m.counts.get() = [if remaining > 0 { remaining + 1 } else { 0 }, 0, 0, 0];
        }
        true
    }

    /// Whether LRU `id` has a crawl under way.
    pub fn crawler_active(&self, id: u8) -> bool {
        let _l = self.lru(id);
        // SAFETY: the marker is only touched under this list's lock, which is held.
        unsafe { (*self.crawlers[id as usize].it.get()).it_flags == 1 }
    }

    /// Moves LRU `id`'s crawler one item up and reclaims that item if it expired or was
    /// flushed (C's crawler thread loop with the expired-item module).
    pub fn crawler_step(&self, id: u8) -> CrawlStep {
        let s = settings::get();
        let mut l = self.lru(id);
        let m = &self.crawlers[id as usize];
        // SAFETY: the marker, its counts and the list are touched under the list's lock.
        unsafe {
            let marker = m.it.get();
            let counts = &mut *m.counts.get();
            let search = Self::crawl_q(&mut l, marker);
            let limit_hit = counts[0] != 0 && {
                counts[0] -= 1;
                counts[0] < 1
            };
            if search.is_null() || limit_hit {
                if settings::verbose() > 2 {
                    eprintln!("Nothing left to crawl for {}", id);
                }
                self.crawler_done(&mut l, marker, counts);
                return CrawlStep::Done;
            }
            if is_crawler(search) {
                return CrawlStep::Went;
            }
            let hv = self.hash(items::key(search));
            let Some(_ilock) = self.item_trylock(hv) else {
                return CrawlStep::Went;
            };
            if (*search).refcount.fetch_add(1, Relaxed) + 1 != 2 {
                (*search).refcount.fetch_sub(1, Relaxed);
                return CrawlStep::Went;
            }
            counts[3] += 1;
            let now = current_time();
            let oldest_live = s.oldest_live.load(Relaxed);
            let flushed = (*search).time <= oldest_live && oldest_live <= now;
            if ((*search).exptime != 0 && (*search).exptime < now) || flushed {
                counts[1] += 1;
                if settings::verbose() > 1 {
                    eprintln!(
                        "LRU crawler found an expired item (flags: {}, slab: {}): {}",
                        (*search).it_flags,
                        (*search).slabs_clsid,
                        String::from_utf8_lossy(items::key(search))
                    );
                }
                if (*search).it_flags & ITEM_FETCHED == 0 && !flushed {
                    counts[2] += 1;
                }
                self.unlink_locked(&mut l, search, hv);
                release(search);
                CrawlStep::Reclaimed
            } else {
                (*search).refcount.fetch_sub(1, Relaxed);
                CrawlStep::Seen((*search).exptime)
            }
        }
    }

    /// Moves LRU `id`'s crawler one item up and shows that item to `visit` under its item
    /// lock, with the LRU lock released (the dump modules of C's crawler thread). Items
    /// another thread holds are passed over, as C does.
    pub fn crawler_step_visit(&self, id: u8, visit: &mut dyn FnMut(&DumpItem<'_>)) -> VisitStep {
        let mut l = self.lru(id);
        let m = &self.crawlers[id as usize];
        // SAFETY: the marker, its counts and the list are touched under the list's lock; the
        // item shown is live under its item lock and our reference.
        unsafe {
            let marker = m.it.get();
            let counts = &mut *m.counts.get();
            let search = Self::crawl_q(&mut l, marker);
            let limit_hit = counts[0] != 0 && {
                counts[0] -= 1;
                counts[0] < 1
            };
            if search.is_null() || limit_hit {
                if settings::verbose() > 2 {
                    eprintln!("Nothing left to crawl for {}", id);
                }
                self.crawler_done(&mut l, marker, counts);
                return VisitStep::Done;
            }
            if is_crawler(search) {
                return VisitStep::Went;
            }
            let hv = self.hash(items::key(search));
            let Some(_ilock) = self.item_trylock(hv) else {
                return VisitStep::Went;
            };
            if (*search).refcount.fetch_add(1, Relaxed) + 1 != 2 {
                (*search).refcount.fetch_sub(1, Relaxed);
                return VisitStep::Went;
            }
            counts[3] += 1;
            drop(l);
            visit(&DumpItem::of(search));
            (*search).refcount.fetch_sub(1, Relaxed);
            VisitStep::Visited
        }
    }

    /// Ends a crawl of LRU `id` early (its dump client went away).
    pub fn crawler_stop(&self, id: u8) {
        let mut l = self.lru(id);
        let m = &self.crawlers[id as usize];
        // SAFETY: the marker and its counts are touched under the list's lock, which is held.
        unsafe {
            let marker = m.it.get();
            if (*marker).it_flags != 0 {
                self.crawler_done(&mut l, marker, &mut *m.counts.get());
            }
        }
    }

    /// Walks every bucket of the hash table (C's item_crawl_hash with assoc_iterate): each
    /// chain is shown item by item to `visit` under its bucket's item lock, then `between`
    /// runs with no lock held and may stop the walk by returning false. Returns false without
    /// walking while the table is being expanded.
    pub fn walk_hash(
        &self,
        visit: &mut dyn FnMut(&DumpItem<'_>),
        between: &mut dyn FnMut() -> bool,
    ) -> bool {
        let Ok(_m) = self.maintenance.try_lock() else {
            return false;
        };
        let n = 1u64 << self.assoc.power();
        for b in 0..n {
            {
                let _g = self.item_lock(b as u32);
                // SAFETY: with the maintenance lock no expansion runs, so the primary array is
                // the only one; bucket `b`'s lock is held, so its chain is stable and live.
                unsafe {
                    let mut it = self.assoc.primary_head(b);
                    while !it.is_null() {
                        let next = (*it).h_next;
                        // A linked item holds the table's reference; skip one being freed.
                        if (*it).refcount.fetch_add(1, Relaxed) + 1 >= 2 {
                            visit(&DumpItem::of(it));
                        }
                        (*it).refcount.fetch_sub(1, Relaxed);
                        it = next;
                    }
                }
            }
            if !between() {
                break;
            }
        }
        true
    }

    /// Takes a finished crawler off its list and adds its counts to the list's stats (C's
    /// lru_crawler_class_done and do_item_stats_add_crawl).
    ///
    /// # Safety
    /// `l` is the locked list `marker` is on.
    unsafe fn crawler_done(&self, l: &mut Lru, marker: *mut Item, counts: &mut [u64; 4]) {
        // SAFETY: per the contract.
        unsafe {
            (*marker).it_flags = 0;
            if l.head == marker {
                l.head = (*marker).next;
            }
            if l.tail == marker {
                l.tail = (*marker).prev;
            }
            if !(*marker).next.is_null() {
                (*(*marker).next).prev = (*marker).prev;
            }
            if !(*marker).prev.is_null() {
                (*(*marker).prev).next = (*marker).next;
            }
            (*marker).next = ptr::null_mut();
            (*marker).prev = ptr::null_mut();
        }
        l.stats.crawler_reclaimed += counts[1];
        l.stats.expired_unfetched += counts[2];
        l.stats.crawler_items_checked += counts[3];
    }

    /// Swaps the marker with the item above it and returns that item, or null at the head
    /// (C's do_item_crawl_q).
    ///
    /// # Safety
    /// `l` is the locked list `it` (a marker) is on.
    unsafe fn crawl_q(l: &mut Lru, it: *mut Item) -> *mut Item {
        // SAFETY: per the contract every pointer followed is on the locked list.
        unsafe {
            let prev = (*it).prev;
            if prev.is_null() {
                // At the head: the walk is over.
                return ptr::null_mut();
            }
            if l.head == prev {
                l.head = it;
            }
            if l.tail == it {
                l.tail = prev;
            }
            let next = (*it).next;
            (*prev).next = next;
            if !next.is_null() {
                (*next).prev = prev;
            }
            // Now: prevprev <-> it <-> prev <-> next.
            (*it).next = prev;
            (*it).prev = (*prev).prev;
            (*prev).prev = it;
            if !(*it).prev.is_null() {
                (*(*it).prev).next = it;
            }
            prev
        }
    }

    /// Counts a linked item in (+1) or out (-1) of its `stats sizes` bucket (C's
    /// item_stats_sizes_add/remove).
    fn sizes_count(&self, ntotal: usize, delta: i32) {
        if let Some(h) = &self.sizes_hist {
            if let Some(b) = h.get(ntotal.div_ceil(32)) {
                b.fetch_add(delta, Relaxed);
            }
        }
    }

    /// `stats sizes` (C's item_stats_sizes).
    pub fn write_sizes_stats(&self, out: &mut dyn crate::stats::StatSink) {
        match &self.sizes_hist {
            Some(h) => {
                for (i, b) in h.iter().enumerate() {
                    let n = b.load(Relaxed);
                    if n != 0 {
                        crate::stats::append_stat(out, &(i * 32).to_string(), n as u32);
                    }
                }
            }
            None => crate::stats::append_stat(out, "sizes_status", "disabled"),
        }
    }

    /// `stats cachedump <class> <limit>`: keys of the class's COLD list from its head, at most
    /// `limit` (0: all) and at most 2 MB of reply (C's item_cachedump).
    pub fn cachedump(&self, cls: u8, limit: u32, out: &mut Vec<u8>) {
        use std::io::Write;
        const MEMLIMIT: usize = 2 * 1024 * 1024;
        let started = crate::stats::PROCESS_STARTED.load(Relaxed).max(0) as u64;
        let start = out.len();
        let l = self.lru(cls | COLD_LRU);
        let mut it = l.head;
        let mut shown = 0u32;
        let mut line = Vec::with_capacity(300);
        // SAFETY: items on the list are live while its lock is held.
        unsafe {
            while !it.is_null() && (limit == 0 || shown < limit) {
                if ((*it).nbytes == 0 && (*it).nkey == 0)
                    || (*it).it_flags & items::ITEM_KEY_BINARY != 0
                {
                    it = (*it).next;
                    continue;
                }
                let key = items::key(it);
                // C prints the key as a C string: it ends at a NUL.
                let key = &key[..key.iter().position(|&b| b == 0).unwrap_or(key.len())];
                let exp = (*it).exptime;
                line.clear();
                line.extend_from_slice(b"ITEM ");
                line.extend_from_slice(key);
                let _ = write!(
                    line,
                    " [{} b; {} s]\r\n",
                    (*it).nbytes - 2,
                    if exp == 0 { 0 } else { exp as u64 + started }
                );
                if out.len() - start + line.len() + 6 > MEMLIMIT {
                    break;
                }
                out.extend_from_slice(&line);
                shown += 1;
                it = (*it).next;
            }
        }
        out.extend_from_slice(b"END\r\n");
    }

    /// `stats reset` of the per-LRU counters (C's item_stats_reset).
    pub fn reset_item_stats(&self) {
        for id in 0..POWER_LARGEST {
            self.lru(id as u8).stats = ItemStatsCounters::default();
        }
    }

    /// The item part of `stats` (C's get_stats(NULL) and item_stats_totals).
    pub fn write_stats_totals(&self, out: &mut dyn crate::stats::StatSink) {
        use crate::stats::append_stat;
        let mut t = ItemStatsCounters::default();
        for id in 0..POWER_LARGEST {
            t.add(&self.lru(id as u8).stats);
        }
        let maintainer = settings::get().lru_maintainer_thread.load(Relaxed);
        append_stat(out, "bytes", CURR_BYTES.load(Relaxed).max(0));
        append_stat(out, "curr_items", CURR_ITEMS.load(Relaxed).max(0));
        append_stat(out, "total_items", TOTAL_ITEMS.load(Relaxed));
        append_stat(
            out,
            "slab_global_page_pool",
            with_slabs(|s| s.global_page_pool_size()).unwrap_or(0),
        );
        append_stat(out, "expired_unfetched", t.expired_unfetched);
        append_stat(out, "evicted_unfetched", t.evicted_unfetched);
        if maintainer {
            append_stat(out, "evicted_active", t.evicted_active);
        }
        append_stat(out, "evictions", t.evicted);
        append_stat(out, "reclaimed", t.reclaimed);
        append_stat(out, "crawler_reclaimed", t.crawler_reclaimed);
        append_stat(out, "crawler_items_checked", t.crawler_items_checked);
        append_stat(out, "lrutail_reflocked", t.lrutail_reflocked);
        if maintainer {
            append_stat(out, "moves_to_cold", t.moves_to_cold);
            append_stat(out, "moves_to_warm", t.moves_to_warm);
            append_stat(out, "moves_within_lru", t.moves_within_lru);
            append_stat(out, "direct_reclaims", t.direct_reclaims);
            append_stat(out, "lru_bumps_dropped", self.bumps_dropped());
        }
    }

    /// `stats items`: per-class LRU sizes, ages and counters (C's item_stats).
    pub fn write_item_stats(
        &self,
        out: &mut dyn crate::stats::StatSink,
        ct: &crate::stats::ClassTotals,
    ) {
        use crate::stats::append_stat;
        let s = settings::get();
        let maintainer = s.lru_maintainer_thread.load(Relaxed);
        let now = current_time();
        for n in 0..crate::stats::MAX_CLASSES {
            let mut t = ItemStatsCounters::default();
            let (mut size, mut mem_requested) = (0u64, 0u64);
            let (mut age, mut age_hot, mut age_warm) = (0u32, 0u32, 0u32);
            let mut sizes = [0u64; 4];
            let mut hits = [0u64; 4];
            for (x, lru) in [HOT_LRU, WARM_LRU, COLD_LRU, TEMP_LRU]
                .into_iter()
                .enumerate()
            {
                let id = n as u8 | lru;
                let l = self.lru(id);
                let c = &l.stats;
                t.add(c);
                mem_requested += l.size_bytes;
                size += l.size;
                sizes[x] = l.size;
                // SAFETY: the tail is live while the list's lock is held.
                let tail_age = if l.tail.is_null() {
                    None
                } else {
                    Some(now.wrapping_sub(unsafe { (*l.tail).time }))
                };
                match lru {
                    COLD_LRU => {
                        if let Some(a) = tail_age {
                            age = a;
                        }
                        t.evicted_time = c.evicted_time;
                    }
                    HOT_LRU => age_hot = tail_age.unwrap_or(age_hot),
                    WARM_LRU => age_warm = tail_age.unwrap_or(age_warm),
                    _ => {}
                }
                hits[x] = ct.lru_hits[id as usize];
            }
            if size == 0 {
                continue;
            }
            let mut st = |name: &str, v: &dyn std::fmt::Display| {
                append_stat(out, &format!("items:{}:{}", n, name), v)
            };
            st("number", &size);
            if maintainer {
                st("number_hot", &sizes[0]);
                st("number_warm", &sizes[1]);
                st("number_cold", &sizes[2]);
                if s.temp_lru.load(Relaxed) {
                    st("number_temp", &sizes[3]);
                }
                st("age_hot", &age_hot);
                st("age_warm", &age_warm);
            }
            st("age", &age);
            st("mem_requested", &mem_requested);
            st("evicted", &t.evicted);
            st("evicted_nonzero", &t.evicted_nonzero);
            st("evicted_time", &t.evicted_time);
            st("outofmemory", &t.outofmemory);
            st("tailrepairs", &t.tailrepairs);
            st("reclaimed", &t.reclaimed);
            st("expired_unfetched", &t.expired_unfetched);
            st("evicted_unfetched", &t.evicted_unfetched);
            if maintainer {
                st("evicted_active", &t.evicted_active);
            }
            st("crawler_reclaimed", &t.crawler_reclaimed);
            st("crawler_items_checked", &t.crawler_items_checked);
            st("lrutail_reflocked", &t.lrutail_reflocked);
            if maintainer {
                st("moves_to_cold", &t.moves_to_cold);
                st("moves_to_warm", &t.moves_to_warm);
                st("moves_within_lru", &t.moves_within_lru);
                st("direct_reclaims", &t.direct_reclaims);
                st("hits_to_hot", &hits[0]);
                st("hits_to_warm", &hits[1]);
                st("hits_to_cold", &hits[2]);
                st("hits_to_temp", &hits[3]);
            }
        }
    }

    // ---- LRU lists (caller holds the list's lock) ----

    /// # Safety
    /// `it` is live, not on a list; `l` is the list of `it.slabs_clsid`.
    unsafe fn link_q(l: &mut Lru, it: *mut Item) {
        // SAFETY: per the contract.
        unsafe {
            (*it).prev = ptr::null_mut();
            (*it).next = l.head;
            if !l.head.is_null() {
                (*l.head).prev = it;
            }
            l.head = it;
            if l.tail.is_null() {
                l.tail = it;
            }
            l.size += 1;
            l.size_bytes += ntotal(it) as u64;
        }
    }

    /// # Safety
    /// `it` is live and on list `l`.
    unsafe fn unlink_q(l: &mut Lru, it: *mut Item) {
        // SAFETY: per the contract.
        unsafe {
            if l.head == it {
                l.head = (*it).next;
            }
            if l.tail == it {
                l.tail = (*it).prev;
            }
            if !(*it).next.is_null() {
                (*(*it).next).prev = (*it).prev;
            }
            if !(*it).prev.is_null() {
                (*(*it).prev).next = (*it).next;
            }
            (*it).next = ptr::null_mut();
            (*it).prev = ptr::null_mut();
            l.size -= 1;
            l.size_bytes -= ntotal(it) as u64;
        }
    }

    // ---- allocation ----

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

    /// Walks up to five items from the tail of (class `cls`, `lru`): reclaims expired ones,
    /// moves HOT/WARM items to COLD when the list is over its share of `total_bytes` or its
    /// tail is older than `max_age` (active ones go to WARM), and with `evict` evicts from
    /// COLD (C's lru_pull_tail). Returns items removed or moved.
    pub fn pull_tail(&self, cls: u8, lru: u8, total_bytes: u64, evict: bool, max_age: u32) -> i32 {
        self.pull_tail_flags(cls, lru, total_bytes, evict, max_age, false)
    }

    /// `pull_tail` where a crawler marker at the tail ends the walk when `crawl_blocks` (C's
    /// LRU_PULL_CRAWL_BLOCKS, used by the maintainer) and is stepped over otherwise.
    fn pull_tail_flags(
        &self,
        cls: u8,
        lru: u8,
        total_bytes: u64,
        evict: bool,
        max_age: u32,
        crawl_blocks: bool,
    ) -> i32 {
        if cls == 0 {
            return 0;
        }
        let s = settings::get();
        let id = cls | lru;
        let mut removed = 0;
        let mut move_to: Option<(*mut Item, u8)> = None;
        let mut reassign_after = false;
        let now = current_time();
        let oldest_live = s.oldest_live.load(Relaxed);
        let mut l = self.lru(id);
        let mut search = l.tail;
        let mut tries = 5;
        while tries > 0 && !search.is_null() {
            tries -= 1;
            // SAFETY: items on the list are live while its lock is held.
            if unsafe { is_crawler(search) } {
                if crawl_blocks {
                    return 0;
                }
                tries += 1;
                // SAFETY: as above.
                search = unsafe { (*search).prev };
                continue;
            }
            // SAFETY: items on the list are live while its lock is held.
            let (next_it, hv) = unsafe { ((*search).prev, self.hash(items::key(search))) };
            let Some(_ilock) = self.item_trylock(hv) else {
                search = next_it;
                continue;
            };
            // SAFETY: the item lock for `search` is held; refcount is atomic.
            unsafe {
                if (*search).refcount.fetch_add(1, Relaxed) + 1 != 2 {
                    l.stats.lrutail_reflocked += 1;
                }
                let it_time = (*search).time;
                let exp = (*search).exptime;
                let flushed = it_time <= oldest_live && oldest_live <= now;
                if (exp != 0 && exp < now) || flushed {
                    l.stats.reclaimed += 1;
                    if (*search).it_flags & ITEM_FETCHED == 0 {
                        l.stats.expired_unfetched += 1;
                    }
                    self.unlink_locked(&mut l, search, hv);
                    release(search);
                    removed += 1;
                    search = next_it;
                    continue;
                }
                let mut stop = true;
                match lru {
                    HOT_LRU | WARM_LRU => {
                        // C computes HOT's limit, then falls through to WARM's when it is 0.
                        let mut limit = 0;
                        if lru == HOT_LRU {
                            limit = total_bytes * s.hot_lru_pct.load(Relaxed).max(0) as u64 / 100;
                        }
                        if limit == 0 {
                            limit = total_bytes * s.warm_lru_pct.load(Relaxed).max(0) as u64 / 100;
                        }
                        if (*search).it_flags & ITEM_ACTIVE != 0 {
                            (*search).it_flags &= !ITEM_ACTIVE;
                            removed += 1;
                            if lru == WARM_LRU {
                                l.stats.moves_within_lru += 1;
                                Self::unlink_q(&mut l, search);
                                Self::link_q(&mut l, search);
                                release(search);
                                search = next_it;
                                stop = false;
                            } else {
                                l.stats.moves_to_warm += 1;
                                Self::unlink_q(&mut l, search);
                                move_to = Some((search, WARM_LRU));
                            }
                        } else if l.size_bytes > limit || now.wrapping_sub(it_time) > max_age {
                            l.stats.moves_to_cold += 1;
                            Self::unlink_q(&mut l, search);
                            move_to = Some((search, COLD_LRU));
                            removed += 1;
                        } else {
                            release(search);
                        }
                    }
                    COLD_LRU => {
                        if evict && s.evict_to_free {
                            l.stats.evicted += 1;
                            l.stats.evicted_time = now.wrapping_sub(it_time);
                            if exp != 0 {
                                l.stats.evicted_nonzero += 1;
                            }
                            if (*search).it_flags & ITEM_FETCHED == 0 {
                                l.stats.evicted_unfetched += 1;
                            }
                            if (*search).it_flags & ITEM_ACTIVE != 0 {
                                l.stats.evicted_active += 1;
                            }
                            if crate::logger::enabled(crate::logger::LOG_EVICTIONS) {
                                crate::logger::eviction(
                                    items::key(search),
                                    exp,
                                    it_time,
                                    (*search).it_flags,
                                    (*search).nbytes,
                                    items::clsid_of((*search).slabs_clsid),
                                );
                            }
                            self.unlink_locked(&mut l, search, hv);
                            removed += 1;
                            release(search);
                            if s.slab_automove.load(Relaxed) == 2 {
                                reassign_after = true;
                            }
                        } else if (*search).it_flags & ITEM_ACTIVE != 0
                            && s.lru_segmented.load(Relaxed)
                        {
                            l.stats.moves_to_warm += 1;
                            (*search).it_flags &= !ITEM_ACTIVE;
                            Self::unlink_q(&mut l, search);
                            move_to = Some((search, WARM_LRU));
                            removed += 1;
                        } else {
                            release(search);
                        }
                    }
                    _ => release(search),
                }
                if stop {
                    drop(l);
                    if let Some((it, to)) = move_to {
                        (*it).slabs_clsid = cls | to;
                        let mut dest = self.lru(cls | to);
                        Self::link_q(&mut dest, it);
                        drop(dest);
                        release(it);
                    }
                    drop(_ilock);
                    if reassign_after {
                        // `slab_automove 2`: every eviction asks for a page from any class.
                        crate::slabs_mover::reassign(-1, cls as i32, true);
                    }
                    return removed;
                }
            }
        }
        removed
    }

    /// Unlinks an item whose own LRU lock (`l`) and item lock are held (C's
    /// do_item_unlink_nolock). Drops the table's reference.
    ///
    /// # Safety
    /// As stated: both locks held, `it` live and on list `l`.
    unsafe fn unlink_locked(&self, l: &mut Lru, it: *mut Item, hv: u32) {
        // SAFETY: per the contract.
        unsafe {
            if (*it).it_flags & ITEM_LINKED != 0 {
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

    // ---- link / unlink / get (caller holds the item lock for hv) ----

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

    /// Marks a fetch (C's do_item_bump): a second hit makes an item active; an active COLD
    /// item is queued for the maintainer to move to WARM.
    ///
    /// # Safety
    /// The item lock for `hv` is held and `it` is live.
    pub(in crate::items) unsafe fn bump(&self, it: *mut Item, hv: u32) {
        // SAFETY: per the contract.
        unsafe {
            if settings::get().lru_segmented.load(Relaxed) {
                if (*it).it_flags & ITEM_ACTIVE == 0 {
                    if (*it).it_flags & ITEM_FETCHED == 0 {
                        (*it).it_flags |= ITEM_FETCHED;
                    } else {
                        (*it).it_flags |= ITEM_ACTIVE;
                        if (*it).slabs_clsid & TEMP_LRU != COLD_LRU {
                            (*it).time = current_time();
                        } else if !self.bump_async(it, hv) {
                            // The flag is set before queueing so the maintainer sees it.
                            (*it).it_flags &= !ITEM_ACTIVE;
                        }
                    }
                }
            } else {
                (*it).it_flags |= ITEM_FETCHED;
                let now = current_time();
                if (*it).time < now.wrapping_sub(crate::stats::ITEM_UPDATE_INTERVAL)
                    && (*it).it_flags & ITEM_LINKED != 0
                {
                    (*it).time = now;
                    let mut l = self.lru((*it).slabs_clsid);
                    Self::unlink_q(&mut l, it);
                    Self::link_q(&mut l, it);
                }
            }
        }
    }

    /// Asks the expansion thread to grow the table if it holds more than 1.5 items per bucket
    /// (C's assoc_start_expand, run by the clock every second). Never blocks.
    pub fn start_expand_if_needed(&self) {
        self.start_expand_if_needed_for(CURR_ITEMS.load(Relaxed).max(0) as u64);
    }

    /// As `start_expand_if_needed`, for a given item count.
    pub fn start_expand_if_needed_for(&self, curr_items: u64) {
        if !self.assoc.wants_expand(curr_items) {
            return;
        }
        if let Ok(mut requested) = self.expand_request.try_lock() {
            *requested = true;
            self.expand_cond.notify_one();
        }
    }

    /// Every item lock, in order: no thread is then inside the hash table (the effect C gets
    /// from pause_threads). Deadlock-free because no thread blocks on an item lock while
    /// holding another (second locks are only tried).
    fn lock_all_items(&self) -> Vec<MutexGuard<'_, ()>> {
        self.item_locks
            .iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
            .collect()
    }

    /// The hash table expansion thread's loop (C's assoc_maintenance_thread): waits for a
    /// request, switches to an array twice the size with every item lock held, then moves
    /// `bulk_move` old buckets per step, each under its own item lock, while clients go on.
    pub fn run_assoc_maintenance(&self, bulk_move: u64) -> ! {
        let verbose = || settings::verbose() > 1;
        loop {
            {
                let mut requested = lock(&self.expand_request);
                while !*requested {
                    requested = self
                        .expand_cond
                        .wait(requested)
                        .unwrap_or_else(|e| e.into_inner());
                }
                *requested = false;
            }
            // The requester checked the load factor (C expands on every signal, too).
            if self.assoc.is_expanding() || self.assoc.power() >= crate::assoc::HASHPOWER_MAX {
                continue;
            }
            // A hash-table dump in progress finishes first.
            let _maint = lock(&self.maintenance);
            // Allocate before stopping anyone; without the memory, keep running as is.
            let Some(bigger) = self.assoc.next_buckets() else {
                continue;
            };
            {
                let _all = self.lock_all_items();
                // SAFETY: every item lock is held.
                unsafe { self.assoc.begin_expand(bigger) };
            }
            if verbose() {
                eprintln!("Hash table expansion starting");
            }
            'moving: loop {
                for _ in 0..bulk_move {
                    let Some(b) = self.assoc.expand_bucket() else {
                        break 'moving;
                    };
                    let done = match self.item_trylock(b as u32) {
                        // SAFETY: the lock covering old bucket `b` is held and `b` is next.
                        Some(_g) => unsafe { self.assoc.move_bucket(b, self.hash) },
                        None => {
                            std::thread::sleep(std::time::Duration::from_micros(10_000 - 1));
                            false
                        }
                    };
                    if done {
                        let _all = self.lock_all_items();
                        // SAFETY: every item lock is held and every old bucket has moved.
                        unsafe { self.assoc.finish_expand() };
                        drop(_all);
                        if verbose() {
                            eprintln!("Hash table expansion done");
                        }
                        break 'moving;
                    }
                }
            }
        }
    }

    /// Queues a COLD hit for the maintainer (C's lru_bump_async). False when the queue is full.
    ///
    /// # Safety
    /// The item lock for `hv` is held and `it` is live.
    unsafe fn bump_async(&self, it: *mut Item, hv: u32) -> bool {
        let key = self as *const Store as usize;
        let buf = BUMP_BUF.with(|b| {
            let mut b = b.borrow_mut();
            match &*b {
                Some((k, buf)) if *k == key => Arc::clone(buf),
                _ => {
                    let buf = Arc::new(BumpBuf {
                        queue: Mutex::new(VecDeque::with_capacity(BUMP_BUF_SIZE)),
                        dropped: AtomicU64::new(0),
                    });
                    lock(&self.bump_bufs).push(Arc::clone(&buf));
                    *b = Some((key, Arc::clone(&buf)));
                    buf
                }
            }
        });
        let mut q = lock(&buf.queue);
        if q.len() >= BUMP_BUF_SIZE {
            buf.dropped.fetch_add(1, Relaxed);
            return false;
        }
        // SAFETY: per the contract the item is live; the new reference keeps it so.
        unsafe { (*it).refcount.fetch_add(1, Relaxed) };
        q.push_back((
            ItemRef {
                // SAFETY: `it` is non-null (a live item).
                it: unsafe { NonNull::new_unchecked(it) },
            },
            hv,
        ));
        true
    }

    /// Applies queued COLD hits (C's lru_maintainer_bumps). `batch` is the caller's scratch
    /// space. Returns whether any were queued.
    pub fn process_bumps(&self, batch: &mut Vec<(ItemRef, u32)>) -> bool {
        let bufs: Vec<Arc<BumpBuf>> = lock(&self.bump_bufs).clone();
        let mut bumped = false;
        for b in bufs {
            batch.extend(lock(&b.queue).drain(..));
            bumped |= !batch.is_empty();
            for (r, hv) in batch.drain(..) {
                let _g = self.item_lock(hv);
                // SAFETY: the item lock is held and the queued reference keeps it live; the
                // reference is released (dropped) under the lock, as C does.
                unsafe { self.touch_time(r.as_ptr()) };
                drop(r);
            }
        }
        bumped
    }

    /// Bumps dropped because a thread's queue was full (stat lru_bumps_dropped).
    pub fn bumps_dropped(&self) -> u64 {
        lock(&self.bump_bufs)
            .iter()
            .map(|b| b.dropped.load(Relaxed))
            .sum()
    }

    /// One maintainer pass over a class (C's lru_maintainer_juggle): reclaims expired TEMP
    /// items, then moves items HOT -> COLD and WARM -> COLD while those lists are over their
    /// share or older than their age limit, and active COLD items to WARM. Returns how many
    /// rounds did something.
    pub fn juggle(&self, cls: u8) -> u32 {
        let s = settings::get();
        let mut did_moves = 0;
        if s.temp_lru.load(Relaxed) {
            for _ in 0..500 {
                if self.pull_tail(cls, TEMP_LRU, 0, false, 0) <= 0 {
                    break;
                }
                did_moves += 1;
            }
        }
        let segmented = s.lru_segmented.load(Relaxed);
        let (mut hot_age, mut warm_age, mut total_bytes) = (0u32, 0u32, 0u64);
        if segmented {
            let now = current_time();
            let cold_age = {
                let l = self.lru(cls | COLD_LRU);
                total_bytes += l.size_bytes;
                if l.tail.is_null() {
                    0
                } else {
                    // SAFETY: the tail is live while the list's lock is held.
                    now.wrapping_sub(unsafe { (*l.tail).time })
                }
            };
            // C converts through double and truncates back to rel_time_t.
            hot_age = (cold_age as f64 * s.hot_max_factor.load()) as u32;
            warm_age = (cold_age as f64 * s.warm_max_factor.load()) as u32;
            total_bytes += self.lru(cls | HOT_LRU).size_bytes;
            total_bytes += self.lru(cls | WARM_LRU).size_bytes;
        }
        for _ in 0..500 {
            let mut do_more = 0;
            if self.pull_tail_flags(cls, HOT_LRU, total_bytes, false, hot_age, true) != 0
                || self.pull_tail_flags(cls, WARM_LRU, total_bytes, false, warm_age, true) != 0
            {
                do_more += 1;
            }
            if segmented {
                do_more += self.pull_tail_flags(cls, COLD_LRU, total_bytes, false, 0, true);
            }
            if do_more == 0 {
                break;
            }
            did_moves += 1;
        }
        did_moves
    }

    /// Refreshes an item's access time, moving an active COLD item to WARM (C's do_item_update,
    /// used when `add` finds the key).
    ///
    /// # Safety
    /// The item lock is held and `it` is live.
    pub(in crate::items) unsafe fn touch_time(&self, it: *mut Item) {
        // SAFETY: per the contract; LRU locks are taken after the item lock.
        unsafe {
            let now = current_time();
            if settings::get().lru_segmented.load(Relaxed) {
                if (*it).it_flags & ITEM_LINKED == 0 {
                    return;
                }
                (*it).time = now;
                if (*it).slabs_clsid & TEMP_LRU == COLD_LRU && (*it).it_flags & ITEM_ACTIVE != 0 {
                    let cls = items::clsid_of((*it).slabs_clsid);
                    {
                        let mut l = self.lru((*it).slabs_clsid);
                        Self::unlink_q(&mut l, it);
                    }
                    (*it).slabs_clsid = cls | WARM_LRU;
                    (*it).it_flags &= !ITEM_ACTIVE;
                    let mut l = self.lru(cls | WARM_LRU);
                    Self::link_q(&mut l, it);
                    l.stats.moves_to_warm += 1;
                }
            } else if (*it).time < now.wrapping_sub(crate::stats::ITEM_UPDATE_INTERVAL)
                && (*it).it_flags & ITEM_LINKED != 0
            {
                (*it).time = now;
                let mut l = self.lru((*it).slabs_clsid);
                Self::unlink_q(&mut l, it);
                Self::link_q(&mut l, it);
            }
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
fn trace_get(key: &[u8], what: &str, why: &str) {
    if settings::verbose() > 2 {
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
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Total bytes of an item (C's ITEM_ntotal).
///
/// # Safety
/// `it` is live.
#[inline]
unsafe fn ntotal(it: *const Item) -> usize {
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
unsafe fn release(it: *mut Item) {
    // SAFETY: the caller's reference keeps `it` live until the decrement.
    unsafe {
        debug_assert!((*it).it_flags & ITEM_SLABBED == 0);
        if (*it).refcount.fetch_sub(1, Relaxed) == 1 {
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
    it: NonNull<Item>,
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
        if self.is_chunked() {
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

/// Creates the process's store (after `slabs::slabs_init`).
pub fn init(s: &Settings) {
    let _ = STORE.set(Store::new(s));
}

/// Starts the hash table expansion thread (C's start_assoc_maintenance_thread).
/// `MEMCACHED_HASH_BULK_MOVE` sets how many buckets move per step, as in C.
pub fn start_assoc_maintenance() -> std::io::Result<()> {
    let Some(st) = store() else {
        return Err(std::io::Error::other("item store not initialised"));
    };
    let bulk_move = std::env::var("MEMCACHED_HASH_BULK_MOVE")
        .ok()
        .map(|v| crate::settings::cnum::atoi(v.as_bytes()))
        .filter(|&n| n > 0)
        .map_or(1, |n| n as u64);
    std::thread::Builder::new()
        .name("mc-assocmaint".into())
        .spawn(move || st.run_assoc_maintenance(bulk_move))?;
    Ok(())
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
            crate::slabs::slabs_init(settings::get());
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
