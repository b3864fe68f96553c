//! The slab mover (C's slabs_mover.c): a thread that empties one page of a slab class and
//! hands it to another class, or to the global page pool where pages above the memory limit
//! go back to the system. `slabs reassign <src> <dst>` asks for a move; the automover
//! (`slab_automove.rs`), run by this thread once a second, asks on its own.
//!
//! A move walks the page chunk by chunk. Free chunks are taken off their free list; live
//! items are copied into a free chunk of the same class elsewhere and swapped in under their
//! item lock (chunks of chunked items too); expired ones are dropped. Items that are busy
//! (being written, or locked) make the walk start over after a pause that grows from 1 µs
//! to 5 ms; with no memory to copy into, COLD tails of the class are evicted when the move
//! was asked for by hand or memory is full.

use crate::items::store::{self, ItemRef, Store, COLD_LRU, HOT_LRU};
use crate::items::ITEM_SLABBED;
use crate::items::{self, Item, ItemChunk, ITEM_CHUNK, ITEM_CHUNKED, ITEM_FETCHED, ITEM_LINKED};
use crate::settings;
use crate::slab_automove::Algorithm as Automove;
use crate::slabs::{self, SlabAllocator, SLAB_GLOBAL_PAGE_POOL};
use crate::stats::{current_time, STATS};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reply of a reassign request (C's reassign_result_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reassign {
    Ok,
    Running,
    BadClass,
    NoSpare,
    SrcDstSame,
}

/// Passes over a page with busy items before the mover may evict or delete to make progress
/// (C's SLAB_MOVE_MAX_LOOPS).
const MAX_BUSY_LOOPS: u32 = 5000;

/// What looking at one chunk found (C's move_status); the text is `slab_reassign_last_busy_status`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MoveStatus {
    None,
    Pass,
    FromSlab,
    FromLru,
    Busy,
    BusyUploading,
    BusyActive,
    BusyFloating,
    Locked,
}

impl MoveStatus {
    fn text(self) -> &'static str {
        match self {
            MoveStatus::None => "none",
            MoveStatus::Pass => "pass",
            MoveStatus::FromSlab => "from_slab",
            MoveStatus::FromLru => "from_lru",
            MoveStatus::Busy => "busy",
            MoveStatus::BusyUploading => "busy_uploading",
            MoveStatus::BusyActive => "busy_active",
            MoveStatus::BusyFloating => "busy_floating",
            MoveStatus::Locked => "locked",
        }
    }
}

/// The page move under way (C's struct slab_rebalance). Ids 0/0 mean none.
struct Rebalance {
    s_clsid: usize,
    d_clsid: usize,
    /// The page being emptied; None until the move starts.
    page: Option<NonNull<u8>>,
    slab_end: usize,
    slab_pos: usize,
    cls_size: usize,
    /// Chunks known to be empty, by index in the page.
    completed: Vec<bool>,
    busy_items: u64,
    rescues: u64,
    inline_reclaim: u64,
    chunk_rescues: u64,
    busy_nomem: u64,
    busy_deletes: u64,
    busy_loops: u32,
    last_busy_status: MoveStatus,
    done: bool,
}

impl Rebalance {
    const IDLE: Rebalance = Rebalance {
        s_clsid: 0,
        d_clsid: 0,
        page: None,
        slab_end: 0,
        slab_pos: 0,
        cls_size: 0,
        completed: Vec::new(),
        busy_items: 0,
        rescues: 0,
        inline_reclaim: 0,
        chunk_rescues: 0,
        busy_nomem: 0,
        busy_deletes: 0,
        busy_loops: 0,
        last_busy_status: MoveStatus::None,
        done: false,
    };

    fn start_addr(&self) -> usize {
        self.page.map_or(0, |p| p.as_ptr() as usize)
    }

    fn contains(&self, it: NonNull<Item>) -> bool {
        let a = it.as_ptr() as usize;
        a >= self.start_addr() && a < self.slab_end
    }
}

