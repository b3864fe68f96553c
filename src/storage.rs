//! Values on flash (C's storage.c): what goes to the extstore engine and how it comes back.
//! The write thread moves values of COLD tail items to flash, leaving a small header item
//! (ITEM_HDR) in their place; `read` brings a value back for a get without blocking the
//! worker; `compact` rewrites pages that deletes have thinned out. The engine itself is
//! `crate::extstore`.
//!
//! An object on flash is the item as it was in memory (header, CAS, key, flags, value in one
//! piece even when the item was chunked), with the key's hash in the `time` field and a
//! CRC-32C of everything from `nbytes` on in the `exptime` field, as C lays it out; the
//! first 24 bytes (list pointers in memory) are zero.
//!
//! Threads: `mc-ext-write` (the write thread), `mc-ext-compact` (compaction); reads complete
//! on the engine's `mc-ext-io` threads.

mod compact;
pub mod read;

use crate::extstore::{self, Engine, ObjIo};
use crate::items::flash::{self, ItemHdr, ITEM_HDR_SIZE};
use crate::items::store::{ItemRef, Store, COLD_LRU};
use crate::items::{self, Item, ITEM_HDR, ITEM_LINKED, ITEM_PRESERVE_FLAGS};
use crate::settings::extstore::{
    ExtTunables, PAGE_BUCKET_CHUNKED, PAGE_BUCKET_COUNT, PAGE_BUCKET_DEFAULT, PAGE_BUCKET_LOWTTL,
};
use crate::settings::{self, Settings};
use crate::slabs::with_slabs;
use crate::stats::current_time;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Offset of `nbytes` in an item (C's STORE_OFFSET): the checksum covers the object from here.
pub const STORE_OFFSET: usize = std::mem::offset_of!(Item, nbytes);
const _: () = assert!(STORE_OFFSET == 32);
const TIME_OFFSET: usize = std::mem::offset_of!(Item, time);
const EXPTIME_OFFSET: usize = std::mem::offset_of!(Item, exptime);
const FLAGS_OFFSET: usize = std::mem::offset_of!(Item, it_flags);

/// Shortest sleep of the write thread, in microseconds (C's WRITE_SLEEP_MIN).
const WRITE_SLEEP_MIN: u32 = 200;

/// The process's storage: the engine and what the storage threads share.
pub struct Storage {
    pub engine: Arc<Engine>,
    /// Held by the write thread except between passes (C's storage_write_plock). The hash
    /// table expansion needs no pause of its own: these threads touch the table only under
    /// item locks, all of which it holds to swap tables.
    write_plock: Mutex<()>,
    /// Held by the compaction thread except while it waits (C's storage_compact_plock).
    compact_plock: Mutex<()>,
    /// Set by the write thread to start a compaction check (C's storage_compact_cond).
    compact_wake: Mutex<bool>,
    compact_cond: Condvar,
    /// `stats`: extstore_compact_* (C's stats.extstore_compact_*).
    pub compact_lost: AtomicU64,
    pub compact_rescues: AtomicU64,
    pub compact_resc_cold: AtomicU64,
    pub compact_resc_old: AtomicU64,
    pub compact_skipped: AtomicU64,
    /// Percent of memory pressure the automover computed (bits of an f64).
    pub memory_pressure: AtomicU64,
}

static STORAGE: OnceLock<Storage> = OnceLock::new();

/// The storage, when an `ext_path` was given and it started.
#[inline]
pub fn get() -> Option<&'static Storage> {
    STORAGE.get()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn tunables() -> &'static ExtTunables {
    &settings::get().ext_rt
}

