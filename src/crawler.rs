//! The LRU crawler (C's crawler.c, expired-item mode): a thread that walks chosen LRU lists
//! from tail to head with a marker item, reclaiming expired and flushed items without
//! client traffic. `lru_crawler crawl|enable|disable|sleep|tocrawl` drive it.
//!
//! The LRU maintainer also starts crawls on its own, once a second at most, for lists whose
//! last crawl suggests enough items are about to expire (C's lru_maintainer_crawler_check).
//!
//! `lru_crawler metadump|mgdump <classes|all|hash>` stream every live item's metadata (or a
//! `mg` line per key) to the client from this thread: the client's worker lends the
//! connection (`lent::LentConn`), the walk fills a buffer that is written out with poll
//! between steps (never while an item lock is held), and the connection goes back to its
//! worker after the terminator. `hash` walks the hash table instead of the LRUs.

use crate::items::store::{
    self, CrawlStep, DumpItem, COLD_LRU, HOT_LRU, POWER_LARGEST, TEMP_LRU, WARM_LRU,
};
use crate::lent::LentConn;
use crate::settings;
use crate::stats::{current_time, STATS};
use crate::sys;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Per-list results of the automatic crawls (C's crawlerstats_t), which schedule the next.
#[derive(Clone, Copy)]
struct ListStats {
    /// Live items by minutes left before they expire (the next hour).
    histo: [u64; 61],
    noexp: u64,
    seen: u64,
    reclaimed: u64,
    start_time: u32,
    end_time: u32,
    run_complete: bool,
}

const EMPTY_STATS: ListStats = ListStats {
    histo: [0; 61],
    noexp: 0,
    seen: 0,
    reclaimed: 0,
    start_time: 0,
    end_time: 0,
    run_complete: false,
};

/// Who started the crawl under way, and what it does (C's crawler_run_type).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Manual,
    Auto,
    Metadump,
    Mgdump,
}

impl Kind {
    fn is_dump(self) -> bool {
        matches!(self, Kind::Metadump | Kind::Mgdump)
    }
}

/// Room kept free in a dump's buffer before each LRU step: the buffer is written out when
/// less is left (C's LRU_CRAWLER_MINBUFSPACE).
const MINBUFSPACE: usize = 8192;
/// A dump buffer's starting size (C's LRU_CRAWLER_MINBUFSPACE * 16).
const DUMP_BUF_SIZE: usize = MINBUFSPACE * 16;
/// A hash walk writes out after this many items, between buckets (C's MIN_ITEMS_PER_WRITE).
const MIN_ITEMS_PER_WRITE: u64 = 16;

/// A dump's client and pending output (C's crawler_client_t).
struct DumpClient {
    /// None once the client is gone.
    conn: Option<LentConn>,
    buf: Vec<u8>,
    /// Nonzero: the dump could not run (the hash table was being expanded).
    status: u8,
}

