//! Statistics: the global counters C keeps under STATS_LOCK (`struct stats`, `struct
//! stats_state`), per-thread counters (`struct thread_stats`), the server clock and the
//! per-prefix counters. The `stats` report that reads every layer is `crate::report`.
//!
//! Global counters are atomics (no lock); per-thread counters live in each worker's
//! `ThreadStats` and are only written by that worker, so the hot path never contends.

use crate::settings;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Seconds between item access-time updates (C's ITEM_UPDATE_INTERVAL); the clock starts this
/// far (plus 2) into the past so relative times are never zero.
pub const ITEM_UPDATE_INTERVAL: u32 = 60;

/// Process-wide counters: C's `struct stats` (resettable) and `struct stats_state`.
#[derive(Default)]
pub struct GlobalStats {
    pub total_conns: AtomicU64,
    pub rejected_conns: AtomicU64,
    pub malloc_fails: AtomicU64,
    pub listen_disabled_num: AtomicU64,
    pub time_in_listen_disabled_us: AtomicU64,
    /// When accepting was last switched off (µs since the epoch).
    pub maxconns_entered_us: AtomicU64,
    pub log_worker_dropped: AtomicU64,
    pub log_worker_written: AtomicU64,
    pub log_watcher_skipped: AtomicU64,
    pub log_watcher_sent: AtomicU64,
    pub unexpected_napi_ids: AtomicU64,
    pub round_robin_fallback: AtomicU64,
    /// Passes of the LRU maintainer thread.
    pub lru_maintainer_juggles: AtomicU64,
    // The slab mover's and crawler's counters (written by those threads once they exist).
    pub slabs_moved: AtomicU64,
    pub slab_reassign_rescues: AtomicU64,
    pub slab_reassign_chunk_rescues: AtomicU64,
    pub slab_reassign_inline_reclaim: AtomicU64,
    pub slab_reassign_busy_items: AtomicU64,
    pub slab_reassign_busy_deletes: AtomicU64,
    pub slab_reassign_busy_nomem: AtomicU64,
    /// Text of the mover's last busy status; None prints "none" (cleared by `stats reset`).
    pub slab_reassign_last_busy_status: Mutex<Option<&'static str>>,
    pub lru_crawler_starts: AtomicU64,
    // stats_state: not reset by `stats reset`
    pub curr_conns: AtomicI64,
    pub conn_structs: AtomicU32,
    pub reserved_fds: AtomicU32,
    pub accepting_conns: AtomicBool,
    pub log_watchers: AtomicU64,
    pub slab_reassign_running: AtomicBool,
    pub lru_crawler_running: AtomicBool,
}

pub static STATS: GlobalStats = GlobalStats {
    total_conns: AtomicU64::new(0),
    rejected_conns: AtomicU64::new(0),
    malloc_fails: AtomicU64::new(0),
    listen_disabled_num: AtomicU64::new(0),
    time_in_listen_disabled_us: AtomicU64::new(0),
    maxconns_entered_us: AtomicU64::new(0),
    log_worker_dropped: AtomicU64::new(0),
    log_worker_written: AtomicU64::new(0),
    log_watcher_skipped: AtomicU64::new(0),
    log_watcher_sent: AtomicU64::new(0),
    unexpected_napi_ids: AtomicU64::new(0),
    round_robin_fallback: AtomicU64::new(0),
    lru_maintainer_juggles: AtomicU64::new(0),
    slabs_moved: AtomicU64::new(0),
    slab_reassign_rescues: AtomicU64::new(0),
    slab_reassign_chunk_rescues: AtomicU64::new(0),
    slab_reassign_inline_reclaim: AtomicU64::new(0),
    slab_reassign_busy_items: AtomicU64::new(0),
    slab_reassign_busy_deletes: AtomicU64::new(0),
    slab_reassign_busy_nomem: AtomicU64::new(0),
    slab_reassign_last_busy_status: Mutex::new(None),
    lru_crawler_starts: AtomicU64::new(0),
    slab_reassign_running: AtomicBool::new(false),
    lru_crawler_running: AtomicBool::new(false),
    curr_conns: AtomicI64::new(0),
    conn_structs: AtomicU32::new(0),
    reserved_fds: AtomicU32::new(0),
    accepting_conns: AtomicBool::new(true),
    log_watchers: AtomicU64::new(0),
};

impl GlobalStats {
    /// `stats reset`: clears the resettable counters (C's memset of `struct stats`).
    pub fn reset(&self) {
        for c in [
            &self.total_conns,
            &self.rejected_conns,
            &self.malloc_fails,
            &self.listen_disabled_num,
            &self.time_in_listen_disabled_us,
            &self.log_worker_dropped,
            &self.log_worker_written,
            &self.log_watcher_skipped,
            &self.log_watcher_sent,
            &self.unexpected_napi_ids,
            &self.round_robin_fallback,
            &self.lru_maintainer_juggles,
            &self.slabs_moved,
            &self.slab_reassign_rescues,
            &self.slab_reassign_chunk_rescues,
            &self.slab_reassign_inline_reclaim,
            &self.slab_reassign_busy_items,
            &self.slab_reassign_busy_deletes,
            &self.slab_reassign_busy_nomem,
            &self.lru_crawler_starts,
        ] {
            c.store(0, Relaxed);
        }
        *self
            .slab_reassign_last_busy_status
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        prefix_clear();
    }
}

/// A counter that only its owning thread changes; any thread may read or reset it.
///
/// The owner adds with a plain load and store (no locked instruction on the hot path, where
/// C takes a per-thread mutex instead). `stats reset` from another thread must not race
/// with that, so it never writes the value: it records it as the new base, and readers see
/// the difference.
#[derive(Default)]
pub struct Counter {
    value: AtomicU64,
    base: AtomicU64,
}

impl Counter {
    /// Adds `n`. Only the owning thread may call this (or `sub`).
    #[inline]
    pub fn add(&self, n: u64) {
        self.value
            .store(self.value.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Subtracts `n` (gauges). Owning thread only.
    #[inline]
    pub fn sub(&self, n: u64) {
        self.value
            .store(self.value.load(Relaxed).wrapping_sub(n), Relaxed);
    }

    /// The count since the last reset.
    #[inline]
    pub fn get(&self) -> u64 {
        self.value
            .load(Relaxed)
            .wrapping_sub(self.base.load(Relaxed))
    }

    /// Starts counting from zero again (any thread).
    pub fn reset(&self) {
        self.base.store(self.value.load(Relaxed), Relaxed);
    }
}

macro_rules! thread_stats {
    (counters: $($name:ident),* $(,)?; gauges: $($gauge:ident),* $(,)?) => {
        /// Counters of one worker thread (C's `struct thread_stats`). Only the owning worker
        /// changes them; readers aggregate.
        #[derive(Default)]
        pub struct ThreadStats {
            $(pub $name: Counter,)*
            $(pub $gauge: Counter,)*
        }

        /// A plain snapshot (sum over workers) of `ThreadStats`.
        #[derive(Default, Debug, Clone, Copy)]
        pub struct ThreadStatsTotals {
            $(pub $name: u64,)*
            $(pub $gauge: u64,)*
        }

        impl ThreadStats {
            pub fn add_into(&self, t: &mut ThreadStatsTotals) {
                $(t.$name += self.$name.get();)*
                $(t.$gauge += self.$gauge.get();)*
            }
            /// `stats reset`: the counters, not the buffer gauges.
            pub fn reset(&self) {
                $(self.$name.reset();)*
            }
        }
    };
}

thread_stats!(
    counters:
    get_cmds,
    get_misses,
    get_expired,
    get_flushed,
    touch_cmds,
    touch_misses,
    delete_misses,
    incr_misses,
    decr_misses,
    cas_misses,
    meta_cmds,
    bytes_read,
    bytes_written,
    flush_cmds,
    conn_yields,
    auth_cmds,
    auth_errors,
    idle_kicks,
    response_obj_oom,
    read_buf_oom,
    store_too_large,
    store_no_memory,
    get_extstore,
    get_aborted_extstore,
    get_oom_extstore,
    recache_from_extstore,
    miss_from_extstore,
    badcrc_from_extstore;
    // buffer cache gauges (C reads them from the thread's rbuf cache; reset keeps them)
    gauges:
    response_obj_count,
    response_obj_bytes,
    read_buf_count,
    read_buf_bytes,
    read_buf_bytes_free,
);

/// Most slab classes (C's MAX_NUMBER_OF_SLAB_CLASSES) and (class, LRU) ids (POWER_LARGEST).
pub const MAX_CLASSES: usize = 64;
pub const LRU_IDS: usize = 256;

/// Per-class command counters of one worker (C's `struct slab_stats`).
#[derive(Default)]
pub struct SlabCounters {
    pub set_cmds: Counter,
    pub delete_hits: Counter,
    pub incr_hits: Counter,
    pub decr_hits: Counter,
    pub cas_hits: Counter,
    pub cas_badval: Counter,
    pub touch_hits: Counter,
}

/// A worker's per-class counters: fetch hits per (class, LRU) id and command counters per
/// class. Only the worker increments them.
pub struct ClassStats {
    pub lru_hits: Box<[Counter]>,
    pub slab: Box<[SlabCounters]>,
}

impl Default for ClassStats {
    fn default() -> Self {
        ClassStats {
            lru_hits: (0..LRU_IDS).map(|_| Counter::default()).collect(),
            slab: (0..MAX_CLASSES).map(|_| SlabCounters::default()).collect(),
        }
    }
}

impl ClassStats {
    pub fn reset(&self) {
        for h in self.lru_hits.iter() {
            h.reset();
        }
        for c in self.slab.iter() {
            for f in [
                &c.set_cmds,
                &c.delete_hits,
                &c.incr_hits,
                &c.decr_hits,
                &c.cas_hits,
                &c.cas_badval,
                &c.touch_hits,
            ] {
                f.reset();
            }
        }
    }

    /// The counters of class `cls` (its LRU bits stripped).
    #[inline]
    pub fn class(&self, cls: u8) -> &SlabCounters {
        &self.slab[(cls & 63) as usize]
    }
}

/// Per-class sums over all workers: [set, delete, incr, decr, cas_hits, cas_badval, touch] per
/// class, and fetch hits per (class, LRU) id.
pub struct ClassTotals {
    pub lru_hits: Vec<u64>,
    pub slab: Vec<[u64; 7]>,
}

impl ClassTotals {
    pub fn new() -> Self {
        ClassTotals {
            lru_hits: vec![0; LRU_IDS],
            slab: vec![[0; 7]; MAX_CLASSES],
        }
    }

    pub fn add(&mut self, c: &ClassStats) {
        for (t, h) in self.lru_hits.iter_mut().zip(c.lru_hits.iter()) {
            *t += h.get();
        }
        for (t, s) in self.slab.iter_mut().zip(c.slab.iter()) {
            let v = [
                &s.set_cmds,
                &s.delete_hits,
                &s.incr_hits,
                &s.decr_hits,
                &s.cas_hits,
                &s.cas_badval,
                &s.touch_hits,
            ];
            for (i, f) in v.iter().enumerate() {
                t[i] += f.get();
            }
        }
    }

    /// Fetch hits of a class over its four LRUs.
    pub fn get_hits(&self, cls: usize) -> u64 {
        (0..4).map(|l| self.lru_hits[cls | (l << 6)]).sum()
    }

    /// Sum of one column over all classes.
    pub fn total(&self, col: usize) -> u64 {
        self.slab.iter().map(|r| r[col]).sum()
    }
}

impl Default for ClassTotals {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds `n` to a counter owned by the calling thread.
#[inline]
pub fn bump(c: &Counter, n: u64) {
    c.add(n);
}

/// The server clock: seconds since (process start - ITEM_UPDATE_INTERVAL - 2), ticked once a
/// second by the dispatcher's clock event (C's `current_time`).
pub static CURRENT_TIME: AtomicU32 = AtomicU32::new(0);
/// Unix time the clock counts from (C's `process_started`).
pub static PROCESS_STARTED: AtomicI64 = AtomicI64::new(0);

#[inline]
pub fn current_time() -> u32 {
    CURRENT_TIME.load(Relaxed)
}

/// `debugtime p|r` freezes the clock; `debugtime N` shifts it (C's debug clock).
pub static CLOCK_PAUSED: AtomicBool = AtomicBool::new(false);
pub static CLOCK_DELTA: AtomicI64 = AtomicI64::new(0);

/// `debugtime p|r`: freeze or resume the server clock.
pub fn set_clock_paused(p: bool) {
    CLOCK_PAUSED.store(p, Relaxed);
}

/// `debugtime N`: shift the clock (C adds the running delta to the current time again).
pub fn clock_add_delta(d: i64) {
    let delta = CLOCK_DELTA.fetch_add(d, Relaxed) + d;
    let now = CURRENT_TIME.load(Relaxed) as i64;
    CURRENT_TIME.store((now + delta) as u32, Relaxed);
}

/// Largest relative expiry; larger values are absolute unix times (C's REALTIME_MAXDELTA).
const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// The server clock as request parsing reads it, passed in so parsers stay pure functions.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Seconds since start (C's current_time).
    pub now: u32,
    /// Unix time the clock counts from (C's process_started).
    pub process_started: i64,
}

impl Clock {
    /// The running server's clock.
    #[inline]
    pub fn now() -> Clock {
        Clock {
            now: current_time(),
            process_started: PROCESS_STARTED.load(Relaxed),
        }
    }

    /// A client exptime in server time (C's realtime with EXPTIME_TO_POSITIVE_TIME: a
    /// negative one is already expired).
    pub fn realtime(&self, exptime: i32) -> u32 {
        self.realtime_wide(if exptime < 0 {
            REALTIME_MAXDELTA + 1
        } else {
            exptime as i64
        })
    }

    /// C's realtime on a time_t: the binary protocol's unsigned 32-bit expiry times go
    /// through it unchanged (no negative-means-expired rule).
    pub fn realtime_wide(&self, exptime: i64) -> u32 {
        if exptime == 0 {
            return 0;
        }
        if exptime > REALTIME_MAXDELTA {
            if exptime <= self.process_started {
                return 1;
            }
            return (exptime - self.process_started) as u32;
        }
        (exptime + self.now as i64) as u32
    }
}

/// Serialises `stats reset` against itself (C's STATS_LOCK around the reset).
pub static RESET_LOCK: Mutex<()> = Mutex::new(());

/// Appends `STAT name value\r\n`.
/// Where stat producers put their (name, value) pairs. Collection stays apart from
/// formatting: the text protocol formats `STAT name value` lines (the impl for a byte
/// buffer); the binary protocol's STAT replies will format packets from the same producers.
pub trait StatSink {
    fn stat(&mut self, name: &str, value: &dyn std::fmt::Display);
    /// A value given as raw bytes (C prints some as `%c` of any byte).
    fn stat_bytes(&mut self, name: &str, value: &[u8]);
}

impl StatSink for Vec<u8> {
    fn stat(&mut self, name: &str, value: &dyn std::fmt::Display) {
        use std::io::Write;
        let _ = write!(self, "STAT {} {}\r\n", name, value);
    }
    fn stat_bytes(&mut self, name: &str, value: &[u8]) {
        self.extend_from_slice(b"STAT ");
        self.extend_from_slice(name.as_bytes());
        self.push(b' ');
        self.extend_from_slice(value);
        self.extend_from_slice(b"\r\n");
    }
}

/// Adds one stat to a sink (C's APPEND_STAT).
pub fn append_stat(out: &mut dyn StatSink, name: &str, value: impl std::fmt::Display) {
    out.stat(name, &value);
}

// ---- per-prefix counters (C's stats_prefix.c): `stats detail on|off|dump`, `-D` ----

/// Buckets of the prefix table (C's PREFIX_HASH_SIZE).
const PREFIX_HASH_SIZE: usize = 256;
/// Most prefixes tracked; keys with new prefixes beyond it are not counted.
const MAX_PREFIX_COUNT: usize = 1 << 16;

/// Counters of one key prefix.
struct PrefixEntry {
    prefix: Box<[u8]>,
    gets: u64,
    hits: u64,
    sets: u64,
    deletes: u64,
}

/// The prefix table: fixed buckets, newest entry first in each.
struct PrefixTable {
    buckets: Vec<Vec<PrefixEntry>>,
    count: usize,
}

/// Guarded like C's STATS_LOCK; only touched while `stats detail on` is in effect.
static PREFIXES: Mutex<PrefixTable> = Mutex::new(PrefixTable {
    buckets: Vec::new(),
    count: 0,
});

fn prefixes() -> std::sync::MutexGuard<'static, PrefixTable> {
    PREFIXES.lock().unwrap_or_else(|e| e.into_inner())
}

impl PrefixTable {
    /// The entry for `key`'s prefix (the bytes before the first delimiter), created if new;
    /// None when the key has no delimiter or the table is full (C's stats_prefix_find).
    fn find(&mut self, key: &[u8]) -> Option<&mut PrefixEntry> {
        let delim = settings::get().prefix_delimiter;
        // A NUL ends the key for this purpose, as in C.
        let length = key
            .iter()
            .take_while(|&&b| b != 0)
            .position(|&b| b == delim)?;
        let head = &key[..length];
        if self.buckets.is_empty() {
            self.buckets = (0..PREFIX_HASH_SIZE).map(|_| Vec::new()).collect();
        }
        let hash = crate::hash::hash_fn(settings::get().hash_algorithm);
        let b = hash(head) as usize % PREFIX_HASH_SIZE;
        // C compares only the key's prefix length, so a longer stored prefix that starts
        // with it matches too.
        if let Some(i) = self.buckets[b]
            .iter()
            .position(|e| e.prefix.starts_with(head))
        {
            return self.buckets[b].get_mut(i);
        }
        if self.count >= MAX_PREFIX_COUNT {
            return None;
        }
        self.count += 1;
        self.buckets[b].insert(
            0,
            PrefixEntry {
                prefix: head.into(),
                gets: 0,
                hits: 0,
                sets: 0,
                deletes: 0,
            },
        );
        self.buckets[b].first_mut()
    }
}

/// Whether per-prefix counting is on (`stats detail on`, `-D`).
pub fn detail_enabled() -> bool {
    settings::get().detail_enabled.load(Relaxed)
}

/// Counts a fetch of `key` (C's stats_prefix_record_get).
pub fn prefix_record_get(key: &[u8], hit: bool) {
    if let Some(e) = prefixes().find(key) {
        e.gets += 1;
        if hit {
            e.hits += 1;
        }
    }
}

/// Counts a store of `key`.
pub fn prefix_record_set(key: &[u8]) {
    if let Some(e) = prefixes().find(key) {
        e.sets += 1;
    }
}

/// Counts a delete of `key`.
pub fn prefix_record_delete(key: &[u8]) {
    if let Some(e) = prefixes().find(key) {
        e.deletes += 1;
    }
}

/// Forgets every prefix (`stats reset`).
pub fn prefix_clear() {
    let mut t = prefixes();
    t.buckets.clear();
    t.count = 0;
}

/// `stats detail dump`: one PREFIX line per prefix in table order, then END.
pub fn prefix_dump(out: &mut Vec<u8>) {
    use std::io::Write;
    let t = prefixes();
    for e in t.buckets.iter().flatten() {
        out.extend_from_slice(b"PREFIX ");
        out.extend_from_slice(&e.prefix);
        let _ = write!(
            out,
            " get {} hit {} set {} del {}\r\n",
            e.gets, e.hits, e.sets, e.deletes
        );
    }
    out.extend_from_slice(b"END\r\n");
}
