//! The per-connection state machine (C's `drive_machine` and the `conn_*` helpers of
//! memcached.c): non-blocking reads into a read buffer borrowed from the worker's cache, command
//! parsing, replies queued as response objects and written with one sendmsg, `-R` yields, idle
//! timeouts and closing.
//!
//! A `Conn` belongs to exactly one worker thread: it is created there from the dispatcher's
//! queue, registered with that worker's event base and freed there.
//!
//! The rest of C's connection code lives in the submodules: `resp` (response objects and the
//! worker's buffer caches), `table` (the per-descriptor table behind `stats conns`, and what
//! C's reused per-descriptor structures keep) and `udp` (UDP datagram framing).

use crate::event::{self, Disposition, Event, EventBase, Handler};
use crate::items::store::ItemRef;
use crate::proto::session::Session;
use crate::settings::{self, Protocol};
use crate::stats::{self, current_time, STATS};
use crate::sys;
use crate::thread::Worker;
use crate::tls::TlsConn;
use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

mod framing;
mod resp;
mod table;
mod udp;

use resp::{rbuf_give, rbuf_take, resp_give};
pub use resp::{thread_caches_init, Resp, READ_BUFFER_SIZE, WRITE_BUFFER_SIZE};
use table::keep_leftover_cas;
pub use table::{conn_slot_close, conn_slot_open, note_conn_struct, write_stats_conns, ConnSlot};
use udp::UDP_READ_BUFFER_SIZE;

/// Most iovecs handed to one sendmsg: C stops filling below IOV_MAX - 1 (1024 on Linux).
const IOV_MAX: usize = 1024;
const IOV_USE: usize = IOV_MAX - 2;

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

pub use crate::lent::{CloseReason, Transport};

/// Set when a worker closes a connection: the dispatcher may accept again (C's allow_new_conns).
pub static ALLOW_NEW_CONNS: AtomicBool = AtomicBool::new(true);

pub fn prot_text(p: Protocol) -> &'static str {
    match p {
        Protocol::Ascii => "ascii",
        Protocol::Binary => "binary",
        Protocol::Negotiating => "auto-negotiate",
    }
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
    pub rbuf: sys::ReadBuf,
    rbuf_malloced: bool,
    /// Start of unparsed bytes in `rbuf`.
    pub rcurr: usize,
    /// Count of unparsed bytes at `rcurr`.
    pub rbytes: usize,
    /// Replies waiting to be written, oldest first; the last is the current command's.
    pub resps: resp::RespQueue,
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
    slot: &'static ConnSlot,
    /// The binary request being handled.
    pub bin: crate::proto::binary::BinState,
    /// `-Y`: the client has sent a good token (always true without an auth file); `-S`: a
    /// binary client has authenticated through SASL.
    pub(super) authenticated: bool,
    /// `-S`: the SASL context, made on first use and freed with the connection.
    pub(super) sasl: crate::sasl::SaslConn,
    /// `-Y`: bytes of the announced token still to arrive in full, its "\r\n" included (C's
    /// sasl_started with rlbytes); 0 while waiting for the `set` line.
    auth_token_len: u32,
    /// The TLS session on the socket; reads and writes go through it when present.
    tls: Option<TlsConn>,
    /// Responses waiting for a value from flash (C's resps_suspended).
    resps_suspended: u16,
    /// Values read from flash on this connection that could have been recached (C's
    /// recache_counter).
    recache_counter: u32,
}

/// read(2) on the socket, or a TLS read when the connection has a session.
fn sock_read(fd: RawFd, tls: &mut Option<TlsConn>, buf: &mut [u8]) -> io::Result<usize> {
    match tls {
        Some(t) => t.read(fd, buf),
        None => sys::read(fd, buf),
    }
}

/// `sock_read` into the read buffer at `from`, at most `max` bytes.
fn sock_read_buf(
    fd: RawFd,
    tls: &mut Option<TlsConn>,
    buf: &mut sys::ReadBuf,
    from: usize,
    max: usize,
) -> io::Result<usize> {
    match tls {
        Some(t) => t.read_buf(fd, buf, from, max),
        None => buf.read(fd, from, max),
    }
}

