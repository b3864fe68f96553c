//! The per-connection state machine (C's `drive_machine` and the `conn_*` helpers of
//! memcached.c): non-blocking reads into a read buffer borrowed from the worker's cache, command
//! parsing, replies queued as response objects and written with writev, `-R` yields, idle
//! timeouts and closing.
//!
//! A `Conn` belongs to exactly one worker thread: it is created there from the dispatcher's
//! queue, registered with that worker's event base and freed there.

use crate::event::{self, Disposition, Event, EventBase, Handler};
use crate::items::store::ItemRef;
use crate::settings::{self, Protocol};
use crate::stats::{self, current_time, STATS};
use crate::sys;
use crate::thread::Worker;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Size of a pooled read buffer (C's READ_BUFFER_SIZE).
pub const READ_BUFFER_SIZE: usize = 16384;
/// Size of a response's line buffer (C's WRITE_BUFFER_SIZE).
pub const WRITE_BUFFER_SIZE: usize = 1024;
/// Most iovecs handed to one writev: C stops filling below IOV_MAX - 1 (1024 on Linux).
const IOV_MAX: usize = 1024;
const IOV_USE: usize = IOV_MAX - 2;
/// A UDP conn's fixed read buffer (C's UDP_READ_BUFFER_SIZE).
const UDP_READ_BUFFER_SIZE: usize = 65536;
/// Largest datagram we send, header included (C's UDP_MAX_PAYLOAD_SIZE).
const UDP_MAX_PAYLOAD_SIZE: usize = 1400;
const UDP_HEADER_SIZE: usize = 8;
/// Reply bytes per datagram.
const UDP_DATA_SIZE: usize = UDP_MAX_PAYLOAD_SIZE - UDP_HEADER_SIZE;

/// Connection states, named as C names them (they show in -vvv traces and `stats conns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Listening,
    NewCmd,
    Waiting,
    Read,
    ParseCmd,
    Write,
    Nread,
    Swallow,
    Closing,
    Mwrite,
    Closed,
    Watch,
    IoQueue,
    IoResume,
    IoPending,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Listening => "conn_listening",
            ConnState::NewCmd => "conn_new_cmd",
            ConnState::Waiting => "conn_waiting",
            ConnState::Read => "conn_read",
            ConnState::ParseCmd => "conn_parse_cmd",
            ConnState::Write => "conn_write",
            ConnState::Nread => "conn_nread",
            ConnState::Swallow => "conn_swallow",
            ConnState::Closing => "conn_closing",
            ConnState::Mwrite => "conn_mwrite",
            ConnState::Closed => "conn_closed",
            ConnState::Watch => "conn_watch",
            ConnState::IoQueue => "conn_io_queue",
            ConnState::IoResume => "conn_io_resume",
            ConnState::IoPending => "conn_io_pending",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Local,
    Tcp,
    Udp,
}

/// Why a connection closed (logged by `watch connevents` later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    None,
    Normal,
    Error,
    IdleTimeout,
    Shutdown,
}

/// Set when a worker closes a connection: the dispatcher may accept again (C's allow_new_conns).
pub static ALLOW_NEW_CONNS: AtomicBool = AtomicBool::new(true);

pub fn prot_text(p: Protocol) -> &'static str {
    match p {
        Protocol::Ascii => "ascii",
        Protocol::Binary => "binary",
        Protocol::Negotiating => "auto-negotiate",
    }
}

/// One queued reply (C's mc_resp). It is written as up to four parts, in this order: the line
/// buffer, the value of a held item (pointing into item memory; the reference is released when
/// the reply is done), an owned body, and a static tail such as "END\r\n".
pub struct Resp {
    /// Reply line(s) built in place; at most WRITE_BUFFER_SIZE for out_string replies.
    pub wbuf: Vec<u8>,
    /// An item whose value is sent after `wbuf`.
    pub item: Option<ItemRef>,
    /// Bytes of the value's end not sent (binary replies leave out the "\r\n").
    pub item_trim: usize,
    /// Static bytes sent last.
    pub tail: &'static [u8],
    /// A large body written after `wbuf` (C's write_and_free), e.g. a stats dump.
    pub body: Vec<u8>,
    /// Bytes of this response already written.
    sent: usize,
    /// Nothing of this response is sent (noreply).
    pub skip: bool,
    /// A meta set waits for its value: `wbuf` holds the return flags it asked for.
    pub mset_res: bool,
    /// A meta set with `I`: a lower CAS may store the value as stale.
    pub set_stale: bool,
    // UDP: where the reply goes and how it is split into datagrams.
    request_id: u16,
    request_addr: sys::SockAddr,
    /// The bundle and slot this object belongs to (see `Bundle`).
    home: (u32, u8),
    udp_sequence: u16,
    udp_total: u16,
}

impl Resp {
    fn new() -> Resp {
        Resp {
            wbuf: Vec::with_capacity(WRITE_BUFFER_SIZE),
            item: None,
            item_trim: 0,
            tail: b"",
            body: Vec::new(),
            sent: 0,
            skip: false,
            mset_res: false,
            set_stale: false,
            request_id: 0,
            request_addr: sys::SockAddr::empty(),
            udp_sequence: 0,
            udp_total: 0,
            home: (0, 0),
        }
    }

    fn reset(&mut self) {
        self.wbuf.clear();
        self.item = None;
        self.item_trim = 0;
        self.tail = b"";
        if self.body.capacity() > READ_BUFFER_SIZE {
            self.body = Vec::new();
        } else {
            self.body.clear();
        }
        self.sent = 0;
        self.skip = false;
        self.mset_res = false;
        self.set_stale = false;
        self.udp_sequence = 0;
        self.udp_total = 0;
    }

    /// The byte ranges to send, in order: line buffer, the item's value (one piece per chunk
    /// of a chunked item), body, tail.
    fn parts(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut left = self
            .item
            .as_ref()
            .map_or(0, |it| it.value_len().saturating_sub(self.item_trim));
        let value = self.item.as_ref().map(|it| it.segments());
        let value = value.into_iter().flatten().map(move |seg| {
            let n = seg.len().min(left);
            left -= n;
            &seg[..n]
        });
        std::iter::once(&self.wbuf[..])
            .chain(value)
            .chain([&self.body[..], self.tail])
    }

