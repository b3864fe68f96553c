//! The logger (C's logger.c): threads that produce events (workers, the LRU maintainer, the
//! dispatcher) append compact binary entries to their own buffer; the logger thread
//! (`mc-log`) drains every buffer, renders each entry as C's text line and copies it into
//! the buffer of each watcher interested in its type, then writes watcher buffers to their
//! sockets. `watch` turns a client connection into a watcher: its worker lends the socket to
//! this thread (`lent::LentConn`) and gets it back, to close, when the client goes away.
//!
//! Producers only log when some watcher wants that type: one relaxed load of [`EFLAGS`] (C's
//! per-logger eflags, which C keeps equal on every logger) guards every call site, so nothing
//! is formatted, locked or allocated per request while nobody watches.

use crate::lent::{CloseReason, LentConn, Transport};
use crate::stats::{current_time, STATS};
use crate::sys::{self, SockAddr};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

// Event classes a watcher asks for (C's LOG_* flags; the values are C's).
pub const LOG_SYSEVENTS: u16 = 1 << 1;
pub const LOG_FETCHERS: u16 = 1 << 2;
pub const LOG_MUTATIONS: u16 = 1 << 3;
pub const LOG_SYSERRORS: u16 = 1 << 4;
pub const LOG_CONNEVENTS: u16 = 1 << 5;
pub const LOG_EVICTIONS: u16 = 1 << 6;
pub const LOG_RAWCMDS: u16 = 1 << 9;
pub const LOG_PROXYREQS: u16 = 1 << 10;
pub const LOG_PROXYEVENTS: u16 = 1 << 11;
pub const LOG_PROXYUSER: u16 = 1 << 12;
pub const LOG_DELETIONS: u16 = 1 << 13;

/// Most watchers at once (C's WATCHER_LIMIT).
const WATCHER_LIMIT: usize = 20;
/// C's `sizeof(logentry)`: worker buffers are accounted in C's entry sizes, so that they
/// fill up (and drop, `log_worker_dropped`) after as many entries as C's.
const C_ENTRY_HEADER: usize = 40;
/// Room an entry may take in a worker buffer, header included: C reserves
/// `sizeof(logentry) + reqlen` (512) before writing any entry.
const ENTRY_RESERVE: usize = C_ENTRY_HEADER + 512;
/// Room a rendered line needs in a watcher buffer beyond its length (C asks for 128 more,
/// for a "skipped=N" line in front of it).
const SKIP_ROOM: usize = 128;
/// Longest rendered line C accepts (LOGGER_PARSE_SCRATCH).
const PARSE_SCRATCH: usize = 4096;
const MIN_LOGGER_SLEEP: u64 = 1000;
const MAX_LOGGER_SLEEP: u64 = 1_000_000;

/// Union of the watchers' flags: what producers log.
static EFLAGS: AtomicU16 = AtomicU16::new(0);
/// Entry sequence number (C's logger_gid).
static GID: AtomicU64 = AtomicU64::new(0);

/// The last entry number handed out (C's logger_get_gid), saved across a restart.
pub fn gid() -> u64 {
    GID.load(Relaxed)
}

/// Continues numbering from a saved gid (C's logger_set_gid).
pub fn set_gid(gid: u64) {
    GID.store(gid, Relaxed);
}

/// Whether some watcher wants events of class `flag`. The only cost logging has on the hot
/// path while nobody watches.
#[inline]
pub fn enabled(flag: u16) -> bool {
    EFLAGS.load(Relaxed) & flag != 0
}

// ---- per-thread buffers ----

/// One producing thread's buffer (C's `logger`). Entries are appended under the mutex; the
/// logger thread swaps the whole buffer for an empty one of the same capacity.
pub struct Logger {
    inner: Mutex<LogBuf>,
}

struct LogBuf {
    data: Vec<u8>,
    /// Bytes the entries in `data` would take in C's buffer.
    c_used: usize,
    cap: usize,
    written: u64,
    dropped: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    static THREAD_LOGGER: RefCell<Option<Arc<Logger>>> = const { RefCell::new(None) };
    /// The client descriptor of the command being run (C's t->cur_sfd), for `cfd=`.
    static CUR_SFD: Cell<i32> = const { Cell::new(0) };
}

