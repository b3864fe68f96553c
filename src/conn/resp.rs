//! Response objects and the worker's buffer caches (C's mc_resp, mc_resp_bundle and
//! resp_allocate/resp_free in memcached.c, and the per-thread rbuf cache of thread.c): a
//! `Resp` is one queued reply; bundles of them and the read buffers share each worker's
//! `-o read_buf_mem_limit` budget; `rbuf_take`/`rbuf_give` and `resp_take`/`resp_give` are
//! what a connection borrows and returns. Also the connection's reply methods built on them
//! (C's resp_start, out_string, out_errstring, write_and_free and conn_release_items).

use super::{CloseReason, Conn, ConnState, Transport};
use crate::items::ops::{Counters, StoreCmd};
use crate::items::store::ItemRef;
use crate::lent::LentConn;
use crate::proto::binary::BinState;
use crate::proto::session::{Next, Session};
use crate::settings;
use crate::thread::Worker;
use std::cell::RefCell;
use std::os::unix::io::RawFd;

pub use crate::proto::response::{Resp, READ_BUFFER_SIZE, WRITE_BUFFER_SIZE};

/// The worker's caches of read buffers and response objects (C's rbuf_cache and resp bundles),
/// kept per thread so that idle connections hold no buffers. The read-buffer cache obeys
/// `-o read_buf_mem_limit` split across workers, as C's cache limit does.
struct ThreadCaches {
    worker: &'static Worker,
    rbufs: Vec<crate::sys::ReadBuf>,
    /// Read buffers allocated and not freed (C's cache->total).
    rbuf_total: u64,
    /// Most read buffers this worker may hold (0: no limit).
    rbuf_limit: u64,
    /// Response-object bundles by id (None: id free for reuse).
    bundles: Vec<Option<Bundle>>,
    /// First bundle with free slots (C's open_bundle); the list continues through `next`.
    open: Option<u32>,
    /// Budget units given back by freed bundles: counted as free buffers (as C's freed
    /// bundle memory is), but a buffer is only allocated when one is asked for.
    units_free: u64,
    /// Response objects of freed bundles, kept with their free unit (at most one set per unit
    /// in `units_free`), as C keeps a freed bundle's memory in its buffer cache: a multiget
    /// or pipeline that needs many bundles reuses them instead of allocating per request.
    spare_slots: Vec<BundleSlots>,
}

type BundleSlots = [Option<Box<Resp>>; RESP_PER_BUNDLE];

/// A connection's queued replies, oldest first (C's resp_head to resp list). The first is
/// held inline, so a client that sends one request at a time never makes the queue allocate
/// and an idle connection holds no queue memory (a VecDeque keeps its buffer once it grew).
#[derive(Default)]
pub struct RespQueue {
    /// The oldest reply; None when the queue is empty or lives wholly in `rest`.
    first: Option<Box<Resp>>,
    /// The replies after `first` (all of them when `first` is None).
    rest: std::collections::VecDeque<Box<Resp>>,
}

