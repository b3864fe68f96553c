//! The LRU crawler's walks (C's crawler.c item walks and items.c's crawler list steps): a
//! marker item moved up an LRU list one item at a time under that list's lock, reclaiming
//! expired items or showing live ones to a dump, and the walk of every hash bucket. The
//! crawler thread and its commands are `crate::crawler`.

use super::item_ref::{ntotal, release};
use super::lru::Lru;
use super::store::Store;
use crate::items::{self, Item, ITEM_FETCHED};
use crate::settings;
use crate::stats::current_time;
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;

/// A crawler's place in an LRU list: an item header with no key or value (C marks these
/// with it_flags == 1, nkey == 0, nbytes == 0), plus the crawl's counters.
pub(in crate::items) struct CrawlerMarker {
    it: std::cell::UnsafeCell<Item>,
    /// Items left to look at (0: no limit), reclaimed, reclaimed unfetched, checked.
    counts: std::cell::UnsafeCell<[u64; 4]>,
}

// SAFETY: a marker and its counts are only touched with the lock of the LRU it serves held.
unsafe impl Sync for CrawlerMarker {}
// SAFETY: as above; the raw pointers inside point at list members guarded the same way.
unsafe impl Send for CrawlerMarker {}

impl CrawlerMarker {
    pub(in crate::items) fn new() -> CrawlerMarker {
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
                hv: 0,
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
pub(in crate::items) unsafe fn is_crawler(it: *const Item) -> bool {
    // SAFETY: per the contract.
    unsafe { (*it).nbytes == 0 && (*it).nkey == 0 && (*it).it_flags == 1 }
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
    /// A live item was shown to a dump's visitor.
    Visited,
}

/// Entries one thread's bump queue holds before dropping bumps (C's LRU_BUMP_BUF_SIZE).
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
    /// Where the value is on flash, for a header item.
    pub hdr: Option<super::flash::ItemHdr>,
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
                hdr: ((*it).it_flags & items::ITEM_HDR != 0).then(|| super::flash::hdr_of(it)),
            }
        }
    }
}

impl Store {
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

    /// Moves LRU `id`'s crawler one item up (C's crawler thread loop body, do_item_crawl_q
    /// and the module's eval). Without a visitor it is the expired-item crawl: an expired or
    /// flushed item is reclaimed, a live one reported with its expiry for the schedule. With
    /// one (a dump), each live item is shown to it under its item lock, the LRU lock
    /// released. Items another thread holds, or locked, are passed over, as C does.
    pub fn crawler_step(&self, id: u8, visit: Option<&mut dyn FnMut(&DumpItem<'_>)>) -> CrawlStep {
        let mut l = self.lru(id);
        let m = &self.crawlers[id as usize];
        // SAFETY: the marker, its counts and the list are touched under the list's lock; an
        // item looked at is live under its item lock and our reference.
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
            // Set when it was linked (items on a list are in the table).
            let hv = (*search).hv;
            let Some(_ilock) = self.item_trylock(hv) else {
                return CrawlStep::Went;
            };
            if (*search).refcount.fetch_add(1, Relaxed) + 1 != 2 {
                (*search).refcount.fetch_sub(1, Relaxed);
                return CrawlStep::Went;
            }
            counts[3] += 1;
            if let Some(visit) = visit {
                drop(l);
                visit(&DumpItem::of(search));
                (*search).refcount.fetch_sub(1, Relaxed);
                return CrawlStep::Visited;
            }
            let now = current_time();
            let oldest_live = settings::get().oldest_live.load(Relaxed);
            let flushed = (*search).time <= oldest_live && oldest_live <= now;
            // A header whose page went away (evicted, reclaimed) is dead too.
            let valid = (*search).it_flags & items::ITEM_HDR == 0
                || crate::storage::hdr_valid(super::flash::hdr_of(search));
            if ((*search).exptime != 0 && (*search).exptime < now) || flushed || !valid {
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
}
