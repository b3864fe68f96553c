//! Item statistics (C's items.c item_stats*, item_stats_sizes*, item_cachedump): the
//! per-LRU counters, `stats items`, `stats sizes`, `stats cachedump` and the figures the
//! slab automover reads.

use super::crawl::is_crawler;
use super::lru::{COLD_LRU, HOT_LRU, POWER_LARGEST, TEMP_LRU, WARM_LRU};
use super::store::Store;
use super::store::{CURR_BYTES, CURR_ITEMS, TOTAL_ITEMS};
use crate::items;
use crate::settings;
use crate::slabs::with_slabs;
use crate::stats::current_time;
use std::sync::atomic::Ordering::Relaxed;

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

/// One class's item figures as the automover reads them (C's item_stats_automove).
#[derive(Clone, Copy, Default)]
pub struct ItemAutomoveStats {
    pub evicted: u64,
    pub outofmemory: u64,
    /// Seconds since COLD's tail item was last used.
    pub age: u64,
}

impl Store {
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

    /// Counts a linked item in (+1) or out (-1) of its `stats sizes` bucket (C's
    /// item_stats_sizes_add/remove).
    pub(in crate::items) fn sizes_count(&self, ntotal: usize, delta: i32) {
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
        TOTAL_ITEMS.store(0, Relaxed);
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
}
