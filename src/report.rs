//! The `stats` reports that read every layer (C's `server_stats`, `process_stat`'s general
//! part and `get_stats`): the general report, `stats items|slabs|sizes`, `stats conns` and
//! `stats reset`. Server layer: protocol handlers reach them through `hooks`, which the
//! server registers at start-up.

use crate::items::store;
use crate::settings;
use crate::stats::{self, append_stat, current_time, ClassTotals, StatSink, ThreadStatsTotals};
use crate::stats::{ITEM_UPDATE_INTERVAL, PROCESS_STARTED, STATS};
use crate::thread;
use std::sync::atomic::Ordering::Relaxed;

/// `stats` with no argument.
pub fn general_stats(out: &mut dyn StatSink) {
    let totals = thread::stats_aggregate();
    server_stats(
        out,
        &totals,
        &thread::class_totals(),
        settings::get().num_threads,
    );
}

/// The general `stats` report (C's `server_stats`), given the summed thread counters.
pub fn server_stats(out: &mut dyn StatSink, t: &ThreadStatsTotals, ct: &ClassTotals, threads: i32) {
    let s = settings::get();
    let now = current_time();
    let started = PROCESS_STARTED.load(Relaxed);
    let (utime, stime) = crate::sys::rusage_self();
    let g = &STATS;

    append_stat(out, "pid", std::process::id());
    append_stat(out, "uptime", now.wrapping_sub(ITEM_UPDATE_INTERVAL));
    append_stat(out, "time", now as i64 + started);
    append_stat(out, "version", crate::VERSION);
    append_stat(out, "libevent", crate::event::version());
    append_stat(out, "pointer_size", 8 * std::mem::size_of::<usize>());
    append_stat(
        out,
        "rusage_user",
        format_args!("{}.{:06}", utime.0, utime.1),
    );
    append_stat(
        out,
        "rusage_system",
        format_args!("{}.{:06}", stime.0, stime.1),
    );
    append_stat(out, "max_connections", s.maxconns);
    append_stat(
        out,
        "curr_connections",
        (g.curr_conns.load(Relaxed) - 1) as u64,
    );
    append_stat(out, "total_connections", g.total_conns.load(Relaxed));
    if s.maxconns_fast {
        append_stat(out, "rejected_connections", g.rejected_conns.load(Relaxed));
    }
    append_stat(out, "connection_structures", g.conn_structs.load(Relaxed));
    append_stat(out, "response_obj_oom", t.response_obj_oom);
    append_stat(out, "response_obj_count", t.response_obj_count);
    append_stat(out, "response_obj_bytes", t.response_obj_bytes);
    append_stat(out, "read_buf_count", t.read_buf_count);
    append_stat(out, "read_buf_bytes", t.read_buf_bytes);
    append_stat(out, "read_buf_bytes_free", t.read_buf_bytes_free);
    append_stat(out, "read_buf_oom", t.read_buf_oom);
    append_stat(out, "reserved_fds", g.reserved_fds.load(Relaxed));
    append_stat(out, "cmd_get", t.get_cmds);
    append_stat(out, "cmd_set", ct.total(0));
    append_stat(out, "cmd_flush", t.flush_cmds);
    append_stat(out, "cmd_touch", t.touch_cmds);
    append_stat(out, "cmd_meta", t.meta_cmds);
    append_stat(out, "get_hits", ct.lru_hits.iter().sum::<u64>());
    append_stat(out, "get_misses", t.get_misses);
    append_stat(out, "get_expired", t.get_expired);
    append_stat(out, "get_flushed", t.get_flushed);
    if crate::storage::get().is_some() {
        append_stat(out, "get_extstore", t.get_extstore);
        append_stat(out, "get_aborted_extstore", t.get_aborted_extstore);
        append_stat(out, "get_oom_extstore", t.get_oom_extstore);
        append_stat(out, "recache_from_extstore", t.recache_from_extstore);
        append_stat(out, "miss_from_extstore", t.miss_from_extstore);
        append_stat(out, "badcrc_from_extstore", t.badcrc_from_extstore);
    }
    append_stat(out, "delete_misses", t.delete_misses);
    append_stat(out, "delete_hits", ct.total(1));
    append_stat(out, "incr_misses", t.incr_misses);
    append_stat(out, "incr_hits", ct.total(2));
    append_stat(out, "decr_misses", t.decr_misses);
    append_stat(out, "decr_hits", ct.total(3));
    append_stat(out, "cas_misses", t.cas_misses);
    append_stat(out, "cas_hits", ct.total(4));
    append_stat(out, "cas_badval", ct.total(5));
    append_stat(out, "touch_hits", ct.total(6));
    append_stat(out, "touch_misses", t.touch_misses);
    append_stat(out, "store_too_large", t.store_too_large);
    append_stat(out, "store_no_memory", t.store_no_memory);
    append_stat(out, "auth_cmds", t.auth_cmds);
    append_stat(out, "auth_errors", t.auth_errors);
    if s.idle_timeout != 0 {
        append_stat(out, "idle_kicks", t.idle_kicks);
    }
    append_stat(out, "bytes_read", t.bytes_read);
    append_stat(out, "bytes_written", t.bytes_written);
    append_stat(out, "limit_maxbytes", s.maxbytes.load(Relaxed));
    append_stat(
        out,
        "accepting_conns",
        g.accepting_conns.load(Relaxed) as u32,
    );
    append_stat(
        out,
        "listen_disabled_num",
        g.listen_disabled_num.load(Relaxed),
    );
    append_stat(
        out,
        "time_in_listen_disabled_us",
        g.time_in_listen_disabled_us.load(Relaxed),
    );
    append_stat(out, "threads", threads);
    append_stat(out, "conn_yields", t.conn_yields);
    let store = store::store();
    if let Some(st) = store {
        append_stat(out, "hash_power_level", st.assoc().power());
        append_stat(out, "hash_bytes", st.assoc().bytes());
        append_stat(out, "hash_is_expanding", st.assoc().is_expanding() as u32);
    }
    let s = settings::get();
    if s.slab_reassign {
        append_stat(
            out,
            "slab_reassign_rescues",
            g.slab_reassign_rescues.load(Relaxed),
        );
        append_stat(
            out,
            "slab_reassign_chunk_rescues",
            g.slab_reassign_chunk_rescues.load(Relaxed),
        );
        append_stat(
            out,
            "slab_reassign_inline_reclaim",
            g.slab_reassign_inline_reclaim.load(Relaxed),
        );
        append_stat(
            out,
            "slab_reassign_busy_items",
            g.slab_reassign_busy_items.load(Relaxed),
        );
        append_stat(
            out,
            "slab_reassign_busy_deletes",
            g.slab_reassign_busy_deletes.load(Relaxed),
        );
        append_stat(
            out,
            "slab_reassign_busy_nomem",
            g.slab_reassign_busy_nomem.load(Relaxed),
        );
        let status = *g
            .slab_reassign_last_busy_status
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        append_stat(
            out,
            "slab_reassign_last_busy_status",
            status.unwrap_or("none"),
        );
        append_stat(
            out,
            "slab_reassign_running",
            g.slab_reassign_running.load(Relaxed) as u32,
        );
        append_stat(out, "slabs_moved", g.slabs_moved.load(Relaxed));
    }
    if s.lru_crawler.load(Relaxed) {
        append_stat(
            out,
            "lru_crawler_running",
            g.lru_crawler_running.load(Relaxed) as u32,
        );
        append_stat(
            out,
            "lru_crawler_starts",
            g.lru_crawler_starts.load(Relaxed),
        );
    }
    if s.lru_maintainer_thread.load(Relaxed) {
        append_stat(
            out,
            "lru_maintainer_juggles",
            g.lru_maintainer_juggles.load(Relaxed),
        );
    }
    append_stat(out, "malloc_fails", g.malloc_fails.load(Relaxed));
    append_stat(
        out,
        "log_worker_dropped",
        g.log_worker_dropped.load(Relaxed),
    );
    append_stat(
        out,
        "log_worker_written",
        g.log_worker_written.load(Relaxed),
    );
    append_stat(
        out,
        "log_watcher_skipped",
        g.log_watcher_skipped.load(Relaxed),
    );
    append_stat(out, "log_watcher_sent", g.log_watcher_sent.load(Relaxed));
    append_stat(out, "log_watchers", g.log_watchers.load(Relaxed));
    if let Some(sto) = crate::storage::get() {
        for (name, v) in sto.stats_lines() {
            append_stat(out, name, v);
        }
    }
    let set = crate::settings::get();
    if set.ssl_enabled {
        use crate::tls;
        if set.ssl_session_cache {
            append_stat(out, "ssl_new_sessions", tls::NEW_SESSIONS.load(Relaxed));
        }
        append_stat(
            out,
            "ssl_handshake_errors",
            tls::HANDSHAKE_ERRORS.load(Relaxed),
        );
        append_stat(out, "ssl_proto_errors", tls::PROTO_ERRORS.load(Relaxed));
        let since = crate::stats::current_time().wrapping_sub(tls::LAST_CERT_REFRESH.load(Relaxed));
        append_stat(out, "time_since_server_cert_refresh", since);
    }
    append_stat(
        out,
        "unexpected_napi_ids",
        g.unexpected_napi_ids.load(Relaxed),
    );
    append_stat(
        out,
        "round_robin_fallback",
        g.round_robin_fallback.load(Relaxed),
    );
    if let Some(st) = store {
        st.write_stats_totals(out);
    }
}

