//! Worker threads and connection dispatch (C's thread.c).
//!
//! The dispatcher thread accepts connections and hands each to a worker, round robin, by pushing
//! a `QueueItem` on the worker's queue and bumping the worker's eventfd. Each worker runs its own
//! libevent loop; connections never move between workers. Each worker owns its buffer caches
//! (read buffers, response objects) through thread-locals, so they are never shared.

use crate::conn::{self, ConnState, Transport};
use crate::event::{self, Disposition, Event, EventBase, Handler};
use crate::settings::Protocol;
use crate::stats::{ClassStats, ClassTotals, ThreadStats, ThreadStatsTotals, STATS};
use crate::sys;
use crate::tls::TlsConn;
use std::collections::VecDeque;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier, Mutex, OnceLock};

/// What the dispatcher (or another thread) asks a worker to do (C's CQ_ITEM modes).
pub enum QueueItem {
    NewConn {
        fd: RawFd,
        init_state: ConnState,
        transport: Transport,
        protocol: Protocol,
        /// The TLS session the dispatcher started on the socket (`-Z` listeners).
        tls: Option<TlsConn>,
    },
    /// A side thread gives back a connection it borrowed (C's queue_redispatch): resume it,
    /// or close it when `close` (C's sidethread_conn_close).
    Redispatch {
        fd: RawFd,
        close: bool,
        tls: Option<TlsConn>,
    },
    /// Stop the worker's event loop (graceful shutdown).
    Stop,
}

pub use crate::lent::LentConn;

impl crate::lent::LoanOwner for Worker {
    fn end_loan(&self, fd: RawFd, close: bool, tls: Option<TlsConn>) {
        self.notify(QueueItem::Redispatch { fd, close, tls });
    }
}

/// The part of a worker other threads may touch: its queue, its notify fd and its counters.
pub struct Worker {
    pub index: usize,
    queue: Mutex<VecDeque<QueueItem>>,
    notify_fd: RawFd,
    /// Connections whose reads from flash came back, and the eventfd that says so (C's
    /// ion_head and the thread's second notifier).
    io_returns: Mutex<Vec<RawFd>>,
    io_fd: RawFd,
    pub stats: ThreadStats,
    /// Per-class counters (C's slab_stats and lru_hits of thread_stats).
    pub class_stats: ClassStats,
    /// `-R`: requests a connection may run per event (read at every event).
    pub reqs_per_event: i32,
}

impl Worker {
    /// A worker with no thread and no notify descriptor, for unit tests of per-worker state.
    #[cfg(test)]
    pub fn detached(index: usize) -> Worker {
        Worker {
            index,
            queue: Mutex::new(VecDeque::new()),
            notify_fd: -1,
            io_returns: Mutex::new(Vec::new()),
            io_fd: -1,
            stats: ThreadStats::default(),
            class_stats: ClassStats::default(),
            reqs_per_event: 20,
        }
    }

    /// The counters commands run on this worker charge.
    #[inline]
    pub fn counters(&self) -> crate::items::ops::Counters<'_> {
        crate::items::ops::Counters {
            thread: &self.stats,
            class: &self.class_stats,
        }
    }

    /// Queues an item and wakes the worker (C's notify_worker).
    pub fn notify(&self, item: QueueItem) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(item);
        }
        if let Err(e) = sys::eventfd_write(self.notify_fd, 1) {
            sys::perror("failed writing to worker eventfd", &e);
        }
    }
}

// Workers live as long as the process, so connections hold a plain &'static Worker (no
// reference count to touch per request).
static WORKERS: OnceLock<Vec<Worker>> = OnceLock::new();
static NEXT_WORKER: AtomicUsize = AtomicUsize::new(0);
static JOINS: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

/// All workers (empty before `init`).
pub fn workers() -> &'static [Worker] {
    WORKERS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// Creates `n` workers, starts their threads and waits until every loop is ready
