//! The automover with extstore (C's slab_automove_extstore.c): memory is kept free for the
//! extstore write thread rather than balanced by age. Once a second it sets the global page
//! pool's low-water mark (`slab_automove_freeratio` of all pages, at least 2) that makes the
//! write thread flush early, gives back to the pool a page of any class whose free chunks
//! stayed above two pages' worth for a whole window, and when the pool runs low takes a page
//! from the large class (values that go to flash) with the oldest COLD tail. It also
//! computes `extstore_memory_pressure`: the share of pages held by classes too small for
//! flash.

use crate::items::store::{ItemAutomoveStats, Store};
use crate::settings;
use crate::slabs::{self, SlabAutomoveStats, MAX_NUMBER_OF_SLAB_CLASSES, POWER_SMALLEST};
use std::sync::atomic::Ordering::Relaxed;

/// A class needs more pages than this to give one up (C's MIN_PAGES_FOR_SOURCE).
const MIN_PAGES_FOR_SOURCE: u32 = 2;

/// One class's sample of one second (C's struct window_data).
#[derive(Clone, Copy, Default)]
struct Sample {
    dirty: u64,
    excess_free: u32,
}

/// The automover's memory (C's slab_automove of slab_automove_extstore.c).
pub struct ExtAutomove {
    st: &'static Store,
    window: Vec<Sample>,
    window_size: u32,
    window_cur: u32,
    item_size: u32,
    free_ratio: f64,
    global_pool_watermark: u32,
    items_before: [ItemAutomoveStats; MAX_NUMBER_OF_SLAB_CLASSES],
    slabs_before: [SlabAutomoveStats; MAX_NUMBER_OF_SLAB_CLASSES],
}

impl ExtAutomove {
    /// Starts afresh from the current settings and counters (C's slab_automove_extstore_init).
    pub fn new(st: &'static Store) -> ExtAutomove {
        let s = settings::get();
        let window_size = s.slab_automove_window.load(Relaxed).max(1);
        let mut a = ExtAutomove {
            st,
            window: vec![Sample::default(); window_size as usize * MAX_NUMBER_OF_SLAB_CLASSES],
            window_size,
            window_cur: 0,
            item_size: s.ext_rt.item_size.load(Relaxed),
            free_ratio: s.ext_rt.slab_automove_freeratio.load(),
            global_pool_watermark: 0,
            items_before: [ItemAutomoveStats::default(); MAX_NUMBER_OF_SLAB_CLASSES],
            slabs_before: [SlabAutomoveStats::default(); MAX_NUMBER_OF_SLAB_CLASSES],
        };
        st.automove_item_stats(&mut a.items_before);
        if let Some(v) = slabs::with_slabs(|sa| sa.automove_stats()) {
            a.slabs_before = v;
        }
        a
    }

    /// Takes this second's sample and returns the move to make, as (source, destination)
    /// with 0 for the global pool (C's slab_automove_extstore_run).
    pub fn run(&mut self) -> Option<(usize, usize)> {
        let mut items_after = [ItemAutomoveStats::default(); MAX_NUMBER_OF_SLAB_CLASSES];
        self.st.automove_item_stats(&mut items_after);
        let (slabs_after, mem_limit_reached, global_count) = slabs::with_slabs(|sa| {
            (
                sa.automove_stats(),
                sa.mem_limit_hit(),
                sa.global_page_pool_size() as u32,
            )
        })?;
        // C's global_pool_check, against the mark of the previous second.
        let global_low = mem_limit_reached && global_count < self.global_pool_watermark;
        self.window_cur = self.window_cur.wrapping_add(1);
        // C's memcheck: the pool should hold free_ratio of every page, at least two.
        let total: u32 = slabs_after.iter().map(|s| s.total_pages).sum();
        self.global_pool_watermark = ((f64::from(total) * self.free_ratio) as u32).max(2);

        let ws = self.window_size as usize;
        let mut decision = None;
        let mut too_free = false;
        let mut oldest: Option<usize> = None;
        let mut oldest_age = 0u64;
        let (mut low_pages, mut high_pages) = (0u32, 0u32);
        for n in POWER_SMALLEST..MAX_NUMBER_OF_SLAB_CLASSES {
            let (ia, ib) = (&items_after[n], &self.items_before[n]);
            let (sa, sb) = (&slabs_after[n], &self.slabs_before[n]);
            let small_slab = sb.chunk_size < self.item_size;
            let mut wd = Sample::default();
            let free_target = sa.chunks_per_page * MIN_PAGES_FOR_SOURCE;
            if small_slab {
                low_pages += sa.total_pages;
                if ia.evicted > ib.evicted || ia.outofmemory > ib.outofmemory {
                    wd.dirty = 1;
                }
                if sa.total_pages > sb.total_pages {
                    wd.dirty = 1;
                }
            } else if sa.total_pages > MIN_PAGES_FOR_SOURCE {
                high_pages += sa.total_pages;
            }
            if sa.free_chunks > free_target {
                wd.excess_free = 1;
            }
            let slot = n * ws + (self.window_cur as usize % ws);
            self.window[slot] = wd;
            let (mut dirty, mut excess) = (0u64, 0u32);
            for d in &self.window[n * ws..(n + 1) * ws] {
                dirty += d.dirty;
                excess += d.excess_free;
            }
            if dirty != 0 && global_count != 0 {
                continue;
            }
            if excess >= self.window_size {
                decision = Some((n, 0));
                too_free = true;
            }
            if !small_slab
                && sa.total_pages > MIN_PAGES_FOR_SOURCE
                && (ia.age > oldest_age || oldest.is_none())
            {
                oldest = Some(n);
                oldest_age = ia.age;
            }
        }
        let total_pages = f64::from(low_pages + high_pages + global_count);
        let pressure = if total_pages > 0.0 {
            f64::from(low_pages) / total_pages * 100.0
        } else {
            0.0
        };
        if let Some(sto) = crate::storage::get() {
            sto.memory_pressure
                .store((pressure as f32 as f64).to_bits(), Relaxed);
        }
        self.items_before = items_after;
        self.slabs_before = slabs_after;
        if self.window_cur < self.window_size {
            return decision;
        }
        settings::get()
            .ext_rt
            .global_pool_min
            .store(self.global_pool_watermark, Relaxed);
        if !too_free && global_low {
            if let Some(o) = oldest {
                decision = Some((o, 0));
            }
        }
        decision
    }
}