impl RespQueue {
    pub fn is_empty(&self) -> bool {
        self.first.is_none() && self.rest.is_empty()
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn push_back(&mut self, r: Box<Resp>) {
        if self.is_empty() {
            self.first = Some(r);
        } else {
            self.rest.push_back(r);
        }
    }

    pub fn pop_front(&mut self) -> Option<Box<Resp>> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    pub fn front_mut(&mut self) -> Option<&mut Box<Resp>> {
        match &mut self.first {
            Some(r) => Some(r),
            None => self.rest.front_mut(),
        }
    }

    pub fn back_mut(&mut self) -> Option<&mut Box<Resp>> {
        if self.rest.is_empty() {
            self.first.as_mut()
        } else {
            self.rest.back_mut()
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Box<Resp>> {
        self.first.iter().chain(self.rest.iter())
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Box<Resp>> {
        self.first.iter_mut().chain(self.rest.iter_mut())
    }
}

/// Response objects per bundle: as many of C's mc_resp as fit in one read buffer.
const RESP_PER_BUNDLE: usize = 13;

/// A group of response objects that takes one read buffer's worth of the worker's buffer
/// budget (C's mc_resp_bundle): response memory counts against `read_buf_mem_limit`, and
/// `response_obj_bytes` moves in whole bundles, exactly as C's does.
struct Bundle {
    /// The objects not handed out (a handed-out object comes back to its slot).
    slots: [Option<Box<Resp>>; RESP_PER_BUNDLE],
    refcount: usize,
    next_check: usize,
    prev: Option<u32>,
    next: Option<u32>,
}

thread_local! {
    static CACHES: RefCell<Option<ThreadCaches>> = const { RefCell::new(None) };
}

/// Sets up the calling worker's buffer caches.
pub fn thread_caches_init(worker: &'static Worker) {
    let s = settings::get();
    let rbuf_limit = if s.read_buf_mem_limit > 0 {
        let per_thread = s.read_buf_mem_limit as u64 / s.num_threads.max(1) as u64;
        if per_thread < READ_BUFFER_SIZE as u64 {
            1
        } else {
            per_thread / READ_BUFFER_SIZE as u64
        }
    } else {
        0
    };
    CACHES.with(|c| *c.borrow_mut() = Some(ThreadCaches::new(worker, rbuf_limit)));
}

impl ThreadCaches {
    /// Empty caches for `worker`, holding at most `rbuf_limit` buffers (0: no limit).
    fn new(worker: &'static Worker, rbuf_limit: u64) -> ThreadCaches {
        ThreadCaches {
            worker,
            rbufs: Vec::new(),
            rbuf_total: 0,
            rbuf_limit,
            bundles: Vec::new(),
            open: None,
            units_free: 0,
            spare_slots: Vec::new(),
        }
    }

    /// One buffer-sized unit from the cache (C's do_cache_alloc), or None at the limit.
    fn cache_alloc(&mut self) -> Option<crate::sys::ReadBuf> {
        let st = &self.worker.stats;
        if let Some(b) = self.rbufs.pop() {
            st.read_buf_bytes_free.sub(READ_BUFFER_SIZE as u64);
            return Some(b);
        }
        if self.units_free > 0 {
            // A unit a bundle gave back becomes a real buffer now; objects kept with it go.
            self.units_free -= 1;
            st.read_buf_bytes_free.sub(READ_BUFFER_SIZE as u64);
            if self.spare_slots.len() as u64 > self.units_free {
                self.spare_slots.pop();
            }
            return Some(crate::sys::ReadBuf::new(READ_BUFFER_SIZE));
        }
        self.unit_new()
            .then(|| crate::sys::ReadBuf::new(READ_BUFFER_SIZE))
    }

    /// Counts a new unit against the limit; false at the limit.
    fn unit_new(&mut self) -> bool {
        if self.rbuf_limit != 0 && self.rbuf_total >= self.rbuf_limit {
            return false;
        }
        let st = &self.worker.stats;
        self.rbuf_total += 1;
        st.read_buf_count.add(1);
        st.read_buf_bytes.add(READ_BUFFER_SIZE as u64);
        true
    }

    /// One unit for a bundle: a free unit without memory if there is one, else a free
    /// buffer (whose memory the bundle's objects replace), else a new unit.
    fn unit_take(&mut self) -> bool {
        if self.units_free > 0 {
            self.units_free -= 1;
        } else if self.rbufs.pop().is_none() {
            return self.unit_new();
        }
        self.worker
            .stats
            .read_buf_bytes_free
            .sub(READ_BUFFER_SIZE as u64);
        true
    }

    /// A freed bundle's unit goes back (C's do_cache_free of its memory), and its objects
    /// stay with it unless the unit itself is freed.
    fn unit_give(&mut self, slots: BundleSlots) {
        let st = &self.worker.stats;
        if self.rbuf_limit != 0 && self.rbuf_limit < self.rbuf_total {
            self.rbuf_total -= 1;
            st.read_buf_count.sub(1);
            st.read_buf_bytes.sub(READ_BUFFER_SIZE as u64);
        } else {
            st.read_buf_bytes_free.add(READ_BUFFER_SIZE as u64);
            self.units_free += 1;
            self.spare_slots.push(slots);
        }
    }

    /// Gives a unit back (C's do_cache_free): kept, or freed if the cache is over its limit.
    fn cache_free(&mut self, buf: crate::sys::ReadBuf) {
        let st = &self.worker.stats;
        if self.rbuf_limit != 0 && self.rbuf_limit < self.rbuf_total {
            self.rbuf_total -= 1;
            st.read_buf_count.sub(1);
            st.read_buf_bytes.sub(READ_BUFFER_SIZE as u64);
        } else {
            st.read_buf_bytes_free.add(READ_BUFFER_SIZE as u64);
            self.rbufs.push(buf);
        }
    }

    fn bundle(&mut self, id: u32) -> &mut Bundle {
        match self.bundles.get_mut(id as usize) {
            Some(Some(b)) => b,
            // Ids come only from live bundles.
            _ => unreachable!("response bundle {} is not live", id),
        }
    }

    /// Takes a response object (C's resp_allocate): from the first bundle with a free slot,
    /// else from a new bundle, which costs a buffer from the cache.
    fn resp_allocate(&mut self) -> Option<Box<Resp>> {
        if let Some(id) = self.open {
            let b = self.bundle(id);
            // From the slot after the last one taken, wrapping (no division per step).
            let mut x = b.next_check;
            for _ in 0..RESP_PER_BUNDLE {
                if x >= RESP_PER_BUNDLE {
                    x = 0;
                }
                if let Some(r) = b.slots[x].take() {
                    b.next_check = x + 1;
                    b.refcount += 1;
                    if b.refcount == RESP_PER_BUNDLE {
                        // Full: the next open bundle becomes the head.
                        let next = b.next.take();
                        self.open = next;
                        if let Some(n) = next {
                            self.bundle(n).prev = None;
                        }
                    }
                    return Some(r);
                }
                x += 1;
            }
        }
        if !self.unit_take() {
            return None;
        }
        self.worker
            .stats
            .response_obj_bytes
            .add(READ_BUFFER_SIZE as u64);
        let id = match self.bundles.iter().position(|b| b.is_none()) {
            Some(i) => i as u32,
            None => {
                self.bundles.push(None);
                (self.bundles.len() - 1) as u32
            }
        };
        let mut slots: BundleSlots = self.spare_slots.pop().unwrap_or_default();
        for (x, slot) in slots.iter_mut().enumerate() {
            let r = slot.get_or_insert_with(|| Box::new(Resp::new()));
            r.home = (id, x as u8);
        }
        // Filled just above.
        let first = slots[0].take()?;
        self.bundles[id as usize] = Some(Bundle {
            slots,
            refcount: 1,
            next_check: 1,
            prev: None,
            next: None,
        });
        self.open = Some(id);
        Some(first)
    }

    /// Returns a response object to its bundle (C's resp_free).
    fn resp_free(&mut self, mut r: Box<Resp>) {
        r.reset();
        let (id, x) = r.home;
        let open = self.open;
        let b = self.bundle(id);
        b.slots[x as usize] = Some(r);
        b.refcount -= 1;
        let linked = open == Some(id) || b.prev.is_some() || b.next.is_some();
        if b.refcount == 0 {
            if open == Some(id) && b.next.is_none() {
                // The last open bundle is kept for reuse.
                b.next_check = 0;
                return;
            }
            let (prev, next) = (b.prev, b.next);
            if open == Some(id) {
                self.open = next;
            }
            if let Some(n) = next {
                self.bundle(n).prev = prev;
            }
            if let Some(p) = prev {
                self.bundle(p).next = next;
            }
            let slots = self.bundles[id as usize].take().map(|b| b.slots);
            self.worker
                .stats
                .response_obj_bytes
                .sub(READ_BUFFER_SIZE as u64);
            self.unit_give(slots.unwrap_or_default());
        } else if !linked {
            // It has free slots again: put it at the head of the open list.
            b.prev = None;
            b.next = open;
            if let Some(o) = open {
                self.bundle(o).prev = Some(id);
            }
            self.open = Some(id);
        }
    }
}

/// Takes a read buffer from the worker's cache, or None (counted as read_buf_oom) when the
/// cache is at its limit.
pub(super) fn rbuf_take() -> Option<crate::sys::ReadBuf> {
    CACHES.with(|c| {
        let mut c = c.borrow_mut();
        let Some(c) = c.as_mut() else {
            return Some(crate::sys::ReadBuf::new(READ_BUFFER_SIZE));
        };
        let b = c.cache_alloc();
        if b.is_none() {
            c.worker.stats.read_buf_oom.add(1);
        }
        b
    })
}

/// Returns a read buffer to the worker's cache (freed instead if the cache is over its limit).
pub(super) fn rbuf_give(buf: crate::sys::ReadBuf) {
    CACHES.with(|c| {
        if let Some(c) = c.borrow_mut().as_mut() {
            c.cache_free(buf);
        }
    })
}

/// A response object for a new reply, or None (counted as response_obj_oom) when the
/// worker's buffer budget is spent.
fn resp_take() -> Option<Box<Resp>> {
    CACHES.with(|c| {
        let mut c = c.borrow_mut();
        let Some(c) = c.as_mut() else {
            return Some(Box::new(Resp::new()));
        };
        match c.resp_allocate() {
            Some(r) => {
                c.worker.stats.response_obj_count.add(1);
                Some(r)
            }
            None => {
                c.worker.stats.response_obj_oom.add(1);
                None
            }
        }
    })
}

pub(super) fn resp_give(mut r: Box<Resp>, recache_counter: &mut u32) {
    // A value read from flash may go back into memory now that it was sent (C's
    // storage_finalize_cb); an unsent read is dropped (counted as aborted).
    if let Some(f) = r.flash.take() {
        f.finish(r.item.take(), recache_counter);
    }
    CACHES.with(|c| {
        if let Some(c) = c.borrow_mut().as_mut() {
            c.worker.stats.response_obj_count.sub(1);
            c.resp_free(r);
        }
    })
}

// ---- the connection as commands see it ----

impl Session for Conn {
    fn fd(&self) -> RawFd {
        self.fd
    }

    fn counters(&self) -> Counters<'static> {
        self.worker.counters()
    }

    fn queued(&self) -> usize {
        self.resps.len()
    }

    fn resp_start(&mut self) -> bool {
        let Some(mut r) = resp_take() else {
            return false;
        };
        if self.transport == Transport::Udp {
            r.request_id = self.request_id;
            if let Some(a) = self.udp_addr.as_deref() {
                r.request_addr = a.to_std();
            }
        }
        self.resps.push_back(r);
        true
    }

    fn resp(&mut self) -> Option<&mut Resp> {
        if self.resps.is_empty() && !self.resp_start() {
            self.set_state(ConnState::Closing);
            return None;
        }
        self.resps.back_mut().map(|r| &mut **r)
    }

    fn release_items(&mut self) {
        self.item = None;
        self.release_resps();
    }

    fn noreply(&self) -> bool {
        self.noreply
    }

    fn set_noreply(&mut self, noreply: bool) {
        self.noreply = noreply;
    }

    fn set_next(&mut self, next: Next) {
        let state = match next {
            Next::NewCmd => ConnState::NewCmd,
            Next::Flush => ConnState::Mwrite,
            Next::ReadValue => ConnState::Nread,
            Next::Swallow(n) => {
                self.sbytes = n;
                ConnState::Swallow
            }
            Next::Close => ConnState::Closing,
            Next::Lent => ConnState::Watch,
        };
        self.set_state(state);
    }

    fn close_after_write(&mut self) {
        self.close_after_write = true;
    }

    fn set_close_reason(&mut self, reason: CloseReason) {
        self.close_reason = reason;
    }

    fn suspend(&mut self) {
        self.resps_suspended += 1;
    }

    fn read_value(&mut self, it: ItemRef, len: usize, cmd: StoreCmd) {
        self.item = Some(it);
        self.ritem = 0;
        self.rlbytes = len;
        self.store_cmd = cmd;
        self.set_next(Next::ReadValue);
    }

    fn store_cmd(&self) -> StoreCmd {
        self.store_cmd
    }

    fn cas(&mut self) -> &mut u64 {
        &mut self.cas
    }

    fn bin(&mut self) -> &mut BinState {
        &mut self.bin
    }

    fn authenticated(&self) -> bool {
        self.authenticated
    }

    fn set_authenticated(&mut self, yes: bool) {
        self.authenticated = yes;
    }

    fn sasl(&mut self) -> &mut crate::sasl::SaslConn {
        &mut self.sasl
    }

    fn lend(&mut self) -> LentConn {
        self.release_resps();
        self.set_next(Next::Lent);
        LentConn::new(self.fd, self.worker, self.tls.take())
    }

    fn unlend(&mut self, lent: LentConn) {
        self.tls = lent.cancel();
        self.set_next(Next::NewCmd);
        if !self.resp_start() {
            self.set_next(Next::Close);
        }
    }
}

impl Conn {
    pub(super) fn release_resps(&mut self) {
        while let Some(r) = self.resps.pop_front() {
            resp_give(r, &mut self.recache_counter);
        }
        self.resps_suspended = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caches(rbuf_limit: u64) -> ThreadCaches {
        ThreadCaches::new(Box::leak(Box::new(Worker::detached(0))), rbuf_limit)
    }

    fn address(r: &Resp) -> usize {
        r as *const Resp as usize
    }

    /// A multiget that needs several bundles takes the same objects again the next time:
    /// freed bundles keep theirs with their budget unit, so nothing is allocated per request.
    #[test]
    fn freed_bundles_keep_their_objects() {
        let mut c = caches(0);
        let n = RESP_PER_BUNDLE * 4;
        let first: Vec<Box<Resp>> = (0..n).map(|_| c.resp_allocate().unwrap()).collect();
        let mut seen: Vec<usize> = first.iter().map(|r| address(r)).collect();
        seen.sort_unstable();
        assert_eq!(c.rbuf_total, 4);
        for r in first {
            c.resp_free(r);
        }
        // The last open bundle stays; the other three gave back their units with objects.
        assert_eq!(c.units_free, 3);
        assert_eq!(c.spare_slots.len(), 3);
        assert_eq!(
            c.worker.stats.response_obj_bytes.get(),
            READ_BUFFER_SIZE as u64
        );

        let again: Vec<Box<Resp>> = (0..n).map(|_| c.resp_allocate().unwrap()).collect();
        let mut reused: Vec<usize> = again.iter().map(|r| address(r)).collect();
        reused.sort_unstable();
        assert_eq!(seen, reused, "the same objects, none newly allocated");
        assert_eq!(c.rbuf_total, 4, "no new budget units");
        assert!(c.spare_slots.is_empty());
        for r in again {
            c.resp_free(r);
        }
    }

    /// A free unit that becomes a read buffer takes its memory back from the objects kept
    /// with it: never more kept sets than free units.
    #[test]
    fn read_buffer_takes_a_units_objects() {
        let mut c = caches(0);
        let all: Vec<Box<Resp>> = (0..RESP_PER_BUNDLE * 3)
            .map(|_| c.resp_allocate().unwrap())
            .collect();
        for r in all {
            c.resp_free(r);
        }
        assert_eq!((c.units_free, c.spare_slots.len()), (2, 2));
        let buf = c.cache_alloc().unwrap();
        assert_eq!(buf.len(), READ_BUFFER_SIZE);
        assert_eq!((c.units_free, c.spare_slots.len()), (1, 1));
        let buf2 = c.cache_alloc().unwrap();
        assert_eq!((c.units_free, c.spare_slots.len()), (0, 0));
        assert_eq!(c.rbuf_total, 3, "the units were reused, not new");
        c.cache_free(buf);
        c.cache_free(buf2);
    }

    /// Bundles count against -o read_buf_mem_limit: at the limit no object is handed out
    /// (the caller answers as C does on response_obj_oom).
    #[test]
    fn the_buffer_limit_caps_bundles() {
        let mut c = caches(1);
        let one: Vec<Box<Resp>> = (0..RESP_PER_BUNDLE)
            .map(|_| c.resp_allocate().unwrap())
            .collect();
        assert!(c.resp_allocate().is_none(), "the limit holds one unit");
        assert!(c.cache_alloc().is_none(), "no read buffer either");
        for r in one {
            c.resp_free(r);
        }
        // The only bundle is the last open one: kept, as C keeps it, and usable again.
        assert_eq!(c.rbuf_total, 1);
        assert!(c.resp_allocate().is_some());
    }

    #[test]
    fn the_reply_queue_keeps_order_across_its_inline_slot() {
        let tagged = |n: u8| {
            let mut r = Box::new(Resp::new());
            r.wbuf.push(n);
            r
        };
        let order = |q: &RespQueue| q.iter().map(|r| r.wbuf[0]).collect::<Vec<u8>>();
        let mut q = RespQueue::default();
        assert!(q.is_empty() && q.back_mut().is_none() && q.front_mut().is_none());
        q.push_back(tagged(1));
        assert_eq!((order(&q), q.len()), (vec![1], 1));
        q.push_back(tagged(2));
        q.push_back(tagged(3));
        assert_eq!(order(&q), vec![1, 2, 3]);
        assert_eq!(q.back_mut().map(|r| r.wbuf[0]), Some(3));
        assert_eq!(q.pop_front().map(|r| r.wbuf[0]), Some(1));
        // The inline slot is empty but the queue is not: new replies go after the others.
        q.push_back(tagged(4));
        assert_eq!(order(&q), vec![2, 3, 4]);
        assert_eq!(q.front_mut().map(|r| r.wbuf[0]), Some(2));
        for want in [2, 3, 4] {
            assert_eq!(q.pop_front().map(|r| r.wbuf[0]), Some(want));
        }
        assert!(q.is_empty() && q.pop_front().is_none());
        q.push_back(tagged(5));
        for r in q.iter_mut() {
            r.wbuf[0] += 1;
        }
        assert_eq!((order(&q), q.len()), (vec![6], 1));
    }
}