/// `stats reset` (C's stats_reset): global, per-thread, per-LRU and prefix counters.
pub fn stats_reset_all() {
    let _g = stats::RESET_LOCK.lock();
    stats::STATS.reset();
    thread::stats_reset();
    if let Some(st) = store::store() {
        st.reset_item_stats();
    }
    if let Some(sto) = crate::storage::get() {
        sto.reset_stats();
    }
}

/// The stats groups named exactly (C's get_stats with a subcommand): items, slabs, sizes.
/// False for any other name.
pub fn engine_stats(sub: &[u8], out: &mut dyn stats::StatSink) -> bool {
    if sub == b"items" {
        if let Some(st) = store::store() {
            st.write_item_stats(out, &thread::class_totals());
        }
    } else if sub == b"slabs" {
        let ct = thread::class_totals();
        crate::slabs::with_slabs(|s| {
            s.write_stats(out, &|cls, o| {
                let r = &ct.slab[cls];
                stats::append_stat(o, &format!("{}:get_hits", cls), ct.get_hits(cls));
                for (i, name) in [
                    "cmd_set",
                    "delete_hits",
                    "incr_hits",
                    "decr_hits",
                    "cas_hits",
                    "cas_badval",
                    "touch_hits",
                ]
                .iter()
                .enumerate()
                {
                    stats::append_stat(o, &format!("{}:{}", cls, name), r[i]);
                }
            })
        });
    } else if sub == b"sizes" {
        if let Some(st) = store::store() {
            st.write_sizes_stats(out);
        }
    } else {
        return false;
    }
    true
}