impl DumpClient {
    /// Writes the whole buffer, waiting for the socket with poll (C's lru_crawler_write).
    /// On any failure the connection is closed and false returned.
    fn write(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let fd = conn.fd();
        let mut sent = 0;
        // A long backstop (30 minutes of one-second polls) so a stuck client cannot hold
        // the crawler forever.
        let mut tries = 1800;
        while sent < self.buf.len() {
            let mut p = [libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            }];
            match sys::poll(&mut p, 1000) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return self.fail(),
                Ok(0) => {
                    tries -= 1;
                    if tries == 0 {
                        return self.fail();
                    }
                    continue;
                }
                Ok(_) => {}
            }
            let rev = p[0].revents;
            if rev & libc::POLLIN != 0 {
                // The client closed or sent something (the byte read is dropped, as C).
                let mut b = [0u8; 1];
                let Some(conn) = self.conn.as_mut() else {
                    return false;
                };
                match conn.read(&mut b) {
                    Ok(0) => return self.fail(),
                    Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => return self.fail(),
                    _ => {}
                }
            }
            if rev & (libc::POLLHUP | libc::POLLERR) != 0 {
                return self.fail();
            }
            if rev & libc::POLLOUT != 0 {
                let Some(conn) = self.conn.as_mut() else {
                    return false;
                };
                match conn.write(&self.buf[sent..]) {
                    Ok(0) => return self.fail(),
                    Ok(n) => sent += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(_) => return self.fail(),
                }
            }
        }
        self.buf.clear();
        true
    }

    fn fail(&mut self) -> bool {
        if let Some(c) = self.conn.take() {
            c.close();
        }
        self.buf = Vec::new();
        false
    }

    /// Appends one item's line (C's crawler_metadump_eval / crawler_mgdump_eval); expired
    /// and flushed items are left out.
    fn eval(&mut self, kind: Kind, it: &DumpItem<'_>) {
        let now = current_time();
        let oldest_live = settings::get().oldest_live.load(Relaxed);
        let flushed = it.time <= oldest_live && oldest_live <= now;
        if (it.exptime != 0 && it.exptime < now) || flushed {
            return;
        }
        // The metadump leaves out headers whose value is gone from flash; mgdump does not look.
        if kind != Kind::Mgdump && it.hdr.is_some_and(|h| !crate::storage::hdr_valid(h)) {
            return;
        }
        let b = &mut self.buf;
        if kind == Kind::Mgdump {
            b.extend_from_slice(b"mg ");
            if it.it_flags & crate::items::ITEM_KEY_BINARY != 0 {
                crate::base64::base64_encode(it.key, b);
                b.extend_from_slice(b" b\r\n");
            } else {
                b.extend_from_slice(it.key);
                b.extend_from_slice(b"\r\n");
            }
            return;
        }
        use std::io::Write;
        let started = crate::stats::PROCESS_STARTED.load(Relaxed);
        b.extend_from_slice(b"key=");
        crate::logger::uriencode(it.key, b);
        if it.exptime == 0 {
            b.extend_from_slice(b" exp=-1");
        } else {
            let _ = write!(b, " exp={}", it.exptime as i64 + started);
        }
        let fetched = it.it_flags & crate::items::ITEM_FETCHED != 0;
        let _ = write!(
            b,
            " la={} cas={} fetch={} cls={} size={} flags={} ",
            it.time as i64 + started,
            it.cas,
            if fetched { "yes" } else { "no" },
            it.clsid,
            it.ntotal,
            it.client_flags
        );
        if let Some(h) = it.hdr {
            let _ = write!(b, "ext_page={} ext_offset={} ", h.page_id, h.offset);
        }
        // C's line ends with a space before the newline.
        b.push(b'\n');
    }

    /// The terminator after the last line (C's metadump/mgdump finalize), then everything
    /// left is written out. The connection, if still there, is returned for the caller to
    /// give back once the crawler is marked idle.
    fn finish(&mut self, kind: Kind) -> Option<LentConn> {
        self.conn.as_ref()?;
        if self.write() {
            if self.status != 0 {
                self.buf
                    .extend_from_slice(b"ERROR locked try again later\r\n");
            } else if kind == Kind::Mgdump {
                self.buf.extend_from_slice(b"EN\r\n");
            } else {
                self.buf.extend_from_slice(b"END\r\n");
            }
        }
        while self.conn.is_some() && !self.buf.is_empty() {
            self.write();
        }
        self.conn.take()
    }
}

/// The crawler's control state (C's lru_crawler_lock and friends).
struct Control {
    /// The thread should keep running.
    run: bool,
    /// A crawler thread exists (until it has left its loop, after a stop): no second one
    /// may start meanwhile (C's settings.lru_crawler, cleared by the exiting thread).
    alive: bool,
    /// Lists with a crawl under way.
    active: Vec<u8>,
    /// A dump of the whole hash table is asked for (C's crawler_count of -1).
    hash_walk: bool,
    kind: Kind,
    /// The client of a dump about to start (the thread takes it).
    dump: Option<DumpClient>,
    /// Automatic crawls wait until then after a manual one was under way (C's
    /// block_ae_until).
    block_auto_until: u32,
    /// Results of automatic crawls, per LRU id.
    auto_stats: [ListStats; POWER_LARGEST],
    /// The maintainer's schedule: when each list may be crawled next, and the wait it grew.
    next_crawl: [u32; POWER_LARGEST],
    next_wait: [u32; POWER_LARGEST],
}

