//! The opt-in Prometheus endpoint (`-o metrics_listen=ADDR:PORT`): `GET /metrics` answers in
//! the text exposition format 0.0.4 with the metrics prometheus/memcached_exporter (v0.16)
//! computes from `stats`, `stats settings`, `stats slabs` and `stats items` (same names,
//! types, HELP texts, labels and formulas, see doc/metrics.md), plus the process metrics the
//! exporter reads through a pid file. The values come from the same reports the `stats`
//! commands print, read back the way the exporter reads them, so the two always agree.
//!
//! Thread: `mc-metrics`, with an event base of its own (evhttp): a scrape never runs on a
//! worker, and a scraper that stops reading is dropped after a timeout.

use crate::evhttp::{HttpServer, Reply, Request};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

/// Seconds a scrape connection may stall before it is dropped.
const HTTP_TIMEOUT_SECS: i32 = 10;

/// Starts the endpoint on `listen` ("ADDR:PORT", "[v6]:PORT" or ":PORT"); Err is the message
/// for stderr.
pub fn start(listen: &str) -> Result<(), String> {
    let (addr, port) = split_listen(listen)
        .ok_or_else(|| format!("metrics_listen: expected ADDR:PORT, got '{listen}'"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mc-metrics".into())
        .spawn(move || {
            let Some(base) = crate::event::EventBase::new() else {
                let _ = tx.send(Err("Can't allocate event base".to_string()));
                return;
            };
            match HttpServer::listen(&base, &addr, port, HTTP_TIMEOUT_SECS, handle) {
                Ok(_server) => {
                    let _ = tx.send(Ok(()));
                    base.dispatch();
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(|e| format!("Can't create thread: {e}"))?;
    rx.recv()
        .unwrap_or_else(|_| Err("metrics thread failed".to_string()))
}

/// "host:port" into its parts ("" host: every address).
pub fn split_listen(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Some((host.to_string(), port))
}

fn handle(req: &Request<'_>) -> Reply {
    if req.path != b"/metrics" || !req.get {
        return Reply {
            status: 404,
            reason: "Not Found",
            content_type: "text/plain; charset=utf-8",
            body: b"404 page not found\n".to_vec(),
        };
    }
    let body = if req.head {
        Vec::new()
    } else {
        render().into_bytes()
    };
    Reply {
        status: 200,
        reason: "OK",
        content_type: "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
        body,
    }
}

// ---- reading the stats as the exporter does ----

/// `stats`, `stats slabs` and `stats items` read into the exporter's three maps, and
/// `stats settings`.
#[derive(Default)]
struct Stats {
    global: HashMap<String, String>,
    slabs: BTreeMap<u32, HashMap<String, String>>,
    items: BTreeMap<u32, HashMap<String, String>>,
    settings: HashMap<String, String>,
}

fn collect() -> Stats {
    let mut st = Stats::default();
    let mut text = Vec::new();
    crate::report::general_stats(&mut text);
    crate::report::engine_stats(b"slabs", &mut text);
    crate::report::engine_stats(b"items", &mut text);
    for line in String::from_utf8_lossy(&text).split("\r\n") {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.len() != 3 || !parts[0].starts_with("STAT") {
            continue;
        }
        let value = parts[2].trim().to_string();
        let key: Vec<&str> = parts[1].split(':').collect();
        match key.len() {
            1 => {
                st.global.insert(key[0].to_string(), value);
            }
            2 => {
                if let Ok(n) = key[0].parse() {
                    st.slabs
                        .entry(n)
                        .or_default()
                        .insert(key[1].to_string(), value);
                }
            }
            3 => {
                if let Ok(n) = key[1].parse() {
                    st.items
                        .entry(n)
                        .or_default()
                        .insert(key[2].to_string(), value);
                }
            }
            _ => {}
        }
    }
    let mut set = Vec::new();
    crate::settings::write_stats_settings(&mut set);
    for line in String::from_utf8_lossy(&set).split("\r\n") {
        let mut p = line.splitn(3, ' ');
        if let (Some("STAT"), Some(k), Some(v)) = (p.next(), p.next(), p.next()) {
            st.settings.insert(k.to_string(), v.to_string());
        }
    }
    st
}

// ---- metric families ----

struct Family {
    help: &'static str,
    kind: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

#[derive(Default)]
struct Out {
    fams: BTreeMap<&'static str, Family>,
    /// A value was present but not a number (the exporter then reports up 0).
    parse_error: bool,
}

impl Out {
    fn add(
        &mut self,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
        v: f64,
    ) {
        self.fams
            .entry(name)
            .or_insert(Family {
                help,
                kind,
                samples: Vec::new(),
            })
            .samples
            .push((labels, v));
    }

    /// One `memcached_commands_total` sample, or `memcached_slab_commands_total` with `slab`.
    fn command(&mut self, slab: Option<&str>, cmd: &str, status: &str, v: f64) {
        let mut labels = vec![("command", cmd.to_string())];
        if let Some(sl) = slab {
            labels.push(("slab", sl.to_string()));
        }
        labels.push(("status", status.to_string()));
        match slab {
            None => self.add("memcached_commands_total", C, COMMANDS_HELP, labels, v),
            Some(_) => self.add(
                "memcached_slab_commands_total",
                C,
                SLAB_COMMANDS_HELP,
                labels,
                v,
            ),
        }
    }

    /// The value of `key` as a number, noting a parse error; None when absent.
    fn num(&mut self, m: &HashMap<String, String>, key: &str) -> Option<f64> {
        let v = m.get(key)?;
        match v.parse::<f64>() {
            Ok(f) => Some(f),
            Err(_) => {
                self.parse_error = true;
                None
            }
        }
    }

    fn boolean(&mut self, m: &HashMap<String, String>, key: &str) -> Option<f64> {
        match m.get(key)?.as_str() {
            "yes" => Some(1.0),
            "no" => Some(0.0),
            _ => {
                self.parse_error = true;
                None
            }
        }
    }

    /// "sec.usec" (C's rusage lines) as the exporter reads it.
    fn timeval(&mut self, m: &HashMap<String, String>, key: &str) -> Option<f64> {
        let v = m.get(key)?;
        let parsed = v.split_once('.').and_then(|(s, u)| {
            if u.contains('.') {
                return None;
            }
            Some(s.parse::<f64>().ok()? + u.parse::<f64>().ok()? / 1e6)
        });
        if parsed.is_none() {
            self.parse_error = true;
        }
        parsed
    }

    /// One unlabelled metric from `key`, if present.
    fn simple(
        &mut self,
        m: &HashMap<String, String>,
        key: &str,
        name: &'static str,
        kind: &'static str,
        help: &'static str,
    ) {
        if let Some(v) = self.num(m, key) {
            self.add(name, kind, help, Vec::new(), v);
        }
    }
}

const C: &str = "counter";
const G: &str = "gauge";

const COMMANDS_HELP: &str =
    "Total number of all requests broken down by command (get, set, etc.) and status.";
const SLAB_COMMANDS_HELP: &str =
    "Total number of all requests broken down by command (get, set, etc.) and status per slab.";

/// Unlabelled metrics from `stats`: (key, name, type, help).
const GLOBAL: &[(&str, &str, &str, &str)] = &[
    ("uptime", "memcached_uptime_seconds", C, "Number of seconds since the server started."),
    ("time", "memcached_time_seconds", G, "current UNIX time according to the server."),
    ("bytes_read", "memcached_read_bytes_total", C, "Total number of bytes read by this server from network."),
    ("bytes_written", "memcached_written_bytes_total", C, "Total number of bytes sent by this server to network."),
    ("curr_connections", "memcached_current_connections", G, "Current number of open connections."),
    ("total_connections", "memcached_connections_total", C, "Total number of connections opened since the server started running."),
    ("rejected_connections", "memcached_connections_rejected_total", C, "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast mode."),
    ("conn_yields", "memcached_connections_yielded_total", C, "Total number of connections yielded running due to hitting the memcached's -R limit."),
    ("listen_disabled_num", "memcached_connections_listener_disabled_total", C, "Number of times that memcached has hit its connections limit and disabled its listener."),
    ("accepting_conns", "memcached_accepting_connections", G, "The Memcached server is currently accepting new connections."),
    ("bytes", "memcached_current_bytes", G, "Current number of bytes used to store items."),
    ("limit_maxbytes", "memcached_limit_bytes", G, "Number of bytes this server is allowed to use for storage."),
    ("curr_items", "memcached_current_items", G, "Current number of items stored by this instance."),
    ("total_items", "memcached_items_total", C, "Total number of items stored during the life of this instance."),
    ("evictions", "memcached_items_evicted_total", C, "Total number of valid items removed from cache to free memory for new items."),
    ("reclaimed", "memcached_items_reclaimed_total", C, "Total number of times an entry was stored using memory from an expired entry."),
    ("store_too_large", "memcached_item_too_large_total", C, "The number of times an item exceeded the max-item-size when being stored."),
    ("store_no_memory", "memcached_item_no_memory_total", C, "The number of times an item could not be stored due to no more memory."),
    ("direct_reclaims", "memcached_direct_reclaims_total", C, "Times worker threads had to directly reclaim or evict items."),
    ("total_malloced", "memcached_malloced_bytes", G, "Number of bytes of memory allocated to slab pages."),
    ("lru_crawler_starts", "memcached_lru_crawler_starts_total", C, "Times an LRU crawler was started."),
    ("crawler_reclaimed", "memcached_lru_crawler_reclaimed_total", C, "Total items freed by LRU Crawler."),
    ("crawler_items_checked", "memcached_lru_crawler_items_checked_total", C, "Total items examined by LRU Crawler."),
    ("moves_to_cold", "memcached_lru_crawler_moves_to_cold_total", C, "Total number of items moved from HOT/WARM to COLD LRU's."),
    ("moves_to_warm", "memcached_lru_crawler_moves_to_warm_total", C, "Total number of items moved from COLD to WARM LRU."),
    ("moves_within_lru", "memcached_lru_crawler_moves_within_lru_total", C, "Total number of items reshuffled within HOT or WARM LRU's."),
];

/// Extstore metrics from `stats` (only when extstore is on).
const EXTSTORE: &[(&str, &str, &str, &str)] = &[
    (
        "extstore_compact_lost",
        "memcached_extstore_compact_lost_total",
        C,
        "Total number of items lost because they were locked during extstore compaction.",
    ),
    (
        "extstore_compact_rescues",
        "memcached_extstore_compact_rescued_total",
        C,
        "Total number of items moved to a new page during extstore compaction,",
    ),
    (
        "extstore_compact_skipped",
        "memcached_extstore_compact_skipped_total",
        C,
        "Total number of items dropped due to inactivity during extstore compaction.",
    ),
    (
        "extstore_page_allocs",
        "memcached_extstore_pages_allocated_total",
        C,
        "Total number of times a page was allocated in extstore.",
    ),
    (
        "extstore_page_evictions",
        "memcached_extstore_pages_evicted_total",
        C,
        "Total number of times a page was evicted from extstore.",
    ),
    (
        "extstore_page_reclaims",
        "memcached_extstore_pages_reclaimed_total",
        C,
        "Total number of times an empty extstore page was freed.",
    ),
    (
        "extstore_pages_free",
        "memcached_extstore_pages_free",
        G,
        "Number of extstore pages not yet containing any items.",
    ),
    (
        "extstore_pages_used",
        "memcached_extstore_pages_used",
        G,
        "Number of extstore pages containing at least one item.",
    ),
    (
        "extstore_objects_evicted",
        "memcached_extstore_objects_evicted_total",
        C,
        "Total number of items evicted from extstore to free up space.",
    ),
    (
        "extstore_objects_read",
        "memcached_extstore_objects_read_total",
        C,
        "Total number of items read from extstore.",
    ),
    (
        "extstore_objects_written",
        "memcached_extstore_objects_written_total",
        C,
        "Total number of items written to extstore.",
    ),
    (
        "extstore_objects_used",
        "memcached_extstore_objects_used",
        G,
        "Number of items stored in extstore.",
    ),
    (
        "extstore_bytes_evicted",
        "memcached_extstore_bytes_evicted_total",
        C,
        "Total number of bytes evicted from extstore to free up space.",
    ),
    (
        "extstore_bytes_written",
        "memcached_extstore_bytes_written_total",
        C,
        "Total number of bytes written to extstore.",
    ),
    (
        "extstore_bytes_read",
        "memcached_extstore_bytes_read_total",
        C,
        "Total number of bytes read from extstore.",
    ),
    (
        "extstore_bytes_used",
        "memcached_extstore_bytes_used",
        C,
        "Current number of bytes used to store items in extstore.",
    ),
    (
        "extstore_bytes_fragmented",
        "memcached_extstore_bytes_fragmented",
        G,
        "Current number of bytes in extstore pages allocated but not used to store an object.",
    ),
    (
        "extstore_limit_maxbytes",
        "memcached_extstore_bytes_limit",
        G,
        "Number of bytes of external storage allocated for this server.",
    ),
    (
        "extstore_io_queue",
        "memcached_extstore_io_queue_depth",
        G,
        "Number of items in the I/O queue waiting to be processed.",
    ),
];

/// Per-slab metrics from `stats items`: (key, name, type, help).
const ITEMS: &[(&str, &str, &str, &str)] = &[
    ("number", "memcached_slab_current_items", G, "Number of items currently stored in this slab class."),
    ("age", "memcached_slab_items_age_seconds", G, "Number of seconds the oldest item has been in the slab class."),
    ("number_hot", "memcached_slab_hot_items", G, "Number of items presently stored in the HOT LRU."),
    ("number_warm", "memcached_slab_warm_items", G, "Number of items presently stored in the WARM LRU."),
    ("number_cold", "memcached_slab_cold_items", G, "Number of items presently stored in the COLD LRU."),
    ("number_temp", "memcached_slab_temporary_items", G, "Number of items presently stored in the TEMPORARY LRU."),
    ("age_hot", "memcached_slab_hot_age_seconds", G, "Age of the oldest item in HOT LRU."),
    ("age_warm", "memcached_slab_warm_age_seconds", G, "Age of the oldest item in HOT LRU."),
    ("crawler_reclaimed", "memcached_slab_items_crawler_reclaimed_total", C, "Number of items freed by the LRU Crawler."),
    ("evicted", "memcached_slab_items_evicted_total", C, "Total number of times an item had to be evicted from the LRU before it expired."),
    ("evicted_nonzero", "memcached_slab_items_evicted_nonzero_total", C, "Total number of times an item which had an explicit expire time set had to be evicted from the LRU before it expired."),
    ("evicted_time", "memcached_slab_items_evicted_time_seconds", C, "Seconds since the last access for the most recent item evicted from this class."),
    ("evicted_unfetched", "memcached_slab_items_evicted_unfetched_total", C, "Total nmber of items evicted and never fetched."),
    ("expired_unfetched", "memcached_slab_items_expired_unfetched_total", C, "Total number of valid items evicted from the LRU which were never touched after being set."),
    ("outofmemory", "memcached_slab_items_outofmemory_total", C, "Total number of items for this slab class that have triggered an out of memory error."),
    ("reclaimed", "memcached_slab_items_reclaimed_total", C, "Total number of items reclaimed."),
    ("tailrepairs", "memcached_slab_items_tailrepairs_total", C, "Total number of times the entries for a particular ID need repairing."),
    ("moves_to_cold", "memcached_slab_items_moves_to_cold", C, "Number of items moved from HOT or WARM into COLD."),
    ("moves_to_warm", "memcached_slab_items_moves_to_warm", C, "Number of items moves from COLD into WARM."),
    ("moves_within_lru", "memcached_slab_items_moves_within_lru", C, "Number of times active items were bumped within HOT or WARM."),
    ("mem_requested", "memcached_slab_mem_requested_bytes", C, "Number of bytes of memory actual items take up within a slab."),
];

/// Per-slab metrics from `stats slabs`.
const SLABS: &[(&str, &str, &str, &str)] = &[
    (
        "chunk_size",
        "memcached_slab_chunk_size_bytes",
        G,
        "Number of bytes allocated to each chunk within this slab class.",
    ),
    (
        "chunks_per_page",
        "memcached_slab_chunks_per_page",
        G,
        "Number of chunks within a single page for this slab class.",
    ),
    (
        "total_pages",
        "memcached_slab_current_pages",
        G,
        "Number of pages allocated to this slab class.",
    ),
    (
        "total_chunks",
        "memcached_slab_current_chunks",
        G,
        "Number of chunks allocated to this slab class.",
    ),
    (
        "used_chunks",
        "memcached_slab_chunks_used",
        G,
        "Number of chunks allocated to an item.",
    ),
    (
        "free_chunks",
        "memcached_slab_chunks_free",
        G,
        "Number of chunks not yet allocated items.",
    ),
    (
        "free_chunks_end",
        "memcached_slab_chunks_free_end",
        G,
        "Number of free chunks at the end of the last allocated page.",
    ),
];

/// Settings metrics, shown while the LRU crawler is on.
const LRU_SETTINGS: &[(&str, &str, &str, bool)] = &[
    (
        "lru_crawler",
        "memcached_lru_crawler_enabled",
        "Whether the LRU crawler is enabled.",
        true,
    ),
    (
        "lru_crawler_sleep",
        "memcached_lru_crawler_sleep",
        "Microseconds to sleep between LRU crawls.",
        false,
    ),
    (
        "lru_crawler_tocrawl",
        "memcached_lru_crawler_to_crawl",
        "Max items to crawl per slab per run.",
        false,
    ),
    (
        "lru_maintainer_thread",
        "memcached_lru_crawler_maintainer_thread",
        "Split LRU mode and background threads.",
        true,
    ),
    (
        "hot_lru_pct",
        "memcached_lru_crawler_hot_percent",
        "Percent of slab memory reserved for HOT LRU.",
        false,
    ),
    (
        "warm_lru_pct",
        "memcached_lru_crawler_warm_percent",
        "Percent of slab memory reserved for WARM LRU.",
        false,
    ),
    (
        "hot_max_factor",
        "memcached_lru_crawler_hot_max_factor",
        "Set idle age of HOT LRU to COLD age * this",
        false,
    ),
    (
        "warm_max_factor",
        "memcached_lru_crawler_warm_max_factor",
        "Set idle age of WARM LRU to COLD age * this",
        false,
    ),
];

/// The metrics of one scrape, in the exporter's text form.
pub fn render() -> String {
    let st = collect();
    let mut o = Out::default();
    let g = &st.global;
    let mut up = true;

    o.add(
        "memcached_version",
        G,
        "The version of this memcached server.",
        vec![("version", g.get("version").cloned().unwrap_or_default())],
        1.0,
    );
    for (cmd, hit, miss) in [
        ("get", "get_hits", "get_misses"),
        ("delete", "delete_hits", "delete_misses"),
        ("incr", "incr_hits", "incr_misses"),
        ("decr", "decr_hits", "decr_misses"),
        ("cas", "cas_hits", "cas_misses"),
        ("touch", "touch_hits", "touch_misses"),
    ] {
        for (status, key) in [("hit", hit), ("miss", miss)] {
            if let Some(v) = o.num(g, key) {
                o.command(None, cmd, status, v);
            }
        }
    }
    if let Some(v) = o.num(g, "cas_badval") {
        o.command(None, "cas", "badval", v);
    }
    if let Some(v) = o.num(g, "cmd_flush") {
        o.command(None, "flush", "hit", v);
    }
    // set = cmd_set less the CAS attempts, which memcached counts in cmd_set too.
    let set_parts = [
        o.num(g, "cmd_set"),
        o.num(g, "cas_misses"),
        o.num(g, "cas_hits"),
        o.num(g, "cas_badval"),
    ];
    match set_parts {
        [Some(s), Some(a), Some(b), Some(c)] => o.command(None, "set", "hit", s - (a + b + c)),
        _ => up = false,
    }
    if g.contains_key("extstore_limit_maxbytes") {
        for &(key, name, kind, help) in EXTSTORE {
            o.simple(g, key, name, kind, help);
        }
    }
    if let Some(v) = o.timeval(g, "rusage_user") {
        o.add(
            "memcached_process_user_cpu_seconds_total",
            C,
            "Accumulated user time for this process.",
            Vec::new(),
            v,
        );
    }
    if let Some(v) = o.timeval(g, "rusage_system") {
        o.add(
            "memcached_process_system_cpu_seconds_total",
            C,
            "Accumulated system time for this process.",
            Vec::new(),
            v,
        );
    }
    for &(key, name, kind, help) in GLOBAL {
        o.simple(g, key, name, kind, help);
    }

    for (&slab, m) in &st.items {
        let sl = slab.to_string();
        for &(key, name, kind, help) in ITEMS {
            if let Some(v) = o.num(m, key) {
                o.add(name, kind, help, vec![("slab", sl.clone())], v);
            }
        }
        for (key, lru) in [
            ("hits_to_hot", "hot"),
            ("hits_to_warm", "warm"),
            ("hits_to_cold", "cold"),
            ("hits_to_temp", "temporary"),
        ] {
            if let Some(v) = o.num(m, key) {
                let labels = vec![("lru", lru.to_string()), ("slab", sl.clone())];
                o.add(
                    "memcached_slab_lru_hits_total",
                    C,
                    "Number of get_hits to the LRU.",
                    labels,
                    v,
                );
            }
        }
    }
    for (&slab, m) in &st.slabs {
        let sl = slab.to_string();
        for cmd in ["get", "delete", "incr", "decr", "cas", "touch"] {
            if let Some(v) = o.num(m, &format!("{cmd}_hits")) {
                o.command(Some(&sl), cmd, "hit", v);
            }
        }
        if let Some(v) = o.num(m, "cas_badval") {
            o.command(Some(&sl), "cas", "badval", v);
        }
        // Per slab there are no CAS misses to take off.
        match [
            o.num(m, "cmd_set"),
            o.num(m, "cas_hits"),
            o.num(m, "cas_badval"),
        ] {
            [Some(s), Some(a), Some(b)] => o.command(Some(&sl), "set", "hit", s - (a + b)),
            _ => up = false,
        }
        for &(key, name, kind, help) in SLABS {
            if let Some(v) = o.num(m, key) {
                o.add(name, kind, help, vec![("slab", sl.clone())], v);
            }
        }
    }

    let s = &st.settings;
    if let Some(v) = o.num(s, "maxconns") {
        o.add(
            "memcached_max_connections",
            G,
            "Maximum number of clients allowed.",
            Vec::new(),
            v,
        );
    }
    if s.get("lru_crawler").map(String::as_str) == Some("yes") {
        for &(key, name, help, is_bool) in LRU_SETTINGS {
            let v = if is_bool {
                o.boolean(s, key)
            } else {
                o.num(s, key)
            };
            if let Some(v) = v {
                o.add(name, G, help, Vec::new(), v);
            }
        }
    }
    process_metrics(&mut o);
    let up = up && !o.parse_error;
    o.add(
        "memcached_up",
        G,
        "Could the memcached server be reached.",
        Vec::new(),
        if up { 1.0 } else { 0.0 },
    );
    format(o)
}

/// The process collector's metrics for this process (what the exporter reports through
/// `--memcached.pid-file`), from /proc. A file that cannot be read leaves its metrics out.
fn process_metrics(o: &mut Out) {
    const HZ: f64 = 100.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let f = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // After the command: state is field 0, so utime/stime/starttime/vsize/rss are
        // fields 11, 12, 19, 20, 21.
        if let (Some(ut), Some(stt)) = (f(11), f(12)) {
            o.add(
                "memcached_process_cpu_seconds_total",
                C,
                "Total user and system CPU time spent in seconds.",
                Vec::new(),
                (ut + stt) / HZ,
            );
        }
        if let Some(v) = f(20) {
            o.add(
                "memcached_process_virtual_memory_bytes",
                G,
                "Virtual memory size in bytes.",
                Vec::new(),
                v,
            );
        }
        if let Some(v) = f(21) {
            let page = crate::sys::page_size() as f64;
            o.add(
                "memcached_process_resident_memory_bytes",
                G,
                "Resident memory size in bytes.",
                Vec::new(),
                v * page,
            );
        }
        let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<f64>().ok())
        });
        if let (Some(start), Some(bt)) = (f(19), btime) {
            o.add(
                "memcached_process_start_time_seconds",
                G,
                "Start time of the process since unix epoch in seconds.",
                Vec::new(),
                bt + start / HZ,
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The directory handle itself is one of the entries while it is read.
        let n = dir.count().saturating_sub(1);
        o.add(
            "memcached_process_open_fds",
            G,
            "Number of open file descriptors.",
            Vec::new(),
            n as f64,
        );
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        let soft = |name: &str| -> Option<f64> {
            let line = limits.lines().find(|l| l.starts_with(name))?;
            let v = line[name.len()..].split_whitespace().next()?;
            if v == "unlimited" {
                Some(18446744073709551615.0)
            } else {
                v.parse().ok()
            }
        };
        if let Some(v) = soft("Max open files") {
            o.add(
                "memcached_process_max_fds",
                G,
                "Maximum number of open file descriptors.",
                Vec::new(),
                v,
            );
        }
        if let Some(v) = soft("Max address space") {
            o.add(
                "memcached_process_virtual_memory_max_bytes",
                G,
                "Maximum amount of virtual memory available in bytes.",
                Vec::new(),
                v,
            );
        }
    }
    if let Ok(netstat) = std::fs::read_to_string("/proc/self/net/netstat") {
        let mut lines = netstat.lines();
        while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
            if !names.starts_with("IpExt:") {
                continue;
            }
            let pairs: HashMap<&str, &str> = names
                .split_whitespace()
                .zip(values.split_whitespace())
                .collect();
            let get = |k: &str| {
                pairs
                    .get(k)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            o.add(
                "memcached_process_network_receive_bytes_total",
                C,
                "Number of bytes received by the process over the network.",
                Vec::new(),
                get("InOctets"),
            );
            o.add(
                "memcached_process_network_transmit_bytes_total",
                C,
                "Number of bytes sent by the process over the network.",
                Vec::new(),
                get("OutOctets"),
            );
        }
    }
}

/// The text exposition format as client_golang writes it: families by name, samples by
/// their label values (labels in name order), no timestamps.
fn format(o: Out) -> String {
    let mut out = String::with_capacity(16384);
    for (name, mut fam) in o.fams {
        if fam.samples.is_empty() {
            continue;
        }
        for (labels, _) in fam.samples.iter_mut() {
            labels.sort_by(|a, b| a.0.cmp(b.0));
        }
        fam.samples.sort_by(|a, b| {
            let va: Vec<&str> = a.0.iter().map(|l| l.1.as_str()).collect();
            let vb: Vec<&str> = b.0.iter().map(|l| l.1.as_str()).collect();
            va.cmp(&vb)
        });
        let _ = writeln!(out, "# HELP {} {}", name, escape_help(fam.help));
        let _ = writeln!(out, "# TYPE {} {}", name, fam.kind);
        for (labels, v) in &fam.samples {
            out.push_str(name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{}=\"{}\"", k, escape_label(val));
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&go_float(*v));
            out.push('\n');
        }
    }
    out
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A value as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it (what the Prometheus Go
/// client prints): the shortest digits that read back the same, in exponent form when the
/// exponent is below -4 or at least 6.
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    let e = format!("{v:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_go_prints_them() {
        for (v, s) in [
            (1.0, "1"),
            (0.0, "0"),
            (-1.0, "-1"),
            (5.0, "5"),
            (999999.0, "999999"),
            (1234567.0, "1.234567e+06"),
            (1000000.0, "1e+06"),
            (67108864.0, "6.7108864e+07"),
            (1721399999.0, "1.721399999e+09"),
            (0.5, "0.5"),
            (0.2, "0.2"),
            (2.0, "2"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (3.5, "3.5"),
            (18446744073709551615.0, "1.8446744073709552e+19"),
            (-123.25, "-123.25"),
            (1e100, "1e+100"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(go_float(v), s, "{v}");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            split_listen("127.0.0.1:9150"),
            Some(("127.0.0.1".into(), 9150))
        );
        assert_eq!(split_listen(":9150"), Some(("0.0.0.0".into(), 9150)));
        assert_eq!(split_listen("[::1]:9150"), Some(("::1".into(), 9150)));
        assert_eq!(split_listen("9150"), None);
        assert_eq!(split_listen("x:0"), None);
        assert_eq!(split_listen("x:70000"), None);
    }
}