/// The mover's state (C's struct slab_rebal_thread), under its mutex. The thread holds the
/// mutex except while it waits for work, so a request that finds it taken is refused as
/// busy, as in C.
struct Mover {
    run: bool,
    /// Evict from the source class when no free memory is left to copy items into: set for
    /// requests by hand, and when memory was full as the move started.
    allow_evictions: bool,
    /// A free chunk of the source class, outside the page, ready to receive the next item.
    new_it: Option<NonNull<Item>>,
    rebal: Rebalance,
    am_version: u32,
    /// Second (wall clock) of the automover's last move to a class, which limits it to one a
    /// second.
    am_last: u64,
    automove: Option<Automove>,
}

// SAFETY: the raw pointers are into slab pages; the state is only reached through its mutex
// and the pointed-to memory is guarded by the slabs and item locks as each use states.
unsafe impl Send for Mover {}

struct Shared {
    mover: Mutex<Mover>,
    cond: Condvar,
}

static MOVER: OnceLock<Shared> = OnceLock::new();
static THREAD: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);
/// Set to stop the thread. An atomic, not the mover's `run`: the thread holds the mover's
/// lock while it retries a page whose items are busy, which can last forever once the
/// workers holding them have stopped.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn lock(m: &Mutex<Mover>) -> MutexGuard<'_, Mover> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the mover thread (C's start_slab_maintenance_thread).
pub fn start() -> std::io::Result<()> {
    let Some(st) = store::store() else {
        return Err(std::io::Error::other("item store not initialised"));
    };
    let shared = MOVER.get_or_init(|| Shared {
        mover: Mutex::new(Mover {
            run: true,
            allow_evictions: false,
            new_it: None,
            rebal: Rebalance::IDLE,
            am_version: settings::get()
                .slab_automove_version
                .load(Ordering::Relaxed),
            am_last: 0,
            automove: None,
        }),
        cond: Condvar::new(),
    });
    {
        let mut m = lock(&shared.mover);
        m.automove = Some(Automove::new(st));
        m.run = true;
    }
    let h = std::thread::Builder::new()
        .name("mc-slabmaint".into())
        .spawn(move || run(st, shared))?;
    *THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    Ok(())
}

/// Stops the mover and waits for it (C's stop_slab_maintenance_thread). A page move under
/// way is left where it is: a restart takes its page back as it finds it.
pub fn stop() {
    let Some(shared) = MOVER.get() else {
        return;
    };
    STOP.store(true, Ordering::Relaxed);
    lock(&shared.mover).run = false;
    shared.cond.notify_all();
    let h = THREAD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(h) = h {
        let _ = h.join();
    }
}

/// Asks for a page of `src` to be moved to `dst` (C's slabs_reassign): `src` -1 picks any
/// class with a spare page, `dst` 0 is the global pool. Refused as running while a move is
/// under way.
pub fn reassign(src: i32, dst: i32, allow_evictions: bool) -> Reassign {
    let Some(shared) = MOVER.get() else {
        return Reassign::Running;
    };
    let mut m = match shared.mover.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => return Reassign::Running,
    };
    let r = do_reassign(&mut m, src, dst, allow_evictions);
    if r == Reassign::Ok {
        shared.cond.notify_one();
    }
    r
}

/// C's do_slabs_reassign: the checks, then the move is recorded for the thread.
fn do_reassign(m: &mut Mover, src: i32, dst: i32, allow_evictions: bool) -> Reassign {
    if src == dst {
        return Reassign::SrcDstSame;
    }
    let ok = slabs::with_slabs(|sa| {
        let src = if src == -1 {
            sa.pick_any_for_reassign(dst.max(0) as usize)
        } else {
            src
        };
        if !sa.class_check(src) || !sa.class_check(dst) {
            return Err(Reassign::BadClass);
        }
        if sa.page_count(src as usize) < 2 {
            return Err(Reassign::NoSpare);
        }
        Ok(src as usize)
    });
    let src = match ok {
        Some(Ok(s)) => s,
        Some(Err(e)) => return e,
        None => return Reassign::BadClass,
    };
    m.rebal.s_clsid = src;
    m.rebal.d_clsid = dst as usize;
    if allow_evictions {
        m.allow_evictions = true;
    }
    Reassign::Ok
}

