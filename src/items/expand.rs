//! Hash table growth (C's assoc.c assoc_start_expand and assoc_maintenance_thread): the
//! expansion thread switches to a doubled array with every item lock held, then moves old
//! buckets one step at a time under their item locks while clients go on. The table itself
//! is `crate::assoc`.

use super::store::{lock, store, Store, CURR_ITEMS};
use crate::settings;
use crate::sys::LockGuard;
use std::sync::atomic::Ordering::Relaxed;

impl Store {
    /// Asks the expansion thread to grow the table if it holds more than 1.5 items per bucket
    /// (C's assoc_start_expand, run by the clock every second). Never blocks.
    pub fn start_expand_if_needed(&self) {
        self.start_expand_if_needed_for(CURR_ITEMS.load(Relaxed).max(0) as u64);
    }

    /// As `start_expand_if_needed`, for a given item count.
    pub fn start_expand_if_needed_for(&self, curr_items: u64) {
        if !self.assoc.wants_expand(curr_items) {
            return;
        }
        if let Ok(mut requested) = self.expand_request.try_lock() {
            *requested = true;
            self.expand_cond.notify_one();
        }
    }

    /// Every item lock, in order: no thread is then inside the hash table (the effect C gets
    /// from pause_threads). Deadlock-free because no thread blocks on an item lock while
    /// holding another (second locks are only tried).
    fn lock_all_items(&self) -> Vec<LockGuard<'_, ()>> {
        self.item_locks.iter().map(|m| m.lock()).collect()
    }

    /// The hash table expansion thread's loop (C's assoc_maintenance_thread): waits for a
    /// request, switches to an array twice the size with every item lock held, then moves
    /// `bulk_move` old buckets per step, each under its own item lock, while clients go on.
    pub fn run_assoc_maintenance(&self, bulk_move: u64) {
        let verbose = || settings::verbose() > 1;
        loop {
            {
                let mut requested = lock(&self.expand_request);
                while !*requested {
                    if self.expand_stop.load(Relaxed) {
                        return;
                    }
                    requested = self
                        .expand_cond
                        .wait(requested)
                        .unwrap_or_else(|e| e.into_inner());
                }
                *requested = false;
            }
            // The requester checked the load factor (C expands on every signal, too).
            if self.assoc.is_expanding() || self.assoc.power() >= crate::assoc::HASHPOWER_MAX {
                continue;
            }
            // A hash-table dump in progress finishes first.
            let _maint = lock(&self.maintenance);
            // Allocate before stopping anyone; without the memory, keep running as is.
            let Some(bigger) = self.assoc.next_buckets() else {
                continue;
            };
            {
                let _all = self.lock_all_items();
                // SAFETY: every item lock is held.
                unsafe { self.assoc.begin_expand(bigger) };
            }
            if verbose() {
                eprintln!("Hash table expansion starting");
            }
            'moving: loop {
                // A stop leaves the table half moved; only this process ever used it.
                if self.expand_stop.load(Relaxed) {
                    return;
                }
                for _ in 0..bulk_move {
                    let Some(b) = self.assoc.expand_bucket() else {
                        break 'moving;
                    };
                    let done = match self.item_trylock(b as u32) {
                        // SAFETY: the lock covering old bucket `b` is held and `b` is next.
                        Some(_g) => unsafe { self.assoc.move_bucket(b) },
                        None => {
                            std::thread::sleep(std::time::Duration::from_micros(10_000 - 1));
                            false
                        }
                    };
                    if done {
                        let _all = self.lock_all_items();
                        // SAFETY: every item lock is held and every old bucket has moved.
                        unsafe { self.assoc.finish_expand() };
                        drop(_all);
                        if verbose() {
                            eprintln!("Hash table expansion done");
                        }
                        break 'moving;
                    }
                }
            }
        }
    }
}

/// Starts the hash table expansion thread (C's start_assoc_maintenance_thread).
/// `MEMCACHED_HASH_BULK_MOVE` sets how many buckets move per step, as in C.
pub fn start_assoc_maintenance() -> std::io::Result<()> {
    let Some(st) = store() else {
        return Err(std::io::Error::other("item store not initialised"));
    };
    let bulk_move = std::env::var("MEMCACHED_HASH_BULK_MOVE")
        .ok()
        .map(|v| crate::settings::cnum::atoi(v.as_bytes()))
        .filter(|&n| n > 0)
        .map_or(1, |n| n as u64);
    let h = std::thread::Builder::new()
        .name("mc-assocmaint".into())
        .spawn(move || st.run_assoc_maintenance(bulk_move))?;
    *lock(&EXPAND_THREAD) = Some(h);
    Ok(())
}

static EXPAND_THREAD: std::sync::Mutex<Option<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(None);

/// Stops the expansion thread and waits for it (C's stop_assoc_maintenance_thread).
pub fn stop_assoc_maintenance() {
    let Some(st) = store() else {
        return;
    };
    {
        let _g = lock(&st.expand_request);
        st.expand_stop.store(true, Relaxed);
        st.expand_cond.notify_all();
    }
    if let Some(h) = lock(&EXPAND_THREAD).take() {
        let _ = h.join();
    }
}