/// Gives the calling thread a log buffer (C's logger_create). Threads without one never log.
pub fn logger_create() {
    let size = crate::settings::get().logger_buf_size as usize;
    let l = Arc::new(Logger {
        inner: Mutex::new(LogBuf {
            data: Vec::with_capacity(size),
            c_used: 0,
            cap: size,
            written: 0,
            dropped: 0,
        }),
    });
    lock(&STATE).loggers.push(Arc::clone(&l));
    THREAD_LOGGER.with(|t| *t.borrow_mut() = Some(l));
}

/// Notes the client descriptor whose command the calling worker runs.
#[inline]
pub fn set_cur_sfd(fd: i32) {
    CUR_SFD.with(|c| c.set(fd));
}

pub fn cur_sfd() -> i32 {
    CUR_SFD.with(|c| c.get())
}

// Entry types (C's log_entry_type values where they exist).
const E_EVICTION: u8 = 1;
const E_ITEM_GET: u8 = 2;
const E_ITEM_STORE: u8 = 3;
const E_TEXT: u8 = 4;
const E_CONN_NEW: u8 = 6;
const E_CONN_CLOSE: u8 = 7;
const E_DELETION: u8 = 10;

/// Appends one entry to the calling thread's buffer: a fixed header (size, type, class flag,
/// gid, time) followed by `body` written by the caller. Counts a drop when the buffer lacks
/// C's reserve.
/// `c_size` is the entry's body size in C (its e->size).
fn log_entry(event: u8, eflags: u16, c_size: usize, body: impl FnOnce(&mut Vec<u8>)) {
    THREAD_LOGGER.with(|t| {
        let t = t.borrow();
        let Some(l) = t.as_ref() else { return };
        let mut b = lock(&l.inner);
        // Our entries are smaller than C's, so the real buffer never runs out before the
        // C-sized accounting does.
        if b.c_used + ENTRY_RESERVE > b.cap {
            b.dropped += 1;
            return;
        }
        let (sec, usec) = sys::realtime();
        let gid = GID.fetch_add(1, Relaxed) + 1;
        let start = b.data.len();
        let d = &mut b.data;
        d.extend_from_slice(&[0, 0, event]);
        d.extend_from_slice(&eflags.to_ne_bytes());
        d.extend_from_slice(&gid.to_ne_bytes());
        d.extend_from_slice(&sec.to_ne_bytes());
        d.extend_from_slice(&usec.to_ne_bytes());
        body(d);
        let len = (d.len() - start) as u16;
        d[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        b.c_used += C_ENTRY_HEADER + c_size;
        b.written += 1;
    });
}

fn put_key(d: &mut Vec<u8>, key: &[u8]) {
    let n = key.len().min(255);
    d.push(n as u8);
    d.extend_from_slice(&key[..n]);
}

/// A fetch's outcome (C's LOGGER_ITEM_GET): `was_found` 0 not found, 1 found, 2 flushed,
/// 3 expired; `nbytes` and `clsid` of the item returned (0 when none).
pub fn item_get(was_found: u8, key: &[u8], nbytes: i32, clsid: u8) {
    let sfd = cur_sfd();
    log_entry(E_ITEM_GET, LOG_FETCHERS, 12 + key.len(), |d| {
        d.push(was_found);
        d.push(clsid);
        d.extend_from_slice(&nbytes.to_ne_bytes());
        d.extend_from_slice(&sfd.to_ne_bytes());
        put_key(d, key);
    });
}

/// A storage command's outcome (C's LOGGER_ITEM_STORE). `status` is C's store_item_type
/// (0 not_stored, 1 stored, 2 exists, 3 not_found, 4 too_large, 5 no_memory), `cmd` its
/// NREAD_* number, `exptime` the item's absolute expiry (0: none).
#[allow(clippy::too_many_arguments)]
pub fn item_store(
    status: u8,
    cmd: i32,
    key: &[u8],
    nbytes: i32,
    exptime: u32,
    clsid: u8,
    sfd: i32,
) {
    // C stores the remaining TTL, computed when logged.
    let ttl = if exptime != 0 {
        exptime.wrapping_sub(current_time())
    } else {
        0
    };
    log_entry(E_ITEM_STORE, LOG_MUTATIONS, 24 + key.len(), |d| {
        d.push(status);
        d.push(clsid);
        d.extend_from_slice(&cmd.to_ne_bytes());
        d.extend_from_slice(&ttl.to_ne_bytes());
        d.extend_from_slice(&nbytes.to_ne_bytes());
        d.extend_from_slice(&sfd.to_ne_bytes());
        put_key(d, key);
    });
}

/// An item evicted from a COLD tail (C's LOGGER_EVICTION).
pub fn eviction(key: &[u8], exptime: u32, time: u32, fetched: bool, nbytes: i32, clsid: u8) {
    let now = current_time();
    let exp: i64 = if exptime > 0 {
        exptime.wrapping_sub(now) as i64
    } else {
        -1
    };
    let la = now.wrapping_sub(time);
    log_entry(E_EVICTION, LOG_EVICTIONS, 23 + key.len(), |d| {
        d.extend_from_slice(&exp.to_ne_bytes());
        d.extend_from_slice(&la.to_ne_bytes());
        d.push(fetched as u8);
        d.extend_from_slice(&nbytes.to_ne_bytes());
        d.push(clsid);
        put_key(d, key);
    });
}

/// Deletion commands (C's LOG_TYPE_DELETE, LOG_TYPE_META_DELETE).
pub const DELETE_CMD: u8 = 1;
pub const META_DELETE_CMD: u8 = 2;

/// An item removed by `delete` or `md` (C's LOGGER_DELETIONS).
pub fn deletion(key: &[u8], nbytes: i32, cmd: u8, clsid: u8) {
    log_entry(E_DELETION, LOG_DELETIONS, 12 + key.len(), |d| {
        d.extend_from_slice(&nbytes.to_ne_bytes());
        d.push(cmd);
        d.push(clsid);
        put_key(d, key);
    });
}

/// A client connection opened (`new`) or closed (C's LOGGER_CONNECTION_NEW/CLOSE).
pub fn conn_event(new: bool, addr: &SockAddr, transport: Transport, reason: CloseReason, sfd: i32) {
    let transport = match transport {
        Transport::Local => 0u8,
        Transport::Tcp => 1,
        Transport::Udp => 2,
    };
    // C's close_reasons; a connection that never set one reads as 0, "error".
    let reason = match reason {
        CloseReason::None | CloseReason::Error => 0u8,
        CloseReason::Normal => 1,
        CloseReason::IdleTimeout => 2,
        CloseReason::Shutdown => 3,
    };
    let (fam, ip, port): (u8, [u8; 16], u16) = match addr.to_std() {
        Some(std::net::SocketAddr::V4(a)) => {
            let mut ip = [0; 16];
            ip[..4].copy_from_slice(&a.ip().octets());
            (4, ip, a.port())
        }
        Some(std::net::SocketAddr::V6(a)) => (6, a.ip().octets(), a.port()),
        None => (0, [0; 16], 0),
    };
    let event = if new { E_CONN_NEW } else { E_CONN_CLOSE };
    log_entry(event, LOG_CONNEVENTS, 40, |d| {
        d.push(transport);
        d.push(reason);
        d.extend_from_slice(&sfd.to_ne_bytes());
        d.push(fam);
        d.extend_from_slice(&ip);
        d.extend_from_slice(&port.to_ne_bytes());
    });
}

/// A preformatted system event line (C's text entries, e.g. the crawler's schedule).
pub fn text(eflags: u16, line: &str) {
    let n = line.len().min(511);
    log_entry(E_TEXT, eflags, n + 1, |d| {
        d.extend_from_slice(&line.as_bytes()[..n]);
    });
}

// ---- decoding and rendering (logger thread) ----

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.b.len());
        let (h, t) = self.b.split_at(n);
        self.b = t;
        h
    }
    fn arr<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let s = self.take(N);
        a[..s.len()].copy_from_slice(s);
        a
    }
    fn u8(&mut self) -> u8 {
        self.arr::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_ne_bytes(self.arr())
    }
    fn i32(&mut self) -> i32 {
        i32::from_ne_bytes(self.arr())
    }
    fn u32(&mut self) -> u32 {
        u32::from_ne_bytes(self.arr())
    }
    fn i64(&mut self) -> i64 {
        i64::from_ne_bytes(self.arr())
    }
    fn u64(&mut self) -> u64 {
        u64::from_ne_bytes(self.arr())
    }
    fn key(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.take(n)
    }
}