fn run(st: &'static Store, shared: &'static Shared) {
    let mut backoff_us: u64 = 1;
    const BACKOFF_MAX_US: u64 = 5000;
    let mut idle_rounds = 0u32;
    // Automover moves and forced deletions are logged, as C's mover does.
    crate::logger::logger_create();
    let mut m = lock(&shared.mover);
    while m.run && !STOP.load(Ordering::Relaxed) {
        if m.rebal.s_clsid != 0 || m.rebal.d_clsid != 0 {
            if m.rebal.page.is_none() && !rebalance_start(&mut m) {
                m.rebal = Rebalance::IDLE;
                continue;
            }
            if m.rebal.done {
                rebalance_finish(&mut m);
            } else {
                rebalance_prep(st, &mut m);
                match rebalance_move(st, &mut m) {
                    PageWalk::Busy => {
                        std::thread::sleep(Duration::from_micros(backoff_us));
                        backoff_us = (backoff_us * 2).min(BACKOFF_MAX_US);
                    }
                    PageWalk::Clear => backoff_us = 1,
                    PageWalk::Going => {}
                }
            }
        } else if check_automove(&mut m) {
            idle_rounds = 0;
        } else {
            // Short waits while work was recent, then once a second.
            idle_rounds += 1;
            let wait = if idle_rounds > 11 {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(100)
            };
            m = shared
                .cond
                .wait_timeout(m, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Sets up the page move (C's slab_rebalance_start). False if the source has no spare page
/// or source and destination are the same.
fn rebalance_start(m: &mut Mover) -> bool {
    let r = &mut m.rebal;
    if r.s_clsid == r.d_clsid {
        return false;
    }
    // Only the mover gives pages back to the pool, so whether memory is full cannot change
    // during the move (short of `cache_memlimit`).
    let Some((pool, full, peek)) = slabs::with_slabs(|sa| {
        (
            sa.global_page_pool_size(),
            sa.mem_limit_hit(),
            sa.peek_page(r.s_clsid),
        )
    }) else {
        return false;
    };
    if full && pool == 0 {
        m.allow_evictions = true;
    }
    let Some((page, size, perslab)) = peek else {
        return false;
    };
    r.page = Some(page);
    r.slab_pos = page.as_ptr() as usize;
    r.slab_end = page.as_ptr() as usize + size as usize * perslab as usize;
    r.cls_size = size as usize;
    r.completed = vec![false; perslab as usize];
    // A page from the pool holds no items.
    r.done = r.s_clsid == SLAB_GLOBAL_PAGE_POOL;
    STATS.slab_reassign_running.store(true, Ordering::Relaxed);
    true
}

/// Takes a free chunk of class `id` that is not in the page being emptied; chunks from the
/// page that come off the free list are marked done on the way (C's slab_rebalance_alloc).
fn rebalance_alloc(r: &mut Rebalance, id: usize, allow_newpage: bool) -> Option<NonNull<Item>> {
    loop {
        let it = slabs::with_slabs(|sa| sa.alloc(id, !allow_newpage)).flatten()?;
        if !r.contains(it) {
            return Some(it);
        }
        // SAFETY: a chunk just taken off the free list is ours alone.
        unsafe { mark_cleared(it.as_ptr()) };
        r.inline_reclaim += 1;
    }
}

/// Marks a chunk of the page being emptied as cleared: neither free-listed nor in use
/// (ITEM_SLABBED|ITEM_FETCHED, C's overloaded meaning).
///
/// # Safety
/// Nothing else references the chunk.
unsafe fn mark_cleared(it: *mut Item) {
    // SAFETY: per the contract.
    unsafe {
        (*it).refcount.store(0, Ordering::Relaxed);
        (*it).it_flags = ITEM_SLABBED | ITEM_FETCHED;
    }
}

/// Makes sure a chunk is ready to copy the next live item into (C's slab_rebalance_prep).
fn rebalance_prep(st: &Store, m: &mut Mover) {
    if m.new_it.is_some() {
        return;
    }
    let s_clsid = m.rebal.s_clsid;
    m.new_it = rebalance_alloc(&mut m.rebal, s_clsid, false);
    if m.new_it.is_some() {
        return;
    }
    // Stuck for long with nothing to copy into: evict if memory is full, else take a new
    // page for the class rather than evicting while memory is still free.
    if !m.allow_evictions && m.rebal.busy_loops > MAX_BUSY_LOOPS {
        if slabs::with_slabs(|sa| sa.mem_limit_hit()).unwrap_or(false) {
            m.allow_evictions = true;
        } else {
            m.new_it = rebalance_alloc(&mut m.rebal, s_clsid, true);
            if m.new_it.is_some() {
                return;
            }
        }
    }
    if m.allow_evictions {
        let segmented = settings::get().lru_segmented.load(Ordering::Relaxed);
        for _ in 0..10 {
            if st.pull_tail(s_clsid as u8, COLD_LRU, 0, true, 0) <= 0 && segmented {
                st.pull_tail(s_clsid as u8, HOT_LRU, 0, false, 0);
            }
            m.new_it = rebalance_alloc(&mut m.rebal, s_clsid, false);
            if m.new_it.is_some() {
                break;
            }
        }
    }
}

/// A chunk looked at under the slabs lock: the item it belongs to (the head item for a
/// chunk of a chunked item), and the item lock taken for it.
struct Locked {
    it: *mut Item,
    ch: *mut ItemChunk,
    hv: u32,
    guard: Option<crate::sys::LockGuard<'static, ()>>,
}

/// Reads a chunk's flags as they stand, while other threads may be changing other bits
/// under their item lock. The decisions taken on them only rely on bits changed under the
/// slabs lock (ITEM_SLABBED), or are checked again under the item lock (ITEM_LINKED).
///
/// # Safety
/// `it` points into a slab page (always mapped while the allocator lives).
unsafe fn flags_now(it: *const Item) -> u16 {
    // SAFETY: the field is 2-aligned in mapped memory; an atomic acquire load pairs with the
    // release store that publishes a chunk's ITEM_CHUNK flag after its header fields.
    unsafe {
        AtomicU16::from_ptr(ptr::addr_of!((*it).it_flags) as *mut u16).load(Ordering::Acquire)
    }
}

/// Classifies the chunk at `pos` with the slabs lock held (C's _slabs_locked_cb): free
/// chunks are taken off their list; a linked item is locked (try only: the lock order is
/// item lock before slabs lock) and referenced.
///
/// # Safety
/// `pos` is a chunk of the page being moved out of class `s_clsid`; `sa` is the allocator
/// (its lock held).
unsafe fn inspect(
    st: &'static Store,
    sa: &mut SlabAllocator,
    pos: *mut Item,
    s_clsid: usize,
) -> (MoveStatus, Locked) {
    let mut a = Locked {
        it: pos,
        ch: ptr::null_mut(),
        hv: 0,
        guard: None,
    };
    // SAFETY: per the contract; the page is mapped, and while the slabs lock is held no
    // chunk can be freed or allocated, so a chunk marked ITEM_CHUNK has a live head item.
    unsafe {
        let mut flags = flags_now(pos);
        if flags & ITEM_CHUNK != 0 {
            a.ch = pos as *mut ItemChunk;
            a.it = (*a.ch).head;
            flags = flags_now(a.it);
            if flags & ITEM_SLABBED != 0 {
                // Cannot happen (a chunk is freed with its head, under this lock); wait.
                return (MoveStatus::BusyFloating, a);
            }
        }
        if flags == ITEM_SLABBED | ITEM_FETCHED {
            return (MoveStatus::Pass, a);
        }
        if flags & ITEM_SLABBED != 0 {
            // A free chunk (never a chunk of a live item: those are freed with their head).
            sa.unlink_free_chunk(s_clsid, a.it);
            (*a.it).it_flags = 0;
            return (MoveStatus::FromSlab, a);
        }
        if flags & ITEM_LINKED == 0 {
            // Being written, or on its way to being freed: wait for it.
            return (MoveStatus::BusyFloating, a);
        }
        // Linked: the key is written and stays until the item is freed, which cannot
        // happen while we hold the slabs lock.
        a.hv = st.hash(items::key(a.it));
        let Some(g) = st.item_trylock(a.hv) else {
            return (MoveStatus::Locked, a);
        };
        a.guard = Some(g);
        let is_linked = (*a.it).it_flags & ITEM_LINKED != 0;
        let refcount = (*a.it).refcount.fetch_add(1, Ordering::Relaxed) + 1;
        let status = if refcount == 2 {
            if is_linked {
                MoveStatus::FromLru
            } else {
                MoveStatus::BusyUploading
            }
        } else if refcount > 2 && is_linked {
            MoveStatus::BusyActive
        } else {
            MoveStatus::Busy
        };
        if matches!(status, MoveStatus::Busy | MoveStatus::BusyUploading) {
            // Give the reference back while the slabs lock still keeps the item from being
            // freed and reused under us.
            (*a.it).refcount.fetch_sub(1, Ordering::Relaxed);
            a.guard = None;
        }
        (status, a)
    }
}

/// Moves a live, otherwise unreferenced item (or one chunk of a chunked item) into the
/// prepared chunk and marks its old place cleared (C's slab_rebalance_rescue).
///
/// # Safety
/// `a` holds the item lock and one reference of `a.it`, whose refcount is 2 (the table's
/// and ours); `new_it` is a free chunk of the same class outside the page.
unsafe fn rescue(st: &Store, r: &mut Rebalance, a: &Locked, new_it: NonNull<Item>) {
    let new = new_it.as_ptr();
    // SAFETY: per the contract nobody else reads or writes the item or chunk while we copy
    // it (readers need a reference, writers the item lock).
    unsafe {
        if a.ch.is_null() {
            let it = a.it;
            ptr::copy_nonoverlapping(it as *const u8, new as *mut u8, r.cls_size);
            (*new).prev = ptr::null_mut();
            (*new).next = ptr::null_mut();
            (*new).h_next = ptr::null_mut();
            (*new).it_flags &= !ITEM_LINKED;
            (*new).refcount.store(1, Ordering::Relaxed);
            let new_ref = ItemRef::from_raw(new_it);
            st.replace_keep_flash(it, &new_ref, a.hv, items::get_cas(it));
            drop(new_ref);
            if (*new).it_flags & ITEM_CHUNKED != 0 {
                let mut ch = items::first_chunk(new);
                while !ch.is_null() {
                    (*ch).head = new;
                    ch = (*ch).next;
                }
            }
            mark_cleared(it);
            r.rescues += 1;
        } else {
            let ch = a.ch;
            let nch = new as *mut ItemChunk;
            ptr::copy_nonoverlapping(
                ch as *const u8,
                nch as *mut u8,
                (*ch).used.max(0) as usize + items::ITEM_CHUNK_HEADER_SIZE,
            );
            if (*ch).prev.is_null() {
                items::set_first_chunk(a.it, nch);
            } else {
                (*(*ch).prev).next = nch;
            }
            if !(*ch).next.is_null() {
                (*(*ch).next).prev = nch;
            }
            mark_cleared(ch as *mut Item);
            r.chunk_rescues += 1;
            (*a.it).refcount.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// An item that others still read: a plain item is copied and swapped in (the old copy is
/// freed by its last reader, and cleared on a later pass); a chunked one is deleted after
/// the page has been waited on for long (C's slab_rebalance_active_rescue).
///
/// # Safety
/// As for `rescue`, except the refcount is above 2.
unsafe fn active_rescue(st: &Store, m: &mut Mover, a: &Locked) {
    // SAFETY: per the contract; the copy reads a header and value no writer can change
    // without the item lock we hold.
    unsafe {
        if a.ch.is_null() && (*a.it).it_flags & ITEM_CHUNKED == 0 {
            let Some(new_it) = m.new_it.take() else {
                return;
            };
            let new = new_it.as_ptr();
            ptr::copy_nonoverlapping(a.it as *const u8, new as *mut u8, m.rebal.cls_size);
            (*new).prev = ptr::null_mut();
            (*new).next = ptr::null_mut();
            (*new).h_next = ptr::null_mut();
            (*new).it_flags &= !ITEM_LINKED;
            (*new).refcount.store(1, Ordering::Relaxed);
            let new_ref = ItemRef::from_raw(new_it);
            st.replace_keep_flash(a.it, &new_ref, a.hv, items::get_cas(a.it));
            drop(new_ref);
            m.rebal.rescues += 1;
        } else if m.rebal.busy_loops > MAX_BUSY_LOOPS {
            if crate::logger::enabled(crate::logger::LOG_EVICTIONS) {
                let it = a.it;
                crate::logger::eviction(
                    items::key(it),
                    (*it).exptime,
                    (*it).time,
                    (*it).it_flags & items::ITEM_FETCHED != 0,
                    (*it).nbytes,
                    items::clsid_of((*it).slabs_clsid),
                );
            }
            st.unlink(a.it, a.hv);
            m.rebal.busy_deletes += 1;
        }
    }
}

/// Outcome of one step of the page walk.
enum PageWalk {
    /// In the middle of the page.
    Going,
    /// Reached the end with busy items: start over after a pause.
    Busy,
    /// Reached the end with every chunk cleared.
    Clear,
}

/// Looks at the next chunk of the page and clears it if it can (C's slab_rebalance_move).
fn rebalance_move(st: &'static Store, m: &mut Mover) -> PageWalk {
    let offset = (m.rebal.slab_pos - m.rebal.start_addr()) / m.rebal.cls_size.max(1);
    if !m.rebal.completed.get(offset).copied().unwrap_or(true) {
        let pos = m.rebal.slab_pos as *mut Item;
        let s_clsid = m.rebal.s_clsid;
        // SAFETY: `pos` is a chunk inside the page being moved (offset < perslab).
        let looked = slabs::with_slabs(|sa| unsafe { inspect(st, sa, pos, s_clsid) });
        if let Some((status, a)) = looked {
            step(st, m, offset, status, &a);
            m.rebal.last_busy_status = status;
        }
    }
    m.rebal.slab_pos += m.rebal.cls_size.max(1);
    if m.rebal.slab_pos >= m.rebal.slab_end {
        if m.rebal.busy_items > 0 {
            m.rebal.slab_pos = m.rebal.start_addr();
            STATS
                .slab_reassign_busy_items
                .fetch_add(m.rebal.busy_items, Ordering::Relaxed);
            *STATS
                .slab_reassign_last_busy_status
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(m.rebal.last_busy_status.text());
            m.rebal.busy_items = 0;
            m.rebal.busy_loops += 1;
            return PageWalk::Busy;
        }
        m.rebal.done = true;
        return PageWalk::Clear;
    }
    PageWalk::Going
}

/// Acts on what `inspect` found, with the item lock (if any) still held in `a`.
fn step(st: &'static Store, m: &mut Mover, offset: usize, status: MoveStatus, a: &Locked) {
    let r_done = |m: &mut Mover| m.rebal.completed[offset] = true;
    match status {
        MoveStatus::BusyActive | MoveStatus::FromLru => {
            let it = a.it;
            // SAFETY: `inspect` took the item lock and a reference; the item is live.
            unsafe {
                let now = current_time();
                let oldest_live = settings::get().oldest_live.load(Ordering::Relaxed);
                let exp = (*it).exptime;
                let flushed = (*it).time <= oldest_live && oldest_live <= now;
                if (exp != 0 && exp < now) || flushed {
                    // Expired: dropped, not saved.
                    if a.ch.is_null() && (*it).it_flags & ITEM_CHUNKED == 0 {
                        st.unlink(it, a.hv);
                        if (*it).refcount.load(Ordering::Relaxed) == 1 {
                            mark_cleared(it);
                            r_done(m);
                        } else {
                            store::release_ref(it);
                            m.rebal.busy_items += 1;
                        }
                    } else {
                        // Chunked: its chunks come back to the free lists when it is freed.
                        st.unlink(it, a.hv);
                        store::release_ref(it);
                        m.rebal.busy_items += 1;
                    }
                } else if m.new_it.is_none() {
                    // Nothing to copy into yet.
                    m.rebal.busy_items += 1;
                    m.rebal.busy_nomem += 1;
                    (*it).refcount.fetch_sub(1, Ordering::Relaxed);
                } else if (*it).refcount.load(Ordering::Relaxed) == 2 {
                    if let Some(new_it) = m.new_it.take() {
                        rescue(st, &mut m.rebal, a, new_it);
                    }
                    r_done(m);
                } else {
                    active_rescue(st, m, a);
                    m.rebal.busy_items += 1;
                    store::release_ref(it);
                }
            }
        }
        MoveStatus::FromSlab => {
            // SAFETY: `inspect` took the free chunk off its list; it is ours.
            unsafe { mark_cleared(a.it) };
            r_done(m);
        }
        MoveStatus::Busy
        | MoveStatus::BusyUploading
        | MoveStatus::Locked
        | MoveStatus::BusyFloating => m.rebal.busy_items += 1,
        MoveStatus::Pass => r_done(m),
        MoveStatus::None => {}
    }
}

/// Hands the emptied page over and adds the move's counts to the stats (C's
/// slab_rebalance_finish).
fn rebalance_finish(m: &mut Mover) {
    let s_clsid = m.rebal.s_clsid;
    let new_it = m.new_it.take();
    let r = std::mem::replace(&mut m.rebal, Rebalance::IDLE);
    slabs::with_slabs(|sa| {
        if let Some(it) = new_it {
            // SAFETY: the prepared chunk came from `alloc(s_clsid)` and was not used.
            unsafe { sa.free(it, s_clsid) };
        }
        if let Some(page) = r.page {
            // SAFETY: every chunk of the page was cleared: none is referenced or free-listed.
            unsafe { sa.finalize_page_move(r.s_clsid, r.d_clsid, page) };
        }
    });
    let g = &STATS;
    g.slabs_moved.fetch_add(1, Ordering::Relaxed);
    g.slab_reassign_rescues
        .fetch_add(r.rescues, Ordering::Relaxed);
    g.slab_reassign_inline_reclaim
        .fetch_add(r.inline_reclaim, Ordering::Relaxed);
    g.slab_reassign_chunk_rescues
        .fetch_add(r.chunk_rescues, Ordering::Relaxed);
    g.slab_reassign_busy_deletes
        .fetch_add(r.busy_deletes, Ordering::Relaxed);
    g.slab_reassign_busy_nomem
        .fetch_add(r.busy_nomem, Ordering::Relaxed);
    g.slab_reassign_running.store(false, Ordering::Relaxed);
    m.allow_evictions = false;
}

/// Runs the automover once a second when it is on, starting the move it picks (C's
/// slab_rebalance_check_automove). True if a move was started.
fn check_automove(m: &mut Mover) -> bool {
    let s = settings::get();
    if s.slab_automove.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if m.am_last == now {
        return false;
    }
    let version = s.slab_automove_version.load(Ordering::Relaxed);
    if version != m.am_version {
        if let Some(st) = store::store() {
            m.automove = Some(Automove::new(st));
        }
        m.am_version = version;
    }
    let Some(am) = m.automove.as_mut() else {
        return false;
    };
    let Some((src, dst)) = am.run() else {
        return false;
    };
    let ok = do_reassign(m, src as i32, dst as i32, false) == Reassign::Ok;
    if crate::logger::enabled(crate::logger::LOG_SYSEVENTS) {
        crate::logger::text(
            crate::logger::LOG_SYSEVENTS,
            &format!(
                "type=slab_move src={} dst={} state={}",
                src,
                dst,
                if ok { "ok" } else { "fail" }
            ),
        );
    }
    if dst != 0 {
        // Moves between classes at most once a second; reclaiming to the pool may go on.
        m.am_last = now;
    }
    true
}
