//! Compaction (C's storage_compact_thread, storage_compact_check and
//! storage_compact_readback): when few pages are free, the most fragmented page (or, when
//! dropping, the oldest) is read back a write buffer at a time; objects whose header still
//! points at them are rewritten to the compact (or cold-compact, or old) bucket and their
//! headers updated; then the page is closed and freed.

use super::{lock, Storage, COLD, FLAGS_OFFSET, STORE_OFFSET};
use crate::extstore::{Engine, IoMode, ObjIo};
use crate::items::flash::{self, ItemHdr, ITEM_HDR_SIZE};
use crate::items::store::{self, Store};
use crate::items::{self, Item, ITEM_CAS, ITEM_CFLAGS, ITEM_HDR, ITEM_LINKED};
use crate::logger::{self, LOG_SYSEVENTS};
use crate::settings;
use crate::settings::extstore::{
    PAGE_BUCKET_COLDCOMPACT, PAGE_BUCKET_COMPACT, PAGE_BUCKET_COUNT, PAGE_BUCKET_LOWTTL,
    PAGE_BUCKET_OLD,
};
use crate::stats::current_time;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Pause after a page is done (C's MIN_STORAGE_COMPACT_SLEEP, microseconds).
const COMPACT_SLEEP_US: u64 = 1000;

/// What the check decided beyond the page; the cold-compact and old flags stick across
/// checks as C's do.
#[derive(Default)]
struct Flags {
    drop_unread: bool,
    has_coldcompact: bool,
    has_old: bool,
    use_old: bool,
}

/// The page being compacted.
struct Target {
    page_id: u16,
    page_version: u64,
    page_size: u64,
}

/// A read of part of a page, waited for on this thread.
struct Wait {
    io: ObjIo,
    done: Mutex<Option<isize>>,
    cond: Condvar,
}

fn read_done(_e: &Engine, io: *mut ObjIo, ret: isize) {
    // SAFETY: `data` is the address of the compaction thread's Wait, which lives as long as
    // the thread (it never returns) and waits for this call.
    let w = unsafe { &*((*io).data as *const Wait) };
    let mut g = lock(&w.done);
    *g = Some(ret);
    w.cond.notify_one();
}

fn sysevent(line: String) {
    if logger::enabled(LOG_SYSEVENTS) {
        logger::text(LOG_SYSEVENTS, &line);
    }
}

/// The compaction thread's loop. Never returns.
pub(super) fn run(sto: &'static Storage) {
    logger::logger_create();
    let Some(st) = store::store() else {
        return;
    };
    let wbuf_size = settings::get().ext.wbuf_size.max(1) as usize;
    let mut readback = vec![0u8; wbuf_size];
    let mut wait = Wait {
        io: ObjIo::default(),
        done: Mutex::new(None),
        cond: Condvar::new(),
    };
    let mut flags = Flags::default();
    let mut target: Option<Target> = None;
    let mut page_offset: u64 = 0;
    let mut plock = lock(&sto.compact_plock);
    loop {
        if target.is_none() {
            match check(sto, &mut flags) {
                Some(t) => {
                    page_offset = 0;
                    sysevent(format!(
                        "type=compact_start id={} version={}",
                        t.page_id, t.page_version
                    ));
                    target = Some(t);
                }
                None => {
                    drop(plock);
                    {
                        let mut w = lock(&sto.compact_wake);
                        while !*w {
                            w = sto.compact_cond.wait(w).unwrap_or_else(|e| e.into_inner());
                        }
                        *w = false;
                    }
                    plock = lock(&sto.compact_plock);
                    continue;
                }
            }
        }
        let Some(t) = target.as_ref() else { continue };
        *lock(&wait.done) = None;
        wait.io = ObjIo {
            data: &wait as *const Wait as usize,
            buf: readback.as_mut_ptr(),
            len: wbuf_size as u32,
            offset: page_offset as u32,
            page_id: t.page_id,
            page_version: t.page_version as u32,
            mode: IoMode::Read,
            cb: Some(read_done),
            ..ObjIo::default()
        };
        // SAFETY: the IO and the buffer live on this thread's stack for good, and the wait
        // below lasts until the callback ran.
        unsafe { sto.engine.submit(&mut wait.io) };
        let ret = {
            let mut g = lock(&wait.done);
            loop {
                if let Some(r) = *g {
                    break r;
                }
                g = wait.cond.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        };
        if ret < 1 {
            sysevent(format!("type=compact_abort id={}", t.page_id));
            target = None;
            continue;
        }
        sysevent(format!(
            "type=compact_read_start id={} offset={}",
            t.page_id, page_offset
        ));
        readback_page(st, sto, t, page_offset, &readback, &flags);
        page_offset += wbuf_size as u64;
        if page_offset >= t.page_size {
            sto.engine.close_page(t.page_id, t.page_version);
            sysevent(format!("type=compact_end id={}", t.page_id));
            target = None;
            drop(plock);
            std::thread::sleep(Duration::from_micros(COMPACT_SLEEP_US));
            plock = lock(&sto.compact_plock);
        }
    }
}

/// Picks a page to compact, if any (C's storage_compact_check): with fewer than
/// `ext_compact_under` free pages in a bucket, its most fragmented page under
/// `ext_max_frag`; with fewer than `ext_drop_under`, its oldest page when unread values may
/// be dropped or a cold-compact/old bucket exists. A full cold-compact or old bucket evicts
/// its oldest page instead.
fn check(sto: &Storage, flags: &mut Flags) -> Option<Target> {
    let e = &sto.engine;
    let st = e.stats();
    if st.pages_used == 0 {
        return None;
    }
    let t = &settings::get().ext_rt;
    let max_frag = t.max_frag.load();
    let frag_limit = (st.page_size as f64 * max_frag) as u64;
    sysevent(format!(
        "type=compact_fraginfo ratio={} bytes={}",
        crate::settings::cnum::fmt_fixed(max_frag, 2),
        frag_limit
    ));
    flags.drop_unread = false;
    let pages = e.page_data();
    #[derive(Clone, Copy)]
    struct Bucket {
        pages_total: u32,
        pages_free: u32,
        lowest: Option<(u16, u64)>,
        low: Option<(u16, u64, u64)>,
    }
    let mut b = [Bucket {
        pages_total: 0,
        pages_free: 0,
        lowest: None,
        low: None,
    }; PAGE_BUCKET_COUNT as usize];
    for (id, p) in pages.iter().enumerate() {
        let Some(bk) = b.get_mut(p.free_bucket as usize) else {
            continue;
        };
        bk.pages_total += 1;
        if p.version == 0 {
            bk.pages_free += 1;
            continue;
        }
        if p.active {
            continue;
        }
        if bk.lowest.is_none_or(|(_, v)| p.version < v) {
            bk.lowest = Some((id as u16, p.version));
        }
        if p.bytes_used < frag_limit {
            let frag = st.page_size.saturating_sub(p.bytes_used);
            if bk.low.is_none_or(|(_, _, f)| frag > f) {
                bk.low = Some((id as u16, p.version, frag));
            }
        }
    }
    let target = |id: u16, version: u64| Target {
        page_id: id,
        page_version: version,
        page_size: st.page_size,
    };
    for (bucket, has) in [
        (PAGE_BUCKET_COLDCOMPACT, &mut flags.has_coldcompact),
        (PAGE_BUCKET_OLD, &mut flags.has_old),
    ] {
        let bk = &b[bucket as usize];
        if bk.pages_total > 0 {
            *has = true;
            if bk.pages_free == 0 {
                if let Some((id, v)) = bk.lowest {
                    e.evict_page(id, v);
                    return None;
                }
            }
        }
    }
    let compact_under = t.compact_under.load(Relaxed);
    let drop_under = t.drop_under.load(Relaxed);
    for (x, bk) in b.iter().enumerate() {
        let x = x as u32;
        if bk.pages_total == 0 || x == PAGE_BUCKET_LOWTTL || bk.pages_free >= compact_under {
            continue;
        }
        if let Some((id, v, _)) = bk.low {
            return Some(target(id, v));
        }
        if bk.pages_free < drop_under && x != PAGE_BUCKET_COLDCOMPACT && x != PAGE_BUCKET_OLD {
            if let Some((id, v)) = bk.lowest {
                if t.drop_unread.load(Relaxed) {
                    flags.drop_unread = true;
                }
                if flags.drop_unread || flags.has_coldcompact || flags.has_old {
                    flags.use_old = flags.has_old;
                    return Some(target(id, v));
                }
            }
        }
    }
    None
}

/// Counts of one readback, for the log line and `stats`.
#[derive(Default)]
struct Tally {
    rescues: u64,
    rescues_realloc: u64,
    lost: u64,
    lost_oom: u64,
    skipped: u64,
    rescue_cold: u64,
    rescue_old: u64,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Walks the objects of one read of the page and rescues the live ones (C's
/// storage_compact_readback).
fn readback_page(
    st: &'static Store,
    sto: &Storage,
    t: &Target,
    page_offset: u64,
    buf: &[u8],
    flags: &Flags,
) {
    let mut tally = Tally::default();
    let mut max_waits: u32 = 5000;
    let mut offset = 0usize;
    let s = settings::get();
    while offset + items::ITEM_HEADER_SIZE <= buf.len() {
        let head = &buf[offset..];
        let nkey = head[std::mem::offset_of!(Item, nkey)] as usize;
        if nkey == 0 {
            break;
        }
        let it_flags = u16::from_ne_bytes([head[FLAGS_OFFSET], head[FLAGS_OFFSET + 1]]);
        let nbytes = u32_at(head, STORE_OFFSET) as i32;
        if nbytes < 2 {
            break;
        }
        let ntotal = items::item_make_header_total(
            nkey,
            nbytes as usize,
            it_flags & ITEM_CAS != 0,
            u32::from(it_flags & ITEM_CFLAGS != 0),
        );
        if ntotal > head.len() {
            break;
        }
        let key_at = items::ITEM_HEADER_SIZE + if it_flags & ITEM_CAS != 0 { 8 } else { 0 };
        let key = &head[key_at..key_at + nkey];
        let hv = st.hash(key);
        let obj_offset = offset as u64 + page_offset;
        {
            let _g = st.item_lock(hv);
            // SAFETY: the item lock for `hv` is held.
            let found = unsafe { st.find_locked(key, hv) };
            if let Some(hdr) = found {
                let now = current_time();
                let oldest_live = s.oldest_live.load(Relaxed);
                let flushed = hdr.time() <= oldest_live && oldest_live <= now;
                let alive = hdr.is_hdr() && !flushed && (hdr.exptime() == 0 || hdr.exptime() > now);
                let here = hdr.hdr().is_some_and(|h| {
                    h.page_id == t.page_id
                        && u64::from(h.page_version) == t.page_version
                        && u64::from(h.offset) == obj_offset
                });
                if alive && here {
                    rescue(
                        st,
                        sto,
                        &hdr,
                        hv,
                        &head[..ntotal],
                        flags,
                        &mut tally,
                        &mut max_waits,
                        t,
                    );
                }
            }
        }
        offset += ntotal;
    }
    sto.compact_lost.fetch_add(tally.lost, Relaxed);
    sto.compact_rescues.fetch_add(tally.rescues, Relaxed);
    sto.compact_skipped.fetch_add(tally.skipped, Relaxed);
    sto.compact_resc_cold.fetch_add(tally.rescue_cold, Relaxed);
    sto.compact_resc_old.fetch_add(tally.rescue_old, Relaxed);
    sysevent(format!(
        "type=compact_read_end id={} offset={} rescues={} rescues_realloc={} lost={} lost_oom={} skipped={}",
        t.page_id,
        offset,
        tally.rescues,
        tally.rescues_realloc,
        tally.lost,
        tally.lost_oom,
        tally.skipped
    ));
}

/// Rewrites one live object and points its header at the copy, under the header's item
/// lock.
#[allow(clippy::too_many_arguments)]
fn rescue(
    st: &'static Store,
    sto: &Storage,
    hdr: &store::ItemRef,
    hv: u32,
    obj: &[u8],
    flags: &Flags,
    tally: &mut Tally,
    max_waits: &mut u32,
    t: &Target,
) {
    let e = &sto.engine;
    let ntotal = obj.len() as u32;
    let mut bucket = if flags.use_old {
        PAGE_BUCKET_OLD
    } else {
        PAGE_BUCKET_COMPACT
    };
    // The object leaves this page first, as C's does: a page left empty is freed at once
    // and can take the copy.
    e.delete(t.page_id, t.page_version, 1, ntotal);
    // SAFETY: the header item is live (our reference).
    let cold = unsafe { (*hdr.as_ptr()).slabs_clsid } & 0xc0 == COLD;
    if cold {
        if flags.has_coldcompact {
            bucket = PAGE_BUCKET_COLDCOMPACT;
        } else if flags.drop_unread {
            tally.skipped += 1;
            return;
        }
    }
    let mut io = ObjIo {
        len: ntotal,
        mode: IoMode::Write,
        ..ObjIo::default()
    };
    let mut written = false;
    let mut tries = *max_waits;
    while tries > 0 {
        if e.write(bucket, bucket, &mut io, |b| b.copy_from_slice(obj)) {
            written = true;
            break;
        }
        tries -= 1;
        if *max_waits > 10 {
            *max_waits -= 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    if !written {
        tally.lost += 1;
        return;
    }
    let h = ItemHdr {
        page_version: io.page_version,
        offset: io.offset,
        page_id: io.page_id,
    };
    if hdr.refcount() == 2 {
        // SAFETY: the item lock is held and no one else holds the header item (refcount:
        // the table's and ours), so nobody reads its location meanwhile.
        unsafe { flash::set_hdr(hdr.as_ptr(), h) };
    } else {
        // Someone reads the old location: give the key a new header instead.
        match st.alloc(
            hdr.key(),
            hdr.client_flags(),
            hdr.exptime(),
            ITEM_HDR_SIZE as i32,
        ) {
            Some(new) => {
                let (np, op) = (new.as_ptr(), hdr.as_ptr());
                // SAFETY: `new` is ours alone; the old header is locked. Its object was let
                // go above, so the swap must not do it again.
                unsafe {
                    (*np).it_flags |= (*op).it_flags & !ITEM_LINKED & !items::ITEM_SLABBED;
                    (*np).it_flags |= ITEM_HDR;
                    (*np).time = (*op).time;
                    (*np).nbytes = (*op).nbytes;
                    flash::set_hdr(np, h);
                    st.replace_keep_flash(op, &new, hv, hdr.cas());
                }
                tally.rescues_realloc += 1;
            }
            None => {
                tally.lost += 1;
                tally.lost_oom += 1;
                return;
            }
        }
    }
    tally.rescues += 1;
    if bucket == PAGE_BUCKET_COLDCOMPACT {
        tally.rescue_cold += 1;
    } else if bucket == PAGE_BUCKET_OLD {
        tally.rescue_old += 1;
    }
}