/// (C's memcached_thread_init).
pub fn init(n: usize) {
    let mut list = Vec::with_capacity(n);
    for index in 0..n {
        let notify_fd = match sys::eventfd() {
            Ok(fd) => fd,
            Err(e) => {
                sys::perror("Can't create notify pipe", &e);
                std::process::exit(1);
            }
        };
        // A second notifier, for reads from flash that came back (C's, made whether or not
        // extstore is on: the maxconns check is on descriptor numbers, so the descriptors C
        // holds before its first client are held here too).
        let io_fd = match sys::eventfd() {
            Ok(fd) => fd,
            Err(e) => {
                sys::perror("Can't create notify pipe", &e);
                std::process::exit(1);
            }
        };
        list.push(Worker {
            index,
            queue: Mutex::new(VecDeque::new()),
            notify_fd,
            io_returns: Mutex::new(Vec::new()),
            io_fd,
            stats: ThreadStats::default(),
            class_stats: ClassStats::default(),
            reqs_per_event: crate::settings::get().reqs_per_event,
        });
        // The five a worker holds: its two notifiers, and its event base's epoll descriptor
        // and signal pipe (C's count).
        STATS.reserved_fds.fetch_add(5, Relaxed);
    }
    let _ = WORKERS.set(list);
    let ready = Arc::new(Barrier::new(n + 1));
    for w in workers() {
        let ready = Arc::clone(&ready);
        let spawned = std::thread::Builder::new()
            .name("mc-worker".into())
            .spawn(move || worker_main(w, ready));
        match spawned {
            Ok(h) => {
                if let Ok(mut j) = JOINS.lock() {
                    j.push(h);
                }
            }
            Err(e) => {
                eprintln!("Can't create thread: {}", e);
                std::process::exit(1);
            }
        }
    }
    ready.wait();
}

/// Hands a new connection to the next worker, round robin (C's dispatch_conn_new).
pub fn dispatch_conn_new(
    fd: RawFd,
    init_state: ConnState,
    transport: Transport,
    protocol: Protocol,
    tls: Option<TlsConn>,
) {
    let ws = workers();
    if ws.is_empty() {
        drop(tls);
        sys::close(fd);
        return;
    }
    let i = NEXT_WORKER.fetch_add(1, Relaxed) % ws.len();
    ws[i].notify(QueueItem::NewConn {
        fd,
        init_state,
        transport,
        protocol,
        tls,
    });
}

/// Asks every worker to stop and waits for them (graceful shutdown, C's stop_threads).
pub fn stop_threads() {
    let verbose = crate::settings::verbose() > 0;
    let say = |what: &str| {
        if verbose {
            eprintln!("{what}");
        }
    };
    // The expansion thread locks every item, so it goes first.
    crate::items::store::stop_assoc_maintenance();
    say("stopped assoc");
    say("asking workers to stop");
    for w in workers() {
        w.notify(QueueItem::Stop);
    }
    let handles = match JOINS.lock() {
        Ok(mut j) => std::mem::take(&mut *j),
        Err(_) => Vec::new(),
    };
    for h in handles {
        let _ = h.join();
    }
    say("asking background threads to stop");
    crate::crawler::stop_and_wait();
    say("stopped lru crawler");
    let s = crate::settings::get();
    if s.lru_maintainer_thread
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        crate::lru_maintainer::stop();
        say("stopped maintainer");
    }
    if s.slab_reassign {
        crate::slabs_mover::stop();
        say("stopped slab mover");
    }
    crate::logger::stop();
    say("stopped logger thread");
    // Idle timeouts are timers of the workers' event loops, stopped with them.
    say("stopped idle timeout thread");
    // Connections end with the process; items they still held are released by the next
    // start of a restartable cache (restart::fixup).
    say("closing connections");
    say("reaping worker threads");
    say("all background threads stopped");
}

/// Sums every worker's counters (C's threadlocal_stats_aggregate).
pub fn stats_aggregate() -> ThreadStatsTotals {
    let mut t = ThreadStatsTotals::default();
    for w in workers() {
        w.stats.add_into(&mut t);
    }
    t
}

/// Sums every worker's per-class counters.
pub fn class_totals() -> ClassTotals {
    let mut t = ClassTotals::new();
    for w in workers() {
        t.add(&w.class_stats);
    }
    t
}

/// `stats reset` of the per-thread counters (the buffer gauges stay).
pub fn stats_reset() {
    for w in workers() {
        w.stats.reset();
        w.class_stats.reset();
    }
}

impl crate::storage::read::Waker for Worker {
    /// An IO thread finished a read of connection `fd`'s (C's return_io_pending).
    fn wake(&self, fd: RawFd) {
        let first = match self.io_returns.lock() {
            Ok(mut l) => {
                l.push(fd);
                l.len() == 1
            }
            Err(_) => false,
        };
        if first {
            if let Err(e) = sys::eventfd_write(self.io_fd, 1) {
                sys::perror("failed writing to worker eventfd", &e);
            }
        }
    }
}

