//! The LRU crawler (C's crawler.c, expired-item mode): a thread that walks chosen LRU lists
//! from tail to head with a marker item, reclaiming expired and flushed items without
//! client traffic. `lru_crawler crawl|enable|disable|sleep|tocrawl` drive it.
//!
//! The LRU maintainer also starts crawls on its own, once a second at most, for lists whose
//! last crawl suggests enough items are about to expire (C's lru_maintainer_crawler_check).
//!
//! Not built yet (issue 7): the metadump/mgdump modes; those commands say so.

use crate::items::store::{self, CrawlStep, COLD_LRU, HOT_LRU, POWER_LARGEST, TEMP_LRU, WARM_LRU};
use crate::settings;
use crate::stats::{current_time, STATS};
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
    run_complete: bool,
}

const EMPTY_STATS: ListStats = ListStats {
    histo: [0; 61],
    noexp: 0,
    seen: 0,
    run_complete: false,
};

/// Who started the crawl under way.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Manual,
    Auto,
}

/// The crawler's control state (C's lru_crawler_lock and friends).
struct Control {
    /// The thread exists and should keep running.
    run: bool,
    /// Lists with a crawl under way.
    active: Vec<u8>,
    kind: Kind,
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
    active: Vec::new(),
    kind: Kind::Manual,
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
    if c.run {
        return false;
    }
    c.run = true;
    settings::get().lru_crawler.store(true, Relaxed);
    drop(c);
    std::thread::Builder::new()
        .name("mc-itemcrawler".into())
        .spawn(run)
        .is_ok()
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

/// Outcome of `crawl` (C's crawler_result_type).
pub enum CrawlResult {
    Ok,
    Running,
    BadClass,
    NotStarted,
    Error,
}

/// `lru_crawler crawl <classes|all>` (C's lru_crawler_crawl in expired mode).
pub fn crawl(classes: &[u8], remaining: u64) -> CrawlResult {
    let mut ids = [false; POWER_LARGEST];
    if classes == b"all" {
        ids = [true; POWER_LARGEST];
    } else {
        for part in classes.split(|&b| b == b',').filter(|p| !p.is_empty()) {
            let sid = crate::settings::cnum::safe_strtoul(part);
            match sid {
                Some(sid) if (1..crate::stats::MAX_CLASSES as u32).contains(&sid) => {
                    for lru in [TEMP_LRU, HOT_LRU, WARM_LRU, COLD_LRU] {
                        ids[(sid as u8 | lru) as usize] = true;
                    }
                }
                _ => return CrawlResult::BadClass,
            }
        }
    }
    match start_lists(&ids, remaining, Kind::Manual) {
        Start::Running => CrawlResult::Running,
        Start::Error => CrawlResult::Error,
        Start::Started(0) => CrawlResult::NotStarted,
        Start::Started(_) => CrawlResult::Ok,
    }
}

enum Start {
    Running,
    Error,
    Started(usize),
}

/// Puts markers on the chosen lists (C's lru_crawler_start).
fn start_lists(ids: &[bool; POWER_LARGEST], remaining: u64, kind: Kind) -> Start {
    let Some(st) = store::store() else {
        return Start::Error;
    };
    let now = current_time();
    let mut c = control();
    if !c.run {
        return Start::Error;
    }
    let running = STATS.lru_crawler_running.load(Relaxed);
    if running && !(kind == Kind::Auto && c.kind == Kind::Auto) {
        c.block_auto_until = now + 60;
        return Start::Running;
    }
    if kind == Kind::Auto && c.block_auto_until > now {
        return Start::Running;
    }
    if !running {
        c.kind = kind;
        if kind == Kind::Auto {
            // A new automatic run starts its statistics afresh.
            c.auto_stats = [EMPTY_STATS; POWER_LARGEST];
        }
    }
    let mut starts = 0;
    for (id, &on) in ids.iter().enumerate().skip(1) {
        if on && st.crawler_start(id as u8, remaining) {
            if settings::verbose() > 2 {
                eprintln!("Kicking LRU crawler off for LRU {}", id);
            }
            c.active.push(id as u8);
            starts += 1;
        }
    }
    if starts > 0 {
        STATS.lru_crawler_running.store(true, Relaxed);
        STATS.lru_crawler_starts.fetch_add(1, Relaxed);
        WAKE.notify_all();
    }
    Start::Started(starts)
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
        start_lists(&todo, tocrawl_limit, Kind::Auto);
    }
}

fn run() {
    let Some(st) = store::store() else { return };
    let s = settings::get();
    if settings::verbose() > 2 {
        eprintln!("Starting LRU crawler background thread");
    }
    let mut c = control();
    while c.run {
        if c.active.is_empty() {
            c = WAKE.wait(c).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let mut persleep = s.crawls_persleep;
        // A crawl under way finishes even if the thread is asked to stop (as in C).
        while !c.active.is_empty() {
            let ids = c.active.clone();
            drop(c);
            let mut finished = Vec::new();
            for id in ids {
                let step = st.crawler_step(id);
                let now = current_time();
                match step {
                    CrawlStep::Done => {
                        finished.push(id);
                        let mut c = control();
                        if c.kind == Kind::Auto {
                            c.auto_stats[id as usize].run_complete = true;
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
                    CrawlStep::Reclaimed | CrawlStep::Went => {}
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
        if settings::verbose() > 2 {
            eprintln!("LRU crawler thread sleeping");
        }
        STATS.lru_crawler_running.store(false, Relaxed);
    }
    drop(c);
    if settings::verbose() > 2 {
        eprintln!("LRU crawler thread stopping");
    }
}
