//! Start-up wiring and the dispatcher thread (C's main(), server_socket*, clock_handler and the
//! listening half of drive_machine): listeners on the dispatcher's event base, the one-second
//! clock, accept throttling at maxconns, and the main loop that stops on signals.

use crate::conn::{self, ConnState, Transport, ALLOW_NEW_CONNS};
use crate::daemon;
use crate::event::{self, Disposition, Event, EventBase, Handler};
use crate::settings::{self, Protocol, Settings};
use crate::stats::{self, CURRENT_TIME, ITEM_UPDATE_INTERVAL, PROCESS_STARTED, STATS};
use crate::sys;
use crate::thread;
use crate::tls::ListenTls;
use std::cell::RefCell;
use std::io::Write;
use std::os::raw::c_int;
use std::os::unix::io::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering::Relaxed};
use std::time::Duration;

const NOT_STOPPING: i32 = 0;
const EXIT_NORMALLY: i32 = 1;
const GRACE_STOP: i32 = 3;

static STOP_MAIN_LOOP: AtomicI32 = AtomicI32::new(NOT_STOPPING);
static SIG_HUP: AtomicBool = AtomicBool::new(false);

/// Asks the main loop to stop, gracefully or not (`shutdown [graceful]`).
pub fn request_stop(graceful: bool) {
    STOP_MAIN_LOOP.store(if graceful { GRACE_STOP } else { EXIT_NORMALLY }, Relaxed);
}

extern "C" fn on_sigterm(_: c_int) {
    STOP_MAIN_LOOP.store(EXIT_NORMALLY, Relaxed);
}
extern "C" fn on_sigusr1(_: c_int) {
    STOP_MAIN_LOOP.store(GRACE_STOP, Relaxed);
}
extern "C" fn on_sighup(_: c_int) {
    SIG_HUP.store(true, Relaxed);
}

/// Writes the `-e` metadata once every other thread has stopped (C's restart_mmap_close).
fn save_restart_state() {
    let Some(st) = crate::items::store::store() else {
        return;
    };
    crate::restart::close(&crate::restart::SaveState {
        current_time: stats::current_time(),
        process_started: PROCESS_STARTED.load(Relaxed),
        // The next value C's get_cas_id would hand out.
        current_cas: st.next_cas(),
        logger_gid: crate::logger::gid(),
        hashpower: st.assoc().power(),
        oldest_live: settings::get().oldest_live.load(Relaxed),
    });
}

// ---- clock ----

static MONOTONIC_START: AtomicI64 = AtomicI64::new(0);

/// Updates the server clock (C's clock_handler body).
fn clock_tick() {
    if crate::stats::CLOCK_PAUSED.load(Relaxed) {
        return;
    }
    let now = sys::monotonic_secs() - MONOTONIC_START.load(Relaxed)
        + crate::stats::CLOCK_DELTA.load(Relaxed);
    CURRENT_TIME.store(now as u32, Relaxed);
}

struct Clock {
    ev: Option<Event>,
}

impl Handler for Clock {
    fn set_event(&mut self, ev: Event) {
        self.ev = Some(ev);
    }
    fn handle(&mut self, _fd: RawFd, _which: i16) -> Disposition {
        // Once a second: does the hash table need to grow?
        if let Some(st) = crate::items::store::store() {
            st.start_expand_if_needed();
        }
        if SIG_HUP.swap(false, Relaxed) {
            // A file that no longer loads keeps the entries of the last good one, as in C.
            if let Some(path) = settings::get().auth_file.as_deref() {
                let _ = crate::authfile::load(path);
            }
            if settings::get().ssl_enabled {
                if let Err(msg) = crate::tls::refresh_certs() {
                    // C's vperror: the message, then the (stale) errno's text.
                    daemon::vperror(&format!(
                        "Could not reload TLS certificates on SIGHUP: {}",
                        msg
                    ));
                }
            }
        }
        clock_tick();
        Disposition::Keep
    }
}