    fn total(&self) -> usize {
        self.parts().map(|p| p.len()).sum()
    }
}

/// The worker's caches of read buffers and response objects (C's rbuf_cache and resp bundles),
/// kept per thread so that idle connections hold no buffers. The read-buffer cache obeys
/// `-o read_buf_mem_limit` split across workers, as C's cache limit does.
struct ThreadCaches {
    worker: &'static Worker,
    rbufs: Vec<Vec<u8>>,
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
    fn cache_alloc(&mut self) -> Option<Vec<u8>> {
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
            return Some(vec![0; READ_BUFFER_SIZE]);
        }
        self.unit_new().then(|| vec![0; READ_BUFFER_SIZE])
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
    fn cache_free(&mut self, buf: Vec<u8>) {
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
            for i in 0..RESP_PER_BUNDLE {
                let x = (i + b.next_check) % RESP_PER_BUNDLE;
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
fn rbuf_take() -> Option<Vec<u8>> {
    CACHES.with(|c| {
        let mut c = c.borrow_mut();
        let Some(c) = c.as_mut() else {
            return Some(vec![0; READ_BUFFER_SIZE]);
        };
        let b = c.cache_alloc();
        if b.is_none() {
            c.worker.stats.read_buf_oom.add(1);
        }
        b
    })
}

/// Returns a read buffer to the worker's cache (freed instead if the cache is over its limit).
fn rbuf_give(buf: Vec<u8>) {
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

fn resp_give(r: Box<Resp>) {
    CACHES.with(|c| {
        if let Some(c) = c.borrow_mut().as_mut() {
            c.worker.stats.response_obj_count.sub(1);
            c.resp_free(r);
        }
    })
}

/// A client connection (or a UDP socket's per-worker reader).
pub struct Conn {
    pub fd: RawFd,
    pub state: ConnState,
    ev: Option<Event>,
    pub transport: Transport,
    pub protocol: Protocol,
    pub worker: &'static Worker,
    /// Read buffer (empty when released back to the cache).
    pub rbuf: Vec<u8>,
    rbuf_malloced: bool,
    /// Start of unparsed bytes in `rbuf`.
    pub rcurr: usize,
    /// Count of unparsed bytes at `rcurr`.
    pub rbytes: usize,
    /// Replies waiting to be written, oldest first; the last is the current command's.
    pub resps: VecDeque<Box<Resp>>,
    /// The current command asked for no reply.
    pub noreply: bool,
    pub close_after_write: bool,
    pub close_reason: CloseReason,
    /// When the last command was read, for idle timeouts.
    pub last_cmd_time: u32,
    /// Bytes still to read and discard (conn_swallow).
    pub sbytes: usize,
    /// UDP: the sender of the datagram being processed. TCP conns read their peer from
    /// `slot`, so they carry no address of their own.
    udp_addr: Option<Box<sys::SockAddr>>,
    /// -R budget left in this event.
    nreqs: i32,
    /// UDP: request id of the datagram being processed.
    request_id: u16,
    /// The item a storage command is reading its value into (conn_nread).
    pub item: Option<ItemRef>,
    /// Value bytes read so far / still to read.
    pub ritem: usize,
    pub rlbytes: usize,
    /// The storage command waiting for its value.
    pub store_cmd: crate::items::ops::StoreCmd,
    /// C's `c->cas`: the CAS an `ms` drew for its store (cleared once stored), or the one a
    /// binary reply carries (cleared as each binary command starts). What is left here at
    /// close passes to the next connection on the descriptor, as C's reused struct does.
    pub cas: u64,
    /// This connection's entry in the `stats conns` table.
    slot: Arc<ConnSlot>,
    /// The binary request being handled.
    pub bin: crate::proto::binary::BinState,
}

// ---- the connection table for `stats conns` (C walks its conns[] array) ----

/// What `stats conns` shows of one descriptor; the connection's owner updates it.
pub struct ConnSlot {
    udp: bool,
    state: std::sync::atomic::AtomicU8,
    last_cmd_time: std::sync::atomic::AtomicU32,
    /// The peer (TCP at accept; UDP: the last request's sender).
    peer: std::sync::Mutex<Peer>,
}

/// A peer address kept small, since every connection has one: INET/INET6 in std's form
/// (32 bytes, where a sockaddr_storage is 128), anything else (a unix socket's peer, none)
/// whole in a box.
enum Peer {
    Inet(std::net::SocketAddr),
    Other(Box<sys::SockAddr>),
}

impl Peer {
    fn new(a: &sys::SockAddr) -> Peer {
        match a.to_std() {
            Some(sa) => Peer::Inet(sa),
            None => Peer::Other(Box::new(*a)),
        }
    }

    fn addr(&self) -> sys::SockAddr {
        match self {
            Peer::Inet(sa) => sys::SockAddr::from_std(sa),
            Peer::Other(a) => **a,
        }
    }
}

impl ConnSlot {
    fn peer(&self) -> sys::SockAddr {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).addr()
    }

    fn set_state(&self, st: ConnState) {
        self.state.store(st as u8, Relaxed);
    }
}

type ConnTable = std::collections::BTreeMap<RawFd, Arc<ConnSlot>>;

/// Open descriptors by number. Taken when a connection or listener opens or closes and by
/// `stats conns`, never per request.
static CONN_TABLE: std::sync::Mutex<ConnTable> = std::sync::Mutex::new(ConnTable::new());

fn conn_table() -> std::sync::MutexGuard<'static, ConnTable> {
    CONN_TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Enters a descriptor in the table.
pub fn conn_slot_open(
    fd: RawFd,
    udp: bool,
    state: ConnState,
    peer: sys::SockAddr,
) -> Arc<ConnSlot> {
    let slot = Arc::new(ConnSlot {
        udp,
        state: std::sync::atomic::AtomicU8::new(state as u8),
        last_cmd_time: std::sync::atomic::AtomicU32::new(current_time()),
        peer: std::sync::Mutex::new(Peer::new(&peer)),
    });
    conn_table().insert(fd, Arc::clone(&slot));
    slot
}

/// Removes a closed descriptor.
pub fn conn_slot_close(fd: RawFd) {
    conn_table().remove(&fd);
}

const STATE_BY_NUMBER: [ConnState; 15] = [
    ConnState::Listening,
    ConnState::NewCmd,
    ConnState::Waiting,
    ConnState::Read,
    ConnState::ParseCmd,
    ConnState::Write,
    ConnState::Nread,
    ConnState::Swallow,
    ConnState::Closing,
    ConnState::Mwrite,
    ConnState::Closed,
    ConnState::Watch,
    ConnState::IoQueue,
    ConnState::IoResume,
    ConnState::IoPending,
];

/// An address as C's get_conn_text prints it: `tcp:1.2.3.4:5`, `udp6:[::1]:5`,
/// `unix:/path`, or `?:<AF n>` when there is no usable address.
fn addr_text(a: &sys::SockAddr, udp: bool) -> String {
    let af = a.family();
    let (proto, mut text, port) = match (af, a.to_std()) {
        (libc::AF_INET, Some(sa)) => (
            if udp { "udp" } else { "tcp" },
            sa.ip().to_string(),
            sa.port(),
        ),
        (libc::AF_INET6, Some(sa)) => (
            if udp { "udp6" } else { "tcp6" },
            format!("[{}]", sa.ip()),
            sa.port(),
        ),
        (libc::AF_UNIX, _) => (
            "unix",
            String::from_utf8_lossy(&a.unix_path()).into_owned(),
            0,
        ),
        _ => ("?", String::new(), 0),
    };
    if text.len() < 2 {
        text = format!("<AF {}>", af);
    }
    if port != 0 {
        format!("{}:{}:{}", proto, text, port)
    } else {
        format!("{}:{}", proto, text)
    }
}

/// `stats conns` (C's process_stats_conns): per descriptor its address, the listening
/// address it came in on, its state and seconds since its last command.
pub fn write_stats_conns(out: &mut dyn crate::stats::StatSink) {
    use crate::stats::append_stat;
    let slots: Vec<(RawFd, Arc<ConnSlot>)> = conn_table()
        .iter()
        .map(|(fd, s)| (*fd, Arc::clone(s)))
        .collect();
    let now = current_time();
    for (fd, slot) in slots {
        let state = STATE_BY_NUMBER
            .get(slot.state.load(Relaxed) as usize)
            .copied()
            .unwrap_or(ConnState::Closed);
        if slot.udp {
            append_stat(out, &format!("{}:UDP", fd), "UDP");
        }
        if state == ConnState::Closed {
            continue;
        }
        let shows_local = state == ConnState::Listening || (slot.udp && state == ConnState::Read);
        let peer = slot.peer();
        let addr = if shows_local {
            sys::getsockname(fd).unwrap_or(peer)
        } else {
            peer
        };
        append_stat(out, &format!("{}:addr", fd), addr_text(&addr, slot.udp));
        if !shows_local {
            let local = sys::getsockname(fd).unwrap_or_else(|_| sys::SockAddr::empty());
            append_stat(
                out,
                &format!("{}:listen_addr", fd),
                addr_text(&local, slot.udp),
            );
        }
        append_stat(out, &format!("{}:state", fd), state.name());
        append_stat(
            out,
            &format!("{}:secs_since_last_cmd", fd),
            now.wrapping_sub(slot.last_cmd_time.load(Relaxed)) as i32,
        );
    }
}

/// Creates a connection on the calling worker (C's conn_new). Returns false if the event could
/// not be registered (the caller closes the fd).
pub fn conn_new(
    fd: RawFd,
    init_state: ConnState,
    transport: Transport,
    protocol: Protocol,
    base: &EventBase,
    worker: &'static Worker,
) -> bool {
    let s = settings::get();
    let mut request_addr = sys::SockAddr::empty();
    if transport == Transport::Tcp && init_state == ConnState::NewCmd {
        match sys::getpeername(fd) {
            Ok(a) => request_addr = a,
            Err(e) => sys::perror("getpeername", &e),
        }
    }
    let v = settings::verbose();
    if v > 1 {
        if transport == Transport::Udp {
            eprintln!("<{} server listening (udp)", fd);
        } else {
            match protocol {
                Protocol::Negotiating => {
                    eprintln!("<{} new auto-negotiating client connection", fd)
                }
                Protocol::Ascii => eprintln!("<{} new ascii client connection.", fd),
                Protocol::Binary => eprintln!("<{} new binary client connection.", fd),
            }
        }
    }
    if init_state == ConnState::NewCmd && crate::logger::enabled(crate::logger::LOG_CONNEVENTS) {
        crate::logger::conn_event(true, &request_addr, transport, CloseReason::None, fd);
    }
    let leftover_cas = note_conn_struct(fd);
    let slot = conn_slot_open(fd, transport == Transport::Udp, init_state, request_addr);
    let mut c = Box::new(Conn {
        bin: Default::default(),
        slot,
        fd,
        state: init_state,
        ev: None,
        transport,
        protocol,
        worker,
        rbuf: Vec::new(),
        rbuf_malloced: false,
        rcurr: 0,
        rbytes: 0,
        resps: VecDeque::new(),
        noreply: false,
        close_after_write: false,
        close_reason: CloseReason::None,
        last_cmd_time: current_time(),
        sbytes: 0,
        udp_addr: (transport == Transport::Udp).then(|| Box::new(request_addr)),
        nreqs: 0,
        request_id: 0,
        item: None,
        ritem: 0,
        rlbytes: 0,
        store_cmd: crate::items::ops::StoreCmd::Set,
        cas: leftover_cas,
    });
    if transport == Transport::Udp {
        c.rbuf = vec![0; UDP_READ_BUFFER_SIZE];
    }
    let timeout = if transport == Transport::Tcp {
        idle_timeout_interval(s)
    } else {
        None
    };
    if !base.register(fd, event::EV_READ | event::EV_PERSIST, timeout, c) {
        sys::perror("event_add", &io::Error::last_os_error());
        return false;
    }
    STATS.curr_conns.fetch_add(1, Relaxed);
    STATS.total_conns.fetch_add(1, Relaxed);
    true
}

/// What C's connection structures keep per descriptor number: C allocates one per number
/// ever used (`connection_structures`) and reuses it for the next connection on that number,
/// with whatever CAS its last command left in it.
struct FdStructs {
    /// Descriptor numbers that ever carried a connection or listener, one bit each.
    seen: Vec<u64>,
    /// CAS values left behind by closed connections: an `ms` whose data never arrived whole
    /// (C draws its CAS first and clears it only on success) or a binary store.
    leftover_cas: std::collections::BTreeMap<RawFd, u64>,
}

static FD_STRUCTS: std::sync::Mutex<FdStructs> = std::sync::Mutex::new(FdStructs {
    seen: Vec::new(),
    leftover_cas: std::collections::BTreeMap::new(),
});

fn fd_structs() -> std::sync::MutexGuard<'static, FdStructs> {
    FD_STRUCTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts connection structures the way C does: one per descriptor number ever used.
/// Returns the CAS the descriptor's last connection left behind (0: none).
pub fn note_conn_struct(fd: RawFd) -> u64 {
    if fd < 0 {
        return 0;
    }
    let (word, bit) = (fd as usize / 64, fd as usize % 64);
    let mut t = fd_structs();
    if t.seen.len() <= word {
        t.seen.resize(word + 1, 0);
    }
    if t.seen[word] & (1 << bit) == 0 {
        t.seen[word] |= 1 << bit;
        STATS.conn_structs.fetch_add(1, Relaxed);
    }
    if t.leftover_cas.is_empty() {
        0
    } else {
        t.leftover_cas.remove(&fd).unwrap_or(0)
    }
}

/// Keeps a closing connection's CAS for the next connection on its descriptor.
fn keep_leftover_cas(fd: RawFd, cas: u64) {
    if cas != 0 {
        fd_structs().leftover_cas.insert(fd, cas);
    }
}

/// The idle check runs as a timeout on the connection's own event (instead of C's scanning
/// thread): it fires after `idle_timeout` seconds without any event on the socket. Only TCP
/// clients are kicked, as in C (unix-socket and UDP conns never are).
fn idle_timeout_interval(s: &settings::Settings) -> Option<Duration> {
    let t = s.idle_timeout;
    if t > 0 {
        Some(Duration::from_secs(t as u64))
    } else {
        None
    }
}

enum ReadResult {
    DataReceived,
    NoDataReceived,
    Error,
}

/// What a value or swallow read led to.
enum ReadStep {
    /// `n` bytes arrived (already counted in bytes_read).
    Data(usize),
    /// Nothing to read now: wait for the socket.
    Wait,
    /// Run the state machine again (interrupted, or the state changed to closing).
    Again,
}

enum TransmitResult {
    Complete,
    Incomplete,
    SoftError,
    HardError,
}

impl Handler for Conn {
    fn set_event(&mut self, ev: Event) {
        self.ev = Some(ev);
    }

    fn handle(&mut self, _fd: RawFd, which: i16) -> Disposition {
        if which & event::EV_TIMEOUT != 0 && which & (event::EV_READ | event::EV_WRITE) == 0 {
            self.close_idle();
        } else {
            self.drive_machine();
        }
        match self.state {
            ConnState::Closed => Disposition::Release,
            // Lent to a side thread (see `lend`).
            ConnState::Watch => Disposition::Park,
            _ => Disposition::Keep,
        }
    }

    fn park(mut self: Box<Self>) {
        // Without its event the connection hears nothing until it is registered again.
        self.ev = None;
        PARKED.with(|p| p.borrow_mut().insert(self.fd, self));
    }
}

thread_local! {
    /// The worker's connections lent to side threads, by descriptor (C leaves them in
    /// conn_watch without an event).
    static PARKED: RefCell<std::collections::HashMap<RawFd, Box<Conn>>> =
        RefCell::new(std::collections::HashMap::new());
}

/// A side thread's loan of a connection ended (C's conn_worker_readd for conn_watch, or
/// sidethread_conn_close when `close`): the worker closes it, or registers its event again
/// and waits for the client's next command.
pub fn redispatch(fd: RawFd, close: bool, base: &EventBase) {
    let Some(mut c) = PARKED.with(|p| p.borrow_mut().remove(&fd)) else {
        return;
    };
    if close {
        c.set_state(ConnState::Closing);
        c.drive_machine();
        return;
    }
    c.set_state(ConnState::NewCmd);
    let timeout = if c.transport == Transport::Tcp {
        idle_timeout_interval(settings::get())
    } else {
        None
    };
    if !base.register(fd, event::EV_READ | event::EV_PERSIST, timeout, c) {
        // The connection object is gone; at least release its descriptor and count.
        sys::perror("event_add", &io::Error::last_os_error());
        conn_slot_close(fd);
        sys::close(fd);
        STATS.curr_conns.fetch_sub(1, Relaxed);
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The event goes first so libevent forgets the fd before it is closed.
        self.ev = None;
    }
}

impl Conn {
    pub fn set_state(&mut self, state: ConnState) {
        if state != self.state {
            if settings::verbose() > 2 {
                eprintln!(
                    "{}: going from {} to {}",
                    self.fd,
                    self.state.name(),
                    state.name()
                );
            }
            self.state = state;
            self.slot.set_state(state);
        }
    }

    fn update_event(&mut self, flags: i16) -> bool {
        let timeout = if self.transport == Transport::Tcp {
            idle_timeout_interval(settings::get())
        } else {
            None
        };
        match self.ev.as_mut() {
            Some(ev) => {
                if ev.flags() == flags {
                    return true;
                }
                ev.reassign(flags, timeout)
            }
            None => false,
        }
    }

    /// Kicks the connection if it has been idle too long (C's conn_close_idle).
    fn close_idle(&mut self) {
        let s = settings::get();
        let idle = s.idle_timeout;
        if idle <= 0 {
            return;
        }
        let now = current_time();
        if now.wrapping_sub(self.last_cmd_time) as i64 > idle as i64 {
            if self.state != ConnState::NewCmd && self.state != ConnState::Read {
                if settings::verbose() > 1 {
                    eprint!("fd {} wants to timeout, but isn't in read state", self.fd);
                }
                return;
            }
            if settings::verbose() > 1 {
                eprintln!("Closing idle fd {}", self.fd);
            }
            stats::bump(&self.worker.stats.idle_kicks, 1);
            self.close_reason = CloseReason::IdleTimeout;
            self.set_state(ConnState::Closing);
            self.drive_machine();
        } else if let Some(ev) = self.ev.as_ref() {
            // Not idle long enough yet (the clock is one-second grained): look again when it
            // could be; any event on the socket re-arms the full interval.
            let left = (idle as i64 - now.wrapping_sub(self.last_cmd_time) as i64 + 1).max(1);
            let _ = ev.add(Some(Duration::from_secs(left as u64)));
        }
    }

    // ---- responses ----

    /// Starts the response object of a new command (C's resp_start). False when none can be
    /// had (the caller closes the connection or reports the shortage).
    #[must_use]
    pub fn resp_start(&mut self) -> bool {
        let Some(mut r) = resp_take() else {
            return false;
        };
        if self.transport == Transport::Udp {
            r.request_id = self.request_id;
            if let Some(a) = self.udp_addr.as_deref() {
                r.request_addr = *a;
            }
        }
        self.resps.push_back(r);
        true
    }

    /// The current command's response (starting one if none is queued); None when no
    /// response object can be had, and the connection is then set to close.
    pub fn resp(&mut self) -> Option<&mut Resp> {
        if self.resps.is_empty() && !self.resp_start() {
            self.set_state(ConnState::Closing);
            return None;
        }
        self.resps.back_mut().map(|r| &mut **r)
    }

    /// Replies with one line plus "\r\n" (C's out_string), honouring noreply.
    pub fn out_string(&mut self, s: &str) {
        let noreply = self.noreply;
        let fd = self.fd;
        let Some(r) = self.resp() else {
            return;
        };
        r.reset();
        if noreply {
            r.skip = true;
            if settings::verbose() > 1 {
                eprintln!(">{} NOREPLY {}", fd, s);
            }
            self.set_state(ConnState::NewCmd);
            return;
        }
        if settings::verbose() > 1 {
            eprintln!(">{} {}", fd, s);
        }
        let s = if s.len() + 2 > WRITE_BUFFER_SIZE {
            "SERVER_ERROR output line too long"
        } else {
            s
        };
        r.wbuf.extend_from_slice(s.as_bytes());
        r.wbuf.extend_from_slice(b"\r\n");
        self.set_state(ConnState::NewCmd);
    }

    /// Like out_string but ignores noreply, so clients see protocol errors.
    pub fn out_errstring(&mut self, s: &str) {
        self.noreply = false;
        self.out_string(s);
    }

    /// Queues a pre-built body as the current response (C's write_and_free).
    pub fn write_body(&mut self, body: Vec<u8>) {
        let Some(r) = self.resp() else {
            return;
        };
        r.body = body;
        self.set_state(ConnState::NewCmd);
    }

    /// Drops every queued reply, releasing the items they hold (C's conn_release_items).
    pub fn release_items(&mut self) {
        self.item = None;
        self.release_resps();
    }

    fn release_resps(&mut self) {
        while let Some(r) = self.resps.pop_front() {
            resp_give(r);
        }
    }

    // ---- reading ----

    fn rbuf_alloc(&mut self) -> bool {
        if self.rbuf.is_empty() {
            match rbuf_take() {
                Some(b) => self.rbuf = b,
                None => return false,
            }
            self.rcurr = 0;
            self.rbytes = 0;
        }
        true
    }

    fn rbuf_release(&mut self) {
        if !self.rbuf.is_empty() && self.rbytes == 0 && self.transport != Transport::Udp {
            let buf = std::mem::take(&mut self.rbuf);
            if self.rbuf_malloced {
                self.rbuf_malloced = false;
            } else {
                rbuf_give(buf);
            }
            self.rcurr = 0;
        }
    }

    /// Switches to a private, growable buffer for a huge ASCII multiget.
    fn rbuf_switch_to_malloc(&mut self) -> bool {
        let size = self.rbuf.len() * 2;
        let mut tmp = vec![0u8; size];
        tmp[..self.rbytes].copy_from_slice(&self.rbuf[self.rcurr..self.rcurr + self.rbytes]);
        let old = std::mem::replace(&mut self.rbuf, tmp);
        rbuf_give(old);
        self.rcurr = 0;
        self.rbuf_malloced = true;
        true
    }

    fn try_read_network(&mut self) -> ReadResult {
        let mut gotdata = ReadResult::NoDataReceived;
        let mut num_allocs = 0;
        if self.rcurr != 0 {
            if self.rbytes > 0 {
                self.rbuf
                    .copy_within(self.rcurr..self.rcurr + self.rbytes, 0);
            }
            self.rcurr = 0;
        }
        loop {
            if self.rbytes >= self.rbuf.len() && self.rbuf_malloced {
                if num_allocs == 4 {
                    return gotdata;
                }
                num_allocs += 1;
                let n = self.rbuf.len() * 2;
                self.rbuf.resize(n, 0);
            }
            let avail = self.rbuf.len() - self.rbytes;
            let start = self.rbytes;
            match sys::read(self.fd, &mut self.rbuf[start..]) {
                Ok(0) => {
                    self.close_reason = CloseReason::Normal;
                    return ReadResult::Error;
                }
                Ok(n) => {
                    stats::bump(&self.worker.stats.bytes_read, n as u64);
                    gotdata = ReadResult::DataReceived;
                    self.rbytes += n;
                    if n == avail && self.rbuf_malloced {
                        continue;
                    }
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadResult::Error,
            }
        }
        gotdata
    }

    /// Interprets a read made in conn_nread (`nread`) or conn_swallow: counts the bytes, or
    /// closes on end of stream or error, or re-arms the read event (C's shared tails).
    fn read_outcome(&mut self, res: io::Result<usize>, nread: bool) -> ReadStep {
        match res {
            Ok(0) => {
                self.close_reason = CloseReason::Normal;
                self.set_state(ConnState::Closing);
                ReadStep::Again
            }
            Ok(n) => {
                stats::bump(&self.worker.stats.bytes_read, n as u64);
                ReadStep::Data(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !self.update_event(event::EV_READ | event::EV_PERSIST) {
                    if settings::verbose() > 0 {
                        eprintln!("Couldn't update event");
                    }
                    self.set_state(ConnState::Closing);
                    return ReadStep::Again;
                }
                ReadStep::Wait
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => ReadStep::Again,
            Err(e) => {
                if settings::verbose() > 0 {
                    if nread {
                        let errno = e.raw_os_error().unwrap_or(0);
                        eprintln!(
                            "Failed to read, and not due to blocking:\nerrno: {} {} ",
                            errno,
                            sys::strerror(errno)
                        );
                    } else {
                        eprintln!("Failed to read, and not due to blocking");
                    }
                }
                self.set_state(ConnState::Closing);
                ReadStep::Again
            }
        }
    }

    /// Reads one datagram and strips its frame header (C's try_read_udp).
    fn try_read_udp(&mut self) -> ReadResult {
        match sys::recvfrom(self.fd, &mut self.rbuf) {
            Ok((n, from)) if n > UDP_HEADER_SIZE => {
                stats::bump(&self.worker.stats.bytes_read, n as u64);
                if let Some(a) = self.udp_addr.as_deref_mut() {
                    *a = from;
                }
                *self.slot.peer.lock().unwrap_or_else(|e| e.into_inner()) = Peer::new(&from);
                let b = &self.rbuf;
                self.request_id = u16::from_be_bytes([b[0], b[1]]);
                // Multi-datagram requests are not supported: drop them.
                if b[4] != 0 || b[5] != 1 {
                    return ReadResult::NoDataReceived;
                }
                self.rbuf.copy_within(UDP_HEADER_SIZE..n, 0);
                self.rbytes = n - UDP_HEADER_SIZE;
                self.rcurr = 0;
                ReadResult::DataReceived
            }
            _ => ReadResult::NoDataReceived,
        }
    }

    /// Parses one command from the read buffer. Returns false when more data is needed.
    fn try_read_command(&mut self) -> bool {
        crate::logger::set_cur_sfd(self.fd);
        if self.transport == Transport::Udp {
            // Each datagram picks its own protocol.
            self.protocol = if self.rbuf[self.rcurr] == 0x80 {
                Protocol::Binary
            } else {
                Protocol::Ascii
            };
        } else if self.protocol == Protocol::Negotiating {
            if self.rbuf[self.rcurr] == 0x80 {
                self.protocol = Protocol::Binary;
            } else {
                self.protocol = Protocol::Ascii;
            }
            if settings::verbose() > 1 {
                eprintln!(
                    "{}: Client using the {} protocol",
                    self.fd,
                    prot_text(self.protocol)
                );
            }
        }
        match self.protocol {
            Protocol::Binary => crate::proto::binary::try_read_command(self),
            _ => self.try_read_command_ascii(),
        }
    }

    fn try_read_command_ascii(&mut self) -> bool {
        if self.rbytes == 0 {
            return false;
        }
        let window = &self.rbuf[self.rcurr..self.rcurr + self.rbytes];
        let Some(el) = memchr(b'\n', window) else {
            if self.rbytes > 2048 {
                // No newline in the first 2k: only a huge multiget may be that long.
                let end = self.rbytes.saturating_sub(6);
                let mut p = 0;
                while p < end && window[p] == b' ' {
                    p += 1;
                }
                let rest = &window[p..];
                if p > 100 || !(rest.starts_with(b"get ") || rest.starts_with(b"gets ")) {
                    self.set_state(ConnState::Closing);
                    return true;
                }
                if !self.rbuf_malloced && !self.rbuf_switch_to_malloc() {
                    self.set_state(ConnState::Closing);
                    return true;
                }
            }
            return false;
        };
        let len = el + 1;
        self.last_cmd_time = current_time();
        self.slot.last_cmd_time.store(self.last_cmd_time, Relaxed);
        let start = self.rcurr;
        // The command is parsed in place; the buffer is lent out for the call.
        let rbuf = std::mem::take(&mut self.rbuf);
        crate::proto::text::process_command(self, &rbuf[start..start + len]);
        self.rbuf = rbuf;
        self.rbytes -= len;
        self.rcurr += len;
        true
    }

    fn reset_cmd_handler(&mut self) {
        self.noreply = false;
        self.item = None;
        if self.rbytes > 0 {
            self.set_state(ConnState::ParseCmd);
        } else if !self.resps.is_empty() {
            self.set_state(ConnState::Mwrite);
        } else {
            self.set_state(ConnState::Waiting);
        }
    }

    // ---- writing ----

    fn transmit(&mut self) -> TransmitResult {
        // Left uninitialised: only the first `n` entries are written and then read, so a
        // short reply does not pay for clearing 16 KiB of iovecs.
        let mut iovs: [MaybeUninit<IoSlice<'_>>; IOV_USE] =
            [const { MaybeUninit::uninit() }; IOV_USE];
        let cap = IOV_USE;
        let mut n = 0;
        // A reply that does not fit in this writev is continued by the next (`sent` keeps
        // the place).
        'resps: for r in self.resps.iter() {
            if r.skip {
                continue;
            }
            let mut skip = r.sent;
            for part in r.parts() {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                if n == cap {
                    break 'resps;
                }
                iovs[n].write(IoSlice::new(&part[skip..]));
                skip = 0;
                n += 1;
            }
        }
        if n == 0 {
            // Only noreply responses: nothing to write.
            self.transmit_post(0);
            return TransmitResult::Complete;
        }
        // SAFETY: entries 0..n were each written above, and MaybeUninit<T> has T's layout.
        let iovs = unsafe { std::slice::from_raw_parts(iovs.as_ptr().cast::<IoSlice<'_>>(), n) };
        let res = sys::writev(self.fd, iovs);
        self.transmit_done(res, 0)
    }

    /// Sends one datagram of the oldest response (C's transmit_udp).
    fn transmit_udp(&mut self) -> TransmitResult {
        let Some(r) = self.resps.front_mut() else {
            return TransmitResult::Complete;
        };
        if r.skip {
            if let Some(r) = self.resps.pop_front() {
                resp_give(r);
            }
            return TransmitResult::Incomplete;
        }
        if r.udp_total == 0 {
            let left = r.total() - r.sent;
            r.udp_total = left.div_ceil(UDP_DATA_SIZE).min(u16::MAX as usize) as u16;
        }
        let mut hdr = [0u8; UDP_HEADER_SIZE];
        hdr[0..2].copy_from_slice(&r.request_id.to_be_bytes());
        hdr[2..4].copy_from_slice(&r.udp_sequence.to_be_bytes());
        hdr[4..6].copy_from_slice(&r.udp_total.to_be_bytes());
        r.udp_sequence = r.udp_sequence.wrapping_add(1);
        let r: &Resp = r;
        let mut iovs: [IoSlice<'_>; 8] = [IoSlice::new(&[]); 8];
        iovs[0] = IoSlice::new(&hdr);
        let mut n = 1;
        let mut room = UDP_DATA_SIZE;
        let mut skip = r.sent;
        for part in r.parts() {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let take = (part.len() - skip).min(room);
            iovs[n] = IoSlice::new(&part[skip..skip + take]);
            n += 1;
            room -= take;
            skip = 0;
            // Eight is enough: one datagram spans at most the line, two value pieces (only
            // the last chunk of a value is short), the body and the tail.
            if room == 0 || n == iovs.len() {
                break;
            }
        }
        let res = sys::sendmsg_to(self.fd, &iovs[..n], &r.request_addr);
        self.transmit_done(res, UDP_HEADER_SIZE)
    }

    /// Accounts for a write (`header` bytes of it were frame header, not reply) and decides
    /// what the state machine does next (the common tail of C's transmit and transmit_udp).
    fn transmit_done(&mut self, res: io::Result<usize>, header: usize) -> TransmitResult {
        match res {
            Ok(written) => {
                stats::bump(&self.worker.stats.bytes_written, written as u64);
                self.transmit_post(written.saturating_sub(header));
                if self.resps.is_empty() {
                    TransmitResult::Complete
                } else {
                    TransmitResult::Incomplete
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !self.update_event(event::EV_WRITE | event::EV_PERSIST) {
                    if settings::verbose() > 0 {
                        eprintln!("Couldn't update event");
                    }
                    self.set_state(ConnState::Closing);
                    return TransmitResult::HardError;
                }
                TransmitResult::SoftError
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => TransmitResult::Incomplete,
            Err(e) => {
                if settings::verbose() > 0 {
                    sys::perror("Failed to write, and not due to blocking", &e);
                }
                self.set_state(ConnState::Closing);
                TransmitResult::HardError
            }
        }
    }

    /// Retires fully written (or skipped) responses and advances a partial one.
    fn transmit_post(&mut self, mut written: usize) {
        while let Some(r) = self.resps.front_mut() {
            if r.skip {
                if let Some(r) = self.resps.pop_front() {
                    resp_give(r);
                }
                continue;
            }
            let left = r.total() - r.sent;
            if written >= left {
                written -= left;
                if let Some(r) = self.resps.pop_front() {
                    resp_give(r);
                }
                continue;
            }
            r.sent += written;
            break;
        }
    }

    // ---- lending to side threads ----

    /// Lends the connection to a side thread (C's conn_watch hand-off): the connection stops
    /// when the current event returns and is parked without an event until the loan ends.
    /// Replies queued for this command are dropped; unparsed input stays for afterwards.
    pub fn lend(&mut self) -> crate::thread::LentConn {
        self.release_resps();
        self.set_state(ConnState::Watch);
        crate::thread::LentConn::new(self.fd, self.worker)
    }

    /// Takes back a loan the side thread refused at once (the command is still running on
    /// this worker): the connection continues with a fresh response for the error reply.
    pub fn unlend(&mut self, lent: crate::thread::LentConn) {
        lent.cancel();
        self.set_state(ConnState::NewCmd);
        if !self.resp_start() {
            self.set_state(ConnState::Closing);
        }
    }

    // ---- closing ----

    fn conn_close(&mut self) {
        if crate::logger::enabled(crate::logger::LOG_CONNEVENTS) {
            let peer = self.slot.peer();
            crate::logger::conn_event(false, &peer, self.transport, self.close_reason, self.fd);
        }
        if let Some(ev) = self.ev.as_ref() {
            ev.del();
        }
        if settings::verbose() > 1 {
            eprintln!("<{} connection closed.", self.fd);
        }
        self.release_items();
        self.rbytes = 0;
        self.rbuf_release();
        self.rbuf = Vec::new();
        self.set_state(ConnState::Closed);
        self.ev = None;
        conn_slot_close(self.fd);
        keep_leftover_cas(self.fd, std::mem::take(&mut self.cas));
        sys::close(self.fd);
        self.close_reason = CloseReason::None;
        ALLOW_NEW_CONNS.store(true, Relaxed);
        STATS.curr_conns.fetch_sub(1, Relaxed);
    }

    /// Notes that a command arrived (for idle timeouts and `stats conns`).
    pub fn last_cmd_time_now(&mut self) {
        self.last_cmd_time = current_time();
        self.slot.last_cmd_time.store(self.last_cmd_time, Relaxed);
    }

    /// Runs the state machine until it has to wait for the network (C's drive_machine).
    pub fn drive_machine(&mut self) {
        self.nreqs = settings::get().reqs_per_event;
        let mut stop = false;
        while !stop {
            match self.state {
                ConnState::Listening => {
                    // Listeners are separate objects (server.rs); a conn never listens.
                    stop = true;
                }
                ConnState::Waiting => {
                    self.rbuf_release();
                    if !self.update_event(event::EV_READ | event::EV_PERSIST) {
                        if settings::verbose() > 0 {
                            eprintln!("Couldn't update event");
                        }
                        self.set_state(ConnState::Closing);
                        continue;
                    }
                    self.set_state(ConnState::Read);
                    stop = true;
                }
                ConnState::Read => {
                    let res = if self.transport == Transport::Udp {
                        self.try_read_udp()
                    } else {
                        if !self.rbuf_alloc() {
                            self.set_state(ConnState::Closing);
                            continue;
                        }
                        self.try_read_network()
                    };
                    match res {
                        ReadResult::NoDataReceived => self.set_state(ConnState::Waiting),
                        ReadResult::DataReceived => self.set_state(ConnState::ParseCmd),
                        ReadResult::Error => self.set_state(ConnState::Closing),
                    }
                }
                ConnState::ParseCmd => {
                    if !self.try_read_command() {
                        if !self.resps.is_empty() {
                            self.set_state(ConnState::Mwrite);
                        } else {
                            self.set_state(ConnState::Waiting);
                        }
                    }
                }
                ConnState::NewCmd => {
                    self.nreqs -= 1;
                    if self.nreqs >= 0 {
                        self.reset_cmd_handler();
                    } else if !self.resps.is_empty() {
                        self.set_state(ConnState::Mwrite);
                    } else {
                        stats::bump(&self.worker.stats.conn_yields, 1);
                        if self.rbytes > 0 {
                            // Data is already buffered, so no read event would fire: ask for
                            // a write event to come back.
                            if !self.update_event(event::EV_WRITE | event::EV_PERSIST) {
                                if settings::verbose() > 0 {
                                    eprintln!("Couldn't update event");
                                }
                                self.set_state(ConnState::Closing);
                                continue;
                            }
                        }
                        stop = true;
                    }
                }
                ConnState::Nread => {
                    let Some(mut it) = self.item.take() else {
                        self.set_state(ConnState::Closing);
                        continue;
                    };
                    if self.rlbytes == 0 {
                        if self.protocol == Protocol::Binary {
                            crate::proto::binary::complete_nread(self, it);
                        } else {
                            crate::proto::text::complete_nread_ascii(self, it);
                        }
                        continue;
                    }
                    // Leftovers in the read buffer first, then straight from the socket into
                    // the item.
                    if self.rbytes > 0 {
                        let n = self.rbytes.min(self.rlbytes);
                        let (ri, rc) = (self.ritem, self.rcurr);
                        it.write_at(ri, &self.rbuf[rc..rc + n]);
                        self.ritem += n;
                        self.rlbytes -= n;
                        self.rcurr += n;
                        self.rbytes -= n;
                        self.item = Some(it);
                        continue;
                    }
                    let (ri, want) = (self.ritem, self.rlbytes);
                    let window = it.window_mut(ri);
                    let want = want.min(window.len());
                    let res = sys::read(self.fd, &mut window[..want]);
                    self.item = Some(it);
                    match self.read_outcome(res, true) {
                        ReadStep::Data(n) => {
                            self.ritem += n;
                            self.rlbytes -= n;
                        }
                        ReadStep::Wait => stop = true,
                        ReadStep::Again => {}
                    }
                }
                ConnState::Swallow => {
                    if self.sbytes == 0 {
                        self.set_state(ConnState::NewCmd);
                        continue;
                    }
                    if self.rbytes > 0 {
                        let n = self.rbytes.min(self.sbytes);
                        self.sbytes -= n;
                        self.rcurr += n;
                        self.rbytes -= n;
                        continue;
                    }
                    if !self.rbuf_alloc() {
                        self.set_state(ConnState::Closing);
                        continue;
                    }
                    let want = self.rbuf.len().min(self.sbytes);
                    let res = sys::read(self.fd, &mut self.rbuf[..want]);
                    match self.read_outcome(res, false) {
                        ReadStep::Data(n) => self.sbytes -= n,
                        ReadStep::Wait => stop = true,
                        ReadStep::Again => {}
                    }
                }
                ConnState::Write | ConnState::Mwrite => match if self.transport == Transport::Udp {
                    self.transmit_udp()
                } else {
                    self.transmit()
                } {
                    TransmitResult::Complete => {
                        if self.state == ConnState::Mwrite {
                            self.release_resps();
                            self.set_state(ConnState::NewCmd);
                            if self.close_after_write {
                                self.set_state(ConnState::Closing);
                            }
                        } else {
                            if settings::verbose() > 0 {
                                eprintln!("Unexpected state {}", self.state as i32);
                            }
                            self.set_state(ConnState::Closing);
                        }
                    }
                    TransmitResult::Incomplete | TransmitResult::HardError => {}
                    TransmitResult::SoftError => stop = true,
                },
                ConnState::Closing => {
                    if self.transport == Transport::Udp {
                        // A UDP "connection" is the worker's socket: reset, never close.
                        self.release_resps();
                        self.close_after_write = false;
                        self.rbytes = 0;
                        self.set_state(ConnState::Read);
                    } else {
                        self.conn_close();
                    }
                    stop = true;
                }
                ConnState::Closed => {
                    stop = true;
                }
                ConnState::Watch
                | ConnState::IoQueue
                | ConnState::IoPending
                | ConnState::IoResume => {
                    stop = true;
                }
            }
        }
    }
}

/// First `needle` in `hay` (the request line's '\n'), scanned as the tokenizer scans for
/// spaces, eight bytes at a time.
#[inline]
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    let at = crate::proto::tokenizer::find_byte(hay, 0, needle);
    (at < hay.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot keeps the peer compactly, and converting it back loses nothing that
    /// `stats conns` or the connection events show.
    #[test]
    fn a_peer_address_round_trips_and_stays_small() {
        for text in [
            "127.0.0.1:11211",
            "[::1]:5",
            "[fe80::1%2]:65535",
            "0.0.0.0:0",
        ] {
            let sa: std::net::SocketAddr = text.parse().unwrap();
            let a = sys::SockAddr::from_std(&sa);
            assert_eq!(a.to_std(), Some(sa), "{text}");
            let back = Peer::new(&a).addr();
            assert_eq!(back.to_std(), Some(sa), "{text}");
            assert_eq!(back.len, a.len, "{text}");
            assert_eq!(addr_text(&back, false), addr_text(&a, false), "{text}");
        }
        let none = Peer::new(&sys::SockAddr::empty()).addr();
        assert_eq!(none.family(), libc::AF_UNSPEC);
        assert!(
            std::mem::size_of::<ConnSlot>() <= 64,
            "a slot without the full address"
        );
    }

    /// Every open connection pays for a Conn, so it holds no per-peer address inline (the
    /// `stats conns` slot has it; only UDP boxes one). A full sockaddr_storage alone is
    /// 128 bytes, which this bound (208 bytes now; 336 with the address inline) leaves no
    /// room for.
    #[test]
    fn a_conn_stays_small() {
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 256, "Conn is {size} bytes");
    }

    #[test]
    fn memchr_finds_the_first_match() {
        let line = b"mg bench:loadgen:0000012345 v f t\r\nget x\n";
        for needle in [b'\n', b'\r', b' ', b'm', b't', b'x', b'z', 0x80, 0xff] {
            assert_eq!(
                memchr(needle, line),
                line.iter().position(|&b| b == needle),
                "{needle}"
            );
        }
        for len in 0..20 {
            let mut hay = vec![b'a'; len];
            assert_eq!(memchr(b'\n', &hay), None);
            for at in 0..len {
                hay[at] = b'\n';
                assert_eq!(memchr(b'\n', &hay), Some(at));
                hay[at] = 0x8a; // a high byte that differs from the needle by one bit
                assert_eq!(memchr(b'\n', &hay), None);
                hay[at] = b'a';
            }
        }
    }

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
}