/// Appends `src` URI-encoded as C's uriencode does (alphanumerics and `-._~` kept).
pub fn uriencode(src: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in src {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c);
        } else {
            out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
        }
    }
}

fn size_of_value(nbytes: i32) -> i32 {
    // Values are stored with their "\r\n"; C logs the client's size.
    if nbytes > 0 {
        nbytes - 2
    } else {
        0
    }
}

/// One decoded entry: its class flag, gid, and the rendered line.
struct Rendered {
    eflags: u16,
    gid: u64,
}

/// Renders one entry (C's parse callbacks) into `out`, which is cleared first.
fn render(entry: &[u8], out: &mut Vec<u8>) -> Option<Rendered> {
    use std::io::Write;
    out.clear();
    let mut r = Reader { b: entry };
    let _len = r.u16();
    let event = r.u8();
    let eflags = r.u16();
    let gid = r.u64();
    let sec = r.i64();
    let usec = r.i32();
    let head = |out: &mut Vec<u8>| {
        let _ = write!(out, "ts={}.{} gid={} ", sec, usec, gid);
    };
    match event {
        E_ITEM_GET => {
            let was_found = r.u8();
            let clsid = r.u8();
            let nbytes = r.i32();
            let sfd = r.i32();
            let key = r.key();
            const FOUND: [&str; 4] = ["not_found", "found", "flushed", "expired"];
            head(out);
            out.extend_from_slice(b"type=item_get key=");
            uriencode(key, out);
            let _ = writeln!(
                out,
                " status={} clsid={} cfd={} size={}",
                FOUND
                    .get(was_found as usize)
                    .copied()
                    .unwrap_or("not_found"),
                clsid,
                sfd,
                size_of_value(nbytes)
            );
        }
        E_ITEM_STORE => {
            let status = r.u8();
            let clsid = r.u8();
            let cmd = r.i32();
            let ttl = r.u32();
            let nbytes = r.i32();
            let sfd = r.i32();
            let key = r.key();
            const STATUS: [&str; 6] = [
                "not_stored",
                "stored",
                "exists",
                "not_found",
                "too_large",
                "no_memory",
            ];
            const CMDS: [&str; 9] = [
                "null", "add", "set", "replace", "append", "prepend", "cas", "append", "prepend",
            ];
            let cmd = usize::try_from(cmd)
                .ok()
                .and_then(|c| CMDS.get(c).copied())
                .unwrap_or("na");
            head(out);
            out.extend_from_slice(b"type=item_store key=");
            uriencode(key, out);
            let _ = writeln!(
                out,
                " status={} cmd={} ttl={} clsid={} cfd={} size={}",
                STATUS.get(status as usize).copied().unwrap_or("not_stored"),
                cmd,
                ttl,
                clsid,
                sfd,
                size_of_value(nbytes)
            );
        }
        E_EVICTION => {
            let exp = r.i64();
            let la = r.u32();
            let fetched = r.u8() != 0;
            let nbytes = r.i32();
            let clsid = r.u8();
            let key = r.key();
            head(out);
            out.extend_from_slice(b"type=eviction key=");
            uriencode(key, out);
            let _ = writeln!(
                out,
                " fetch={} ttl={} la={} clsid={} size={}",
                if fetched { "yes" } else { "no" },
                exp,
                la as i32,
                clsid,
                size_of_value(nbytes)
            );
        }
        E_DELETION => {
            let nbytes = r.i32();
            let cmd = r.u8();
            let clsid = r.u8();
            let key = r.key();
            const CMDS: [&str; 3] = ["null", "delete", "md"];
            // C prints this type's seconds as an int.
            let _ = write!(out, "ts={}.{} gid={} ", sec as i32, usec, gid);
            out.extend_from_slice(b"type=deleted key=");
            uriencode(key, out);
            let _ = writeln!(
                out,
                " cmd={} clsid={} size={}",
                CMDS.get(cmd as usize).copied().unwrap_or("na"),
                clsid,
                size_of_value(nbytes)
            );
        }
        E_CONN_NEW | E_CONN_CLOSE => {
            let transport = r.u8();
            let reason = r.u8();
            let sfd = r.i32();
            let fam = r.u8();
            let ip: [u8; 16] = r.arr();
            let port = r.u16();
            let rip = match fam {
                4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                6 => std::net::Ipv6Addr::from(ip).to_string(),
                _ => "unix".to_string(),
            };
            const TRANSPORT: [&str; 3] = ["local", "tcp", "udp"];
            const REASON: [&str; 4] = ["error", "normal", "idle_timeout", "shutdown"];
            let transport = TRANSPORT
                .get(transport as usize)
                .copied()
                .unwrap_or("local");
            head(out);
            if event == E_CONN_NEW {
                let _ = writeln!(
                    out,
                    "type=conn_new rip={} rport={} transport={} cfd={}",
                    rip, port, transport, sfd
                );
            } else {
                let _ = writeln!(
                    out,
                    "type=conn_close rip={} rport={} transport={} reason={} cfd={}",
                    rip,
                    port,
                    transport,
                    REASON.get(reason as usize).copied().unwrap_or("error"),
                    sfd
                );
            }
        }
        E_TEXT => {
            head(out);
            out.extend_from_slice(r.b);
            out.push(b'\n');
        }
        _ => return None,
    }
    if out.len() >= PARSE_SCRATCH {
        return None;
    }
    Some(Rendered { eflags, gid })
}

