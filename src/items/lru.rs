//! The segmented LRU (C's items.c): HOT/WARM/COLD/TEMP lists per class, the tail pulls that
//! reclaim, demote and evict (lru_pull_tail), fetch bumps and their per-thread queue
//! (do_item_bump, lru_bump_async), and the LRU maintainer's per-class juggle. The maintainer's
//! thread loop is `crate::lru_maintainer`.

use super::crawl::is_crawler;
use super::item_ref::{ntotal, release};
use super::stats::ItemStatsCounters;
use super::store::{lock, ItemRef, Store};
use crate::items::{self, Item, ITEM_ACTIVE, ITEM_FETCHED, ITEM_LINKED};
use crate::settings;
use crate::stats::current_time;
use crate::sys::Lock;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// LRU ids live in the top two bits of `slabs_clsid`.
pub const HOT_LRU: u8 = 0;
pub const WARM_LRU: u8 = 64;
pub const COLD_LRU: u8 = 128;
pub const TEMP_LRU: u8 = 192;
/// Number of (class, LRU) list ids.
pub const POWER_LARGEST: usize = 256;

/// One LRU list and its counters, guarded by its LRU lock.
pub(in crate::items) struct Lru {
    pub(in crate::items) head: *mut Item,
    pub(in crate::items) tail: *mut Item,
    pub(in crate::items) size: u64,
    pub(in crate::items) size_bytes: u64,
    pub(in crate::items) stats: ItemStatsCounters,
}

// SAFETY: the list pointers are only followed with the list's mutex held.
unsafe impl Send for Lru {}
/// Entries one thread's bump queue holds before dropping bumps (C's LRU_BUMP_BUF_SIZE).
const BUMP_BUF_SIZE: usize = 8192;

/// One thread's queue of COLD hits waiting for the LRU maintainer to move them to WARM (C's
/// lru_bump_buf): a fetch never takes a second LRU lock. Each entry holds a reference.
pub(in crate::items) struct BumpBuf {
    pub(in crate::items) queue: Lock<VecDeque<(ItemRef, u32)>>,
    pub(in crate::items) dropped: AtomicU64,
}

thread_local! {
    /// This thread's bump queue, per store (tests build several stores in one process).
    static BUMP_BUF: RefCell<Option<(usize, Arc<BumpBuf>)>> = const { RefCell::new(None) };
}
impl Store {
    /// # Safety
    /// `it` is live, not on a list; `l` is the list of `it.slabs_clsid`.
    pub(in crate::items) unsafe fn link_q(l: &mut Lru, it: *mut Item) {
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
            l.size_bytes += super::flash::lru_bytes(it, ntotal(it)) as u64;
        }
    }

    /// # Safety
    /// `it` is live and on list `l`.
    pub(in crate::items) unsafe fn unlink_q(l: &mut Lru, it: *mut Item) {
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
            l.size_bytes -= super::flash::lru_bytes(it, ntotal(it)) as u64;
        }
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
    #[inline]
    pub(in crate::items) fn pull_tail_flags(
        &self,
        cls: u8,
        lru: u8,
        total_bytes: u64,
        evict: bool,
        max_age: u32,
        crawl_blocks: bool,
    ) -> i32 {
        self.pull_tail_walk(cls, lru, total_bytes, evict, max_age, crawl_blocks, false)
            .0
    }

    /// The tail walk itself; with `return_item`, a COLD tail that is not evicted is handed
    /// back with its item lock held and a reference (C's LRU_PULL_RETURN_ITEM, for the
    /// extstore write thread) instead of being moved. Inlined into both callers: the
    /// maintainer's copy (most calls) then has no item to hand back and returns a plain count
    /// in a register.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(in crate::items) fn pull_tail_walk(
        &self,
        cls: u8,
        lru: u8,
        total_bytes: u64,
        evict: bool,
        max_age: u32,
        crawl_blocks: bool,
        return_item: bool,
    ) -> (i32, Option<super::flash::ColdTail<'_>>) {
        if cls == 0 {
            return (0, None);
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
                    return (0, None);
                }
                tries += 1;
                // SAFETY: as above.
                search = unsafe { (*search).prev };
                continue;
            }
            // SAFETY: items on the list are live while its lock is held.
            // (hv was set when the item was linked: items on a list are in the table.)
            let (next_it, hv) = unsafe { ((*search).prev, (*search).hv) };
            // The walk may go on to the next item, and unlinking this one writes to it.
            crate::sys::prefetch(next_it);
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
                                    (*search).it_flags & ITEM_FETCHED != 0,
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
                        } else if return_item {
                            drop(l);
                            let tail = super::flash::ColdTail {
                                it: ItemRef {
                                    it: NonNull::new_unchecked(search),
                                },
                                hv,
                                guard: _ilock,
                            };
                            return (removed, Some(tail));
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
                    return (removed, None);
                }
            }
        }
        (removed, None)
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

    /// Queues a COLD hit for the maintainer (C's lru_bump_async). False when the queue is full.
    ///
    /// # Safety
    /// The item lock for `hv` is held and `it` is live.
    pub(in crate::items) unsafe fn bump_async(&self, it: *mut Item, hv: u32) -> bool {
        let key = self as *const Store as usize;
        let buf = BUMP_BUF.with(|b| {
            let mut b = b.borrow_mut();
            match &*b {
                Some((k, buf)) if *k == key => Arc::clone(buf),
                _ => {
                    let buf = Arc::new(BumpBuf {
                        queue: Lock::new(VecDeque::with_capacity(BUMP_BUF_SIZE)),
                        dropped: AtomicU64::new(0),
                    });
                    lock(&self.bump_bufs).push(Arc::clone(&buf));
                    *b = Some((key, Arc::clone(&buf)));
                    buf
                }
            }
        });
        let mut q = buf.queue.lock();
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
        // The list lock is let go before any item lock: a worker registers its queue while
        // holding an item lock.
        for b in lock(&self.bump_bufs).iter() {
            batch.extend(b.queue.lock().drain(..));
        }
        let bumped = !batch.is_empty();
        // Queued items are scattered over the slabs: each is asked for a few bumps ahead.
        const AHEAD: usize = 4;
        for (r, _) in batch.iter().take(AHEAD) {
            crate::sys::prefetch(r.as_ptr());
        }
        let mut queued = batch.drain(..);
        while let Some((r, hv)) = queued.next() {
            if let Some((later, _)) = queued.as_slice().get(AHEAD - 1) {
                crate::sys::prefetch(later.as_ptr());
            }
            let _g = self.item_lock(hv);
            // SAFETY: the item lock is held and the queued reference keeps it live; the
            // reference is released (dropped) under the lock, as C does.
            unsafe { self.touch_time(r.as_ptr()) };
            drop(r);
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
}
