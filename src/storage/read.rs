//! Reading a value back from flash for a get (C's storage_get_item, _storage_get_item_cb and
//! recache_or_free). The get's reply waits in its response object while an engine IO thread
//! reads the object: its header part into a scratch area, its value straight into a new item
//! (chunked like any item of that size). The IO thread checks the checksum and the key and
//! wakes the worker through its `Waker`; the worker then sends the value, or turns the reply
//! into a miss. When the reply is done, a value read often enough goes back into memory in
//! place of its header (recache).

use super::{get, EXPTIME_OFFSET, FLAGS_OFFSET, STORE_OFFSET};
use crate::extstore::{Engine, IoMode, ObjIo};
use crate::items::store::{self, ItemRef};
use crate::items::{
    self, ITEM_ACTIVE, ITEM_CAS, ITEM_CFLAGS, ITEM_FETCHED, ITEM_LINKED, ITEM_PRESERVE_FLAGS,
};
use crate::stats::{self, current_time, ThreadStats, ITEM_UPDATE_INTERVAL};
use std::sync::atomic::{AtomicU8, Ordering};

/// Pieces a read holds without allocating.
const IOVS_INLINE: usize = 4;

const NO_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// Largest header part of an object: item header, CAS, a 250-byte key and its NUL, flags.
const HEAD_MAX: usize = 320;

const QUEUED: u8 = 0;
const SUBMITTED: u8 = 1;
const DONE: u8 = 2;

/// Told by an IO thread that a read of `token`'s is done (the worker owning the connection).
pub trait Waker: Sync {
    fn wake(&self, token: i32);
}

/// One value being read back from flash (C's io_pending_storage_t). Boxed: the engine holds
/// its address while the read is in flight.
pub struct FlashRead {
    io: ObjIo,
    /// The pieces the object is read into: the scratch area, then the value's pieces. Held
    /// inline for values of up to three pieces (no allocation per read), else on the heap.
    iovs_inline: [libc::iovec; IOVS_INLINE],
    iovs_heap: Vec<libc::iovec>,
    iovcnt: usize,
    /// The object's header part lands here.
    head: [u8; HEAD_MAX],
    head_len: usize,
    /// The header item (the get's reference, now the read's).
    hdr: ItemRef,
    /// The item the value is read into.
    buf: Option<ItemRef>,
    state: AtomicU8,
    /// Set by the IO thread before `state` becomes DONE.
    miss: bool,
    badcrc: bool,
    stats: &'static ThreadStats,
    wake: Option<(&'static dyn Waker, i32)>,
}

// SAFETY: the raw pointers inside (the IO's iovecs into `head` and the value item) point
// into memory this object owns; the IO thread uses them only between submit and DONE.
unsafe impl Send for FlashRead {}

/// What a finished read gives the reply.
pub enum Outcome {
    /// The value, in an item only this reply holds.
    Hit(ItemRef),
    /// Gone from flash, unreadable or damaged: answer as a miss.
    Miss,
}

impl FlashRead {
    /// Prepares the read of a header item's value (C's storage_get_item); the get's hit is
    /// already counted. Err gives the header back when no memory could be found for the
    /// value (C's get_oom_extstore path).
    pub fn start(hdr: ItemRef, stats: &'static ThreadStats) -> Result<Box<FlashRead>, ItemRef> {
        let (Some(st), Some(h)) = (store::store(), hdr.hdr()) else {
            return Err(hdr);
        };
        let nbytes = hdr.value_len();
        let ntotal = hdr.ntotal();
        let head_len = ntotal - nbytes;
        if head_len > HEAD_MAX || nbytes < 2 {
            return Err(hdr);
        }
        let Some(mut buf) = st.alloc(hdr.key(), hdr.client_flags(), hdr.exptime(), nbytes as i32)
        else {
            stats::bump(&stats.get_oom_extstore, 1);
            return Err(hdr);
        };
        // The value's pieces first (they live in `buf`, whose address does not move), then
        // the box, whose scratch area takes the header part.
        let mut iovs_inline = [NO_IOV; IOVS_INLINE];
        let mut iovs_heap = Vec::new();
        let mut iovcnt = 1;
        iovs_inline[0].iov_len = head_len;
        let mut off = 0;
        while off < nbytes {
            let w = buf.window_mut(off);
            if w.is_empty() {
                return Err(hdr);
            }
            let v = libc::iovec {
                iov_base: w.as_mut_ptr().cast(),
                iov_len: w.len(),
            };
            if iovcnt < IOVS_INLINE {
                iovs_inline[iovcnt] = v;
            } else {
                if iovs_heap.is_empty() {
                    iovs_heap.extend_from_slice(&iovs_inline);
                }
                iovs_heap.push(v);
            }
            iovcnt += 1;
            off += w.len();
        }
        let mut f = Box::new(FlashRead {
            io: ObjIo::default(),
            iovs_inline,
            iovs_heap,
            iovcnt,
            head: [0; HEAD_MAX],
            head_len,
            hdr,
            buf: Some(buf),
            state: AtomicU8::new(QUEUED),
            miss: false,
            badcrc: false,
            stats,
            wake: None,
        });
        let head_ptr = f.head.as_mut_ptr().cast();
        f.iovs_mut()[0].iov_base = head_ptr;
        let data = &mut *f as *mut FlashRead as usize;
        f.io = ObjIo {
            data,
            buf: std::ptr::null_mut(),
            iov: f.iovs_mut().as_mut_ptr(),
            iovcnt: iovcnt as u32,
            page_version: h.page_version,
            len: ntotal as u32,
            offset: h.offset,
            page_id: h.page_id,
            mode: IoMode::Read,
            cb: Some(read_done),
            ..ObjIo::default()
        };
        stats::bump(&stats.get_extstore, 1);
        Ok(f)
    }