// ---- watchers and the logger thread ----

/// A watcher's output buffer of fixed size (`-o watcher_logbuf_size`), managed as C's bip
/// buffer: region A is written out from its start; when the room after A is smaller than the
/// room before it, new bytes go to region B at the front, which becomes A once A drains. So a
/// slow watcher loses lines exactly when C's would.
struct WatchBuf {
    data: Vec<u8>,
    a_start: usize,
    a_end: usize,
    b_end: usize,
    b_inuse: bool,
}

impl WatchBuf {
    fn new(size: usize) -> WatchBuf {
        WatchBuf {
            data: vec![0; size],
            a_start: 0,
            a_end: 0,
            b_end: 0,
            b_inuse: false,
        }
    }
    fn unused(&self) -> usize {
        if self.b_inuse {
            self.a_start - self.b_end
        } else {
            self.data.len() - self.a_end
        }
    }
    fn is_empty(&self) -> bool {
        self.a_start == self.a_end
    }
    /// Whether `n` contiguous bytes fit (bipbuf_request).
    fn request(&self, n: usize) -> bool {
        self.unused() >= n
    }
    fn switch_to_b(&mut self) {
        if self.data.len() - self.a_end < self.a_start - self.b_end {
            self.b_inuse = true;
        }
    }
    /// Appends `src` if it fits (bipbuf_offer).
    fn offer(&mut self, src: &[u8]) -> bool {
        if self.unused() < src.len() {
            return false;
        }
        let at = if self.b_inuse { self.b_end } else { self.a_end };
        self.data[at..at + src.len()].copy_from_slice(src);
        if self.b_inuse {
            self.b_end += src.len();
        } else {
            self.a_end += src.len();
        }
        self.switch_to_b();
        true
    }
    /// The bytes to write next: region A (bipbuf_peek_all).
    fn pending(&self) -> &[u8] {
        &self.data[self.a_start..self.a_end]
    }
    /// Drops `n` written bytes from the front (bipbuf_poll).
    fn consume(&mut self, n: usize) {
        if self.is_empty() {
            return;
        }
        self.a_start = (self.a_start + n).min(self.a_end);
        if self.a_start == self.a_end {
            if self.b_inuse {
                self.a_start = 0;
                self.a_end = self.b_end;
                self.b_end = 0;
                self.b_inuse = false;
            } else {
                self.a_start = 0;
                self.a_end = 0;
            }
        }
        self.switch_to_b();
    }
}