static CONTROL: Mutex<Control> = Mutex::new(Control {
    run: false,
    alive: false,
    active: Vec::new(),
    hash_walk: false,
    kind: Kind::Manual,
    dump: None,
    block_auto_until: 0,
    auto_stats: [EMPTY_STATS; POWER_LARGEST],
    next_crawl: [0; POWER_LARGEST],
    next_wait: [0; POWER_LARGEST],
});
static WAKE: Condvar = Condvar::new();

fn control() -> std::sync::MutexGuard<'static, Control> {
    CONTROL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the crawler thread (C's start_item_crawler_thread). False if it already runs
/// or cannot be started.
pub fn start() -> bool {
    let mut c = control();
    // A thread asked to stop that has not left yet still counts, as in C: otherwise it
    // could see the new start and keep running beside a second thread.
    if c.run || c.alive {
        return false;
    }
    c.run = true;
    c.alive = true;
    settings::get().lru_crawler.store(true, Relaxed);
    let spawned = std::thread::Builder::new()
        .name("mc-itemcrawler".into())
        .spawn(run)
        .is_ok();
    if !spawned {
        c.run = false;
        c.alive = false;
        settings::get().lru_crawler.store(false, Relaxed);
    }
    spawned
}

/// Asks the thread to stop (C's stop_item_crawler_thread without waiting); stopping a
/// stopped crawler is fine, as in C.
pub fn stop() {
    let mut c = control();
    if !c.run {
        return;
    }
    c.run = false;
    settings::get().lru_crawler.store(false, Relaxed);
    WAKE.notify_all();
}

/// Asks the thread to stop and waits until it has left (C's stop_item_crawler_thread with
/// CRAWLER_WAIT): a crawl under way finishes first, so no marker stays on a list.
pub fn stop_and_wait() {
    stop();
    let mut c = control();
    while c.alive {
        // The thread wakes this wait as it leaves (no sleeping: the dispatcher's seccomp
        // filter allows futex waits only).
        c = WAKE.wait(c).unwrap_or_else(|e| e.into_inner());
    }
}

/// Outcome of `crawl` (C's crawler_result_type).
pub enum CrawlResult {
    Ok,
    Running,
    BadClass,
    NotStarted,
    Error,
}

/// The LRU ids of a class list: "all", or classes separated by commas, each standing for
/// its four LRUs. None for a bad class.
fn parse_classes(classes: &[u8]) -> Option<[bool; POWER_LARGEST]> {
    let mut ids = [false; POWER_LARGEST];
    if classes == b"all" {
        return Some([true; POWER_LARGEST]);
    }
    for part in classes.split(|&b| b == b',').filter(|p| !p.is_empty()) {
        let sid = crate::settings::cnum::safe_strtoul(part);
        match sid {
            Some(sid) if (1..crate::stats::MAX_CLASSES as u32).contains(&sid) => {
                for lru in [TEMP_LRU, HOT_LRU, WARM_LRU, COLD_LRU] {
                    ids[(sid as u8 | lru) as usize] = true;
                }
            }
            _ => return None,
        }
    }
    Some(ids)
}

fn result_of(start: Start) -> CrawlResult {
    match start {
        Start::Running => CrawlResult::Running,
        Start::Error => CrawlResult::Error,
        Start::Started(0) => CrawlResult::NotStarted,
        Start::Started(_) => CrawlResult::Ok,
    }
}

/// `lru_crawler crawl <classes|all>` (C's lru_crawler_crawl in expired mode).
pub fn crawl(classes: &[u8], remaining: u64) -> CrawlResult {
    let Some(ids) = parse_classes(classes) else {
        return CrawlResult::BadClass;
    };
    result_of(start_lists(Some(&ids), remaining, Kind::Manual, None).0)
}

/// `lru_crawler metadump|mgdump <classes|all|hash>` (C's lru_crawler_crawl in a dump
/// mode): on success the crawler thread owns the lent connection and replies "OK", the
/// lines and the terminator; otherwise the connection comes back with the result.
pub fn dump(classes: &[u8], mgdump: bool, conn: LentConn) -> Result<(), (CrawlResult, LentConn)> {
    let ids = if classes == b"hash" {
        None
    } else {
        match parse_classes(classes) {
            Some(ids) => Some(ids),
            None => return Err((CrawlResult::BadClass, conn)),
        }
    };
    let kind = if mgdump { Kind::Mgdump } else { Kind::Metadump };
    // Each list is dumped as far as its length when the dump starts (C's
    // LRU_CRAWLER_CAP_REMAINING).
    match start_lists(ids.as_ref(), u64::MAX, kind, Some(conn)) {
        (Start::Started(n), _) if n > 0 => Ok(()),
        (start, Some(conn)) => Err((result_of(start), conn)),
        // The thread took the client, so something started.
        (_, None) => Ok(()),
    }
}

enum Start {
    Running,
    Error,
    Started(usize),
}

/// Puts markers on the chosen lists, or asks for a hash-table walk when `ids` is None (C's
/// lru_crawler_start). `remaining` u64::MAX means each list's current length. A dump's
/// client is handed to the thread when something starts, else returned.
fn start_lists(
    ids: Option<&[bool; POWER_LARGEST]>,
    remaining: u64,
    kind: Kind,
    client: Option<LentConn>,
) -> (Start, Option<LentConn>) {
    let Some(st) = store::store() else {
        return (Start::Error, client);
    };
    let now = current_time();
    let mut c = control();
    if !c.run {
        return (Start::Error, client);
    }
    let running = STATS.lru_crawler_running.load(Relaxed);
    if running && !(kind == Kind::Auto && c.kind == Kind::Auto) {
        c.block_auto_until = now + 60;
        return (Start::Running, client);
    }
    if kind == Kind::Auto && c.block_auto_until > now {
        return (Start::Running, client);
    }
    if ids.is_none() && !kind.is_dump() {
        return (Start::Error, client);
    }
    if kind.is_dump() && client.is_none() {
        return (Start::Error, client);
    }
    let mut starts = 0;
    match ids {
        None => {
            c.hash_walk = true;
            starts = 1;
        }
        Some(ids) => {
            for (id, &on) in ids.iter().enumerate().skip(1) {
                let rem = if remaining == u64::MAX {
                    st.lru_stats(id as u8).0
                } else {
                    remaining
                };
                if on && st.crawler_start(id as u8, rem) {
                    if settings::verbose() > 2 {
                        eprintln!("Kicking LRU crawler off for LRU {}", id);
                    }
                    c.active.push(id as u8);
                    starts += 1;
                }
            }
        }
    }
    let mut client = client;
    if !running {
        c.kind = kind;
        if kind == Kind::Auto {
            // A new automatic run starts its statistics afresh.
            c.auto_stats = [EMPTY_STATS; POWER_LARGEST];
            for ls in c.auto_stats.iter_mut() {
                ls.start_time = now;
            }
        }
        if starts > 0 {
            if let Some(conn) = client.take() {
                let mut buf = Vec::with_capacity(DUMP_BUF_SIZE);
                buf.extend_from_slice(b"OK\r\n");
                c.dump = Some(DumpClient {
                    conn: Some(conn),
                    buf,
                    status: 0,
                });
            }
        }
    }
    if starts > 0 {
        STATS.lru_crawler_running.store(true, Relaxed);
        STATS.lru_crawler_starts.fetch_add(1, Relaxed);
        WAKE.notify_all();
    }
    (Start::Started(starts), client)
}

/// Longest wait between automatic crawls of a list (C's MAX_MAINTCRAWL_WAIT).
const MAX_MAINTCRAWL_WAIT: u32 = 60 * 60;

/// The LRU maintainer's once-a-second look at the lists (C's lru_maintainer_crawler_check):
/// a list is crawled again sooner when its last crawl saw at least 1% of its expiring items
/// due within the wait, later otherwise (up to an hour), and never less than 5 s apart.
pub fn maintainer_check() {
    let Some(st) = store::store() else { return };
    let now = current_time();
    let mut todo = [false; POWER_LARGEST];
    let mut do_run = false;
    let mut tocrawl_limit = 0u64;
    {
        let mut c = control();
        // Index loop: each step reads and writes several per-list arrays.
        #[allow(clippy::needless_range_loop)]
        for i in 1..POWER_LARGEST {
            if c.auto_stats[i].run_complete {
                let s = c.auto_stats[i];
                let possible = s.seen.saturating_sub(s.noexp);
                let low_watermark = possible / 100 + 1;
                let mut available = 0u64;
                for x in 0..60 {
                    available += s.histo[x];
                    if available > low_watermark {
                        if c.next_wait[i] < (x as u32) * 60 {
                            c.next_wait[i] += 60;
                        } else if c.next_wait[i] >= 60 {
                            c.next_wait[i] -= 60;
                        }
                        break;
                    }
                }
                if available == 0 {
                    c.next_wait[i] += 60;
                }
                c.next_wait[i] = c.next_wait[i].min(MAX_MAINTCRAWL_WAIT);
                c.next_crawl[i] = now + c.next_wait[i] + 5;
                c.auto_stats[i].run_complete = false;
                if crate::logger::enabled(crate::logger::LOG_SYSEVENTS) {
                    let lru = match i as u8 & (3 << 6) {
                        HOT_LRU => "hot",
                        WARM_LRU => "warm",
                        COLD_LRU => "cold",
                        _ => "temp",
                    };
                    crate::logger::text(
                        crate::logger::LOG_SYSEVENTS,
                        &format!(
                            "type=lru_crawler crawler={} lru={} low_mark={} next_reclaims={} \
                             since_run={} next_run={} elapsed={} examined={} reclaimed={}",
                            i & 63,
                            lru,
                            low_watermark,
                            available,
                            now.wrapping_sub(s.end_time),
                            c.next_crawl[i].wrapping_sub(now) as i32,
                            s.end_time.wrapping_sub(s.start_time),
                            s.seen,
                            s.reclaimed
                        ),
                    );
                }
            }
            if now > c.next_crawl[i] {
                tocrawl_limit = tocrawl_limit.max(st.lru_stats(i as u8).0);
                todo[i] = true;
                do_run = true;
                c.next_crawl[i] = now + 5;
            }
        }
    }
    if do_run {
        let cap = settings::get().lru_crawler_tocrawl.load(Relaxed) as u64;
        if cap != 0 && cap < tocrawl_limit {
            tocrawl_limit = cap;
        }
        start_lists(Some(&todo), tocrawl_limit, Kind::Auto, None);
    }
}

fn run() {
    let Some(st) = store::store() else {
        control().alive = false;
        WAKE.notify_all();
        return;
    };
    let s = settings::get();
    if settings::verbose() > 2 {
        eprintln!("Starting LRU crawler background thread");
    }
    let mut c = control();
    loop {
        if c.active.is_empty() && !c.hash_walk {
            if !c.run {
                break;
            }
            c = WAKE.wait(c).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        // Work asked for before a stop is still done, so no marker or dump client is left
        // behind (C's thread, woken by the stop, also runs what was queued).
        let kind = c.kind;
        let mut dump = c.dump.take();
        let hash_walk = std::mem::take(&mut c.hash_walk);
        let mut persleep = s.crawls_persleep;
        if hash_walk {
            drop(c);
            if let Some(d) = dump.as_mut() {
                walk_hash(st, kind, d);
            }
            c = control();
        }
        // A crawl under way finishes even if the thread is asked to stop (as in C).
        while !c.active.is_empty() {
            let ids = c.active.clone();
            drop(c);
            let mut finished = Vec::new();
            for id in ids {
                if kind.is_dump() {
                    // Flush before the buffer could overflow; a client that went away ends
                    // the list (C's lru_crawler_class_done).
                    let gone = match dump.as_mut() {
                        Some(d) if d.conn.is_some() => {
                            d.buf.len() + MINBUFSPACE > DUMP_BUF_SIZE && !d.write()
                        }
                        _ => true,
                    };
                    if gone {
                        st.crawler_stop(id);
                        finished.push(id);
                        continue;
                    }
                    let step = match dump.as_mut() {
                        Some(d) => st.crawler_step(id, Some(&mut |it| d.eval(kind, it))),
                        None => CrawlStep::Done,
                    };
                    if let CrawlStep::Done = step {
                        finished.push(id);
                        continue;
                    }
                } else {
                    let step = st.crawler_step(id, None);
                    let now = current_time();
                    match step {
                        CrawlStep::Done => {
                            finished.push(id);
                            let mut c = control();
                            if c.kind == Kind::Auto {
                                let ls = &mut c.auto_stats[id as usize];
                                ls.run_complete = true;
                                ls.end_time = now;
                            }
                        }
                        CrawlStep::Reclaimed => {
                            let mut c = control();
                            if c.kind == Kind::Auto {
                                c.auto_stats[id as usize].reclaimed += 1;
                            }
                        }
                        CrawlStep::Seen(exptime) => {
                            let mut c = control();
                            if c.kind == Kind::Auto {
                                let ls = &mut c.auto_stats[id as usize];
                                ls.seen += 1;
                                if exptime == 0 {
                                    ls.noexp += 1;
                                } else if exptime.wrapping_sub(now) <= 3599 {
                                    let bucket = (exptime.wrapping_sub(now) / 60) as usize;
                                    if bucket <= 60 {
                                        ls.histo[bucket] += 1;
                                    }
                                }
                            }
                        }
                        CrawlStep::Went | CrawlStep::Visited => {}
                    }
                }
                let sleep = s.lru_crawler_sleep.load(Relaxed);
                persleep -= 1;
                if persleep <= 0 && sleep > 0 {
                    std::thread::sleep(Duration::from_micros(sleep as u64));
                    persleep = s.crawls_persleep;
                }
            }
            c = control();
            c.active.retain(|id| !finished.contains(id));
        }
        drop(c);
        let done_client = dump.take().and_then(|mut d| d.finish(kind));
        if settings::verbose() > 2 {
            eprintln!("LRU crawler thread sleeping");
        }
        c = control();
        STATS.lru_crawler_running.store(false, Relaxed);
        // The client gets its connection back only now: a dump it asks for next must not
        // find this one still marked running (C leaves that window open; a loaded machine
        // hits it).
        if let Some(conn) = done_client {
            drop(c);
            conn.give_back();
            c = control();
        }
    }
    c.alive = false;
    drop(c);
    WAKE.notify_all();
    if settings::verbose() > 2 {
        eprintln!("LRU crawler thread stopping");
    }
}

/// A dump of the hash table (C's item_crawl_hash): the buffer grows while a bucket's lock is
/// held and is written out between buckets.
fn walk_hash(st: &store::Store, kind: Kind, d: &mut DumpClient) {
    let s = settings::get();
    // Both closures count; Cells let them share the counters.
    let items = std::cell::Cell::new(0u64);
    let persleep = std::cell::Cell::new(s.crawls_persleep);
    let d = std::cell::RefCell::new(d);
    let walked = st.walk_hash(
        &mut |it| {
            d.borrow_mut().eval(kind, it);
            items.set(items.get() + 1);
            persleep.set(persleep.get() - 1);
        },
        &mut || {
            let mut d = d.borrow_mut();
            if d.conn.is_none() {
                return false;
            }
            if items.get() > MIN_ITEMS_PER_WRITE {
                items.set(0);
                if !d.write() {
                    return false;
                }
            }
            let sleep = s.lru_crawler_sleep.load(Relaxed);
            if persleep.get() <= 0 && sleep > 0 {
                std::thread::sleep(Duration::from_micros(sleep as u64));
                persleep.set(s.crawls_persleep);
            }
            true
        },
    );
    if !walked {
        // The table is being expanded (C's status 1).
        d.borrow_mut().status = 1;
    }
}
