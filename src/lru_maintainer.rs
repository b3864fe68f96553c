//! The LRU maintainer thread (C's lru_maintainer_thread in items.c): keeps each class's HOT and
//! WARM segments within their share, reclaims expired items from the tails without waiting for
//! an allocation to need the memory, and applies the COLD hits that workers queue.
//!
//! Each class has its own back-off: a class where a pass moved nothing is looked at again
//! after a growing delay (1 ms up to 1 s), a busy one sooner.

use crate::items::store::{self, Store};
use crate::settings;
use crate::stats::{current_time, STATS};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Shortest and longest pause between passes, in microseconds (C's MIN/MAX_LRU_MAINTAINER_SLEEP).
const MIN_SLEEP_US: u64 = 1000;
const MAX_SLEEP_US: u64 = 1_000_000 - 1;

/// Cleared to stop the thread.
static RUN: AtomicBool = AtomicBool::new(false);
/// Wakes the thread from its pause when it is asked to stop.
static NAP: Mutex<()> = Mutex::new(());
static WAKE: Condvar = Condvar::new();
static THREAD: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// Starts the thread (C's start_lru_maintainer_thread); marks it running in the settings.
pub fn start() -> std::io::Result<()> {
    let Some(st) = store::store() else {
        return Err(std::io::Error::other("item store not initialised"));
    };
    RUN.store(true, Relaxed);
    settings::get().lru_maintainer_thread.store(true, Relaxed);
    let h = std::thread::Builder::new()
        .name("mc-lrumaint".into())
        .spawn(move || run(st))?;
    *THREAD.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    Ok(())
}

/// Stops the thread and waits for it (C's stop_lru_maintainer_thread).
pub fn stop() {
    {
        let _g = NAP.lock().unwrap_or_else(|e| e.into_inner());
        RUN.store(false, Relaxed);
        WAKE.notify_all();
    }
    settings::get().lru_maintainer_thread.store(false, Relaxed);
    let h = THREAD.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(h) = h {
        let _ = h.join();
    }
}

/// Pauses for `us` microseconds, or less when asked to stop.
fn nap(us: u64) {
    let g = NAP.lock().unwrap_or_else(|e| e.into_inner());
    if RUN.load(Relaxed) {
        let _ = WAKE.wait_timeout(g, Duration::from_micros(us));
    }
}

fn run(st: &'static Store) {
    let mut to_sleep = MIN_SLEEP_US;
    let mut next_juggles = [0u64; crate::stats::MAX_CLASSES];
    let mut backoff = [0u64; crate::stats::MAX_CLASSES];
    let mut batch = Vec::with_capacity(1024);
    let mut last_crawler_check = 0u32;
    crate::logger::logger_create();
    if settings::verbose() > 2 {
        eprintln!("Starting LRU maintainer background thread");
    }
    while RUN.load(Relaxed) {
        if to_sleep > 0 {
            nap(to_sleep);
            if !RUN.load(Relaxed) {
                break;
            }
        }
        // A pass that did not sleep still counts as a millisecond, as in C.
        let last_sleep = to_sleep.max(MIN_SLEEP_US);
        to_sleep = MAX_SLEEP_US;
        STATS.lru_maintainer_juggles.fetch_add(1, Relaxed);

        let first = crate::slabs::POWER_SMALLEST;
        let classes = next_juggles[first..].iter_mut().zip(&mut backoff[first..]);
        for (cls, (next, backoff)) in (first..).zip(classes) {
            *next = next.saturating_sub(last_sleep);
            if *next > 0 {
                to_sleep = to_sleep.min(*next);
                continue;
            }
            let did_moves = st.juggle(cls as u8);
            if did_moves == 0 {
                *backoff = if *backoff != 0 {
                    *backoff + *backoff / 8
                } else {
                    MIN_SLEEP_US
                }
                .min(MAX_SLEEP_US);
            } else if *backoff > 0 {
                *backoff /= 2;
                if *backoff < MIN_SLEEP_US {
                    *backoff = 0;
                }
            }
            *next = *backoff;
            to_sleep = to_sleep.min(*next);
        }

        // Queued COLD hits keep the pause short.
        if settings::get().lru_segmented.load(Relaxed) && st.process_bumps(&mut batch) {
            to_sleep = to_sleep.min(1000);
        }

        // Once a second at most: should the crawler look for expired items somewhere?
        if settings::get().lru_crawler.load(Relaxed) && last_crawler_check != current_time() {
            crate::crawler::maintainer_check();
            last_crawler_check = current_time();
        }
    }
    if settings::verbose() > 2 {
        eprintln!("LRU maintainer thread stopping");
    }
}