/// A client receiving log lines (C's logger_watcher).
struct Watcher {
    conn: LentConn,
    skipped: u64,
    /// Entries older than the watcher are not shown.
    min_gid: u64,
    /// A flush just failed: skip lines until the next poll instead of polling per line.
    failed_flush: bool,
    eflags: u16,
    buf: WatchBuf,
}

/// The logger's shared state (C's logger stack and watcher table, under logger_stack_lock).
struct State {
    loggers: Vec<Arc<Logger>>,
    watchers: [Option<Watcher>; WATCHER_LIMIT],
    count: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    loggers: Vec::new(),
    watchers: [const { None }; WATCHER_LIMIT],
    count: 0,
});
static WAKE: Condvar = Condvar::new();
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Counters gathered during one pass of the logger thread (C's logger_stats).
#[derive(Default)]
struct PassStats {
    worker_dropped: u64,
    worker_written: u64,
    watcher_skipped: u64,
    watcher_sent: u64,
}

/// Outcome of `add_watcher`.
pub enum AddWatcher {
    Ok,
    /// The connection comes back (the caller replies with C's message).
    TooMany(LentConn),
}

/// Makes a lent client connection a watcher of `eflags` (C's logger_add_watcher). The first
/// bytes it receives are "OK\r\n".
pub fn add_watcher(conn: LentConn, eflags: u16) -> AddWatcher {
    let mut st = lock(&STATE);
    if st.count >= WATCHER_LIMIT {
        return AddWatcher::TooMany(conn);
    }
    let Some(x) = st.watchers.iter().position(|w| w.is_none()) else {
        return AddWatcher::TooMany(conn);
    };
    let mut buf = WatchBuf::new(crate::settings::get().logger_watcher_buf_size as usize);
    buf.offer(b"OK\r\n");
    st.watchers[x] = Some(Watcher {
        conn,
        skipped: 0,
        // Taking a gid, as C does, leaves a gap in the sequence watchers see.
        min_gid: GID.fetch_add(1, Relaxed) + 1,
        failed_flush: false,
        eflags,
        buf,
    });
    st.count += 1;
    set_flags(&st);
    WAKE.notify_all();
    AddWatcher::Ok
}

/// Recomputes what producers log (C's logger_set_flags).
fn set_flags(st: &State) {
    let f = st.watchers.iter().flatten().fold(0, |f, w| f | w.eflags);
    EFLAGS.store(f, Relaxed);
}

/// Drops a dead watcher; its worker closes the connection (C's logger_thread_close_watcher).
fn close_watcher(st: &mut State, x: usize) {
    if let Some(w) = st.watchers[x].take() {
        w.conn.close();
        st.count -= 1;
        set_flags(st);
    }
}

/// Flushes watcher buffers (all, or only `only`) to their sockets without blocking, and
/// with `force_poll` also looks for closed clients among idle ones (C's
/// logger_thread_poll_watchers). Returns the bytes written.
fn poll_watchers(st: &mut State, force_poll: bool, only: Option<usize>) -> usize {
    let mut fds: Vec<(usize, libc::pollfd)> = Vec::with_capacity(WATCHER_LIMIT);
    for (x, slot) in st.watchers.iter_mut().enumerate() {
        let Some(w) = slot else { continue };
        if only.is_some_and(|o| o != x) {
            continue;
        }
        let events = if !w.buf.is_empty() {
            libc::POLLOUT
        } else if force_poll {
            libc::POLLIN
        } else {
            0
        };
        if events != 0 {
            fds.push((
                x,
                libc::pollfd {
                    fd: w.conn.fd(),
                    events,
                    revents: 0,
                },
            ));
        }
        w.failed_flush = false;
    }
    if fds.is_empty() {
        return 0;
    }
    let mut pfds: Vec<libc::pollfd> = fds.iter().map(|(_, p)| *p).collect();
    if let Err(e) = sys::poll(&mut pfds, 0) {
        sys::perror("something failed with logger thread watcher fd polling", &e);
        return 0;
    }
    let mut flushed = 0;
    for (i, (x, _)) in fds.iter().enumerate() {
        let x = *x;
        let revents = pfds[i].revents;
        let Some(w) = st.watchers[x].as_mut() else {
            continue;
        };
        if revents & libc::POLLIN != 0 {
            // Early detection of a client that went away (the byte read is dropped, as C).
            let mut b = [0u8; 1];
            match w.conn.read(&mut b) {
                Ok(0) => {
                    close_watcher(st, x);
                    continue;
                }
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                    close_watcher(st, x);
                    continue;
                }
                _ => {}
            }
        }
        if w.buf.is_empty() {
            continue;
        }
        if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            close_watcher(st, x);
        } else if revents & libc::POLLOUT != 0 {
            match w.conn.write(w.buf.pending()) {
                Ok(0) => close_watcher(st, x),
                Ok(n) => {
                    w.buf.consume(n);
                    flushed += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => close_watcher(st, x),
            }
        }
    }
    flushed
}