/// Creates a connection on the calling worker (C's conn_new). Returns false if the event could
/// not be registered (the caller closes the fd).
pub fn conn_new(
    fd: RawFd,
    init_state: ConnState,
    transport: Transport,
    protocol: Protocol,
    tls: Option<TlsConn>,
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
        rbuf: sys::ReadBuf::empty(),
        rbuf_malloced: false,
        rcurr: 0,
        rbytes: 0,
        resps: resp::RespQueue::default(),
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
        authenticated: match protocol {
            Protocol::Ascii => s.auth_file.is_none(),
            Protocol::Binary => !s.sasl,
            Protocol::Negotiating => s.auth_file.is_none(),
        },
        sasl: Default::default(),
        auth_token_len: 0,
        resps_suspended: 0,
        recache_counter: 0,
        tls,
    });
    if transport == Transport::Udp {
        c.rbuf = sys::ReadBuf::new(UDP_READ_BUFFER_SIZE);
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
pub fn redispatch(fd: RawFd, close: bool, tls: Option<TlsConn>, base: &EventBase) {
    let Some(mut c) = PARKED.with(|p| p.borrow_mut().remove(&fd)) else {
        return;
    };
    c.tls = tls;
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
    // Commands OpenSSL read ahead before the loan raise no read event: come back on a write
    // event (as a yield does) and read them first.
    let held = c.tls.as_ref().is_some_and(|t| t.pending());
    let which = if held {
        event::EV_WRITE
    } else {
        event::EV_READ
    };
    if !base.register(fd, which | event::EV_PERSIST, timeout, c) {
        // The connection object is gone; at least release its descriptor and count.
        sys::perror("event_add", &io::Error::last_os_error());
        conn_slot_close(fd);
        sys::close(fd);
        STATS.curr_conns.fetch_sub(1, Relaxed);
    }
}

/// A value this worker read from flash for connection `fd` came back (C's
/// thread_libevent_ionotify): its event runs, and the connection takes what is done.
pub fn io_returned(fd: RawFd) {
    event::wake(fd, event::EV_WRITE);
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The event goes first so libevent forgets the fd before it is closed.
        self.ev = None;
    }
}

impl Conn {
    #[inline]
    pub fn set_state(&mut self, state: ConnState) {
        if state != self.state {
            if settings::verbose() > 2 {
                self.trace_state(state);
            }
            self.state = state;
            self.slot.set_state(state);
        }
    }