/// The worker's handler of returned flash reads (C's thread_libevent_ionotify).
struct IoNotifier {
    worker: &'static Worker,
    ev: Option<Event>,
    /// Scratch list, swapped with the worker's so the lock is held only for the swap.
    batch: Vec<RawFd>,
}

impl Handler for IoNotifier {
    fn set_event(&mut self, ev: Event) {
        self.ev = Some(ev);
    }

    fn handle(&mut self, fd: RawFd, _which: i16) -> Disposition {
        let _ = sys::eventfd_read(fd);
        if let Ok(mut l) = self.worker.io_returns.lock() {
            std::mem::swap(&mut *l, &mut self.batch);
        }
        self.batch.sort_unstable();
        self.batch.dedup();
        for &c in &self.batch {
            conn::io_returned(c);
        }
        self.batch.clear();
        Disposition::Keep
    }
}

/// The worker's notify handler: drains the queue when the eventfd fires.
struct Notifier {
    worker: &'static Worker,
    base: &'static EventBase,
    ev: Option<Event>,
}

impl Handler for Notifier {
    fn set_event(&mut self, ev: Event) {
        self.ev = Some(ev);
    }

    fn handle(&mut self, fd: RawFd, _which: i16) -> Disposition {
        let count = match sys::eventfd_read(fd) {
            Ok(n) => n,
            Err(_) => {
                if crate::settings::verbose() > 0 {
                    eprintln!("Can't read from libevent pipe");
                }
                return Disposition::Keep;
            }
        };
        for _ in 0..count {
            let item = match self.worker.queue.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => None,
            };
            let Some(item) = item else { break };
            match item {
                QueueItem::NewConn {
                    fd,
                    init_state,
                    transport,
                    protocol,
                    tls,
                } => {
                    if !conn::conn_new(
                        fd,
                        init_state,
                        transport,
                        protocol,
                        tls,
                        self.base,
                        self.worker,
                    ) {
                        if transport == Transport::Udp {
                            eprintln!("Can't listen for events on UDP socket");
                            std::process::exit(1);
                        }
                        if crate::settings::verbose() > 0 {
                            eprintln!("Can't listen for events on fd {}", fd);
                        }
                        sys::close(fd);
                    }
                }
                QueueItem::Redispatch { fd, close, tls } => {
                    conn::redispatch(fd, close, tls, self.base);
                }
                QueueItem::Stop => {
                    self.base.loopexit();
                }
            }
        }
        Disposition::Keep
    }
}

fn worker_main(worker: &'static Worker, ready: Arc<Barrier>) {
    // The base lives as long as the thread's loop; it is leaked so that connections and the
    // notifier can hold a plain reference to it.
    let base: &'static EventBase = match EventBase::new() {
        Some(b) => Box::leak(Box::new(b)),
        None => {
            eprintln!("Can't allocate event base");
            std::process::exit(1);
        }
    };
    conn::thread_caches_init(worker);
    crate::logger::logger_create();
    let notifier = Box::new(Notifier {
        worker,
        base,
        ev: None,
    });
    let notify_fd = worker.notify_fd;
    // The notifier is never released; it owns its event and lives for the thread.
    if !base.register(
        notify_fd,
        event::EV_READ | event::EV_PERSIST,
        None,
        notifier,
    ) {
        eprintln!("Can't monitor libevent notify pipe");
        std::process::exit(1);
    }
    let io_notifier = Box::new(IoNotifier {
        worker,
        ev: None,
        batch: Vec::new(),
    });
    if !base.register(
        worker.io_fd,
        event::EV_READ | event::EV_PERSIST,
        None,
        io_notifier,
    ) {
        eprintln!("Can't monitor libevent notify pipe");
        std::process::exit(1);
    }
    if crate::settings::get().drop_privileges {
        crate::privileges::drop_worker_privileges();
    }
    ready.wait();
    // Returns on a graceful stop; the process exits right after, closing the sockets.
    if crate::storage::get().is_some() {
        // With extstore, one round at a time: the round's reads from flash go to the engine
        // together after it (C's worker_libevent).
        while !base.got_exit() {
            base.loop_once();
            crate::storage::read::submit_pending();
        }
    } else {
        base.dispatch();
    }
}