/// Copies a rendered line to every watcher that wants it (C's logger_thread_write_entry).
/// A watcher whose buffer stays full is flushed once; if that does not make room, it skips
/// lines until the next pass and is told how many with a "skipped=N" line.
fn write_entry(st: &mut State, e: &Rendered, line: &[u8], ps: &mut PassStats) {
    for x in 0..WATCHER_LIMIT {
        {
            let Some(w) = st.watchers[x].as_ref() else {
                continue;
            };
            if e.eflags & w.eflags == 0 || e.gid < w.min_gid {
                continue;
            }
        }
        let need = line.len() + SKIP_ROOM;
        // Flush this watcher until the line fits, once per pass at most (a failed flush
        // marks it); poll_watchers may close it.
        while let Some(w) = st.watchers[x].as_mut() {
            if w.failed_flush || w.buf.request(need) {
                break;
            }
            if poll_watchers(st, false, Some(x)) == 0 {
                if let Some(w) = st.watchers[x].as_mut() {
                    w.failed_flush = true;
                }
            }
        }
        let Some(w) = st.watchers[x].as_mut() else {
            continue;
        };
        if w.failed_flush {
            w.skipped += 1;
            ps.watcher_skipped += 1;
            continue;
        }
        // The request above left room for both lines.
        if w.skipped > 0 {
            let s = format!("skipped={}\n", w.skipped);
            w.buf.offer(s.as_bytes());
            w.skipped = 0;
        }
        w.buf.offer(line);
        ps.watcher_sent += 1;
    }
}