// ---- listeners ----

/// The dispatcher's listening sockets and the timer that re-enables them (C's listen_conn list
/// and maxconns_handler). Only the dispatcher thread touches it.
struct ListenState {
    fds: Vec<RawFd>,
    events: Vec<Rc<RefCell<Option<Event>>>>,
    retry: Option<Event>,
}

thread_local! {
    static LISTEN: RefCell<ListenState> = const { RefCell::new(ListenState { fds: Vec::new(), events: Vec::new(), retry: None }) };
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Turns accepting on or off on every listener (C's do_accept_new_conns).
fn accept_new_conns(on: bool) {
    let backlog = settings::get().backlog;
    LISTEN.with(|l| {
        let l = l.borrow();
        for (fd, ev) in l.fds.iter().zip(l.events.iter()) {
            if let Some(ev) = ev.borrow_mut().as_mut() {
                if on {
                    ev.reassign(event::EV_READ | event::EV_PERSIST, None);
                } else {
                    ev.del();
                }
            }
            if let Err(e) = sys::listen(*fd, if on { backlog } else { 0 }) {
                sys::perror("listen", &e);
            }
        }
        if on {
            let entered = STATS.maxconns_entered_us.load(Relaxed);
            STATS
                .time_in_listen_disabled_us
                .fetch_add(now_us().saturating_sub(entered), Relaxed);
            STATS.accepting_conns.store(true, Relaxed);
        } else {
            STATS.accepting_conns.store(false, Relaxed);
            STATS.maxconns_entered_us.store(now_us(), Relaxed);
            STATS.listen_disabled_num.fetch_add(1, Relaxed);
            ALLOW_NEW_CONNS.store(false, Relaxed);
            if let Some(r) = l.retry.as_ref() {
                r.add(Some(Duration::from_millis(10)));
            }
        }
    });
}

/// Frees the dispatcher's listener and retry-timer events. They sit in a thread-local, whose
/// destructor would otherwise run at process exit, after the event base they point into is
/// gone; C likewise frees its main base last.
fn free_listen_events() {
    LISTEN.with(|l| {
        let mut l = l.borrow_mut();
        for slot in l.events.drain(..) {
            drop(slot.borrow_mut().take());
        }
        l.fds.clear();
        l.retry = None;
    });
}

/// Declared right after the dispatcher's base so that it drops first on every return from
/// `main`, early error returns included.
struct ListenEventsGuard;

impl Drop for ListenEventsGuard {
    fn drop(&mut self) {
        free_listen_events();
    }
}

/// Polls every 10ms while accepting is off, until a connection has closed.
struct MaxconnsRetry;

impl Handler for MaxconnsRetry {
    fn set_event(&mut self, ev: Event) {
        // Created idle; `accept_new_conns(false)` arms it.
        ev.del();
        LISTEN.with(|l| l.borrow_mut().retry = Some(ev));
    }
    fn handle(&mut self, _fd: RawFd, _which: i16) -> Disposition {
        if ALLOW_NEW_CONNS.load(Relaxed) {
            accept_new_conns(true);
        } else {
            LISTEN.with(|l| {
                if let Some(r) = l.borrow().retry.as_ref() {
                    r.add(Some(Duration::from_millis(10)));
                }
            });
        }
        Disposition::Keep
    }
}

struct Listener {
    transport: Transport,
    protocol: Protocol,
    tls: ListenTls,
    slot: Rc<RefCell<Option<Event>>>,
}

impl Handler for Listener {
    fn set_event(&mut self, ev: Event) {
        *self.slot.borrow_mut() = Some(ev);
    }

    /// Accepts one connection per event, as C does, and hands it to a worker.
    fn handle(&mut self, fd: RawFd, _which: i16) -> Disposition {
        let s = settings::get();
        let sfd = match sys::accept_nonblock(fd) {
            Ok(sfd) => sfd,
            Err(e) => {
                sys::perror("accept4()", &e);
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => {}
                    Some(libc::EMFILE) => {
                        if settings::verbose() > 0 {
                            eprintln!("Too many open connections");
                        }
                        accept_new_conns(false);
                    }
                    _ => sys::perror("accept()", &e),
                }
                return Disposition::Keep;
            }
        };
        let reject = s.maxconns_fast && sfd >= s.maxconns - 1;
        if reject {
            STATS.rejected_conns.fetch_add(1, Relaxed);
            let _ = sys::write(sfd, b"ERROR Too many open connections\r\n");
            sys::close(sfd);
        } else {
            let tls = if self.tls == ListenTls::Off {
                None
            } else {
                match crate::tls::accept(sfd, self.tls) {
                    Some(t) => Some(t),
                    None => {
                        sys::close(sfd);
                        return Disposition::Keep;
                    }
                }
            };
            thread::dispatch_conn_new(sfd, ConnState::NewCmd, self.transport, self.protocol, tls);
        }
        Disposition::Keep
    }
}

fn add_listener(
    base: &EventBase,
    fd: RawFd,
    transport: Transport,
    protocol: Protocol,
    tls: ListenTls,
) {
    conn::note_conn_struct(fd);
    if settings::verbose() > 1 {
        eprintln!("<{} server listening ({})", fd, conn::prot_text(protocol));
    }
    let slot = Rc::new(RefCell::new(None));
    let l = Box::new(Listener {
        transport,
        protocol,
        tls,
        slot: Rc::clone(&slot),
    });
    if !base.register(fd, event::EV_READ | event::EV_PERSIST, None, l) {
        sys::perror("event_add", &std::io::Error::last_os_error());
        eprintln!("failed to create listening connection");
        std::process::exit(1);
    }
    STATS.curr_conns.fetch_add(1, Relaxed);
    STATS.total_conns.fetch_add(1, Relaxed);
    conn::conn_slot_open(
        fd,
        false,
        ConnState::Listening,
        crate::sys::SockAddr::empty(),
    );
    LISTEN.with(|ls| {
        let mut ls = ls.borrow_mut();
        ls.fds.push(fd);
        ls.events.push(slot);
    });
}

/// Binds every address `interface` resolves to (C's server_socket). Returns true on error.
fn server_socket(
    base: &EventBase,
    interface: Option<&str>,
    port: i32,
    transport: Transport,
    protocol: Protocol,
    tls: ListenTls,
    portfile: &mut Option<std::fs::File>,
) -> bool {
    let s = settings::get();
    let port = if port == -1 { 0 } else { port };
    let socktype = if transport == Transport::Udp {
        libc::SOCK_DGRAM
    } else {
        libc::SOCK_STREAM
    };
    let addrs = match sys::getaddrinfo_passive(interface, &port.to_string(), socktype) {
        Ok(a) => a,
        Err((code, e)) => {
            if code != libc::EAI_SYSTEM {
                eprintln!("getaddrinfo(): {}", sys::gai_strerror(code));
            } else {
                sys::perror("getaddrinfo()", &e);
            }
            return true;
        }
    };
    let mut success = 0;
    for ai in &addrs {
        let sfd = match sys::socket(ai.family, ai.socktype, ai.protocol) {
            Ok(fd) => fd,
            Err(e) => {
                if e.raw_os_error() == Some(libc::EMFILE) {
                    sys::perror("server_socket", &e);
                    std::process::exit(daemon::EX_OSERR);
                }
                continue;
            }
        };
        if let Err(e) = sys::set_nonblocking(sfd) {
            sys::perror("setting O_NONBLOCK", &e);
            sys::close(sfd);
            continue;
        }
        if ai.family == libc::AF_INET6 {
            if let Err(e) = sys::setsockopt_int(sfd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1) {
                sys::perror("setsockopt", &e);
                sys::close(sfd);
                continue;
            }
        }
        let _ = sys::setsockopt_int(sfd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        if transport == Transport::Udp {
            maximize_sndbuf(sfd);
        } else {
            if let Err(e) = sys::setsockopt_int(sfd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1) {
                sys::perror("setsockopt", &e);
            }
            if let Err(e) = sys::set_linger_off(sfd) {
                sys::perror("setsockopt", &e);
            }
            if let Err(e) = sys::setsockopt_int(sfd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1) {
                sys::perror("setsockopt", &e);
            }
        }
        if let Err(e) = sys::bind(sfd, &ai.addr) {
            if e.raw_os_error() != Some(libc::EADDRINUSE) {
                sys::perror("bind()", &e);
                sys::close(sfd);
                return true;
            }
            sys::close(sfd);
            continue;
        }
        success += 1;
        if transport != Transport::Udp {
            if let Err(e) = sys::listen(sfd, s.backlog) {
                sys::perror("listen()", &e);
                sys::close(sfd);
                return true;
            }
        }
        if let Some(f) = portfile.as_mut() {
            if let Ok(local) = sys::getsockname(sfd) {
                let kind = if transport == Transport::Udp {
                    "UDP"
                } else {
                    "TCP"
                };
                match (ai.family, local.port()) {
                    (libc::AF_INET, Some(p)) => {
                        let _ = writeln!(f, "{} INET: {}", kind, p);
                    }
                    (libc::AF_INET6, Some(p)) => {
                        let _ = writeln!(f, "{} INET6: {}", kind, p);
                    }
                    _ => {}
                }
            }
        }
        if transport == Transport::Udp {
            // One UDP "connection" per worker (per interface when several are given), each on
            // its own dup of the socket.
            for i in 0..s.num_threads_per_udp.max(1) {
                let fd = if i == 0 {
                    sfd
                } else {
                    match sys::dup(sfd) {
                        Ok(fd) => fd,
                        Err(e) => {
                            sys::perror("Failed to duplicate file descriptor", &e);
                            std::process::exit(1);
                        }
                    }
                };
                thread::dispatch_conn_new(fd, ConnState::Read, Transport::Udp, protocol, None);
            }
        } else {
            add_listener(base, sfd, transport, protocol, tls);
        }
    }
    success == 0
}

/// Grows a UDP socket's send buffer to the largest size the kernel allows.
fn maximize_sndbuf(fd: RawFd) {
    const MAX_SENDBUF_SIZE: i32 = 256 * 1024 * 1024;
    let old = match sys::getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF) {
        Ok(v) => v,
        Err(e) => {
            if settings::verbose() > 0 {
                sys::perror("getsockopt(SO_SNDBUF)", &e);
            }
            return;
        }
    };
    let (mut min, mut max, mut last_good) = (old, MAX_SENDBUF_SIZE, 0);
    while min <= max {
        let avg = ((min as u32 + max as u32) / 2) as i32;
        if sys::setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, avg).is_ok() {
            last_good = avg;
            min = avg + 1;
        } else {
            max = avg - 1;
        }
    }
    if settings::verbose() > 1 {
        eprintln!("<{} send buffer was {}, now {}", fd, old, last_good);
    }
}

