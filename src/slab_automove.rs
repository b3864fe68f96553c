//! The automover's decision (C's slab_automove.c, the default algorithm): once a second
//! the slab mover asks which page, if any, should move.
//!
//! Per class it keeps a window of `slab_automove_window` samples of COLD's tail age and of
//! whether the class evicted, ran out of memory or grew that second. A class holding more
//! than 2.5 pages of free chunks, with a clean window while all memory is allocated, gives a
//! page back to the global pool. Otherwise, once the window has filled, a page moves from
//! the class with the oldest tail (and more than two pages) to the youngest class that keeps
//! evicting, when the youngest's age is below `slab_automove_ratio` of the oldest's.

use crate::items::store::{ItemAutomoveStats, Store};
use crate::settings;
use crate::slabs::{self, SlabAutomoveStats, MAX_NUMBER_OF_SLAB_CLASSES, POWER_SMALLEST};
use std::sync::atomic::Ordering::Relaxed;

/// A class needs more pages than this to give one up (C's MIN_PAGES_FOR_SOURCE).
const MIN_PAGES_FOR_SOURCE: u32 = 2;
/// Free chunks worth this many pages make a class give a page back to the pool.
const MIN_PAGES_FOR_RECLAIM: f64 = 2.5;

/// One class's sample of one second (C's struct window_data).
#[derive(Clone, Copy, Default)]
struct Sample {
    age: u64,
    dirty: u64,
    evicted_ratio: f32,
    evicted_seen: u64,
}

/// The automover in use: C's default algorithm, or with extstore its own.
pub enum Algorithm {
    Default(Automove),
    Extstore(crate::slab_automove_extstore::ExtAutomove),
}

impl Algorithm {
    /// The algorithm for this process (C's start_slab_maintenance_thread choice).
    pub fn new(st: &'static Store) -> Algorithm {
        if crate::storage::get().is_some() {
            Algorithm::Extstore(crate::slab_automove_extstore::ExtAutomove::new(st))
        } else {
            Algorithm::Default(Automove::new(st))
        }
    }

    /// This second's decision: (source, destination), 0 for the global pool.
    pub fn run(&mut self) -> Option<(usize, usize)> {
        match self {
            Algorithm::Default(a) => a.run(),
            Algorithm::Extstore(a) => a.run(),
        }
    }
}

/// The automover's memory (C's slab_automove).
pub struct Automove {
    st: &'static Store,
    window: Vec<Sample>,
    window_size: u32,
    window_cur: u32,
    max_age_ratio: f64,
    items_before: [ItemAutomoveStats; MAX_NUMBER_OF_SLAB_CLASSES],
    slabs_before: [SlabAutomoveStats; MAX_NUMBER_OF_SLAB_CLASSES],
}

impl Automove {
    /// Starts afresh from the current settings and counters (C's slab_automove_init).
    pub fn new(st: &'static Store) -> Automove {
        let s = settings::get();
        let window_size = s.slab_automove_window.load(Relaxed).max(1);
        let mut a = Automove {
            st,
            window: vec![Sample::default(); window_size as usize * MAX_NUMBER_OF_SLAB_CLASSES],
            window_size,
            window_cur: 0,
            max_age_ratio: s.slab_automove_ratio.load(),
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
    /// with 0 for the global pool (C's slab_automove_run).
    pub fn run(&mut self) -> Option<(usize, usize)> {
        let mut items_after = [ItemAutomoveStats::default(); MAX_NUMBER_OF_SLAB_CLASSES];
        self.st.automove_item_stats(&mut items_after);
        let (slabs_after, mem_limit_reached) =
            slabs::with_slabs(|sa| (sa.automove_stats(), sa.mem_limit_hit()))?;
        let evicted_total: u64 = (POWER_SMALLEST..MAX_NUMBER_OF_SLAB_CLASSES)
            .map(|n| {
                items_after[n]
                    .evicted
                    .wrapping_sub(self.items_before[n].evicted)
            })
            .fold(0u64, u64::wrapping_add);
        self.window_cur = self.window_cur.wrapping_add(1);
        let ws = self.window_size as usize;

        let mut decision = None;
        let mut oldest: Option<usize> = None;
        let mut oldest_age = 0u64;
        let mut youngest: Option<usize> = None;
        let mut youngest_age = u64::MAX;
        let mut youngest_evicting = false;
        for n in POWER_SMALLEST..MAX_NUMBER_OF_SLAB_CLASSES {
            let (ia, ib) = (&items_after[n], &self.items_before[n]);
            let (sa, sb) = (&slabs_after[n], &self.slabs_before[n]);
            let mut wd = Sample::default();
            let evicted_delta = ia.evicted.wrapping_sub(ib.evicted);
            if evicted_delta > 0 {
                wd.evicted_ratio = evicted_delta as f32 / evicted_total as f32;
                wd.evicted_seen = 1;
                wd.dirty = 1;
            }
            if ia.outofmemory.wrapping_sub(ib.outofmemory) > 0 {
                wd.dirty = 1;
            }
            if sa.total_pages > sb.total_pages {
                wd.dirty = 1;
            }
            wd.age = ia.age;
            let slot = n * ws + (self.window_cur as usize % ws);
            self.window[slot] = wd;

            let mut sum = Sample::default();
            for d in &self.window[n * ws..(n + 1) * ws] {
                sum.age = sum.age.wrapping_add(d.age);
                sum.dirty += d.dirty;
                sum.evicted_ratio += d.evicted_ratio;
                sum.evicted_seen += d.evicted_seen;
            }
            let age = sum.age / ws as u64;

            if sa.free_chunks as f64 > sa.chunks_per_page as f64 * MIN_PAGES_FOR_RECLAIM
                && mem_limit_reached
                && sum.dirty == 0
            {
                // Too much free memory here while all memory is taken: back to the pool.
                decision = Some((n, 0));
                oldest = None;
                youngest = None;
                break;
            }
            if age > oldest_age && sa.total_pages > MIN_PAGES_FOR_SOURCE {
                oldest = Some(n);
                oldest_age = age;
            }
            if age < youngest_age
                && (sum.evicted_seen > ws as u64 / 2 || sum.evicted_ratio / ws as f32 > 0.25)
            {
                youngest = Some(n);
                youngest_age = age;
                youngest_evicting = wd.evicted_seen != 0;
            }
        }
        self.items_before = items_after;
        self.slabs_before = slabs_after;
        if let (Some(y), Some(o)) = (youngest, oldest) {
            if self.window_cur > self.window_size
                && (youngest_age as f64) < oldest_age as f64 * self.max_age_ratio
                && youngest_evicting
            {
                decision = Some((o, y));
            }
        }
        decision
    }
}