    /// The iovecs in use.
    fn iovs_mut(&mut self) -> &mut [libc::iovec] {
        if self.iovs_heap.is_empty() {
            &mut self.iovs_inline[..self.iovcnt]
        } else {
            &mut self.iovs_heap[..]
        }
    }

    fn iovs(&self) -> &[libc::iovec] {
        if self.iovs_heap.is_empty() {
            &self.iovs_inline[..self.iovcnt]
        } else {
            &self.iovs_heap[..]
        }
    }

    /// Whether the IO thread is done with it.
    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Whether it has been handed to the engine.
    pub fn is_submitted(&self) -> bool {
        self.state.load(Ordering::Acquire) != QUEUED
    }

    /// The result of a finished read (C's _storage_get_item_cb, worker side): a miss
    /// unlinks the header (the page is gone, or the object is damaged) and is counted.
    pub fn outcome(&mut self) -> Outcome {
        if !self.miss {
            if let Some(b) = self.buf.take() {
                return Outcome::Hit(b);
            }
        }
        self.buf = None;
        stats::bump(&self.stats.miss_from_extstore, 1);
        if self.badcrc {
            stats::bump(&self.stats.badcrc_from_extstore, 1);
        }
        if let Some(st) = store::store() {
            let hv = st.hash(self.hdr.key());
            let _g = st.item_lock(hv);
            // SAFETY: the item lock for the header's key is held and our reference keeps it
            // live; unlinking an item no longer linked does nothing.
            unsafe { st.unlink(self.hdr.as_ptr(), hv) };
        }
        Outcome::Miss
    }

    /// The reply is done (C's recache_or_free): a value read back from a header that was
    /// hit again lately goes back into memory every `ext_recache_rate` such reads on the
    /// connection (`counter`); otherwise the value item is freed with the reply.
    pub fn finish(mut self: Box<Self>, value: Option<ItemRef>, counter: &mut u32) {
        let rate = crate::settings::get()
            .ext_rt
            .recache_rate
            .load(Ordering::Relaxed);
        let (Some(buf), Some(st)) = (value, store::store()) else {
            return;
        };
        if rate == 0 || self.miss {
            return;
        }
        let hdr = &self.hdr;
        let want = ITEM_LINKED | ITEM_FETCHED | ITEM_ACTIVE;
        let eligible = || {
            hdr.flags() & want == want
                && hdr.time() > current_time().wrapping_sub(ITEM_UPDATE_INTERVAL)
        };
        let hv = st.hash(hdr.key());
        let Some(_g) = st.item_trylock(hv) else {
            return;
        };
        if !eligible() {
            return;
        }
        let n = *counter;
        *counter = counter.wrapping_add(1);
        if !n.is_multiple_of(rate) {
            return;
        }
        let image_flags =
            u16::from_ne_bytes([self.head[FLAGS_OFFSET], self.head[FLAGS_OFFSET + 1]]);
        let lru_bits = self.head[std::mem::offset_of!(items::Item, slabs_clsid)] & 0xc0;
        let b = buf.as_ptr();
        // SAFETY: `buf` is unlinked and only this reference reaches it; the header item's lock
        // is held for the swap.
        unsafe {
            (*b).exptime = hdr.exptime();
            (*b).it_flags |= (image_flags & (ITEM_FETCHED | ITEM_ACTIVE | ITEM_PRESERVE_FLAGS))
                | (hdr.flags() & ITEM_PRESERVE_FLAGS);
            (*b).slabs_clsid = items::clsid_of((*b).slabs_clsid) | lru_bits;
            st.replace(hdr.as_ptr(), &buf, hv, hdr.cas());
        }
        stats::bump(&self.stats.recache_from_extstore, 1);
        self.buf = None;
    }

