//! The texts printed by `-h`, `-V` and `-i`. The help text shows the values in effect when
//! `-h` is reached (options before it change the "defaults" shown), and, like memcached,
//! refuses to finish when a value it describes as fixed has been changed.

use std::sync::atomic::Ordering::Relaxed;

use super::cnum::fmt_fixed;
use super::{Settings, ITEM_SIZE_MAX_LOWER_LIMIT, ITEM_SIZE_MAX_UPPER_LIMIT};

pub const PACKAGE: &str = "memcached";
pub const VERSION: &str = "1.6.45";

/// `-V`.
pub fn version_text() -> String {
    format!("{PACKAGE} {VERSION}\n")
}

fn put(out: &mut Vec<u8>, s: impl AsRef<[u8]>) {
    out.extend_from_slice(s.as_ref());
}

fn enabled_disabled(flag: bool) -> &'static str {
    if flag {
        "enabled"
    } else {
        "disabled"
    }
}

/// A value the help text states in words has been changed by an earlier option: memcached
/// prints this and exits with status 1.
fn default_changed(out: &mut Vec<u8>, param: &str) {
    put(
        out,
        format!(
            "Default value of [{param}] has changed. Modify the help text and default value check.\n"
        ),
    );
}

/// `-h`: appends the help text to `out`. Returns false when it stopped early because a
/// fixed default was changed (the exit status is then 1 instead of 0).
pub fn write_usage(s: &Settings, out: &mut Vec<u8>) -> bool {
    put(out, version_text());
    put(
        out,
        format!(
            "-p, --port=<num>          TCP port to listen on (default: {})\n\
             -U, --udp-port=<num>      UDP port to listen on (default: {}, off)\n",
            s.port, s.udpport
        ),
    );
    put(
        out,
        "-s, --unix-socket=<file>  UNIX socket to listen on (disables network support)\n",
    );
    put(
        out,
        format!(
            "-a, --unix-mask=<mask>    access mask for UNIX socket, in octal (default: {:o})\n",
            s.access
        ),
    );
    put(
        out,
        "-A, --enable-shutdown     enable ascii \"shutdown\" command\n",
    );
    put(
        out,
        "-l, --listen=<addr>       interface to listen on (default: INADDR_ANY)\n\
         \x20                         can specify multiple comma separated listeners configured with different protocols\n\
         \x20                         format: proto[<protcol>]:tag[<name>]:ip:port\n\
         \x20                         i.e -l proto[binary]:tag[services]:127.0.0.1:11211,proto[ascii]:tag_tools_:127.0.0.1:11212\n\
         \x20                         if TLS/SSL is enabled, 'notls', 'btls', 'mtls' prefix can be used to\n\
         \x20                         specify for specific listeners no tls, basic tls, or peer-auth tls (i.e -l mtls:proto[ascii]:tag_tools_:127.0.0.1:11212\n",
    );
    put(
        out,
        format!(
            "-d, --daemon              run as a daemon\n\
             -r, --enable-coredumps    maximize core file limit\n\
             -u, --user=<user>         assume identity of <username> (only when run as root)\n\
             -m, --memory-limit=<num>  item memory in megabytes (default: {})\n\
             -M, --disable-evictions   return error on memory exhausted instead of evicting\n\
             -c, --conn-limit=<num>    max simultaneous connections (default: {})\n\
             -k, --lock-memory         lock down all paged memory\n\
             -v, --verbose             verbose (print errors/warnings while in event loop)\n\
             -vv                       very verbose (also print client commands/responses)\n\
             -vvv                      extremely verbose (internal state transitions)\n\
             -h, --help                print this help and exit\n\
             -i, --license             print memcached and libevent license\n\
             -V, --version             print version and exit\n\
             -P, --pidfile=<file>      save PID in <file>, only used with -d option\n\
             -f, --slab-growth-factor=<num> chunk size growth factor (default: {})\n\
             -n, --slab-min-size=<bytes> min space used for key+value+flags (default: {})\n",
            s.maxbytes.load(Relaxed) / (1 << 20),
            s.maxconns,
            fmt_fixed(s.factor, 2),
            s.chunk_size
        ),
    );
    if s.udpport != 0 {
        default_changed(out, "udp-port");
        return false;
    }
    put(
        out,
        "-L, --enable-largepages  try to use large memory pages (if available)\n",
    );
    put(
        out,
        "-D <char>     Use <char> as the delimiter between key prefixes and IDs.\n",
    );
    put(
        out,
        "              This is used for per-prefix stats reporting. The default is\n",
    );
    put(out, "              \"");
    out.push(s.prefix_delimiter);
    put(
        out,
        "\" (colon). If this option is specified, stats collection\n\
         \x20             is turned on automatically; if not, then it may be turned on\n\
         \x20             by sending the \"stats detail on\" command to the server.\n",
    );
    put(
        out,
        format!(
            "-t, --threads=<num>       number of threads to use (default: {})\n",
            s.num_threads
        ),
    );
    put(
        out,
        format!(
            "-R, --max-reqs-per-event  maximum number of requests per event, limits the\n\
             \x20                         requests processed per connection to prevent \n\
             \x20                         starvation (default: {})\n",
            s.reqs_per_event
        ),
    );
    put(out, "-C, --disable-cas         disable use of CAS\n");
    put(
        out,
        format!(
            "-b, --listen-backlog=<num> set the backlog queue limit (default: {})\n",
            s.backlog
        ),
    );
    put(
        out,
        format!(
            "-B, --protocol=<name>     protocol - one of ascii, binary, or auto (default: {})\n",
            s.binding_protocol.as_str()
        ),
    );
    put(
        out,
        format!(
            "-I, --max-item-size=<num> adjusts max item size\n\
             \x20                         (default: {}m, min: {}k, max: {}m)\n",
            s.item_size_max / (1 << 20),
            ITEM_SIZE_MAX_LOWER_LIMIT / (1 << 10),
            ITEM_SIZE_MAX_UPPER_LIMIT / (1 << 20)
        ),
    );
    put(
        out,
        "-S, --enable-sasl         turn on Sasl authentication\n",
    );
    put(out, "-F, --disable-flush-all   disable flush_all command\n");
    put(
        out,
        "-X, --disable-dumping     disable stats cachedump, stats detail, and lru_crawler metadump\n",
    );
    put(
        out,
        "-W  --disable-watch       disable watch commands (live logging)\n",
    );
    put(
        out,
        "-Y, --auth-file=<file>    (EXPERIMENTAL) enable ASCII protocol authentication. format:\n\
         \x20                         user:pass\\nuser2:pass2\\n\n",
    );
    put(
        out,
        "-e, --memory-file=<file>  (EXPERIMENTAL) mmap a file for item memory.\n\
         \x20                         use only in ram disks or persistent memory mounts!\n\
         \x20                         enables restartable cache (stop with SIGUSR1)\n",
    );
    put(out, "-Z, --enable-ssl          enable TLS/SSL\n");
    put(
        out,
        format!(
            "-o, --extended            comma separated list of extended options\n\
             \x20                         most options have a 'no_' prefix to disable\n\
             \x20  - maxconns_fast:       immediately close new connections after limit (default: {})\n\
             \x20  - hashpower:           an integer multiplier for how large the hash\n\
             \x20                         table should be. normally grows at runtime. (default starts at: {})\n\
             \x20                         set based on \"STAT hash_power_level\"\n\
             \x20  - tail_repair_time:    time in seconds for how long to wait before\n\
             \x20                         forcefully killing LRU tail item.\n\
             \x20                         disabled by default; very dangerous option.\n\
             \x20  - hash_algorithm:      the hash table algorithm\n\
             \x20                         default is murmur3 hash.\n\
             \x20                         options: jenkins, murmur3, xxh3\n\
             \x20  - no_lru_crawler:      disable LRU Crawler background thread.\n\
             \x20  - lru_crawler_sleep:   microseconds to sleep between items\n\
             \x20                         default is {}.\n\
             \x20  - lru_crawler_tocrawl: max items to crawl per slab per run\n\
             \x20                         default is {} (unlimited)\n",
            enabled_disabled(s.maxconns_fast),
            s.hashpower_init,
            s.lru_crawler_sleep.load(Relaxed),
            s.lru_crawler_tocrawl.load(Relaxed)
        ),
    );
    put(
        out,
        format!(
            "   - read_buf_mem_limit:  limit in megabytes for connection read/response buffers.\n\
             \x20                         do not adjust unless you have high (20k+) conn. limits.\n\
             \x20                         0 means unlimited (default: {})\n",
            s.read_buf_mem_limit
        ),
    );
    if s.read_buf_mem_limit != 0 {
        default_changed(out, "read_buf_mem_limit");
        return false;
    }
    put(
        out,
        format!(
            "   - no_lru_maintainer:   disable new LRU system + background thread.\n\
             \x20  - hot_lru_pct:         pct of slab memory to reserve for hot lru.\n\
             \x20                         (requires lru_maintainer, default pct: {})\n\
             \x20  - warm_lru_pct:        pct of slab memory to reserve for warm lru.\n\
             \x20                         (requires lru_maintainer, default pct: {})\n\
             \x20  - hot_max_factor:      items idle > cold lru age * drop from hot lru. (default: {})\n\
             \x20  - warm_max_factor:     items idle > cold lru age * this drop from warm. (default: {})\n\
             \x20  - temporary_ttl:       TTL's below get separate LRU, can't be evicted.\n\
             \x20                         (requires lru_maintainer, default: {})\n\
             \x20  - idle_timeout:        timeout for idle connections. (default: {}, no timeout)\n",
            s.hot_lru_pct.load(Relaxed),
            s.warm_lru_pct.load(Relaxed),
            fmt_fixed(s.hot_max_factor.load(), 2),
            fmt_fixed(s.warm_max_factor.load(), 2),
            // The help text prints this unsigned value with %d.
            s.temporary_ttl.load(Relaxed) as i32,
            s.idle_timeout
        ),
    );
    put(
        out,
        format!(
            "   - slab_chunk_max:      (EXPERIMENTAL) maximum slab size in kilobytes. use extreme care. (default: {})\n\
             \x20  - watcher_logbuf_size: size in kilobytes of per-watcher write buffer. (default: {})\n\
             \x20  - worker_logbuf_size:  size in kilobytes of per-worker-thread buffer\n\
             \x20                         read by background thread, then written to watchers. (default: {})\n\
             \x20  - track_sizes:         enable dynamic reports for 'stats sizes' command.\n\
             \x20                         note that counts for each size are approximate.\n\
             \x20  - no_hashexpand:       disables hash table expansion (dangerous)\n\
             \x20  - modern:              enables options which will be default in future.\n\
             \x20                         currently: nothing\n\
             \x20  - no_modern:           uses defaults of previous major version (1.4.x)\n",
            s.slab_chunk_size_max / (1 << 10),
            s.logger_watcher_buf_size / (1 << 10),
            s.logger_buf_size / (1 << 10)
        ),
    );
    for (name, unchanged) in [
        ("tail_repair_time", s.tail_repair_time == 0),
        (
            "lru_crawler_tocrawl",
            s.lru_crawler_tocrawl.load(Relaxed) == 0,
        ),
        ("idle_timeout", s.idle_timeout == 0),
    ] {
        if !unchanged {
            default_changed(out, name);
            return false;
        }
    }
    put(
        out,
        "   - drop_privileges:     enable dropping extra syscall privileges\n\
         \x20  - no_drop_privileges:  disable drop_privileges in case it causes issues with\n\
         \x20                         some customisation.\n\
         \x20                         (default is no_drop_privileges)\n",
    );
    if s.drop_privileges {
        default_changed(out, "drop_privileges");
        return false;
    }
    if cfg!(feature = "debug-commands") {
        put(
            out,
            format!(
                "   - relaxed_privileges:  running tests requires extra privileges. (default: {})\n",
                enabled_disabled(s.relaxed_privileges)
            ),
        );
    }
    put(
        out,
        "   - sock_cookie_id:      attributes an ID to a socket for ip filtering/firewalls \n",
    );
    // Not C's: the opt-in Prometheus endpoint (the only line C's -h does not have).
    put(
        out,
        "   - metrics_listen:      serve Prometheus metrics at http://ADDR:PORT/metrics (default: off)\n",
    );
    if !ext_help(out, s) {
        return false;
    }
    if !ssl_help(out, s) {
        return false;
    }
    put(
        out,
        "-N, --napi_ids            number of napi ids. see doc/napi_ids.txt for more details\n",
    );
    true
}