/// Drains one producer's buffer into the watchers (C's logger_thread_read). Returns the bytes
/// taken.
fn read_logger(
    st: &mut State,
    l: &Logger,
    spare: &mut Vec<u8>,
    line: &mut Vec<u8>,
    ps: &mut PassStats,
) -> usize {
    {
        let mut b = lock(&l.inner);
        if b.data.is_empty() {
            return 0;
        }
        spare.clear();
        if spare.capacity() < b.cap {
            spare.reserve_exact(b.cap);
        }
        std::mem::swap(&mut b.data, spare);
        b.c_used = 0;
        ps.worker_written += b.written;
        ps.worker_dropped += b.dropped;
        b.written = 0;
        b.dropped = 0;
    }
    let size = spare.len();
    let mut pos = 0;
    while pos + 2 <= size && st.count > 0 {
        let len = u16::from_ne_bytes([spare[pos], spare[pos + 1]]) as usize;
        if len < 2 || pos + len > size {
            break;
        }
        match render(&spare[pos..pos + len], line) {
            Some(e) => write_entry(st, &e, line, ps),
            None => eprintln!("LOGGER: Failed to parse log entry"),
        }
        pos += len;
    }
    size
}

/// Starts the logger thread (C's logger_init). The calling thread (the dispatcher) gets a
/// buffer too, as C's main does.
pub fn init() {
    if RUNNING.swap(true, Relaxed) {
        return;
    }
    logger_create();
    let spawned = std::thread::Builder::new()
        .name("mc-log".into())
        .spawn(logger_thread);
    match spawned {
        Ok(h) => *lock(&THREAD) = Some(h),
        Err(e) => {
            eprintln!("Can't start logger thread: {}", e);
            std::process::abort();
        }
    }
}