/// Binds the `-l` list (or every address) for one transport (C's server_sockets).
fn server_sockets(
    base: &EventBase,
    port: i32,
    transport: Transport,
    portfile: &mut Option<std::fs::File>,
) -> bool {
    let s = settings::get();
    let default_tls = if s.ssl_enabled {
        ListenTls::Default
    } else {
        ListenTls::Off
    };
    let Some(inter) = s.inter.as_deref() else {
        return server_socket(
            base,
            None,
            port,
            transport,
            s.binding_protocol,
            default_tls,
            portfile,
        );
    };
    let mut ret = false;
    for item in inter.split([';', ',']).filter(|p| !p.is_empty()) {
        let mut p = item;
        let mut the_port = port;
        let mut bproto = s.binding_protocol;
        let mut tls = default_tls;
        for (prefix, mode) in [
            ("notls", ListenTls::Off),
            ("btls", ListenTls::NoPeer),
            ("mtls", ListenTls::Peer),
        ] {
            if p.starts_with(prefix) {
                if !s.ssl_enabled {
                    let what = if prefix == "mtls" { "otls" } else { prefix };
                    eprintln!("'{}' option is valid only when SSL is enabled", what);
                    return true;
                }
                tls = mode;
                // The prefix and an assumed ':'.
                p = p.get(prefix.len() + 1..).unwrap_or("");
                break;
            }
        }
        if let Some(rest) = p.strip_prefix("proto") {
            if let Some(rest) = rest.strip_prefix('[') {
                let Some(e) = rest.find(']') else {
                    eprintln!("Invalid protocol spec: \"{}\"", &p[5..]);
                    return true;
                };
                let name = &rest[..e];
                // Skip "]" and an assumed ":".
                p = rest.get(e + 2..).unwrap_or("");
                if "ascii".starts_with(name) {
                    bproto = Protocol::Ascii;
                } else if "binary".starts_with(name) {
                    if s.auth_file.is_some() {
                        eprintln!("Cannot use binary protocol when ascii authentication enabled");
                        return true;
                    }
                    bproto = Protocol::Binary;
                } else if "negotiating".starts_with(name) {
                    bproto = if s.auth_file.is_some() {
                        eprintln!("WARNING: negotiating ports are ascii only when ascii authentication enabled");
                        Protocol::Ascii
                    } else {
                        Protocol::Negotiating
                    };
                } else if "proxy".starts_with(name) {
                    eprintln!("Server not built with proxy: \"{}\"", inter);
                    return true;
                }
            } else {
                p = rest;
            }
        }
        if let Some(rest) = p.strip_prefix("tag") {
            if rest.starts_with('[') || rest.starts_with('_') {
                let body = &rest[1..];
                let e = body.find(']').or_else(|| body.find('_'));
                let Some(e) = e else {
                    eprintln!("Invalid tag in socket config: \"{}\"", rest);
                    return true;
                };
                let tag = &body[..e];
                if tag.is_empty() || tag.len() > 8 {
                    eprintln!(
                        "Listener tags must be between 1 and 8 characters: \"{}\"",
                        tag
                    );
                    return true;
                }
                p = body.get(e + 2..).unwrap_or("");
            } else {
                p = rest;
            }
        }
        let mut host: Option<&str> = None;
        if let Some(rest) = p.strip_prefix('[') {
            let Some(e) = rest.find(']') else {
                eprint!("Invalid IPV6 address: \"{}\"", p);
                return true;
            };
            host = Some(&rest[..e]);
            p = &rest[e + 1..];
        }
        if let Some(colon) = p.find(':') {
            if !p[colon + 1..].contains(':') || host.is_some() {
                let port_str = &p[colon + 1..];
                match settings::cnum::safe_strtol(port_str.as_bytes()) {
                    Some(v) => the_port = v,
                    None => {
                        eprintln!("Invalid port number: \"{}\"", port_str);
                        return true;
                    }
                }
                p = &p[..colon];
            }
        }
        let addr = host.unwrap_or(p);
        let iface = if addr == "*" { None } else { Some(addr) };
        ret |= server_socket(base, iface, the_port, transport, bproto, tls, portfile);
    }
    ret
}