    #[cold]
    fn trace_state(&self, state: ConnState) {
        eprintln!(
            "{}: going from {} to {}",
            self.fd,
            self.state.name(),
            state.name()
        );
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
        let tmp = sys::ReadBuf::with_prefix(size, &self.rbuf[self.rcurr..self.rcurr + self.rbytes]);
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
                self.rbuf.compact(self.rcurr, self.rbytes);
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
                self.rbuf.grow(n);
            }
            let avail = self.rbuf.len() - self.rbytes;
            let start = self.rbytes;
            match sock_read_buf(self.fd, &mut self.tls, &mut self.rbuf, start, avail) {
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
                // A binary client behind a negotiating listener (a per-listener protocol
                // under -S) must still authenticate.
                self.authenticated &= !settings::get().sasl;
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
            Protocol::Binary => self.try_read_command_binary(),
            _ if !self.authenticated => self.try_read_command_asciiauth(),
            _ => self.try_read_command_ascii(),
        }
    }

    fn reset_cmd_handler(&mut self) {
        self.noreply = false;
        self.item = None;
        if self.rbytes > 0 {
            self.set_state(ConnState::ParseCmd);
        } else if !self.resps.is_empty() {
            self.set_state(ConnState::Mwrite);
        } else if self.tls.as_ref().is_some_and(|t| t.pending()) {
            // OpenSSL holds decrypted bytes no read took yet: no read event would come.
            self.set_state(ConnState::Read);
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
        let mut n = 0;
        // A reply that does not fit in this sendmsg is continued by the next (`sent` keeps
        // the place).
        for r in self.resps.iter() {
            if r.skip {
                continue;
            }
            let (filled, all) = r.push_unsent(&mut iovs, n);
            n = filled;
            if !all {
                break;
            }
        }
        if n == 0 {
            // Only noreply responses: nothing to write.
            self.transmit_post(0);
            return TransmitResult::Complete;
        }
        // SAFETY: entries 0..n were each written above, and MaybeUninit<T> has T's layout.
        let iovs = unsafe { std::slice::from_raw_parts(iovs.as_ptr().cast::<IoSlice<'_>>(), n) };
        let res = match &mut self.tls {
            Some(t) => t.sendmsg(self.fd, iovs),
            None => sys::sendmsg(self.fd, iovs),
        };
        self.transmit_done(res, 0)
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
                    resp_give(r, &mut self.recache_counter);
                }
                continue;
            }
            let left = r.total() - r.sent;
            if written >= left {
                written -= left;
                if let Some(r) = self.resps.pop_front() {
                    resp_give(r, &mut self.recache_counter);
                }
                continue;
            }
            r.sent += written;
            break;
        }
    }

    // ---- lending to side threads ----

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
        self.sasl.dispose();
        self.rbytes = 0;
        self.rbuf_release();
        self.rbuf = sys::ReadBuf::empty();
        self.set_state(ConnState::Closed);
        self.ev = None;
        conn_slot_close(self.fd);
        keep_leftover_cas(self.fd, std::mem::take(&mut self.cas));
        // The session says goodbye (close_notify) before the socket closes.
        self.tls = None;
        sys::close(self.fd);
        self.close_reason = CloseReason::None;
        ALLOW_NEW_CONNS.store(true, Relaxed);
        STATS.curr_conns.fetch_sub(1, Relaxed);
    }

    /// Fills the responses whose reads from flash are back: the value, or the protocol's
    /// miss (C's conn_io_queue_return with storage_return_cb).
    fn collect_flash(&mut self) {
        for r in self.resps.iter_mut() {
            if !r.flash_wait {
                continue;
            }
            let Some(f) = r.flash.as_deref_mut() else {
                continue;
            };
            if !f.is_done() {
                continue;
            }
            match f.outcome() {
                crate::storage::read::Outcome::Hit(it) => r.item = Some(it),
                crate::storage::read::Outcome::Miss => r.flash_miss(),
            }
            r.flash_wait = false;
            self.resps_suspended = self.resps_suspended.saturating_sub(1);
        }
    }

    /// Notes that a command arrived (for idle timeouts and `stats conns`).
    pub fn last_cmd_time_now(&mut self) {
        self.last_cmd_time = current_time();
        self.slot.last_cmd_time.store(self.last_cmd_time, Relaxed);
    }

    /// Runs the state machine until it has to wait for the network (C's drive_machine).
    pub fn drive_machine(&mut self) {
        self.nreqs = self.worker.reqs_per_event;
        let mut stop = false;
        while !stop {
            match self.state {
                ConnState::Listening => {
                    // Listeners are separate objects (server.rs); a conn never listens.
                    stop = true;
                }
                ConnState::Waiting => {
                    if self.tls.as_ref().is_some_and(|t| t.pending()) {
                        // Records OpenSSL read ahead: no read event would come for them.
                        self.set_state(ConnState::Read);
                        continue;
                    }
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
                        if self.rbytes > 0 || self.tls.as_ref().is_some_and(|t| t.pending()) {
                            // Data is already buffered (here or in OpenSSL), so no read event
                            // would fire: ask for a write event to come back.
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
                    let res = sock_read(self.fd, &mut self.tls, &mut window[..want]);
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
                    let res = sock_read_buf(self.fd, &mut self.tls, &mut self.rbuf, 0, want);
                    match self.read_outcome(res, false) {
                        ReadStep::Data(n) => self.sbytes -= n,
                        ReadStep::Wait => stop = true,
                        ReadStep::Again => {}
                    }
                }
                ConnState::Mwrite if self.resps_suspended > 0 => {
                    // Nothing is written while a value is read from flash (C's conn_io_queue):
                    // the reads go to the engine in one chain; the worker wakes this event
                    // when they come back.
                    let worker: &'static dyn crate::storage::read::Waker = self.worker;
                    crate::storage::read::submit(
                        self.resps.iter_mut().filter_map(|r| r.flash.as_deref_mut()),
                        worker,
                        self.fd,
                    );
                    let fd = self.fd;
                    if let Some(ev) = self.ev.as_mut() {
                        ev.wait_for_wake(fd);
                    }
                    self.set_state(ConnState::IoQueue);
                    stop = true;
                }
                ConnState::IoQueue | ConnState::IoPending => {
                    self.collect_flash();
                    if self.resps_suspended > 0 {
                        // Woken before every read is back, or the client sent more: stop
                        // watching the socket until then (C's conn_io_pending).
                        if self.state == ConnState::IoQueue {
                            if let Some(ev) = self.ev.as_ref() {
                                ev.del();
                            }
                            self.set_state(ConnState::IoPending);
                        }
                        stop = true;
                        continue;
                    }
                    let fd = self.fd;
                    if let Some(ev) = self.ev.as_mut() {
                        ev.stop_waiting(fd);
                    }
                    if self.state == ConnState::IoPending {
                        let timeout = if self.transport == Transport::Tcp {
                            idle_timeout_interval(settings::get())
                        } else {
                            None
                        };
                        if !self.ev.as_ref().is_some_and(|ev| ev.add(timeout)) {
                            self.set_state(ConnState::Closing);
                            continue;
                        }
                    }
                    // C's conn_io_resume.
                    self.set_state(ConnState::Mwrite);
                }
                ConnState::IoResume => self.set_state(ConnState::Mwrite),
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
                ConnState::Watch => {
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
    let at = crate::sys::find_byte(hay, 0, needle);
    (at < hay.len()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