    /// Marks it handed to the engine, to wake `waker` with `token` when done.
    fn arm(&mut self, waker: &'static dyn Waker, token: i32) {
        self.wake = Some((waker, token));
        self.state.store(SUBMITTED, Ordering::Relaxed);
    }
}

impl Drop for FlashRead {
    fn drop(&mut self) {
        match self.state.load(Ordering::Acquire) {
            // Dropped with its reply before it was submitted (C's get_aborted_extstore).
            QUEUED => stats::bump(&self.stats.get_aborted_extstore, 1),
            // In flight: the engine still writes into our buffers (only a worker going away
            // at a stop gets here); wait for the IO thread.
            SUBMITTED => {
                while self.state.load(Ordering::Acquire) != DONE {
                    std::thread::yield_now();
                }
            }
            _ => {}
        }
    }
}

thread_local! {
    /// Reads this worker queued during the current round of its event loop, chained by
    /// their IOs' `next`, and how many (C's per-thread IO queue stack).
    static PENDING: std::cell::Cell<(*mut ObjIo, u32)> =
        const { std::cell::Cell::new((std::ptr::null_mut(), 0)) };
}

/// Reads queued beyond this are handed over at once rather than at the end of the round.
const PENDING_MAX: u32 = 64;

/// Queues reads for the engine; each wakes `waker` with `token` when done. They are handed
/// over in one chain at the end of the worker's round of callbacks (`submit_pending`, C's
/// thread_io_queue_submit), so one wake of an IO thread serves every connection of the round.
pub fn submit<'a>(
    reads: impl Iterator<Item = &'a mut FlashRead>,
    waker: &'static dyn Waker,
    token: i32,
) {
    let (mut head, mut n) = PENDING.get();
    for f in reads {
        if f.is_submitted() {
            continue;
        }
        f.arm(waker, token);
        f.io.next = head;
        head = &mut f.io;
        n += 1;
    }
    PENDING.set((head, n));
    if n > PENDING_MAX {
        submit_pending();
    }
}

/// Hands this worker's queued reads to the engine.
pub fn submit_pending() {
    let (head, _) = PENDING.replace((std::ptr::null_mut(), 0));
    if head.is_null() {
        return;
    }
    if let Some(sto) = get() {
        // SAFETY: every IO of the chain is inside a boxed FlashRead that is not dropped
        // before its state is DONE (Drop waits: they are armed), and its iovecs point into
        // that box and its value item.
        unsafe { sto.engine.submit(head) };
    }
}

/// The engine's callback on an IO thread (C's _storage_get_item_cb): checks what was read
/// and wakes the worker.
fn read_done(_e: &Engine, io: *mut ObjIo, ret: isize) {
    // SAFETY: `data` is the address of the FlashRead owning `io`, alive until DONE (see
    // submit); the worker does not touch it until it sees DONE.
    let f = unsafe { &mut *((*io).data as *mut FlashRead) };
    let mut miss = ret < 1;
    let mut badcrc = false;
    if !miss {
        let (good, crc_ok) = check(f);
        miss = !good;
        badcrc = !crc_ok;
    }
    f.miss = miss;
    f.badcrc = badcrc;
    let wake = f.wake;
    f.state.store(DONE, Ordering::Release);
    if let Some((w, token)) = wake {
        w.wake(token);
    }
}

/// Whether the object read is the header's (key, layout) and intact (checksum): (good,
/// checksum matched).
fn check(f: &FlashRead) -> (bool, bool) {
    let head = &f.head[..f.head_len];
    let stored = u32::from_ne_bytes([
        head[EXPTIME_OFFSET],
        head[EXPTIME_OFFSET + 1],
        head[EXPTIME_OFFSET + 2],
        head[EXPTIME_OFFSET + 3],
    ]);
    let mut crc = crate::crc32c::crc32c(0, &head[STORE_OFFSET..]);
    for v in &f.iovs()[1..] {
        // SAFETY: the iovecs point into the value item this read owns, filled by the engine.
        let s = unsafe { std::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
        crc = crate::crc32c::crc32c(crc, s);
    }
    if crc != stored {
        return (false, false);
    }
    // The same key and layout as the header item describes.
    let key = f.hdr.key();
    let nkey = head[std::mem::offset_of!(items::Item, nkey)] as usize;
    let flags = u16::from_ne_bytes([head[FLAGS_OFFSET], head[FLAGS_OFFSET + 1]]);
    let layout = ITEM_CAS | ITEM_CFLAGS;
    let key_at = items::ITEM_HEADER_SIZE + if flags & ITEM_CAS != 0 { 8 } else { 0 };
    let at = STORE_OFFSET;
    let nbytes = i32::from_ne_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let good = nkey == key.len()
        && nbytes as usize == f.hdr.value_len()
        && flags & layout == f.hdr.flags() & layout
        && head.get(key_at..key_at + nkey) == Some(key);
    (good, true)
}
