//! The LRU crawler (C's crawler.c, expired-item mode): a thread that walks chosen LRU lists
//! from tail to head with a marker item, reclaiming expired and flushed items without
//! client traffic. `lru_crawler crawl|enable|disable|sleep|tocrawl` drive it.
//!
//! Not built yet (issue 7): the metadump/mgdump modes and the maintainer's automatic crawl
//! scheduling; those commands say so.

use crate::items::store::{self, CrawlStep, COLD_LRU, HOT_LRU, POWER_LARGEST, TEMP_LRU, WARM_LRU};
use crate::settings;
use crate::stats::STATS;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The crawler's control state (C's lru_crawler_lock and friends).
struct Control {
    /// The thread exists and should keep running.
    run: bool,
    /// Lists with a crawl under way.
    active: Vec<u8>,
}

static CONTROL: Mutex<Control> = Mutex::new(Control {
    run: false,
    active: Vec::new(),
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
    let Some(st) = store::store() else {
        return CrawlResult::Error;
    };
    let mut c = control();
    if !c.run {
        return CrawlResult::Error;
    }
    if STATS.lru_crawler_running.load(Relaxed) {
        return CrawlResult::Running;
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
    if starts == 0 {
        return CrawlResult::NotStarted;
    }
    STATS.lru_crawler_running.store(true, Relaxed);
    STATS.lru_crawler_starts.fetch_add(1, Relaxed);
    WAKE.notify_all();
    CrawlResult::Ok
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
                if let CrawlStep::Done = st.crawler_step(id) {
                    finished.push(id);
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