/// The extstore sub-options, with the values parsed so far (C prints `settings`), then the
/// check that `ext_item_age` still has its default.
fn ext_help(out: &mut Vec<u8>, s: &Settings) -> bool {
    let e = &s.ext;
    put(
        out,
        format!(
            "\n   - External storage (ext_*) related options (see: https://memcached.org/extstore)\n\
             \x20  - ext_path:            file to write to for external storage.\n\
             \x20                         ie: ext_path=/mnt/d1/extstore:1G\n\
             \x20  - ext_page_size:       size in megabytes of storage pages. (default: {})\n\
             \x20  - ext_wbuf_size:       size in megabytes of page write buffers. (default: {})\n\
             \x20  - ext_threads:         number of IO threads to run. (default: {})\n\
             \x20  - ext_item_size:       store items larger than this (bytes, default {})\n\
             \x20  - ext_item_age:        store items idle at least this long (seconds, default: no age limit)\n\
             \x20  - ext_low_ttl:         consider TTLs lower than this specially (default: {})\n\
             \x20  - ext_drop_unread:     don't re-write unread values during compaction (default: {})\n\
             \x20  - ext_recache_rate:    recache an item every N accesses (default: {})\n\
             \x20  - ext_compact_under:   compact when fewer than this many free pages\n\
             \x20                         (default: 1 percent of the assigned storage)\n\
             \x20  - ext_drop_under:      drop COLD items when fewer than this many free pages\n\
             \x20                         (default: 1/4th of the assigned storage)\n\
             \x20  - ext_max_frag:        only defrag pages if they are less full than this pct-wise (default: {})\n\
             \x20  - ext_max_sleep:       max sleep time of background threads in us (default: {})\n\
             \x20  - slab_automove_freeratio: ratio of memory to hold free as buffer.\n\
             \x20                         (see doc/storage.txt for more info, default: {})\n",
            // C's settings.ext_page_size is never set from -o (only the engine's copy is).
            (64u32 << 20) / (1 << 20),
            e.wbuf_size / (1 << 20),
            // Nor is settings.ext_io_threadcount.
            1,
            e.item_size,
            e.low_ttl,
            enabled_disabled(e.drop_unread),
            e.recache_rate,
            fmt_fixed(e.max_frag, 2),
            e.max_sleep,
            fmt_fixed(e.slab_automove_freeratio, 3),
        ),
    );
    if e.item_age != u32::MAX {
        default_changed(out, "ext_item_age");
        return false;
    }
    true
}

