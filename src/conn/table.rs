//! The per-descriptor table behind `stats conns` (C's conns[] array as process_stats_conns
//! walks it, with get_conn_text's address format), and what C's reused per-descriptor
//! connection structures keep: the `conn_structures` count and the CAS a closed connection
//! leaves for the next one on its descriptor.

use super::ConnState;
use crate::stats::{current_time, STATS};
use crate::sys;
use std::os::unix::io::RawFd;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8};

/// What `stats conns` shows of one descriptor; the connection's owner updates it. Slots live
/// in a table by descriptor number for the life of the process and are reused by the next
/// connection on the same number, as C's per-descriptor conn structures are.
pub struct ConnSlot {
    /// A connection or listener has the descriptor now.
    open: AtomicBool,
    udp: AtomicBool,
    state: AtomicU8,
    pub(super) last_cmd_time: AtomicU32,
    /// The peer (TCP at accept; UDP: the last request's sender).
    pub(super) peer: std::sync::Mutex<Peer>,
}

/// A peer address kept small, since every connection has one: INET/INET6 in std's form
/// (32 bytes, where a sockaddr_storage is 128), anything else (a unix socket's peer, none)
/// whole in a box.
pub(super) enum Peer {
    Inet(std::net::SocketAddr),
    Other(Box<sys::SockAddr>),
}

impl Peer {
    pub(super) fn new(a: &sys::SockAddr) -> Peer {
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
    const fn new() -> ConnSlot {
        ConnSlot {
            open: AtomicBool::new(false),
            udp: AtomicBool::new(false),
            state: AtomicU8::new(0),
            last_cmd_time: AtomicU32::new(0),
            peer: std::sync::Mutex::new(Peer::Inet(std::net::SocketAddr::V4(
                std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
            ))),
        }
    }

    pub(super) fn peer(&self) -> sys::SockAddr {
        self.peer.lock().unwrap_or_else(|e| e.into_inner()).addr()
    }

    pub(super) fn set_state(&self, st: ConnState) {
        self.state.store(st as u8, Relaxed);
    }
}

/// Slots per block of the table: blocks are made as descriptor numbers come into use.
const SLOTS_PER_BLOCK: usize = 64;
type SlotBlock = [ConnSlot; SLOTS_PER_BLOCK];

/// The slots by descriptor number, a block of 64 at a time (a connection costs its slot's
/// 48 bytes; a map entry and a reference-counted slot of its own cost twice that). Locked
/// when a descriptor opens and by `stats conns`, never per request; blocks are never freed,
/// so a connection keeps a plain reference to its slot.
static CONN_TABLE: std::sync::Mutex<Vec<Option<&'static SlotBlock>>> =
    std::sync::Mutex::new(Vec::new());

fn conn_table() -> std::sync::MutexGuard<'static, Vec<Option<&'static SlotBlock>>> {
    CONN_TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The slot of descriptor `fd`, its block made if needed.
fn slot_of(fd: RawFd) -> &'static ConnSlot {
    let fd = fd.max(0) as usize;
    let (b, i) = (fd / SLOTS_PER_BLOCK, fd % SLOTS_PER_BLOCK);
    let mut t = conn_table();
    if t.len() <= b {
        t.resize(b + 1, None);
    }
    let block =
        *t[b].get_or_insert_with(|| Box::leak(Box::new(std::array::from_fn(|_| ConnSlot::new()))));
    &block[i]
}

/// Enters a descriptor in the table.
pub fn conn_slot_open(
    fd: RawFd,
    udp: bool,
    state: ConnState,
    peer: sys::SockAddr,
) -> &'static ConnSlot {
    let slot = slot_of(fd);
    slot.udp.store(udp, Relaxed);
    slot.state.store(state as u8, Relaxed);
    slot.last_cmd_time.store(current_time(), Relaxed);
    *slot.peer.lock().unwrap_or_else(|e| e.into_inner()) = Peer::new(&peer);
    slot.open.store(true, Release);
    slot
}

/// Removes a closed descriptor.
pub fn conn_slot_close(fd: RawFd) {
    slot_of(fd).open.store(false, Release);
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
    let slots: Vec<(RawFd, &'static ConnSlot)> = conn_table()
        .iter()
        .enumerate()
        .filter_map(|(b, block)| block.map(|blk| (b, blk)))
        .flat_map(|(b, blk)| {
            blk.iter()
                .enumerate()
                .filter(|(_, s)| s.open.load(Acquire))
                .map(move |(i, s)| ((b * SLOTS_PER_BLOCK + i) as RawFd, s))
        })
        .collect();
    let now = current_time();
    for (fd, slot) in slots {
        let state = STATE_BY_NUMBER
            .get(slot.state.load(Relaxed) as usize)
            .copied()
            .unwrap_or(ConnState::Closed);
        let udp = slot.udp.load(Relaxed);
        if udp {
            append_stat(out, &format!("{}:UDP", fd), "UDP");
        }
        if state == ConnState::Closed {
            continue;
        }
        let shows_local = state == ConnState::Listening || (udp && state == ConnState::Read);
        let peer = slot.peer();
        let addr = if shows_local {
            sys::getsockname(fd).unwrap_or(peer)
        } else {
            peer
        };
        append_stat(out, &format!("{}:addr", fd), addr_text(&addr, udp));
        if !shows_local {
            let local = sys::getsockname(fd).unwrap_or_else(|_| sys::SockAddr::empty());
            append_stat(out, &format!("{}:listen_addr", fd), addr_text(&local, udp));
        }
        append_stat(out, &format!("{}:state", fd), state.name());
        append_stat(
            out,
            &format!("{}:secs_since_last_cmd", fd),
            now.wrapping_sub(slot.last_cmd_time.load(Relaxed)) as i32,
        );
    }
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
pub(super) fn keep_leftover_cas(fd: RawFd, cas: u64) {
    if cas != 0 {
        fd_structs().leftover_cas.insert(fd, cas);
    }
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
}