/// Opens the files and starts the engine (C's storage_init). Err holds what C prints.
pub fn init(s: &Settings) -> Result<(), String> {
    let e = &s.ext;
    // C's list holds the last path given first; files are cut into pages in that order.
    let files: Vec<extstore::ConfFile> = e
        .paths
        .iter()
        .map(|p| extstore::ConfFile {
            file: p.file.clone(),
            page_count: p.page_count,
            total_size: p.total_size,
            free_bucket: p.free_bucket,
        })
        .collect();
    let cf = extstore::Conf {
        page_size: e.page_size,
        page_buckets: PAGE_BUCKET_COUNT,
        wbuf_size: e.wbuf_size,
        wbuf_count: PAGE_BUCKET_COUNT,
        io_threadcount: e.io_threadcount,
        io_depth: e.io_depth,
    };
    let engine = extstore::init(&files, &cf).map_err(|err| {
        let mut msg = format!("Failed to initialize external storage: {}\n", err.message());
        if err == extstore::InitError::OpenFail {
            msg.push_str(&format!(
                "extstore open: {}\n",
                crate::sys::strerror(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
            ));
        }
        msg
    })?;
    let _ = STORAGE.set(Storage {
        engine,
        write_plock: Mutex::new(()),
        compact_plock: Mutex::new(()),
        compact_wake: Mutex::new(false),
        compact_cond: Condvar::new(),
        compact_lost: AtomicU64::new(0),
        compact_rescues: AtomicU64::new(0),
        compact_resc_cold: AtomicU64::new(0),
        compact_resc_old: AtomicU64::new(0),
        compact_skipped: AtomicU64::new(0),
        memory_pressure: AtomicU64::new(0),
    });
    Ok(())
}

/// Starts the compaction and write threads (C's start_storage_compact_thread and
/// start_storage_write_thread). Err holds C's message.
pub fn start_threads() -> Result<(), String> {
    let Some(sto) = get() else {
        return Ok(());
    };
    std::thread::Builder::new()
        .name("mc-ext-compact".into())
        .spawn(move || compact::run(sto))
        .map_err(|_| "Failed to start storage compaction thread\n".to_string())?;
    std::thread::Builder::new()
        .name("mc-ext-write".into())
        .spawn(move || write_thread(sto))
        .map_err(|_| "Failed to start storage writer thread\n".to_string())?;
    Ok(())
}

/// An object on flash is gone with its header item (C's storage_delete, called at every
/// unlink of a header item).
pub fn delete_hdr(h: ItemHdr, ntotal: usize) {
    if let Some(sto) = get() {
        sto.engine.delete(
            h.page_id,
            u64::from(h.page_version),
            1,
            ntotal.min(u32::MAX as usize) as u32,
        );
    }
}

/// Whether a header's object still exists (C's storage_validate_item; the crawler drops
/// headers whose page is gone).
pub fn hdr_valid(h: ItemHdr) -> bool {
    get().is_none_or(|sto| sto.engine.check(h.page_id, u64::from(h.page_version)))
}

/// Writes the flash image of `it` into `buf` (exactly ITEM_ntotal bytes), with the hash in
/// `time`, LINKED cleared, and the checksum in `exptime`.
///
/// # Safety
/// `it` is live and its item lock is held (its value cannot change).
unsafe fn fill_image(it: *mut Item, hv: u32, buf: &mut [u8]) {
    // SAFETY: per the contract; every read stays inside the item's header part or its value
    // pieces, which together are `buf.len()` bytes.
    unsafe {
        let nbytes = (*it).nbytes.max(0) as usize;
        let head = buf.len() - nbytes;
        buf[..STORE_OFFSET].fill(0);
        let src = std::slice::from_raw_parts(it as *const u8, head);
        buf[STORE_OFFSET..head].copy_from_slice(&src[STORE_OFFSET..head]);
        let mut at = head;
        for seg in items::value_segments(it) {
            let n = seg.len().min(buf.len() - at);
            buf[at..at + n].copy_from_slice(&seg[..n]);
            at += n;
        }
    }
    let flags = u16::from_ne_bytes([buf[FLAGS_OFFSET], buf[FLAGS_OFFSET + 1]]) & !ITEM_LINKED;
    buf[FLAGS_OFFSET..FLAGS_OFFSET + 2].copy_from_slice(&flags.to_ne_bytes());
    buf[TIME_OFFSET..TIME_OFFSET + 4].copy_from_slice(&hv.to_ne_bytes());
    let crc = crate::crc32c::crc32c(0, &buf[STORE_OFFSET..]);
    buf[EXPTIME_OFFSET..EXPTIME_OFFSET + 4].copy_from_slice(&crc.to_ne_bytes());
}

/// Moves the value of the COLD tail item of class `cls` to flash if it has been idle over
/// `item_age` seconds (0: any age), leaving a header item in its place (C's storage_write).
fn write_one(st: &'static Store, sto: &Storage, cls: u8, item_age: u32) -> bool {
    let Some(tail) = st.pull_cold_tail(cls) else {
        return false;
    };
    let it = &tail.it;
    let now = current_time();
    if it.is_hdr() || (item_age != 0 && now.wrapping_sub(it.time()) <= item_age) {
        return false;
    }
    let p = it.as_ptr();
    let Some(hdr) = st.alloc(
        it.key(),
        it.client_flags(),
        it.exptime(),
        ITEM_HDR_SIZE as i32,
    ) else {
        return false;
    };
    let t = tunables();
    let low_ttl = t.low_ttl.load(Relaxed);
    let bucket = if it.exptime().wrapping_sub(now) < low_ttl {
        PAGE_BUCKET_LOWTTL
    } else if it.is_chunked() {
        PAGE_BUCKET_CHUNKED
    } else {
        PAGE_BUCKET_DEFAULT
    };
    let ntotal = it.ntotal();
    let mut io = ObjIo {
        len: ntotal as u32,
        mode: extstore::IoMode::Write,
        ..ObjIo::default()
    };
    // SAFETY: the item lock is held (tail.guard), so the value cannot change while copied.
    let written = sto.engine.write(bucket, bucket, &mut io, |buf| unsafe {
        fill_image(p, tail.hv, buf)
    });
    if !written {
        // Dropping `hdr` frees it.
        return false;
    }
    let h = ItemHdr {
        page_version: io.page_version,
        offset: io.offset,
        page_id: io.page_id,
    };
    let hp = hdr.as_ptr();
    // SAFETY: the header item is ours alone until linked; the original is locked.
    unsafe {
        flash::set_hdr(hp, h);
        (*hp).nbytes = (*p).nbytes;
        (*hp).it_flags |= ITEM_HDR | ((*p).it_flags & ITEM_PRESERVE_FLAGS);
        st.replace(p, &hdr, tail.hv, items::get_cas(p));
    }
    if crate::logger::enabled(crate::logger::LOG_EVICTIONS) {
        log_ext_write(it, bucket, now);
    }
    true
}

/// `watch evictions`: a value went to flash (C's LOGGER_EXTSTORE_WRITE).
fn log_ext_write(it: &ItemRef, bucket: u32, now: u32) {
    let mut key = Vec::with_capacity(it.key().len() * 3);
    crate::logger::uriencode(it.key(), &mut key);
    let ttl: i64 = if it.exptime() == 0 {
        -1
    } else {
        i64::from(it.exptime().wrapping_sub(now) as i32)
    };
    let fetched = if it.flags() & items::ITEM_FETCHED != 0 {
        "yes"
    } else {
        "no"
    };
    let line = format!(
        "type=extwrite key={} fetch={} ttl={} la={} clsid={} bucket={}",
        String::from_utf8_lossy(&key),
        fetched,
        ttl,
        now.wrapping_sub(it.time()) as i32,
        it.class(),
        bucket
    );
    crate::logger::text(crate::logger::LOG_EVICTIONS, &line);
}

/// The write thread (C's storage_write_thread): walks the classes from the largest down,
/// moving COLD tails to flash when a class runs short of free chunks while the global page
/// pool is low, or when items are older than `ext_item_age`; sleeps between idle passes,
/// backing off up to `ext_max_sleep`, and wakes compaction as it writes.
fn write_thread(sto: &'static Storage) {
    crate::logger::logger_create();
    let Some(st) = crate::items::store::store() else {
        return;
    };
    let s = settings::get();
    let t = &s.ext_rt;
    let page_size = s.slab_page_size.max(1) as i64;
    let mut backoff = [0u32; 64];
    let mut counter: u32 = 0;
    let mut to_sleep: u32 = WRITE_SLEEP_MIN;
    let mut check_compact: i64 = page_size;
    let mut plock = lock(&sto.write_plock);
    loop {
        let mut do_sleep = true;
        let item_size = t.item_size.load(Relaxed) as usize;
        let (min_class, global_pages) = with_slabs(|sa| {
            (
                sa.clsid(item_size) as u32,
                sa.global_page_pool_size() as u32,
            )
        })
        .unwrap_or((0, 0));
        let pool_min = t.global_pool_min.load(Relaxed);
        let target_pages = if global_pages < pool_min {
            pool_min - global_pages
        } else if global_pages == pool_min {
            // Start flushing a little early.
            1
        } else {
            0
        };
        counter = counter.wrapping_add(1);
        to_sleep = to_sleep.min(t.max_sleep.load(Relaxed));
        for x in (1..64u32).rev() {
            if min_class > x
                || (backoff[x as usize] != 0 && !counter.is_multiple_of(backoff[x as usize]))
            {
                continue;
            }
            let (mut chunks_free, chunks_perpage) = with_slabs(|sa| {
                let (free, _) = sa.class_counts(x as usize);
                (free, sa.perslab(x as usize))
            })
            .unwrap_or((0, 0));
            if chunks_perpage == 0 {
                continue;
            }
            let chunk_size = (page_size / i64::from(chunks_perpage)).max(1);
            let max_pages = match chunk_size {
                ..500 => 3,
                500..1000 => 4,
                1000..2000 => 5,
                _ => target_pages,
            };
            let target = chunks_perpage * target_pages.min(max_pages);
            let mut did_move = false;
            loop {
                let item_age = if chunks_free < target {
                    0
                } else {
                    t.item_age.load(Relaxed)
                };
                // C passes the age as is; u32::MAX means no age qualifies.
                if item_age == u32::MAX && chunks_free >= target {
                    break;
                }
                if !write_one(st, sto, x as u8, item_age) {
                    break;
                }
                chunks_free += 1;
                check_compact -= chunk_size;
                if check_compact < 0 {
                    sto.wake_compaction();
                    check_compact = page_size;
                }
                did_move = true;
                do_sleep = false;
                if to_sleep > WRITE_SLEEP_MIN {
                    to_sleep /= 2;
                }
            }
            backoff[x as usize] = if did_move {
                1
            } else {
                backoff[x as usize].saturating_add(1)
            };
        }
        drop(plock);
        if do_sleep {
            backoff = [1; 64];
            check_compact -= i64::from(to_sleep) * 10;
            if check_compact < 0 {
                sto.wake_compaction();
                check_compact = page_size;
            }
            std::thread::sleep(Duration::from_micros(u64::from(to_sleep)));
            to_sleep = to_sleep.saturating_add(1);
        }
        plock = lock(&sto.write_plock);
    }
}

impl Storage {
    /// Asks the compaction thread to check the pages (C's pthread_cond_signal of
    /// storage_compact_cond).
    fn wake_compaction(&self) {
        *lock(&self.compact_wake) = true;
        self.compact_cond.notify_one();
    }

    /// `stats`: the extstore lines (C's storage_stats), in C's order.
    pub fn stats_lines(&self) -> Vec<(&'static str, String)> {
        let st = self.engine.stats();
        let f = f64::from_bits(self.memory_pressure.load(Relaxed));
        vec![
            (
                "extstore_memory_pressure",
                crate::settings::cnum::fmt_fixed(f, 2),
            ),
            (
                "extstore_compact_lost",
                self.compact_lost.load(Relaxed).to_string(),
            ),
            (
                "extstore_compact_rescues",
                self.compact_rescues.load(Relaxed).to_string(),
            ),
            (
                "extstore_compact_resc_cold",
                self.compact_resc_cold.load(Relaxed).to_string(),
            ),
            (
                "extstore_compact_resc_old",
                self.compact_resc_old.load(Relaxed).to_string(),
            ),
            (
                "extstore_compact_skipped",
                self.compact_skipped.load(Relaxed).to_string(),
            ),
            ("extstore_page_allocs", st.page_allocs.to_string()),
            ("extstore_page_evictions", st.page_evictions.to_string()),
            ("extstore_page_reclaims", st.page_reclaims.to_string()),
            ("extstore_pages_free", st.pages_free.to_string()),
            ("extstore_pages_used", st.pages_used.to_string()),
            ("extstore_objects_evicted", st.objects_evicted.to_string()),
            ("extstore_objects_read", st.objects_read.to_string()),
            ("extstore_objects_written", st.objects_written.to_string()),
            ("extstore_objects_used", st.objects_used.to_string()),
            ("extstore_bytes_evicted", st.bytes_evicted.to_string()),
            ("extstore_bytes_written", st.bytes_written.to_string()),
            ("extstore_bytes_read", st.bytes_read.to_string()),
            ("extstore_bytes_used", st.bytes_used.to_string()),
            ("extstore_bytes_fragmented", st.bytes_fragmented.to_string()),
            (
                "extstore_limit_maxbytes",
                (st.page_count * st.page_size).to_string(),
            ),
            ("extstore_io_queue", st.io_queue.to_string()),
        ]
    }

    /// `stats extstore`: each page's version, bytes in use, bucket and free bucket (C's
    /// process_extstore_stats).
    pub fn page_lines(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, p) in self.engine.page_data().iter().enumerate() {
            out.push((format!("{i}:version"), p.version.to_string()));
            out.push((format!("{i}:bytes"), p.bytes_used.to_string()));
            out.push((format!("{i}:bucket"), p.bucket.to_string()));
            out.push((format!("{i}:free_bucket"), p.free_bucket.to_string()));
        }
        out
    }

    /// `stats reset` of the compaction counters.
    pub fn reset_stats(&self) {
        for c in [
            &self.compact_lost,
            &self.compact_rescues,
            &self.compact_resc_cold,
            &self.compact_resc_old,
            &self.compact_skipped,
        ] {
            c.store(0, Relaxed);
        }
    }
}

/// The LRU id of COLD headers, for compaction's check of whether a header was hit lately.
pub(crate) const COLD: u8 = COLD_LRU;