/// The `ssl_*` sub-options (C's ssl_help), then its checks that the defaults it states hold.
fn ssl_help(out: &mut Vec<u8>, s: &Settings) -> bool {
    put(
        out,
        format!(
            "   - ssl_chain_cert:      certificate chain file in PEM format\n\
             \x20  - ssl_key:             private key, if not part of the -ssl_chain_cert\n\
             \x20  - ssl_keyformat:       private key format (PEM, DER or ENGINE) (default: PEM)\n\
             \x20  - ssl_verify_mode:     peer certificate verification mode, default is 0(None).\n\
             \x20                         valid values are 0(None), 1(Request), 2(Require)\n\
             \x20                         or 3(Once)\n\
             \x20  - ssl_ciphers:         specify cipher list to be used\n\
             \x20  - ssl_ca_cert:         PEM format file of acceptable client CA's\n\
             \x20  - ssl_wbuf_size:       size in kilobytes of per-connection SSL output buffer\n\
             \x20                         (default: {})\n\
             \x20  - ssl_session_cache:   enable server-side SSL session cache, to support session\n\
             \x20                         resumption\n\
             \x20  - ssl_kernel_tls:      enable kernel TLS offload\n\
             \x20  - ssl_min_version:     minimum protocol version to accept (default: {})\n\
             \x20                         valid values are 0(tlsv1.0), 1(tlsv1.1), 2(tlsv1.2), or 3(tlsv1.3).\n",
            s.ssl_wbuf_size / (1 << 10),
            super::ssl_proto_text(s.ssl_min_version)
        ),
    );
    for (name, unchanged) in [
        ("ssl_keyformat", s.ssl_keyformat == 1),
        ("ssl_verify_mode", s.ssl_verify_mode == 0),
        ("ssl_min_version", s.ssl_min_version == 0x303),
    ] {
        if !unchanged {
            default_changed(out, name);
            return false;
        }
    }
    true
}

/// `-i`: the version line, a blank line, then memcached's BSD license.
pub fn license_text() -> String {
    let mut t = format!("{PACKAGE} {VERSION}\n\n");
    t.push_str(
        "Copyright (c) 2003, Danga Interactive, Inc. <http://www.danga.com/>\n\
         All rights reserved.\n\
         \n\
         Redistribution and use in source and binary forms, with or without\n\
         modification, are permitted provided that the following conditions are\n\
         met:\n\
         \n\
         \x20   * Redistributions of source code must retain the above copyright\n\
         notice, this list of conditions and the following disclaimer.\n\
         \n\
         \x20   * Redistributions in binary form must reproduce the above\n\
         copyright notice, this list of conditions and the following disclaimer\n\
         in the documentation and/or other materials provided with the\n\
         distribution.\n\
         \n\
         \x20   * Neither the name of the Danga Interactive nor the names of its\n\
         contributors may be used to endorse or promote products derived from\n\
         this software without specific prior written permission.\n\
         \n\
         THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS\n\
         \"AS IS\" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT\n\
         LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR\n\
         A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT\n\
         OWNER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,\n\
         SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT\n\
         LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,\n\
         DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY\n\
         THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT\n\
         (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE\n\
         OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.\n",
    );
    t
}