/// Listens on the unix socket `-s` (C's server_socket_unix). Returns true on error.
fn server_socket_unix(base: &EventBase, path: &str, access: u32) -> bool {
    let sfd = match sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) {
        Ok(fd) => fd,
        Err(e) => {
            sys::perror("socket()", &e);
            return true;
        }
    };
    if let Err(e) = sys::set_nonblocking(sfd) {
        sys::perror("setting O_NONBLOCK", &e);
        sys::close(sfd);
        return true;
    }
    if let Ok(md) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if md.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
    let _ = sys::setsockopt_int(sfd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    let _ = sys::setsockopt_int(sfd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    let _ = sys::set_linger_off(sfd);
    let addr = sys::unix_addr(path);
    let old_umask = sys::umask(!(access & 0o777) & 0o777);
    if let Err(e) = sys::bind(sfd, &addr) {
        sys::perror("bind()", &e);
        sys::close(sfd);
        sys::umask(old_umask);
        return true;
    }
    sys::umask(old_umask);
    if let Err(e) = sys::listen(sfd, settings::get().backlog) {
        sys::perror("listen()", &e);
        sys::close(sfd);
        return true;
    }
    add_listener(
        base,
        sfd,
        Transport::Local,
        settings::get().binding_protocol,
        ListenTls::Off,
    );
    false
}

fn install_signals() {
    sys::set_signal_handler(libc::SIGINT, on_sigterm);
    sys::set_signal_handler(libc::SIGTERM, on_sigterm);
    sys::set_signal_handler(libc::SIGHUP, on_sighup);
    sys::set_signal_handler(libc::SIGUSR1, on_sigusr1);
}

fn ignore_sigpipe() {
    if !sys::ignore_signal(libc::SIGPIPE) {
        daemon::vperror("failed to ignore SIGPIPE; sigaction");
        std::process::exit(daemon::EX_OSERR);
    }
}

/// The whole server: parse flags, set up the process, start the threads, listen and loop.
pub fn main(argv: Vec<String>) -> i32 {
    install_signals();
    let parsed = match settings::parse_args(&argv) {
        Ok(s) => s,
        Err(code) => return code,
    };
    settings::init_global(parsed);
    let s: &'static Settings = settings::get();
    if s.ssl_enabled {
        if let Err(code) = crate::tls::init(s) {
            return code;
        }
    }

    if s.maxcore {
        daemon::raise_core_limit();
    }
    daemon::set_nofile_limit(s.maxconns);
    daemon::drop_root(s.username.as_deref());
    if s.sasl {
        crate::sasl::init();
    }
    if s.do_daemonize && daemon::daemonize(s.maxcore, settings::verbose() != 0).is_err() {
        eprintln!("failed to daemon() in order to daemonize");
        return 1;
    }
    if s.lock_memory {
        daemon::lock_memory();
    }

    // `-e`: the memory file is mapped and its metadata read before anything is sized (C's
    // restart_mmap_open); what the metadata carries is applied even when the memory cannot
    // be reused, as C does.
    let restart = s
        .memory_file
        .as_deref()
        .map(|path| crate::restart::open(s, s.maxbytes.load(Relaxed) as usize, path));
    let meta = restart.as_ref().map(|r| r.meta.clone()).unwrap_or_default();
    if let Some(v) = meta.oldest_live {
        s.oldest_live.store(v, Relaxed);
    }
    if let Some(v) = meta.logger_gid {
        crate::logger::set_gid(v);
    }
    let mut reuse = restart.as_ref().is_some_and(|r| r.reuse);
    if reuse && s.ext_enabled {
        // Values on flash do not survive a restart: start with empty memory, as C does.
        eprintln!("[restart] memory restart with extstore not presently supported.");
        reuse = false;
    }
    crate::slabs::slabs_init(s, restart.as_ref().map(|r| (r.base, reuse)));
    if s.ext_enabled {
        if let Err(msg) = crate::storage::init(s) {
            eprint!("{msg}");
            return 1;
        }
    }
    // Every hash bucket must map to one item lock (C's memcached_thread_init check).
    let lock_power = crate::items::store::item_lock_power(s.num_threads);
    let hashpower = match (meta.hashpower, s.hashpower_init) {
        // A saved size the options could not have given is not trusted.
        (Some(p), _) => p.clamp(12, crate::assoc::HASHPOWER_MAX),
        (None, p @ 1..) => p as u32,
        _ => crate::assoc::HASHPOWER_DEFAULT,
    };
    if lock_power >= hashpower {
        eprintln!(
            "Hash table power size ({}) cannot be equal to or less than item lock table ({})",
            hashpower, lock_power
        );
        eprintln!("Item lock table grows with `-t N` (worker threadcount)");
        eprintln!("Hash table grows with `-o hashpower=N` ");
        return 1;
    }
    crate::items::store::init_with_hashpower(s, hashpower);
    if let (Some(cas), Some(st)) = (meta.current_cas, crate::items::store::store()) {
        st.set_cas_id(cas);
    }
    if restart.is_some() || s.ext_enabled {
        // The rest of the file (or with extstore, all of -m) goes to the global pool (C's
        // slabs_prefill_global): the extstore write thread watches that pool.
        crate::slabs::with_slabs(|sa| sa.prefill_global());
    }
    if reuse {
        // SAFETY: start-up, before any other thread; the metadata vouched for the file.
        unsafe { crate::restart::fixup(meta.old_base) };
    }
    // What commands may ask of this layer: the stats reports and a stop.
    crate::hooks::register(crate::hooks::ServerHooks {
        general: crate::report::general_stats,
        engine: crate::report::engine_stats,
        reset: crate::report::stats_reset_all,
        conns: crate::conn::write_stats_conns,
        stop: request_stop,
    });

    let base = match EventBase::new() {
        Some(b) => b,
        None => {
            eprintln!("Can't allocate event base");
            return 1;
        }
    };
    let _listen_events = ListenEventsGuard;

    if let Some(path) = s.auth_file.as_deref() {
        if s.udpport != 0 {
            eprintln!("Cannot use UDP with ascii authentication enabled (-U 0 to disable)");
            return daemon::EX_USAGE;
        }
        if let Err(e) = crate::authfile::load(path) {
            match e {
                crate::authfile::LoadError::Open(err) => {
                    let msg = sys::strerror(err.raw_os_error().unwrap_or(0));
                    // C's vperror repeats the error after its own.
                    eprintln!(
                        "Could not open authfile [{}] for reading, error {}: {}",
                        path, msg, msg
                    );
                }
                crate::authfile::LoadError::Malformed => eprint!(
                    "Authfile [{}] has a malformed entry. Should be 'user:password'",
                    path
                ),
            }
            return 1;
        }
    }

    if reuse {
        // The clock goes on from where it stopped, plus the time the server was down, so
        // the items' times and TTLs mean what they meant.
        PROCESS_STARTED.store(meta.process_started, Relaxed);
        MONOTONIC_START.store(
            sys::monotonic_secs() - (meta.current_time as i64 + meta.time_delta),
            Relaxed,
        );
    } else {
        // The clock starts ITEM_UPDATE_INTERVAL + 2 seconds in, so relative times are never 0.
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
            - ITEM_UPDATE_INTERVAL as i64
            - 2;
        PROCESS_STARTED.store(started, Relaxed);
        MONOTONIC_START.store(
            sys::monotonic_secs() - ITEM_UPDATE_INTERVAL as i64 - 2,
            Relaxed,
        );
    }

    if s.drop_privileges {
        crate::privileges::setup_violations_handler();
    }
    ignore_sigpipe();
    crate::logger::init();
    thread::init(s.num_threads.max(1) as usize);
    if s.start_assoc_maint {
        if let Err(e) = crate::items::store::start_assoc_maintenance() {
            eprintln!("Can't create thread: {}", e);
            return 1;
        }
    }
    if s.start_lru_crawler && !crate::crawler::start() {
        eprintln!("Failed to enable LRU crawler thread");
        return 1;
    }
    if let Err(msg) = crate::storage::start_threads() {
        eprint!("{msg}");
        return 1;
    }
    if let Some(listen) = s.metrics_listen.as_deref() {
        if let Err(msg) = crate::metrics::start(listen) {
            eprintln!("{msg}");
            return 1;
        }
    }
    if s.start_lru_maintainer && crate::lru_maintainer::start().is_err() {
        eprintln!("Failed to enable LRU maintainer thread");
        return 1;
    }
    if s.slab_reassign {
        if let Err(e) = crate::slabs_mover::start() {
            eprintln!("Can't create slab rebalancer thread: {}", e);
            return 1;
        }
    }

    clock_tick();
    if !base.register(
        -1,
        event::EV_PERSIST,
        Some(Duration::from_secs(1)),
        Box::new(Clock { ev: None }),
    ) {
        eprintln!("Can't create clock event");
        return 1;
    }
    if !base.register(
        -1,
        0,
        Some(Duration::from_millis(10)),
        Box::new(MaxconnsRetry),
    ) {
        eprintln!("Can't create maxconns event");
        return 1;
    }

    if let Some(path) = s.socketpath.as_deref() {
        if server_socket_unix(&base, path, s.access) {
            daemon::vperror(&format!("failed to listen on UNIX socket: {}", path));
            return daemon::EX_OSERR;
        }
    } else {
        let portname = std::env::var("MEMCACHED_PORT_FILENAME").ok();
        let tmpname = portname.as_ref().map(|p| format!("{}.lck", p));
        let mut portfile = match tmpname.as_ref() {
            Some(t) => match std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(t)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    eprintln!(
                        "Failed to open \"{}\": {}",
                        t,
                        sys::strerror(e.raw_os_error().unwrap_or(0))
                    );
                    None
                }
            },
            None => None,
        };
        if s.port != 0 && server_sockets(&base, s.port, Transport::Tcp, &mut portfile) {
            match s.inter.as_deref() {
                None => daemon::vperror(&format!("failed to listen on TCP port {}", s.port)),
                Some(i) => {
                    daemon::vperror(&format!("failed to listen on one of interface(s) {}", i))
                }
            }
            return daemon::EX_OSERR;
        }
        if s.udpport != 0 && server_sockets(&base, s.udpport, Transport::Udp, &mut portfile) {
            match s.inter.as_deref() {
                None => daemon::vperror(&format!("failed to listen on UDP port {}", s.udpport)),
                Some(i) => {
                    daemon::vperror(&format!("failed to listen on one of interface(s) {}", i))
                }
            }
            return daemon::EX_OSERR;
        }
        if let (Some(f), Some(t), Some(p)) = (portfile.take(), tmpname, portname) {
            drop(f);
            let _ = std::fs::rename(t, p);
        }
    }

    std::thread::sleep(Duration::from_millis(1));
    let used = STATS.curr_conns.load(Relaxed) + STATS.reserved_fds.load(Relaxed) as i64;
    if used >= s.maxconns as i64 - 1 {
        eprintln!("Maxconns setting is too low, use -c to increase.");
        return 1;
    }
    if let Some(p) = s.pid_file.as_deref() {
        daemon::save_pid(p);
    }
    if s.drop_privileges {
        crate::privileges::drop_privileges();
    }

    let mut retval = 0;
    while STOP_MAIN_LOOP.load(Relaxed) == NOT_STOPPING {
        if base.loop_once() != 0 {
            retval = 1;
            break;
        }
    }
    match STOP_MAIN_LOOP.load(Relaxed) {
        GRACE_STOP => eprintln!("Gracefully stopping"),
        EXIT_NORMALLY => {
            if settings::verbose() != 0 {
                eprintln!("Exiting normally");
            }
        }
        _ => eprintln!("Exiting on error"),
    }
    if STOP_MAIN_LOOP.load(Relaxed) == GRACE_STOP {
        thread::stop_threads();
        if s.memory_file.is_some() {
            save_restart_state();
        }
    }
    if s.do_daemonize {
        daemon::remove_pidfile(s.pid_file.as_deref());
    }
    let _ = stats::current_time();
    retval
}