static THREAD: Mutex<Option<std::thread::JoinHandle<()>>> = Mutex::new(None);
static STOP: AtomicBool = AtomicBool::new(false);

/// Stops the logger thread and waits for it (C's logger_stop).
pub fn stop() {
    {
        let _st = lock(&STATE);
        STOP.store(true, Relaxed);
        WAKE.notify_all();
    }
    if let Some(h) = lock(&THREAD).take() {
        let _ = h.join();
    }
}

fn logger_thread() {
    let mut to_sleep = MIN_LOGGER_SLEEP;
    let mut spares: Vec<Vec<u8>> = Vec::new();
    let mut line = Vec::with_capacity(PARSE_SCRATCH);
    while !STOP.load(Relaxed) {
        if to_sleep > MIN_LOGGER_SLEEP {
            // A stop (or a new watcher) ends the pause early.
            let st = lock(&STATE);
            if !STOP.load(Relaxed) {
                let _ = WAKE.wait_timeout(st, Duration::from_micros(to_sleep));
            }
        }
        let mut ps = PassStats::default();
        let mut found = 0;
        let mut st = lock(&STATE);
        if st.count == 0 && !STOP.load(Relaxed) {
            st = WAKE.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        let loggers = st.loggers.clone();
        spares.resize_with(loggers.len(), Vec::new);
        for (l, spare) in loggers.iter().zip(spares.iter_mut()) {
            found += read_logger(&mut st, l, spare, &mut line, &mut ps);
        }
        poll_watchers(&mut st, true, None);
        let count = st.count;
        drop(st);
        if found == 0 {
            to_sleep = (to_sleep + to_sleep / 8).min(MAX_LOGGER_SLEEP);
        } else {
            to_sleep = (to_sleep / 2).max(MIN_LOGGER_SLEEP);
        }
        STATS
            .log_worker_dropped
            .fetch_add(ps.worker_dropped, Relaxed);
        STATS
            .log_worker_written
            .fetch_add(ps.worker_written, Relaxed);
        STATS
            .log_watcher_skipped
            .fetch_add(ps.watcher_skipped, Relaxed);
        STATS.log_watcher_sent.fetch_add(ps.watcher_sent, Relaxed);
        STATS.log_watchers.store(count as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uriencode_keeps_unreserved_bytes() {
        let mut out = Vec::new();
        uriencode(b"a-Z_9.~ #/\xff", &mut out);
        assert_eq!(out, b"a-Z_9.~%20%23%2F%FF");
    }

    #[test]
    fn watch_buffer_wraps_like_a_bip_buffer() {
        let mut b = WatchBuf::new(8);
        assert!(b.offer(b"abcdef"));
        assert!(!b.request(3));
        b.consume(4);
        // 2 free at the end, 4 before A: new bytes go to the front (region B).
        assert!(b.offer(b"gh"));
        assert!(b.request(2) && !b.request(3));
        assert_eq!(b.pending(), b"ef");
        b.consume(2);
        assert_eq!(b.pending(), b"gh");
        assert!(b.offer(b"ijklmn"));
        assert!(!b.offer(b"o"));
        b.consume(8);
        assert!(b.is_empty() && b.request(8));
    }
}
