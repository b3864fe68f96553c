//! Settings: command-line parsing (`-h`, every flag of memcached 1.6.45), validation, and the
//! `stats settings` report. Read-only after start-up except the fields held in atomics,
//! which are the ones memcached's commands change at run time (`verbosity`, `flush_all`,
//! `stats detail`, `cache_memlimit`, `slabs automove`, `lru ...`, `lru_crawler ...`,
//! `stats sizes_enable`).
//!
//! `parse_args` reproduces C memcached's `main()` up to and including its last check that
//! depends only on the command line (the port range check). What C does next (raising
//! RLIMIT_CORE for `-r`, RLIMIT_NOFILE for `-c`, refusing to run as root without `-u`,
//! daemonizing, `mlockall` for `-k`, loading the `-Y` auth file and refusing it with UDP) is
//! process start-up and belongs to `main`.
//!
//! Submodules: `getopt` (glibc-compatible option scanner), `cnum` (public: C number parsing and
//! printf-style float formatting), `usage` (`-h`, `-V`, `-i` texts).

pub mod cnum;
pub mod extstore;
mod getopt;
mod usage;

use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64};
use std::sync::OnceLock;

use cnum::{atof, atoi, fmt_fixed, safe_strtol, safe_strtoul, skip_space, strtol};
use getopt::{Getopt, HasArg, Item, LongOpt};

pub use usage::VERSION;

/// sysexits.h EX_USAGE: command line usage error.
pub const EX_USAGE: i32 = 64;
/// sysexits.h EX_OSERR.
pub const EX_OSERR: i32 = 71;
/// sysexits.h EX_NOUSER.
pub const EX_NOUSER: i32 = 67;

pub const ITEM_SIZE_MAX_LOWER_LIMIT: i32 = 1024;
pub const ITEM_SIZE_MAX_UPPER_LIMIT: i32 = 1024 * 1024 * 1024;
/// Slab chunk sizes are aligned to this many bytes.
pub const CHUNK_ALIGN_BYTES: u32 = 8;
/// Slab class ids are 1..MAX_NUMBER_OF_SLAB_CLASSES-1 (class 0 is reserved).
pub const MAX_NUMBER_OF_SLAB_CLASSES: usize = 63 + 1;
/// Largest verbosity the `verbosity` command accepts.
pub const MAX_VERBOSITY_LEVEL: i32 = 2;
/// Upper bound for `-o hashpower`.
pub const HASHPOWER_MAX: i32 = 32;
/// `sizeof(client_flags_t)`: this port keeps 32-bit client flags, like a default C build.
pub const CLIENT_FLAGS_SIZE: usize = 4;

/// The protocol(s) a listener speaks (`-B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ascii,
    Binary,
    Negotiating,
}

impl Protocol {
    /// The name `stats settings` and `-h` use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ascii => "ascii",
            Protocol::Binary => "binary",
            Protocol::Negotiating => "auto-negotiate",
        }
    }
}

pub use crate::hash::HashAlgorithm;

/// An f64 that can be changed at run time (stored as its bit pattern). Loads and stores are
/// relaxed, like the plain C double they replace.
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub fn new(v: f64) -> Self {
        AtomicF64(AtomicU64::new(v.to_bits()))
    }
    pub fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
    pub fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed)
    }
}

impl std::fmt::Debug for AtomicF64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.load().fmt(f)
    }
}

/// An option by which C memcached 1.6.45 accepts something this port cannot do yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionName {
    /// A short option letter (its long spelling maps to the same letter).
    Short(u8),
    /// A `-o` sub-option name.
    Sub(&'static str),
}

/// One entry of [`NOT_YET_BUILT`].
#[derive(Debug, Clone, Copy)]
pub struct NotYetBuilt {
    pub option: OptionName,
    pub message: &'static str,
}

/// Options that C memcached (as built for reference: extstore, seccomp, TLS and SASL on, no
/// proxy) accepts but whose subsystem is not part of this port yet. Each is refused with its
/// message on stderr and exit status 1 when the parser reaches it. Remove an entry once the
/// subsystem exists: the parser already stores the option like C does.
///
/// `ext_path` waits for values on flash; the other extstore sub-options are read and shown
/// by `stats settings` as C's build does without an `ext_path`.
///
/// Options of subsystems a C build can lack are refused as such a build refuses them, without
/// this list: `-o proxy_*` ("Illegal suboption", exit 1).
pub const NOT_YET_BUILT: &[NotYetBuilt] = &[];

/// Everything memcached's `struct settings` holds, plus the process options C keeps in
/// `main()`'s locals. Field names follow C's. Fields C changes while running are atomics.
#[derive(Debug)]
pub struct Settings {
    /// Item memory limit in bytes (`-m`; `cache_memlimit` changes it).
    pub maxbytes: AtomicU64,
    pub maxconns: i32,
    /// TCP port (`-p`; takes the `-U` value when only `-U` was given).
    pub port: i32,
    pub udpport: i32,
    /// `-l` listeners, comma separated as given.
    pub inter: Option<String>,
    pub verbose: AtomicI32,
    /// `flush_all` cutoff (rel_time_t); 0 = none.
    pub oldest_live: AtomicU32,
    /// `-M` turns it off.
    pub evict_to_free: bool,
    pub socketpath: Option<String>,
    /// `-Y` ASCII auth token file.
    pub auth_file: Option<String>,
    /// `-a` unix socket mode, from octal.
    pub access: u32,
    /// `-f` slab growth factor.
    pub factor: f64,
    /// `-n` minimum item space.
    pub chunk_size: i32,
    pub num_threads: i32,
    /// Worker threads per UDP socket: 1 with several `-l` listeners, else `num_threads`.
    pub num_threads_per_udp: i32,
    /// `-D` byte between key prefix and id for per-prefix stats.
    pub prefix_delimiter: u8,
    /// Per-prefix stats collection (`-D`; `stats detail on|off`).
    pub detail_enabled: AtomicBool,
    pub reqs_per_event: i32,
    pub use_cas: bool,
    pub binding_protocol: Protocol,
    pub backlog: i32,
    pub item_size_max: i32,
    pub slab_chunk_size_max: i32,
    pub slab_page_size: i32,
    /// `-S`: binary clients authenticate through SASL.
    pub sasl: bool,
    pub maxconns_fast: bool,
    /// The LRU crawler thread is running. Starts as `start_lru_crawler` (what C reports once
    /// the thread is up); `lru_crawler enable|disable` changes it.
    pub lru_crawler: AtomicBool,
    /// The LRU maintainer thread is running (starts as `start_lru_maintainer`).
    pub lru_maintainer_thread: AtomicBool,
    pub lru_segmented: AtomicBool,
    pub slab_reassign: bool,
    pub slab_automove: AtomicI32,
    /// Bumped whenever an automove tunable changes.
    pub slab_automove_version: AtomicU32,
    pub slab_automove_ratio: AtomicF64,
    pub slab_automove_window: AtomicU32,
    pub hashpower_init: i32,
    pub shutdown_command: bool,
    pub tail_repair_time: i32,
    pub flush_enabled: bool,
    pub dump_enabled: bool,
    pub hash_algorithm: HashAlgorithm,
    pub lru_crawler_sleep: AtomicI32,
    pub lru_crawler_tocrawl: AtomicU32,
    pub hot_lru_pct: AtomicI32,
    pub warm_lru_pct: AtomicI32,
    pub hot_max_factor: AtomicF64,
    pub warm_max_factor: AtomicF64,
    pub crawls_persleep: i32,
    pub temp_lru: AtomicBool,
    pub temporary_ttl: AtomicU32,
    pub idle_timeout: i32,
    /// Bytes.
    pub logger_watcher_buf_size: u32,
    /// Bytes.
    pub logger_buf_size: u32,
    /// Bytes; 0 = unlimited.
    pub read_buf_mem_limit: u32,
    pub drop_privileges: bool,
    /// `-Z`: listeners are TLS unless marked `notls:`.
    pub ssl_enabled: bool,
    pub ssl_chain_cert: Option<String>,
    pub ssl_key: Option<String>,
    /// OpenSSL's SSL_VERIFY_* bits (`ssl_verify_mode` 0-3 maps to 0, 1, 3, 7).
    pub ssl_verify_mode: i32,
    /// OpenSSL's SSL_FILETYPE_* (PEM = 1).
    pub ssl_keyformat: i32,
    pub ssl_ciphers: Option<String>,
    pub ssl_ca_cert: Option<String>,
    /// Bytes of a worker's TLS write buffer.
    pub ssl_wbuf_size: u32,
    pub ssl_session_cache: bool,
    pub ssl_kernel_tls: bool,
    /// OpenSSL's protocol version number (TLS1_2_VERSION = 0x303).
    pub ssl_min_version: i32,
    pub watch_enabled: bool,
    /// `-o relaxed_privileges` (only accepted by the debug-commands build).
    pub relaxed_privileges: bool,
    pub num_napi_ids: i32,
    /// `-e` restartable cache file.
    pub memory_file: Option<String>,
    /// `-o metrics_listen=ADDR:PORT`: the Prometheus endpoint (off when None).
    pub metrics_listen: Option<String>,
    /// Extstore's options as parsed (paths, page and buffer sizes, threads).
    pub ext: extstore::ExtSettings,
    /// Extstore's run-time tunables (C's `settings.ext_*`).
    pub ext_rt: extstore::ExtTunables,
    /// An `ext_path` was given: values may live on flash.
    pub ext_enabled: bool,
    /// `-o sock_cookie_id` (SO_MARK-style socket id; 0 = unset).
    pub sock_cookie_id: u32,
    /// `stats sizes` histogram enabled (`-o track_sizes`; `stats sizes_enable|disable`).
    pub track_sizes: AtomicBool,
    /// `item_size_max` at the moment `-o track_sizes` was seen: C sizes the histogram then
    /// (`item_size_max / 32 + 1` buckets).
    pub track_sizes_item_size_max: i32,

    // ---- process options (C keeps these as locals of main) ----
    /// `-d`.
    pub do_daemonize: bool,
    /// `-r`: raise the core file limit.
    pub maxcore: bool,
    /// `-u`.
    pub username: Option<String>,
    /// `-P`.
    pub pid_file: Option<String>,
    /// `-k`: mlockall.
    pub lock_memory: bool,
    /// Preallocate all slab memory (`-L`, or a `-e` memory file).
    pub preallocate: bool,
    /// Start the LRU maintainer thread.
    pub start_lru_maintainer: bool,
    /// Start the LRU crawler thread.
    pub start_lru_crawler: bool,
    /// Start the hash table expansion thread (`-o no_hashexpand` clears it).
    pub start_assoc_maint: bool,
    /// Explicit slab class sizes from `-o slab_sizes`, ascending, without terminator.
    pub slab_sizes: Option<Vec<u32>>,
    /// The slab configuration as given (the `-f` text, the `slab_sizes` text, or "1.25"):
    /// restart metadata compares it verbatim.
    pub slab_config: String,
    /// `-B` was given (explicitly chosen protocol).
    pub protocol_specified: bool,
}

impl Default for Settings {
    /// C's `settings_init()` plus the defaults of main()'s locals.
    fn default() -> Self {
        Settings {
            maxbytes: AtomicU64::new(64 * 1024 * 1024),
            maxconns: 1024,
            port: 11211,
            udpport: 0,
            inter: None,
            verbose: AtomicI32::new(0),
            oldest_live: AtomicU32::new(0),
            evict_to_free: true,
            socketpath: None,
            auth_file: None,
            access: 0o700,
            factor: 1.25,
            chunk_size: 48,
            num_threads: 4,
            num_threads_per_udp: 0,
            prefix_delimiter: b':',
            detail_enabled: AtomicBool::new(false),
            reqs_per_event: 20,
            use_cas: true,
            binding_protocol: Protocol::Negotiating,
            backlog: 1024,
            item_size_max: 1024 * 1024,
            slab_chunk_size_max: 1024 * 1024 / 2,
            slab_page_size: 1024 * 1024,
            sasl: false,
            maxconns_fast: true,
            lru_crawler: AtomicBool::new(false),
            lru_maintainer_thread: AtomicBool::new(false),
            lru_segmented: AtomicBool::new(true),
            slab_reassign: true,
            slab_automove: AtomicI32::new(1),
            slab_automove_version: AtomicU32::new(0),
            slab_automove_ratio: AtomicF64::new(0.8),
            slab_automove_window: AtomicU32::new(10),
            hashpower_init: 0,
            shutdown_command: false,
            tail_repair_time: 0,
            flush_enabled: true,
            dump_enabled: true,
            hash_algorithm: HashAlgorithm::Murmur3,
            lru_crawler_sleep: AtomicI32::new(100),
            lru_crawler_tocrawl: AtomicU32::new(0),
            hot_lru_pct: AtomicI32::new(20),
            warm_lru_pct: AtomicI32::new(40),
            hot_max_factor: AtomicF64::new(0.2),
            warm_max_factor: AtomicF64::new(2.0),
            crawls_persleep: 1000,
            temp_lru: AtomicBool::new(false),
            temporary_ttl: AtomicU32::new(61),
            idle_timeout: 0,
            logger_watcher_buf_size: 1024 * 256,
            logger_buf_size: 1024 * 64,
            read_buf_mem_limit: 0,
            drop_privileges: false,
            ssl_enabled: false,
            ssl_chain_cert: None,
            ssl_key: None,
            ssl_verify_mode: 0,
            ssl_keyformat: 1,
            ssl_ciphers: None,
            ssl_ca_cert: None,
            ssl_wbuf_size: 16 * 1024,
            ssl_session_cache: false,
            ssl_kernel_tls: false,
            ssl_min_version: TLS1_2_VERSION,
            watch_enabled: true,
            relaxed_privileges: false,
            num_napi_ids: 0,
            memory_file: None,
            metrics_listen: None,
            ext: extstore::ExtSettings::default(),
            ext_rt: extstore::ExtTunables::default(),
            ext_enabled: false,
            sock_cookie_id: 0,
            track_sizes: AtomicBool::new(false),
            track_sizes_item_size_max: 0,
            do_daemonize: false,
            maxcore: false,
            username: None,
            pid_file: None,
            lock_memory: false,
            preallocate: false,
            start_lru_maintainer: true,
            start_lru_crawler: true,
            start_assoc_maint: true,
            slab_sizes: None,
            slab_config: String::from("1.25"),
            protocol_specified: false,
        }
    }
}

static GLOBAL: OnceLock<Settings> = OnceLock::new();

/// Installs the settings for the life of the process. Called once by main.
pub fn init_global(s: Settings) {
    VERBOSE.store(s.verbose.load(Relaxed), Relaxed);
    let _ = GLOBAL.set(s);
}

/// The verbosity as `verbose()` reads it: a plain static, since the hot path asks on every
/// state change (the settings' own field is what `stats settings` shows; both change
/// together).
static VERBOSE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The process-wide settings. Panics only if called before `init_global` (a programming error).
pub fn get() -> &'static Settings {
    GLOBAL.get().expect("settings used before init")
}

/// The current verbosity (`-v` count, changed at run time by `verbosity`).
#[inline]
pub fn verbose() -> i32 {
    VERBOSE.load(Relaxed)
}

/// Sets the verbosity (the `verbosity` command).
pub fn set_verbose(v: i32) {
    get().verbose.store(v, Relaxed);
    VERBOSE.store(v, Relaxed);
}

/// Parses argv (argv[0] included). On `-h`, `-V`, `-i` or a bad value it prints what C prints
/// and returns Err(exit status). Honours `POSIXLY_CORRECT` like glibc getopt.
pub fn parse_args(argv: &[String]) -> Result<Settings, i32> {
    let posixly_correct = std::env::var_os("POSIXLY_CORRECT").is_some();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let result = parse_with(argv, posixly_correct, &mut out, &mut err);
    let _ = out.flush();
    let _ = err.flush();
    result
}

/// Appends `STAT name value\r\n` lines for `stats settings`, in C's order (without END).
pub fn write_stats_settings(out: &mut dyn crate::stats::StatSink) {
    get().write_stats(out);
}

/// Where C's printf (stdout) and fprintf(stderr) output goes. Write errors are ignored, as
/// C ignores printf's result.
struct Console<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Console<'_> {
    fn out(&mut self, b: impl AsRef<[u8]>) {
        let _ = self.out.write_all(b.as_ref());
    }
    fn err(&mut self, b: impl AsRef<[u8]>) {
        let _ = self.err.write_all(b.as_ref());
    }
    /// fprintf(stderr, "...\n") and return `code`.
    fn fail(&mut self, msg: impl AsRef<str>, code: i32) -> i32 {
        self.err(msg.as_ref());
        self.err("\n");
        code
    }
}

const SHORTOPTS: &[u8] = b"a:AZp:s:U:m:Mc:khiVrvdl:u:P:f:n:t:D:LR:Cb:B:I:SFXWY:e:o:N:";

const fn long(name: &'static str, has_arg: HasArg, val: u8) -> LongOpt {
    LongOpt { name, has_arg, val }
}

/// In C's order: ambiguity diagnostics list candidates in this order.
const LONGOPTS: &[LongOpt] = &[
    long("unix-mask", HasArg::Required, b'a'),
    long("enable-shutdown", HasArg::No, b'A'),
    long("enable-ssl", HasArg::No, b'Z'),
    long("port", HasArg::Required, b'p'),
    long("unix-socket", HasArg::Required, b's'),
    long("udp-port", HasArg::Required, b'U'),
    long("memory-limit", HasArg::Required, b'm'),
    long("disable-evictions", HasArg::No, b'M'),
    long("conn-limit", HasArg::Required, b'c'),
    long("lock-memory", HasArg::No, b'k'),
    long("help", HasArg::No, b'h'),
    long("license", HasArg::No, b'i'),
    long("version", HasArg::No, b'V'),
    long("enable-coredumps", HasArg::No, b'r'),
    long("verbose", HasArg::Optional, b'v'),
    long("daemon", HasArg::No, b'd'),
    long("listen", HasArg::Required, b'l'),
    long("user", HasArg::Required, b'u'),
    long("pidfile", HasArg::Required, b'P'),
    long("slab-growth-factor", HasArg::Required, b'f'),
    long("slab-min-size", HasArg::Required, b'n'),
    long("threads", HasArg::Required, b't'),
    long("enable-largepages", HasArg::No, b'L'),
    long("max-reqs-per-event", HasArg::Required, b'R'),
    long("disable-cas", HasArg::No, b'C'),
    long("listen-backlog", HasArg::Required, b'b'),
    long("protocol", HasArg::Required, b'B'),
    long("max-item-size", HasArg::Required, b'I'),
    long("enable-sasl", HasArg::No, b'S'),
    long("disable-flush-all", HasArg::No, b'F'),
    long("disable-dumping", HasArg::No, b'X'),
    long("disable-watch", HasArg::No, b'W'),
    long("auth-file", HasArg::Required, b'Y'),
    long("memory-file", HasArg::Required, b'e'),
    long("extended", HasArg::Required, b'o'),
    long("napi-ids", HasArg::Required, b'N'),
];

/// `-o` sub-options this build knows. Anything else is an "Illegal suboption".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    MaxconnsFast,
    Hashpower,
    NoHashexpand,
    SlabReassign,
    SlabAutomove,
    SlabAutomoveRatio,
    SlabAutomoveWindow,
    TailRepairTime,
    HashAlgorithm,
    LruCrawler,
    LruCrawlerSleep,
    LruCrawlerTocrawl,
    LruMaintainer,
    HotLruPct,
    WarmLruPct,
    HotMaxFactor,
    WarmMaxFactor,
    TemporaryTtl,
    IdleTimeout,
    WatcherLogbufSize,
    WorkerLogbufSize,
    SlabSizes,
    SlabChunkMax,
    TrackSizes,
    NoInlineAsciiResp,
    Modern,
    NoModern,
    NoChunkedItems,
    NoSlabReassign,
    NoSlabAutomove,
    NoMaxconnsFast,
    InlineAsciiResp,
    NoLruCrawler,
    NoLruMaintainer,
    NoDropPrivileges,
    DropPrivileges,
    RespObjMemLimit,
    ReadBufMemLimit,
    RelaxedPrivileges,
    SockCookieId,
    SslChainCert,
    SslKey,
    SslVerifyMode,
    SslKeyformat,
    SslCiphers,
    SslCaCert,
    SslWbufSize,
    SslSessionCache,
    SslKernelTls,
    SslMinVersion,
    /// An extstore sub-option (C's storage_read_config), read by `ExtSettings::read`.
    Extstore,
    /// Not C's: the Prometheus endpoint.
    MetricsListen,
}

const SUBOPTS: &[(&str, Sub)] = &[
    ("maxconns_fast", Sub::MaxconnsFast),
    ("hashpower", Sub::Hashpower),
    ("no_hashexpand", Sub::NoHashexpand),
    ("slab_reassign", Sub::SlabReassign),
    ("slab_automove", Sub::SlabAutomove),
    ("slab_automove_ratio", Sub::SlabAutomoveRatio),
    ("slab_automove_window", Sub::SlabAutomoveWindow),
    ("tail_repair_time", Sub::TailRepairTime),
    ("hash_algorithm", Sub::HashAlgorithm),
    ("lru_crawler", Sub::LruCrawler),
    ("lru_crawler_sleep", Sub::LruCrawlerSleep),
    ("lru_crawler_tocrawl", Sub::LruCrawlerTocrawl),
    ("lru_maintainer", Sub::LruMaintainer),
    ("hot_lru_pct", Sub::HotLruPct),
    ("warm_lru_pct", Sub::WarmLruPct),
    ("hot_max_factor", Sub::HotMaxFactor),
    ("warm_max_factor", Sub::WarmMaxFactor),
    ("temporary_ttl", Sub::TemporaryTtl),
    ("idle_timeout", Sub::IdleTimeout),
    ("watcher_logbuf_size", Sub::WatcherLogbufSize),
    ("worker_logbuf_size", Sub::WorkerLogbufSize),
    ("slab_sizes", Sub::SlabSizes),
    ("slab_chunk_max", Sub::SlabChunkMax),
    ("track_sizes", Sub::TrackSizes),
    ("no_inline_ascii_resp", Sub::NoInlineAsciiResp),
    ("modern", Sub::Modern),
    ("no_modern", Sub::NoModern),
    ("no_chunked_items", Sub::NoChunkedItems),
    ("no_slab_reassign", Sub::NoSlabReassign),
    ("no_slab_automove", Sub::NoSlabAutomove),
    ("no_maxconns_fast", Sub::NoMaxconnsFast),
    ("inline_ascii_resp", Sub::InlineAsciiResp),
    ("no_lru_crawler", Sub::NoLruCrawler),
    ("no_lru_maintainer", Sub::NoLruMaintainer),
    ("no_drop_privileges", Sub::NoDropPrivileges),
    ("drop_privileges", Sub::DropPrivileges),
    ("resp_obj_mem_limit", Sub::RespObjMemLimit),
    ("read_buf_mem_limit", Sub::ReadBufMemLimit),
    ("relaxed_privileges", Sub::RelaxedPrivileges),
    ("sock_cookie_id", Sub::SockCookieId),
    ("ssl_chain_cert", Sub::SslChainCert),
    ("ssl_key", Sub::SslKey),
    ("ssl_verify_mode", Sub::SslVerifyMode),
    ("ssl_keyformat", Sub::SslKeyformat),
    ("ssl_ciphers", Sub::SslCiphers),
    ("ssl_ca_cert", Sub::SslCaCert),
    ("ssl_wbuf_size", Sub::SslWbufSize),
    ("ssl_session_cache", Sub::SslSessionCache),
    ("ssl_kernel_tls", Sub::SslKernelTls),
    ("ssl_min_version", Sub::SslMinVersion),
    ("metrics_listen", Sub::MetricsListen),
    ("ext_page_size", Sub::Extstore),
    ("ext_wbuf_size", Sub::Extstore),
    ("ext_threads", Sub::Extstore),
    ("ext_io_depth", Sub::Extstore),
    ("ext_path", Sub::Extstore),
    ("ext_item_size", Sub::Extstore),
    ("ext_item_age", Sub::Extstore),
    ("ext_low_ttl", Sub::Extstore),
    ("ext_recache_rate", Sub::Extstore),
    ("ext_compact_under", Sub::Extstore),
    ("ext_drop_under", Sub::Extstore),
    ("ext_max_sleep", Sub::Extstore),
    ("ext_max_frag", Sub::Extstore),
    ("ext_drop_unread", Sub::Extstore),
    ("slab_automove_freeratio", Sub::Extstore),
];

fn lookup_subopt(name: &[u8]) -> Option<(&'static str, Sub)> {
    SUBOPTS
        .iter()
        .copied()
        .filter(|&(_, sub)| sub != Sub::RelaxedPrivileges || cfg!(feature = "debug-commands"))
        .find(|(n, _)| n.as_bytes() == name)
}

fn not_yet_built(option: OptionName) -> Option<&'static str> {
    NOT_YET_BUILT
        .iter()
        .find(|e| e.option == option)
        .map(|e| e.message)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// State of the parse that C keeps in main()'s locals and only uses during start-up.
#[derive(Default)]
struct Pending {
    tcp_specified: bool,
    udp_specified: bool,
    slab_chunk_size_changed: bool,
    slab_sizes_unparsed: Option<Vec<u8>>,
    factor_text: Option<String>,
}

struct Parser<'c, 'w> {
    s: Settings,
    p: Pending,
    con: &'c mut Console<'w>,
}

/// The parse proper, with its output streams and the POSIXLY_CORRECT switch passed in.
fn parse_with(
    argv: &[String],
    posixly_correct: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Settings, i32> {
    let mut con = Console { out, err };
    let mut parser = Parser {
        s: Settings::default(),
        p: Pending::default(),
        con: &mut con,
    };
    for item in Getopt::new(argv, SHORTOPTS, LONGOPTS, posixly_correct) {
        match item {
            Item::Opt(c, optarg) => {
                // memcached strips leading whitespace from every option argument.
                parser.option(c, optarg.map(skip_space))?;
            }
            Item::Error(msg) => {
                parser.con.err(msg);
                return Err(parser.con.fail("Illegal argument \"?\"", 1));
            }
        }
    }
    parser.finish()
}

impl Parser<'_, '_> {
    fn option(&mut self, c: u8, optarg: Option<&[u8]>) -> Result<(), i32> {
        if let Some(msg) = not_yet_built(OptionName::Short(c)) {
            return Err(self.con.fail(msg, 1));
        }
        let arg = optarg.unwrap_or_default();
        let s = &mut self.s;
        match c {
            b'A' => s.shutdown_command = true,
            b'Z' => s.ssl_enabled = true,
            b'a' => s.access = strtol(arg, 8).0 as i32 as u32,
            b'U' => {
                s.udpport = atoi(arg);
                self.p.udp_specified = true;
            }
            b'p' => {
                s.port = atoi(arg);
                self.p.tcp_specified = true;
            }
            b's' => s.socketpath = Some(text(arg)),
            b'm' => {
                // C: ((size_t)atoi(optarg)) * 1024 * 1024, wrapping.
                let mb = atoi(arg) as i64 as u64;
                *s.maxbytes.get_mut() = mb.wrapping_mul(1024 * 1024);
            }
            b'M' => s.evict_to_free = false,
            b'c' => {
                s.maxconns = atoi(arg);
                if s.maxconns <= 0 {
                    return Err(self
                        .con
                        .fail("Maximum connections must be greater than 0", 1));
                }
            }
            b'h' => {
                let mut help = Vec::new();
                let complete = usage::write_usage(s, &mut help);
                self.con.out(help);
                return Err(if complete { 0 } else { 1 });
            }
            b'i' => {
                self.con.out(usage::license_text());
                return Err(0);
            }
            b'V' => {
                self.con.out(usage::version_text());
                return Err(0);
            }
            b'k' => s.lock_memory = true,
            b'v' => *s.verbose.get_mut() += 1,
            b'l' => {
                let new = text(arg);
                match &mut s.inter {
                    // A listener already contained (even as a substring) is not added again.
                    Some(inter) if inter.contains(new.as_str()) => {}
                    Some(inter) => {
                        inter.push(',');
                        inter.push_str(&new);
                    }
                    None => s.inter = Some(new),
                }
            }
            b'd' => s.do_daemonize = true,
            b'r' => s.maxcore = true,
            b'R' => {
                s.reqs_per_event = atoi(arg);
                if s.reqs_per_event <= 0 {
                    return Err(self
                        .con
                        .fail("Number of requests per event must be greater than 0", 1));
                }
            }
            b'u' => s.username = Some(text(arg)),
            b'P' => s.pid_file = Some(text(arg)),
            b'e' => s.memory_file = Some(text(arg)),
            b'f' => {
                s.factor = atof(arg);
                // Written this way so that NaN passes, as in C.
                if s.factor <= 1.0 {
                    return Err(self.con.fail("Factor must be greater than 1", 1));
                }
                self.p.factor_text = Some(text(arg));
            }
            b'n' => {
                s.chunk_size = atoi(arg);
                if s.chunk_size <= 0 {
                    return Err(self.con.fail("Chunk size must be greater than 0", 1));
                }
            }
            b't' => {
                s.num_threads = atoi(arg);
                if s.num_threads <= 0 {
                    return Err(self.con.fail("Number of threads must be greater than 0", 1));
                }
                if s.num_threads > 64 {
                    self.con.err(
                        "WARNING: Setting a high number of workerthreads is not recommended.\n \
                         Set this value to the number of cores in your machine or less.\n",
                    );
                }
            }
            b'D' => match arg.first() {
                Some(&b) => {
                    s.prefix_delimiter = b;
                    *s.detail_enabled.get_mut() = true;
                }
                None => return Err(self.con.fail("No delimiter specified", 1)),
            },
            b'L' => {
                if large_pages_available(self.con) {
                    self.s.preallocate = true;
                } else {
                    return Err(self.con.fail(
                        "Cannot enable large pages on this system\n\
                         (There is no support as of this version)",
                        1,
                    ));
                }
            }
            b'C' => s.use_cas = false,
            b'b' => s.backlog = atoi(arg),
            b'B' => {
                s.protocol_specified = true;
                s.binding_protocol = match arg {
                    b"auto" => Protocol::Negotiating,
                    b"binary" => Protocol::Binary,
                    b"ascii" => Protocol::Ascii,
                    _ => {
                        self.con.err("Invalid value for binding protocol: ");
                        self.con.err(arg);
                        return Err(self
                            .con
                            .fail("\n -- should be one of auto, binary, or ascii", EX_USAGE));
                    }
                };
            }
            b'I' => s.item_size_max = parse_item_size(arg),
            b'S' => s.sasl = true,
            b'F' => s.flush_enabled = false,
            b'X' => s.dump_enabled = false,
            b'W' => s.watch_enabled = false,
            b'Y' => s.auth_file = Some(text(arg)),
            b'N' => {
                s.num_napi_ids = atoi(arg);
                if s.num_napi_ids <= 0 {
                    return Err(self
                        .con
                        .fail("Maximum number of NAPI IDs must be greater than 0", 1));
                }
            }
            b'o' => self.suboptions(arg)?,
            _ => {
                // Unreachable: getopt only returns characters of SHORTOPTS.
                self.con.err(b"Illegal argument \"");
                self.con.err([c]);
                return Err(self.con.fail("\"", 1));
            }
        }
        Ok(())
    }

    /// `-o a,b=c,...`, processed left to right like getsubopt(3).
    fn suboptions(&mut self, arg: &[u8]) -> Result<(), i32> {
        let mut rest = arg;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            let token = &rest[..end];
            let (name, value) = match token.iter().position(|&b| b == b'=') {
                Some(eq) => (&token[..eq], Some(&token[eq + 1..])),
                None => (token, None),
            };
            let Some((sub_name, sub)) = lookup_subopt(name) else {
                // Unknown to main's list, C hands the token to storage_read_config, which
                // names it on stderr.
                self.con.err("Illegal suboption \"");
                self.con.err(token);
                self.con.err("\"\n");
                return Err(1);
            };
            if let Some(msg) = not_yet_built(OptionName::Sub(sub_name)) {
                return Err(self.con.fail(msg, 1));
            }
            if sub == Sub::Extstore {
                let value = value.map(text);
                if let Err(msg) = self.s.ext.read(sub_name, value.as_deref()) {
                    self.con.err(msg);
                    return Err(1);
                }
            } else {
                self.suboption(sub, value)?;
            }
            rest = rest.get(end + 1..).unwrap_or_default();
        }
        Ok(())
    }

    fn suboption(&mut self, sub: Sub, value: Option<&[u8]>) -> Result<(), i32> {
        // Most sub-options need a value; `need` reports the C message when it is missing.
        let need = |con: &mut Console, msg: &str| need_value(value, con, msg);
        let s = &mut self.s;
        let con = &mut *self.con;
        match sub {
            Sub::MaxconnsFast => s.maxconns_fast = true,
            Sub::Hashpower => {
                let v = need(con, "Missing numeric argument for hashpower")?;
                s.hashpower_init = atoi(v);
                if s.hashpower_init < 12 {
                    return Err(con.fail(
                        format!(
                            "Initial hashtable multiplier of {} is too low",
                            s.hashpower_init
                        ),
                        1,
                    ));
                }
                if s.hashpower_init > HASHPOWER_MAX {
                    return Err(con.fail(
                        format!(
                            "Initial hashtable multiplier of {} is too high\n\
                             Choose a value based on \"STAT hash_power_level\" from a running instance",
                            s.hashpower_init
                        ),
                        1,
                    ));
                }
            }
            Sub::NoHashexpand => s.start_assoc_maint = false,
            Sub::SlabReassign => s.slab_reassign = true,
            Sub::SlabAutomove => match value {
                None => *s.slab_automove.get_mut() = 1,
                Some(v) => {
                    let n = atoi(v);
                    *s.slab_automove.get_mut() = n;
                    if !(0..=2).contains(&n) {
                        return Err(con.fail("slab_automove must be between 0 and 2", 1));
                    }
                }
            },
            Sub::SlabAutomoveRatio => {
                let v = need(con, "Missing slab_automove_ratio argument")?;
                let r = atof(v);
                s.slab_automove_ratio.store(r);
                if r <= 0.0 || r > 1.0 {
                    return Err(con.fail("slab_automove_ratio must be > 0 and < 1", 1));
                }
            }
            Sub::SlabAutomoveWindow => {
                let v = need(con, "Missing slab_automove_window argument")?;
                // Stored unsigned, so negative values are "too large".
                let w = atoi(v) as u32;
                *s.slab_automove_window.get_mut() = w;
                if !(3..=1800).contains(&w) {
                    return Err(con.fail("slab_automove_window must be > 2 and < 1800", 1));
                }
            }
            Sub::TailRepairTime => {
                let v = need(con, "Missing numeric argument for tail_repair_time")?;
                s.tail_repair_time = atoi(v);
                if s.tail_repair_time < 10 {
                    return Err(con.fail("Cannot set tail_repair_time to less than 10 seconds", 1));
                }
            }
            Sub::HashAlgorithm => {
                let v = need(con, "Missing hash_algorithm argument")?;
                s.hash_algorithm = match v {
                    b"jenkins" => HashAlgorithm::Jenkins,
                    b"murmur3" => HashAlgorithm::Murmur3,
                    b"xxh3" => HashAlgorithm::Xxh3,
                    _ => {
                        return Err(
                            con.fail("Unknown hash_algorithm option (jenkins, murmur3, xxh3)", 1)
                        )
                    }
                };
            }
            Sub::LruCrawler => s.start_lru_crawler = true,
            Sub::LruCrawlerSleep => {
                let v = need(con, "Missing lru_crawler_sleep value")?;
                let n = atoi(v);
                *s.lru_crawler_sleep.get_mut() = n;
                if !(0..=1_000_000).contains(&n) {
                    return Err(con.fail("LRU crawler sleep must be between 0 and 1 second", 1));
                }
            }
            Sub::LruCrawlerTocrawl => {
                let v = need(con, "Missing lru_crawler_tocrawl value")?;
                match safe_strtoul(v) {
                    Some(n) => *s.lru_crawler_tocrawl.get_mut() = n,
                    None => {
                        return Err(con.fail("lru_crawler_tocrawl takes a numeric 32bit value", 1))
                    }
                }
            }
            Sub::LruMaintainer => {
                s.start_lru_maintainer = true;
                *s.lru_segmented.get_mut() = true;
            }
            Sub::HotLruPct | Sub::WarmLruPct => {
                let (name, field) = if sub == Sub::HotLruPct {
                    ("hot_lru_pct", &mut s.hot_lru_pct)
                } else {
                    ("warm_lru_pct", &mut s.warm_lru_pct)
                };
                let v = need(con, &format!("Missing {name} argument"))?;
                let n = atoi(v);
                *field.get_mut() = n;
                if !(1..80).contains(&n) {
                    return Err(con.fail(format!("{name} must be > 1 and < 80"), 1));
                }
            }
            Sub::HotMaxFactor | Sub::WarmMaxFactor => {
                let (name, field) = if sub == Sub::HotMaxFactor {
                    ("hot_max_factor", &s.hot_max_factor)
                } else {
                    ("warm_max_factor", &s.warm_max_factor)
                };
                let v = need(con, &format!("Missing {name} argument"))?;
                let f = atof(v);
                field.store(f);
                // NaN passes this check in C too.
                if f <= 0.0 {
                    return Err(con.fail(format!("{name} must be > 0"), 1));
                }
            }
            Sub::TemporaryTtl => {
                let v = need(con, "Missing temporary_ttl argument")?;
                *s.temp_lru.get_mut() = true;
                *s.temporary_ttl.get_mut() = atoi(v) as u32;
            }
            Sub::IdleTimeout => {
                let v = need(con, "Missing numeric argument for idle_timeout")?;
                s.idle_timeout = atoi(v);
            }
            Sub::WatcherLogbufSize | Sub::WorkerLogbufSize => {
                let (name, field) = if sub == Sub::WatcherLogbufSize {
                    ("watcher_logbuf_size", &mut s.logger_watcher_buf_size)
                } else {
                    ("worker_logbuf_size", &mut s.logger_buf_size)
                };
                let v = need(con, &format!("Missing {name} argument"))?;
                match safe_strtoul(v) {
                    Some(kb) => *field = kb.wrapping_mul(1024),
                    None => {
                        *field = 0;
                        return Err(con.fail(format!("could not parse argument to {name}"), 1));
                    }
                }
            }
            Sub::SlabSizes => match value {
                Some(v) => self.p.slab_sizes_unparsed = Some(v.to_vec()),
                // C dereferences the missing value and crashes; refuse it instead.
                None => return Err(con.fail("Missing slab_sizes argument", 1)),
            },
            Sub::SlabChunkMax => {
                let v = need(con, "Missing slab_chunk_max argument")?;
                let Some(kb) = safe_strtol(v) else {
                    s.slab_chunk_size_max = 0;
                    return Err(con.fail("could not parse argument to slab_chunk_max", 1));
                };
                s.slab_chunk_size_max = kb;
                if kb <= 0 {
                    return Err(con.fail("slab_chunk_max must be >= 0", 1));
                }
                if kb > 1 << 10 {
                    return Err(con.fail("slab_chunk_max must be specified in kilobytes.", 1));
                }
                s.slab_chunk_size_max = kb * (1 << 10);
                self.p.slab_chunk_size_changed = true;
            }
            Sub::TrackSizes => {
                // The histogram is sized by the item size limit in force at this point.
                if !*s.track_sizes.get_mut() {
                    *s.track_sizes.get_mut() = true;
                    s.track_sizes_item_size_max = s.item_size_max;
                }
            }
            Sub::NoInlineAsciiResp | Sub::InlineAsciiResp | Sub::Modern => {}
            Sub::NoChunkedItems => s.slab_chunk_size_max = s.slab_page_size,
            Sub::NoSlabReassign => s.slab_reassign = false,
            Sub::NoSlabAutomove => *s.slab_automove.get_mut() = 0,
            Sub::NoMaxconnsFast => s.maxconns_fast = false,
            Sub::NoLruCrawler => {
                *s.lru_crawler.get_mut() = false;
                s.start_lru_crawler = false;
            }
            Sub::NoLruMaintainer => {
                s.start_lru_maintainer = false;
                *s.lru_segmented.get_mut() = false;
            }
            Sub::NoModern => {
                if !self.p.slab_chunk_size_changed {
                    s.slab_chunk_size_max = s.slab_page_size;
                }
                s.slab_reassign = false;
                *s.slab_automove.get_mut() = 0;
                s.maxconns_fast = false;
                *s.lru_segmented.get_mut() = false;
                s.hash_algorithm = HashAlgorithm::Jenkins;
                s.start_lru_crawler = false;
                s.start_lru_maintainer = false;
            }
            Sub::NoDropPrivileges => s.drop_privileges = false,
            Sub::DropPrivileges => s.drop_privileges = true,
            Sub::RespObjMemLimit => {
                con.err("DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,\n")
            }
            Sub::ReadBufMemLimit => {
                let v = need(con, "Missing read_buf_mem_limit argument")?;
                match safe_strtoul(v) {
                    Some(mb) => s.read_buf_mem_limit = mb.wrapping_mul(1024 * 1024),
                    None => {
                        s.read_buf_mem_limit = 0;
                        return Err(con.fail("could not parse argument to read_buf_mem_limit", 1));
                    }
                }
            }
            Sub::RelaxedPrivileges => s.relaxed_privileges = true,
            Sub::SockCookieId => match value {
                // An unparsable id leaves 0, as C ignores the parse result.
                Some(v) => s.sock_cookie_id = safe_strtoul(v).unwrap_or(0),
                // C passes the missing value to strtoul and crashes; refuse it instead.
                None => return Err(con.fail("Missing sock_cookie_id argument", 1)),
            },
            Sub::SslChainCert => {
                s.ssl_chain_cert = Some(text(need(con, "Missing ssl_chain_cert argument")?))
            }
            Sub::SslKey => s.ssl_key = Some(text(need(con, "Missing ssl_key argument")?)),
            Sub::SslVerifyMode => {
                let v = need(con, "Missing ssl_verify_mode argument")?;
                let Some(n) = safe_strtol(v) else {
                    return Err(con.fail("could not parse argument to ssl_verify_mode", 1));
                };
                s.ssl_verify_mode = verify_mode_from_index(n).ok_or_else(|| {
                    con.fail("Invalid ssl_verify_mode. Use help to see valid options.", 1)
                })?;
            }
            Sub::SslKeyformat => {
                let v = need(con, "Missing ssl_keyformat argument")?;
                s.ssl_keyformat = safe_strtol(v)
                    .ok_or_else(|| con.fail("could not parse argument to ssl_keyformat", 1))?;
            }
            Sub::SslCiphers => {
                s.ssl_ciphers = Some(text(need(con, "Missing ssl_ciphers argument")?))
            }
            Sub::SslCaCert => {
                s.ssl_ca_cert = Some(text(need(con, "Missing ssl_ca_cert argument")?))
            }
            Sub::SslWbufSize => {
                let v = need(con, "Missing ssl_wbuf_size argument")?;
                let kb = safe_strtoul(v)
                    .ok_or_else(|| con.fail("could not parse argument to ssl_wbuf_size", 1))?;
                s.ssl_wbuf_size = kb.wrapping_mul(1024);
            }
            Sub::SslSessionCache => s.ssl_session_cache = true,
            Sub::SslKernelTls => s.ssl_kernel_tls = true,
            Sub::SslMinVersion => {
                let v = need(con, "Missing ssl_min_version argument")?;
                let Some(n) = safe_strtol(v) else {
                    return Err(con.fail("could not parse argument to ssl_min_version", 1));
                };
                s.ssl_min_version = min_version_from_index(n).ok_or_else(|| {
                    con.fail("Invalid ssl_min_version. Use help to see valid options.", 1)
                })?;
            }
            // Read by `suboptions`, which knows the name.
            Sub::Extstore => {}
            Sub::MetricsListen => {
                let v = text(need(con, "Missing metrics_listen argument")?);
                let port_ok = v
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok())
                    .is_some_and(|p| p != 0);
                if !port_ok {
                    return Err(
                        con.fail(format!("metrics_listen: expected ADDR:PORT, got '{v}'"), 1)
                    );
                }
                s.metrics_listen = Some(v);
            }
        }
        Ok(())
    }

    /// The checks and adjustments C main() makes after the option loop, in its order.
    fn finish(mut self) -> Result<Settings, i32> {
        let s = &mut self.s;
        let con = &mut *self.con;
        if s.num_napi_ids > s.num_threads {
            return Err(con.fail(
                format!(
                    "Number of napi_ids({}) cannot be greater than number of threads({})",
                    s.num_napi_ids, s.num_threads
                ),
                EX_USAGE,
            ));
        }
        if s.item_size_max < ITEM_SIZE_MAX_LOWER_LIMIT {
            return Err(con.fail("Item max size cannot be less than 1024 bytes.", EX_USAGE));
        }
        // item_size_max is positive here, so the widening is exact.
        if s.item_size_max as u64 > *s.maxbytes.get_mut() / 2 {
            return Err(con.fail(
                "Cannot set item size limit higher than 1/2 of memory max.",
                EX_USAGE,
            ));
        }
        if s.item_size_max > ITEM_SIZE_MAX_UPPER_LIMIT {
            return Err(con.fail(
                "Cannot set item size limit higher than a gigabyte.",
                EX_USAGE,
            ));
        }
        if s.item_size_max > 1024 * 1024 && !self.p.slab_chunk_size_changed {
            s.slab_chunk_size_max = s.slab_page_size / 2;
        }
        if s.slab_chunk_size_max > s.item_size_max {
            return Err(con.fail(
                format!(
                    "slab_chunk_max (bytes: {}) cannot be larger than -I (item_size_max {})",
                    s.slab_chunk_size_max, s.item_size_max
                ),
                EX_USAGE,
            ));
        }
        // slab_chunk_size_max is positive: it is either a default or a checked -o value.
        if s.item_size_max % s.slab_chunk_size_max != 0 {
            return Err(con.fail(
                format!(
                    "-I (item_size_max: {}) must be evenly divisible by slab_chunk_max (bytes: {})",
                    s.item_size_max, s.slab_chunk_size_max
                ),
                EX_USAGE,
            ));
        }
        if s.slab_page_size % s.slab_chunk_size_max != 0 {
            return Err(con.fail(
                format!(
                    "slab_chunk_max (bytes: {}) must divide evenly into {} (slab_page_size)",
                    s.slab_chunk_size_max, s.slab_page_size
                ),
                EX_USAGE,
            ));
        }
        // C's storage_check_config: without an ext_path extstore stays off quietly.
        match s.ext.check(s.item_size_max, s.udpport) {
            Err(msg) => {
                con.err(msg);
                return Err(EX_USAGE);
            }
            Ok(enabled) => {
                s.ext_enabled = enabled;
                if enabled {
                    s.ext.apply_start_defaults();
                }
                s.ext_rt = extstore::ExtTunables::from(&s.ext);
            }
        }

        if let Some(unparsed) = self.p.slab_sizes_unparsed.take() {
            match parse_slab_sizes(&unparsed, s.chunk_size, s.slab_chunk_size_max) {
                Ok(sizes) => {
                    s.slab_sizes = Some(sizes);
                    s.slab_config = text(&unparsed);
                }
                Err(msg) => {
                    con.err(msg);
                    return Err(EX_USAGE);
                }
            }
        } else if let Some(factor) = self.p.factor_text.take() {
            s.slab_config = factor;
        }

        if *s.hot_lru_pct.get_mut() + *s.warm_lru_pct.get_mut() > 80 {
            return Err(con.fail(
                "hot_lru_pct + warm_lru_pct cannot be more than 80% combined",
                EX_USAGE,
            ));
        }
        if *s.temp_lru.get_mut() && !s.start_lru_maintainer {
            return Err(con.fail(
                "temporary_ttl requires lru_maintainer to be enabled",
                EX_USAGE,
            ));
        }

        // Several listeners get one UDP worker each.
        s.num_threads_per_udp = match &s.inter {
            Some(inter) if inter.contains(',') => 1,
            _ => s.num_threads,
        };

        if s.sasl {
            if !s.protocol_specified {
                s.binding_protocol = Protocol::Binary;
            } else if s.binding_protocol != Protocol::Binary {
                return Err(con.fail(
                    "ERROR: You cannot allow the ASCII protocol while using SASL.",
                    EX_USAGE,
                ));
            }
            if s.udpport != 0 {
                return Err(con.fail(
                    "ERROR: Cannot enable UDP while using binary SASL authentication.",
                    EX_USAGE,
                ));
            }
        }

        if s.auth_file.is_some() {
            if !s.protocol_specified {
                s.binding_protocol = Protocol::Ascii;
            } else if s.binding_protocol != Protocol::Ascii {
                return Err(con.fail(
                    "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.",
                    EX_USAGE,
                ));
            }
        }

        if self.p.udp_specified && s.udpport != 0 && !self.p.tcp_specified {
            s.port = s.udpport;
        }
        if s.port > 65535 {
            return Err(con.fail(format!("ERROR: Invalid port number {}.", s.port), EX_USAGE));
        }
        if s.ssl_enabled && s.port == 0 {
            return Err(con.fail("ERROR: You cannot enable SSL without a TCP port.", EX_USAGE));
        }

        // What C's `stats settings` shows once the background threads are up.
        *s.lru_crawler.get_mut() = s.start_lru_crawler;
        *s.lru_maintainer_thread.get_mut() = s.start_lru_maintainer;
        if s.memory_file.is_some() {
            s.preallocate = true;
        }
        Ok(self.s)
    }
}

// OpenSSL's protocol version numbers (TLS1_*_VERSION).
const TLS1_VERSION: i32 = 0x301;
const TLS1_1_VERSION: i32 = 0x302;
const TLS1_2_VERSION: i32 = 0x303;
const TLS1_3_VERSION: i32 = 0x304;

/// "tlsv1.2" and so on, as `stats settings` and `-h` name a protocol (C's ssl_proto_text).
pub fn ssl_proto_text(version: i32) -> &'static str {
    match version {
        TLS1_VERSION => "tlsv1.0",
        TLS1_1_VERSION => "tlsv1.1",
        TLS1_2_VERSION => "tlsv1.2",
        TLS1_3_VERSION => "tlsv1.3",
        _ => "unknown",
    }
}

/// `ssl_min_version=N`: 0-3 name TLS 1.0-1.3 (C's ssl_set_min_version).
fn min_version_from_index(n: i32) -> Option<i32> {
    [TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION]
        .get(usize::try_from(n).ok()?)
        .copied()
}

/// `ssl_verify_mode=N`: none, request (PEER), require (PEER|FAIL_IF_NO_PEER_CERT), once
/// (also CLIENT_ONCE), as OpenSSL's SSL_VERIFY_* bits (C's ssl_set_verify_mode).
fn verify_mode_from_index(n: i32) -> Option<i32> {
    [0, 1, 3, 7].get(usize::try_from(n).ok()?).copied()
}

/// The value of a sub-option that requires one, or C's "Missing ..." error.
fn need_value<'v>(value: Option<&'v [u8]>, con: &mut Console, msg: &str) -> Result<&'v [u8], i32> {
    value.ok_or_else(|| con.fail(msg, 1))
}

/// `-I`: a number with an optional k/m (any case) suffix, int arithmetic wrapping as C's does.
fn parse_item_size(arg: &[u8]) -> i32 {
    match arg.split_last() {
        Some((&unit, digits)) if matches!(unit, b'k' | b'K' | b'm' | b'M') => {
            let n = atoi(digits);
            if unit.eq_ignore_ascii_case(&b'k') {
                n.wrapping_mul(1024)
            } else {
                n.wrapping_mul(1024 * 1024)
            }
        }
        _ => atoi(arg),
    }
}

/// `-o slab_sizes=a-b-c`: ascending chunk sizes. On failure returns the complete stderr
/// text (possibly empty: C exits silently for an empty list).
fn parse_slab_sizes(spec: &[u8], chunk_size: i32, chunk_max: i32) -> Result<Vec<u32>, String> {
    if spec.is_empty() {
        return Err(String::new());
    }
    let mut sizes = Vec::new();
    let mut last: u32 = 0;
    for part in spec.split(|&b| b == b'-').filter(|p| !p.is_empty()) {
        let parsed = safe_strtoul(part);
        let size = parsed.unwrap_or(0);
        // chunk_size and chunk_max are positive, so comparing as unsigned is exact.
        if parsed.is_none() || size < chunk_size as u32 || size > chunk_max as u32 {
            return Err(format!("slab size {size} is out of valid range\n"));
        }
        if last >= size {
            return Err(format!(
                "slab size {size} cannot be lower than or equal to a previous class size\n"
            ));
        }
        if size <= last + CHUNK_ALIGN_BYTES {
            return Err(format!(
                "slab size {size} must be at least {CHUNK_ALIGN_BYTES} bytes larger than previous class\n"
            ));
        }
        sizes.push(size);
        last = size;
        if sizes.len() >= MAX_NUMBER_OF_SLAB_CLASSES - 1 {
            return Err("too many slab classes specified\n".to_string());
        }
    }
    Ok(sizes)
}

/// C's enable_large_pages() on Linux: transparent huge pages must be compiled in and not
/// set to "never". Prints C's warnings when they are not usable.
fn large_pages_available(con: &mut Console) -> bool {
    const THP_PATHS: [&str; 2] = [
        "/sys/kernel/mm/transparent_hugepage/enabled",
        "/sys/kernel/mm/redhat_transparent_hugepage/enabled",
    ];
    let Some(mut file) = THP_PATHS.iter().find_map(|p| std::fs::File::open(p).ok()) else {
        con.err("Transparent huge pages support not detected.\nWill use default page size.\n");
        return false;
    };
    let mut buf = [0u8; 127];
    let n = std::io::Read::read(&mut file, &mut buf).unwrap_or(0);
    if n == 0 {
        con.err(
            "Transparent huge pages could not read the configuration.\nWill use default page size.\n",
        );
        return false;
    }
    if buf[..n].windows(7).any(|w| w == b"[never]") {
        con.err("Transparent huge pages support disabled.\nWill use default page size.\n");
        return false;
    }
    true
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

impl Settings {
    /// Appends the `stats settings` lines (C's process_stat_settings), without END.
    pub fn write_stats(&self, out: &mut dyn crate::stats::StatSink) {
        let stat = |out: &mut dyn crate::stats::StatSink,
                    name: &str,
                    value: &dyn std::fmt::Display| out.stat(name, value);
        let or_null = |v: &Option<String>| v.clone().unwrap_or_else(|| "NULL".to_string());
        stat(out, "maxbytes", &self.maxbytes.load(Relaxed));
        stat(out, "maxconns", &self.maxconns);
        stat(out, "tcpport", &self.port);
        stat(out, "udpport", &self.udpport);
        stat(out, "inter", &or_null(&self.inter));
        stat(out, "verbosity", &self.verbose.load(Relaxed));
        stat(out, "oldest", &self.oldest_live.load(Relaxed));
        stat(
            out,
            "evictions",
            &if self.evict_to_free { "on" } else { "off" },
        );
        stat(out, "domain_socket", &or_null(&self.socketpath));
        stat(out, "umask", &format_args!("{:o}", self.access));
        stat(out, "shutdown_command", &yes_no(self.shutdown_command));
        stat(out, "growth_factor", &fmt_fixed(self.factor, 2));
        stat(out, "chunk_size", &self.chunk_size);
        stat(out, "num_threads", &self.num_threads);
        stat(out, "num_threads_per_udp", &self.num_threads_per_udp);
        // A raw byte, as C's %c prints it.
        out.stat_bytes("stat_key_prefix", &[self.prefix_delimiter]);
        stat(
            out,
            "detail_enabled",
            &yes_no(self.detail_enabled.load(Relaxed)),
        );
        stat(out, "reqs_per_event", &self.reqs_per_event);
        stat(out, "cas_enabled", &yes_no(self.use_cas));
        stat(out, "tcp_backlog", &self.backlog);
        stat(out, "binding_protocol", &self.binding_protocol.as_str());
        stat(out, "auth_enabled_sasl", &yes_no(self.sasl));
        stat(
            out,
            "auth_enabled_ascii",
            &self.auth_file.as_deref().unwrap_or("no"),
        );
        stat(out, "item_size_max", &self.item_size_max);
        stat(out, "maxconns_fast", &yes_no(self.maxconns_fast));
        stat(out, "hashpower_init", &self.hashpower_init);
        stat(out, "slab_reassign", &yes_no(self.slab_reassign));
        stat(out, "slab_automove", &self.slab_automove.load(Relaxed));
        stat(
            out,
            "slab_automove_ratio",
            &fmt_fixed(self.slab_automove_ratio.load(), 2),
        );
        stat(
            out,
            "slab_automove_window",
            &self.slab_automove_window.load(Relaxed),
        );
        stat(out, "slab_chunk_max", &self.slab_chunk_size_max);
        stat(out, "lru_crawler", &yes_no(self.lru_crawler.load(Relaxed)));
        stat(
            out,
            "lru_crawler_sleep",
            &self.lru_crawler_sleep.load(Relaxed),
        );
        stat(
            out,
            "lru_crawler_tocrawl",
            &self.lru_crawler_tocrawl.load(Relaxed),
        );
        stat(out, "tail_repair_time", &self.tail_repair_time);
        stat(out, "flush_enabled", &yes_no(self.flush_enabled));
        stat(out, "dump_enabled", &yes_no(self.dump_enabled));
        stat(out, "hash_algorithm", &self.hash_algorithm.as_str());
        stat(
            out,
            "lru_maintainer_thread",
            &yes_no(self.lru_maintainer_thread.load(Relaxed)),
        );
        stat(
            out,
            "lru_segmented",
            &yes_no(self.lru_segmented.load(Relaxed)),
        );
        stat(out, "hot_lru_pct", &self.hot_lru_pct.load(Relaxed));
        stat(out, "warm_lru_pct", &self.warm_lru_pct.load(Relaxed));
        stat(
            out,
            "hot_max_factor",
            &fmt_fixed(self.hot_max_factor.load(), 2),
        );
        stat(
            out,
            "warm_max_factor",
            &fmt_fixed(self.warm_max_factor.load(), 2),
        );
        stat(out, "temp_lru", &yes_no(self.temp_lru.load(Relaxed)));
        stat(out, "temporary_ttl", &self.temporary_ttl.load(Relaxed));
        stat(out, "idle_timeout", &self.idle_timeout);
        stat(out, "watcher_logbuf_size", &self.logger_watcher_buf_size);
        stat(out, "worker_logbuf_size", &self.logger_buf_size);
        stat(out, "read_buf_mem_limit", &self.read_buf_mem_limit);
        stat(out, "track_sizes", &yes_no(self.track_sizes.load(Relaxed)));
        // The setting is gone; C always reports "no".
        stat(out, "inline_ascii_response", &"no");
        stat(out, "drop_privileges", &yes_no(self.drop_privileges));
        let e = &self.ext_rt;
        stat(out, "ext_item_size", &e.item_size.load(Relaxed));
        stat(out, "ext_item_age", &e.item_age.load(Relaxed));
        stat(out, "ext_low_ttl", &e.low_ttl.load(Relaxed));
        stat(out, "ext_recache_rate", &e.recache_rate.load(Relaxed));
        stat(out, "ext_wbuf_size", &self.ext.wbuf_size);
        stat(out, "ext_compact_under", &e.compact_under.load(Relaxed));
        stat(out, "ext_drop_under", &e.drop_under.load(Relaxed));
        stat(out, "ext_max_sleep", &e.max_sleep.load(Relaxed));
        stat(out, "ext_max_frag", &fmt_fixed(e.max_frag.load(), 2));
        stat(
            out,
            "slab_automove_freeratio",
            &fmt_fixed(e.slab_automove_freeratio.load(), 3),
        );
        stat(out, "ext_drop_unread", &yes_no(e.drop_unread.load(Relaxed)));
        let null = |v: &Option<String>| v.clone().unwrap_or_else(|| "(null)".to_string());
        stat(out, "ssl_enabled", &yes_no(self.ssl_enabled));
        stat(out, "ssl_chain_cert", &null(&self.ssl_chain_cert));
        stat(out, "ssl_key", &null(&self.ssl_key));
        stat(out, "ssl_verify_mode", &self.ssl_verify_mode);
        stat(out, "ssl_keyformat", &self.ssl_keyformat);
        stat(
            out,
            "ssl_ciphers",
            &self.ssl_ciphers.as_deref().unwrap_or("NULL"),
        );
        stat(
            out,
            "ssl_ca_cert",
            &self.ssl_ca_cert.as_deref().unwrap_or("NULL"),
        );
        stat(out, "ssl_wbuf_size", &self.ssl_wbuf_size);
        stat(out, "ssl_session_cache", &yes_no(self.ssl_session_cache));
        stat(out, "ssl_kernel_tls", &yes_no(self.ssl_kernel_tls));
        stat(
            out,
            "ssl_min_version",
            &ssl_proto_text(self.ssl_min_version),
        );
        stat(out, "num_napi_ids", &self.num_napi_ids);
        // C formats a NULL pointer with %s, which glibc prints as "(null)".
        stat(
            out,
            "memory_file",
            &self.memory_file.as_deref().unwrap_or("(null)"),
        );
        stat(out, "client_flags_size", &CLIENT_FLAGS_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the parser as `memcached <args>` and returns (result, stdout, stderr).
    fn run_env(args: &[&str], posix: bool) -> (Result<Settings, i32>, String, String) {
        let argv: Vec<String> = std::iter::once("./memcached")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let r = parse_with(&argv, posix, &mut out, &mut err);
        (
            r,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    fn run(args: &[&str]) -> (Result<Settings, i32>, String, String) {
        run_env(args, false)
    }

    fn ok(args: &[&str]) -> Settings {
        match run(args) {
            (Ok(s), out, err) => {
                assert_eq!(out, "", "stdout for {args:?}");
                assert_eq!(err, "", "stderr for {args:?}");
                s
            }
            (Err(code), out, err) => {
                panic!("{args:?} failed with {code}: stdout {out:?} stderr {err:?}")
            }
        }
    }

    /// Asserts failure with `code`, and the given stderr text.
    fn fails(args: &[&str], code: i32, stderr: &str) {
        let (r, out, err) = run(args);
        assert_eq!(r.err(), Some(code), "exit status for {args:?}");
        assert_eq!(err, stderr, "stderr for {args:?}");
        assert_eq!(out, "", "stdout for {args:?}");
    }

    fn stats(s: &Settings) -> String {
        let mut v = Vec::new();
        s.write_stats(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn defaults() {
        let s = ok(&[]);
        assert_eq!(s.maxbytes.load(Relaxed), 64 << 20);
        assert_eq!(s.maxconns, 1024);
        assert_eq!(s.port, 11211);
        assert_eq!(s.udpport, 0);
        assert_eq!(s.inter, None);
        assert_eq!(s.access, 0o700);
        assert_eq!(s.num_threads, 4);
        assert_eq!(s.num_threads_per_udp, 4);
        assert_eq!(s.reqs_per_event, 20);
        assert!(s.use_cas);
        assert_eq!(s.binding_protocol, Protocol::Negotiating);
        assert_eq!(s.backlog, 1024);
        assert_eq!(s.item_size_max, 1 << 20);
        assert_eq!(s.slab_chunk_size_max, 1 << 19);
        assert!(s.maxconns_fast);
        assert!(!s.shutdown_command);
        assert_eq!(s.idle_timeout, 0);
        assert_eq!(s.hash_algorithm, HashAlgorithm::Murmur3);
        assert!(s.start_lru_crawler && s.start_lru_maintainer && s.start_assoc_maint);
        assert!(s.lru_crawler.load(Relaxed) && s.lru_maintainer_thread.load(Relaxed));
        assert_eq!(s.slab_config, "1.25");
        assert!(!s.do_daemonize && !s.maxcore && !s.lock_memory && !s.preallocate);
        assert_eq!(s.username, None);
        assert_eq!(s.pid_file, None);
    }

    #[test]
    fn stats_settings_match_c_for_default_command_line() {
        // Captured from the C reference: memcached -u nobody -p 22122 -U 0, `stats settings`.
        let golden = include_str!("../t/data/stats-settings-default.txt");
        let s = ok(&["-u", "nobody", "-p", "22122", "-U", "0"]);
        assert_eq!(stats(&s) + "END\r\n", golden);
    }

    #[test]
    fn stats_settings_match_c_for_many_options() {
        let golden = include_str!("../t/data/stats-settings-options.txt");
        let s = ok(&[
            "-u",
            "nobody",
            "-p",
            "22123",
            "-U",
            "0",
            "-l",
            "127.0.0.1",
            "-l",
            "127.0.0.1",
            "-m",
            "128",
            "-c",
            "100",
            "-M",
            "-A",
            "-f",
            "1.5",
            "-n",
            "64",
            "-t",
            "2",
            "-D",
            "/",
            "-R",
            "5",
            "-C",
            "-b",
            "50",
            "-B",
            "ascii",
            "-I",
            "2m",
            "-F",
            "-X",
            "-W",
            "-a",
            "755",
            "-vv",
            "-o",
            "hashpower=18,slab_automove=2,slab_automove_ratio=0.5,slab_automove_window=30,\
             tail_repair_time=20,hash_algorithm=xxh3,lru_crawler_sleep=50,lru_crawler_tocrawl=10,\
             hot_lru_pct=10,warm_lru_pct=30,hot_max_factor=0.3,warm_max_factor=1.5,\
             temporary_ttl=30,idle_timeout=60,watcher_logbuf_size=128,worker_logbuf_size=32,\
             read_buf_mem_limit=8,track_sizes,no_slab_reassign,no_maxconns_fast,sock_cookie_id=7",
        ]);
        assert_eq!(stats(&s) + "END\r\n", golden);
    }

    #[test]
    fn stats_settings_match_c_for_no_modern() {
        let golden = include_str!("../t/data/stats-settings-no-modern.txt");
        let s = ok(&[
            "-u",
            "nobody",
            "-p",
            "22124",
            "-U",
            "0",
            "-l",
            "127.0.0.1,127.0.0.2",
            "-o",
            "no_modern,slab_sizes=100-200-400-800",
            "-o",
            "hot_max_factor=nan",
        ]);
        assert_eq!(stats(&s) + "END\r\n", golden);
        assert_eq!(s.slab_sizes, Some(vec![100, 200, 400, 800]));
        assert_eq!(s.slab_config, "100-200-400-800");
    }

    #[test]
    fn help_matches_reference() {
        let (r, out, err) = run(&["-h"]);
        assert_eq!(r.err(), Some(0));
        assert_eq!(err, "");
        if cfg!(feature = "debug-commands") {
            assert_eq!(out, include_str!("../t/data/help-debug.txt"));
        } else {
            assert_eq!(out, include_str!("../t/data/help.txt"));
        }
    }

    #[test]
    fn help_shows_current_values_and_checks_fixed_defaults() {
        let (r, out, _) = run(&["-p", "1234", "-m", "-1", "-a", "-1", "-D", "x", "--help"]);
        assert_eq!(r.err(), Some(0));
        assert!(out.contains("TCP port to listen on (default: 1234)\n"));
        assert!(out.contains("megabytes (default: 17592186044415)\n"));
        assert!(out.contains("in octal (default: 37777777777)\n"));
        assert!(out.contains("              \"x\" (colon)."));

        let (r, out, _) = run(&["-U", "5", "-h"]);
        assert_eq!(r.err(), Some(1));
        assert!(out.ends_with(
            "(default: 48)\nDefault value of [udp-port] has changed. Modify the help text and default value check.\n"
        ));
        for (opt, name) in [
            ("read_buf_mem_limit=1", "read_buf_mem_limit"),
            ("tail_repair_time=50", "tail_repair_time"),
            ("lru_crawler_tocrawl=5", "lru_crawler_tocrawl"),
            ("idle_timeout=5", "idle_timeout"),
        ] {
            let (r, out, _) = run(&["-o", opt, "-h"]);
            assert_eq!(r.err(), Some(1), "{opt}");
            assert!(
                out.ends_with(&format!(
                    "Default value of [{name}] has changed. Modify the help text and default value check.\n"
                )),
                "{opt}: {out}"
            );
        }
    }

    #[test]
    fn version_and_license() {
        let (r, out, err) = run(&["-V", "-h"]);
        assert_eq!(
            (r.err(), out.as_str(), err.as_str()),
            (Some(0), "memcached 1.6.45\n", "")
        );
        let (r, out, _) = run(&["--lic"]);
        assert_eq!(r.err(), Some(0));
        assert_eq!(out, include_str!("../t/data/license.txt"));
    }

    #[test]
    fn bundling_and_attached_arguments() {
        let s = ok(&["-vvv", "-p11311", "-dkrU", "11411", "-Mvc", "99"]);
        assert_eq!(s.verbose.load(Relaxed), 4);
        assert_eq!(s.port, 11311);
        assert_eq!(s.udpport, 11411);
        assert!(s.do_daemonize && s.lock_memory && s.maxcore && !s.evict_to_free);
        assert_eq!(s.maxconns, 99);
    }

    #[test]
    fn long_options() {
        let s = ok(&[
            "--port=1",
            "--udp-port",
            "2",
            "--memory-limit= 32",
            "--threads=8",
            "--verbose=9",
            "--verb",
            "--listen=10.0.0.1",
            "--user",
            "me",
            "--pidfile=/tmp/p",
            "--enable-shutdown",
            "--disable-cas",
            "--max-item",
            "512k",
            "--unix-socket=/tmp/s",
            "--unix-mask=0644",
            "--protocol=binary",
            "--napi-ids=2",
            "--extended=no_lru_crawler",
            "--daemon",
            "--lock-memory",
            "--enable-coredumps",
            "--disable-evictions",
            "--conn-limit=5",
            "--slab-growth-factor=2",
            "--slab-min-size=32",
            "--max-reqs-per-event=7",
            "--listen-backlog=3",
            "--disable-flush-all",
            "--disable-dumping",
            "--disable-watch",
        ]);
        assert_eq!((s.port, s.udpport), (1, 2));
        assert_eq!(s.maxbytes.load(Relaxed), 32 << 20);
        assert_eq!(s.num_threads, 8);
        assert_eq!(s.verbose.load(Relaxed), 2);
        assert_eq!(s.inter.as_deref(), Some("10.0.0.1"));
        assert_eq!(s.username.as_deref(), Some("me"));
        assert_eq!(s.pid_file.as_deref(), Some("/tmp/p"));
        assert!(s.shutdown_command && !s.use_cas);
        assert_eq!(s.item_size_max, 512 * 1024);
        assert_eq!(s.socketpath.as_deref(), Some("/tmp/s"));
        assert_eq!(s.access, 0o644);
        assert_eq!(s.binding_protocol, Protocol::Binary);
        assert_eq!(s.num_napi_ids, 2);
        assert!(!s.start_lru_crawler && !s.lru_crawler.load(Relaxed));
        assert!(s.do_daemonize && s.lock_memory && s.maxcore && !s.evict_to_free);
        assert_eq!((s.maxconns, s.factor, s.chunk_size), (5, 2.0, 32));
        assert_eq!((s.reqs_per_event, s.backlog), (7, 3));
        assert!(!s.flush_enabled && !s.dump_enabled && !s.watch_enabled);
        assert_eq!(s.slab_config, "2");
    }

    #[test]
    fn permutation_end_of_options_and_posixly_correct() {
        let s = ok(&["stray", "-p", "5", "another", "-v", "--", "-p", "6"]);
        assert_eq!(s.port, 5);
        assert_eq!(s.verbose.load(Relaxed), 1);
        let (r, _, _) = run_env(&["stray", "-p", "5"], true);
        assert_eq!(r.map(|s| s.port).ok(), Some(11211));
        // A required argument is taken even when it looks like an option.
        assert_eq!(ok(&["-u", "-p"]).username.as_deref(), Some("-p"));
    }

    #[test]
    fn getopt_errors() {
        fails(
            &["-z"],
            1,
            "./memcached: invalid option -- 'z'\nIllegal argument \"?\"\n",
        );
        fails(
            &["-p"],
            1,
            "./memcached: option requires an argument -- 'p'\nIllegal argument \"?\"\n",
        );
        fails(
            &["--foo=bar"],
            1,
            "./memcached: unrecognized option '--foo=bar'\nIllegal argument \"?\"\n",
        );
        fails(
            &["--dis"],
            1,
            "./memcached: option '--dis' is ambiguous; possibilities: '--disable-evictions' \
             '--disable-cas' '--disable-flush-all' '--disable-dumping' '--disable-watch'\n\
             Illegal argument \"?\"\n",
        );
        fails(
            &["--help=x"],
            1,
            "./memcached: option '--help' doesn't allow an argument\nIllegal argument \"?\"\n",
        );
        fails(
            &["--port"],
            1,
            "./memcached: option '--port' requires an argument\nIllegal argument \"?\"\n",
        );
    }

    #[test]
    fn option_value_errors() {
        fails(
            &["-c", "0"],
            1,
            "Maximum connections must be greater than 0\n",
        );
        fails(
            &["-R", "-1"],
            1,
            "Number of requests per event must be greater than 0\n",
        );
        fails(&["-f", "1"], 1, "Factor must be greater than 1\n");
        fails(&["-f", "x"], 1, "Factor must be greater than 1\n");
        fails(&["-n", "0"], 1, "Chunk size must be greater than 0\n");
        fails(
            &["-t", "0"],
            1,
            "Number of threads must be greater than 0\n",
        );
        fails(&["-D", " "], 1, "No delimiter specified\n");
        fails(
            &["-N", "0"],
            1,
            "Maximum number of NAPI IDs must be greater than 0\n",
        );
        fails(
            &["-B", "foo"],
            EX_USAGE,
            "Invalid value for binding protocol: foo\n -- should be one of auto, binary, or ascii\n",
        );
        fails(
            &["-Z", "-p", "0"],
            EX_USAGE,
            "ERROR: You cannot enable SSL without a TCP port.\n",
        );
        fails(
            &["-o", "ssl_chain_cert"],
            1,
            "Missing ssl_chain_cert argument\n",
        );
        fails(
            &["-o", "ssl_verify_mode=x"],
            1,
            "could not parse argument to ssl_verify_mode\n",
        );
        fails(
            &["-o", "ssl_verify_mode=4"],
            1,
            "Invalid ssl_verify_mode. Use help to see valid options.\n",
        );
        fails(
            &["-o", "ssl_min_version=9"],
            1,
            "Invalid ssl_min_version. Use help to see valid options.\n",
        );
        fails(
            &["-o", "ssl_wbuf_size=1k"],
            1,
            "could not parse argument to ssl_wbuf_size\n",
        );
        fails(
            &["-S", "-B", "ascii"],
            EX_USAGE,
            "ERROR: You cannot allow the ASCII protocol while using SASL.\n",
        );
        fails(
            &["--enable-sasl", "-B", "auto"],
            EX_USAGE,
            "ERROR: You cannot allow the ASCII protocol while using SASL.\n",
        );
        fails(
            &["-S", "-U", "11211"],
            EX_USAGE,
            "ERROR: Cannot enable UDP while using binary SASL authentication.\n",
        );
    }

    #[test]
    fn ssl_options_as_c_stores_them() {
        let s = ok(&[
            "-Z",
            "-o",
            "ssl_verify_mode=3,ssl_min_version=3,ssl_wbuf_size=32,ssl_session_cache,ssl_keyformat=2",
        ]);
        assert!(s.ssl_enabled && s.ssl_session_cache && !s.ssl_kernel_tls);
        assert_eq!((s.ssl_verify_mode, s.ssl_keyformat), (7, 2));
        assert_eq!(ssl_proto_text(s.ssl_min_version), "tlsv1.3");
        assert_eq!(s.ssl_wbuf_size, 32 * 1024);
        assert_eq!(ssl_proto_text(ok(&[]).ssl_min_version), "tlsv1.2");
    }

    #[test]
    fn many_threads_warn_but_continue() {
        let (r, _, err) = run(&["-t", "65", "-N", "70"]);
        assert_eq!(r.err(), Some(EX_USAGE));
        assert_eq!(
            err,
            "WARNING: Setting a high number of workerthreads is not recommended.\n \
             Set this value to the number of cores in your machine or less.\n\
             Number of napi_ids(70) cannot be greater than number of threads(65)\n"
        );
    }

    #[test]
    fn not_yet_built_options_are_refused() {
        assert_eq!(ok(&["-e", "/tmp/x"]).memory_file.as_deref(), Some("/tmp/x"));
        assert!(ok(&["--memory-file=/tmp/x"]).preallocate);
        assert!(ok(&["-o", "no_drop_privileges,drop_privileges"]).drop_privileges);
        assert!(!ok(&["-o", "drop_privileges,no_drop_privileges"]).drop_privileges);
    }

    #[test]
    fn absent_subsystem_suboptions_are_illegal() {
        // Unknown to main's list, the token goes to extstore's reader, which names it alone
        // on stderr (a C build with extstore).
        for (opt, quoted) in [
            ("proxy_config=x", "proxy_config=x"),
            ("ext_bogus=1", "ext_bogus=1"),
            ("bogus", "bogus"),
            ("maxconns_fast,bogus,no_modern", "bogus"),
            (",a", ""),
        ] {
            let (r, out, err) = run(&["-o", opt]);
            assert_eq!(r.err(), Some(1), "{opt}");
            assert_eq!(out, "");
            assert_eq!(err, format!("Illegal suboption \"{quoted}\"\n"));
        }
        let relaxed = run(&["-o", "relaxed_privileges"]);
        if cfg!(feature = "debug-commands") {
            assert!(relaxed.0.unwrap().relaxed_privileges);
        } else {
            assert_eq!(relaxed.2, "Illegal suboption \"relaxed_privileges\"\n");
        }
    }

    #[test]
    fn suboptions_are_stored() {
        let s = ok(&[
            "-o",
            " hashpower=20,no_hashexpand,slab_automove,lru_crawler_sleep=0,lru_crawler_tocrawl=4294967297",
            "-o",
            "hot_max_factor=inf,warm_max_factor=1e1,slab_automove_ratio=1,modern,inline_ascii_resp,\
             no_inline_ascii_resp,slab_automove_window=3,lru_maintainer,no_slab_automove,sock_cookie_id=x,",
        ]);
        assert_eq!(s.hashpower_init, 20);
        assert!(!s.start_assoc_maint);
        assert_eq!(s.lru_crawler_sleep.load(Relaxed), 0);
        assert_eq!(s.lru_crawler_tocrawl.load(Relaxed), 1);
        assert!(s.hot_max_factor.load().is_infinite());
        assert_eq!(s.warm_max_factor.load(), 10.0);
        assert_eq!(s.slab_automove_ratio.load(), 1.0);
        assert_eq!(s.slab_automove_window.load(Relaxed), 3);
        assert_eq!(s.slab_automove.load(Relaxed), 0);
        assert_eq!(s.sock_cookie_id, 0);
        let s = ok(&["-o", "hash_algorithm=jenkins,temporary_ttl=-1"]);
        assert_eq!(s.hash_algorithm, HashAlgorithm::Jenkins);
        assert_eq!(s.temporary_ttl.load(Relaxed), u32::MAX);
        assert!(s.temp_lru.load(Relaxed));
        assert_eq!(ok(&["-o", "no_chunked_items"]).slab_chunk_size_max, 1 << 20);
        let (r, _, err) = run(&["-o", "resp_obj_mem_limit"]);
        assert!(r.is_ok());
        assert_eq!(
            err,
            "DEPRECATED: resp_obj_mem_limit no longer used. See read_buf_mem_limit,\n"
        );
    }

    #[test]
    fn suboption_errors() {
        let cases: &[(&str, &str)] = &[
            ("hashpower", "Missing numeric argument for hashpower\n"),
            (
                "hashpower=11",
                "Initial hashtable multiplier of 11 is too low\n",
            ),
            (
                "hashpower=33",
                "Initial hashtable multiplier of 33 is too high\n\
                 Choose a value based on \"STAT hash_power_level\" from a running instance\n",
            ),
            ("slab_automove=3", "slab_automove must be between 0 and 2\n"),
            (
                "slab_automove_ratio",
                "Missing slab_automove_ratio argument\n",
            ),
            (
                "slab_automove_ratio=0",
                "slab_automove_ratio must be > 0 and < 1\n",
            ),
            (
                "slab_automove_ratio=1.5",
                "slab_automove_ratio must be > 0 and < 1\n",
            ),
            (
                "slab_automove_window",
                "Missing slab_automove_window argument\n",
            ),
            (
                "slab_automove_window=-1",
                "slab_automove_window must be > 2 and < 1800\n",
            ),
            (
                "slab_automove_window=1801",
                "slab_automove_window must be > 2 and < 1800\n",
            ),
            (
                "tail_repair_time",
                "Missing numeric argument for tail_repair_time\n",
            ),
            (
                "tail_repair_time=9",
                "Cannot set tail_repair_time to less than 10 seconds\n",
            ),
            ("hash_algorithm", "Missing hash_algorithm argument\n"),
            (
                "hash_algorithm=md5",
                "Unknown hash_algorithm option (jenkins, murmur3, xxh3)\n",
            ),
            ("lru_crawler_sleep", "Missing lru_crawler_sleep value\n"),
            (
                "lru_crawler_sleep=1000001",
                "LRU crawler sleep must be between 0 and 1 second\n",
            ),
            (
                "lru_crawler_sleep=-1",
                "LRU crawler sleep must be between 0 and 1 second\n",
            ),
            ("lru_crawler_tocrawl", "Missing lru_crawler_tocrawl value\n"),
            (
                "lru_crawler_tocrawl=-1",
                "lru_crawler_tocrawl takes a numeric 32bit value\n",
            ),
            ("hot_lru_pct", "Missing hot_lru_pct argument\n"),
            ("hot_lru_pct=0", "hot_lru_pct must be > 1 and < 80\n"),
            ("warm_lru_pct=80", "warm_lru_pct must be > 1 and < 80\n"),
            ("warm_lru_pct", "Missing warm_lru_pct argument\n"),
            ("hot_max_factor", "Missing hot_max_factor argument\n"),
            ("hot_max_factor=0", "hot_max_factor must be > 0\n"),
            ("warm_max_factor=-1", "warm_max_factor must be > 0\n"),
            ("warm_max_factor", "Missing warm_max_factor argument\n"),
            ("temporary_ttl", "Missing temporary_ttl argument\n"),
            (
                "idle_timeout",
                "Missing numeric argument for idle_timeout\n",
            ),
            (
                "watcher_logbuf_size",
                "Missing watcher_logbuf_size argument\n",
            ),
            (
                "watcher_logbuf_size=x",
                "could not parse argument to watcher_logbuf_size\n",
            ),
            (
                "worker_logbuf_size",
                "Missing worker_logbuf_size argument\n",
            ),
            (
                "worker_logbuf_size=1k",
                "could not parse argument to worker_logbuf_size\n",
            ),
            ("slab_chunk_max", "Missing slab_chunk_max argument\n"),
            (
                "slab_chunk_max=x",
                "could not parse argument to slab_chunk_max\n",
            ),
            ("slab_chunk_max=0", "slab_chunk_max must be >= 0\n"),
            (
                "slab_chunk_max=2000",
                "slab_chunk_max must be specified in kilobytes.\n",
            ),
            (
                "read_buf_mem_limit",
                "Missing read_buf_mem_limit argument\n",
            ),
            (
                "read_buf_mem_limit=-5",
                "could not parse argument to read_buf_mem_limit\n",
            ),
            ("slab_sizes", "Missing slab_sizes argument\n"),
            ("sock_cookie_id", "Missing sock_cookie_id argument\n"),
        ];
        for (opt, msg) in cases {
            fails(&["-o", opt], 1, msg);
        }
    }

    #[test]
    fn checks_after_the_option_loop() {
        let cases: &[(&[&str], &str)] = &[
            (&["-N", "5"], "Number of napi_ids(5) cannot be greater than number of threads(4)\n"),
            (&["-I", "1000"], "Item max size cannot be less than 1024 bytes.\n"),
            (&["-I", "4096m"], "Item max size cannot be less than 1024 bytes.\n"),
            (&["-I", "2049m"], "Item max size cannot be less than 1024 bytes.\n"),
            (&["-I", ""], "Item max size cannot be less than 1024 bytes.\n"),
            (&["-I", "1025m"], "Cannot set item size limit higher than 1/2 of memory max.\n"),
            (&["-m", "1", "-I", "1m"], "Cannot set item size limit higher than 1/2 of memory max.\n"),
            (&["-m", "4096", "-I", "1025m"], "Cannot set item size limit higher than a gigabyte.\n"),
            (
                &["-o", "slab_chunk_max=1024", "-I", "512k"],
                "slab_chunk_max (bytes: 1048576) cannot be larger than -I (item_size_max 524288)\n",
            ),
            (
                &["-I", "1000k"],
                "-I (item_size_max: 1024000) must be evenly divisible by slab_chunk_max (bytes: 524288)\n",
            ),
            (
                &["-o", "slab_chunk_max=3"],
                "-I (item_size_max: 1048576) must be evenly divisible by slab_chunk_max (bytes: 3072)\n",
            ),
            (
                &["-I", "3m", "-o", "slab_chunk_max=768"],
                "slab_chunk_max (bytes: 786432) must divide evenly into 1048576 (slab_page_size)\n",
            ),
            (&["-o", "slab_sizes="], ""),
            (&["-o", "slab_sizes=10-20"], "slab size 10 is out of valid range\n"),
            (&["-o", "slab_sizes=abc"], "slab size 0 is out of valid range\n"),
            (&["-o", "slab_sizes=100-600000"], "slab size 600000 is out of valid range\n"),
            (
                &["-o", "slab_sizes=100-90"],
                "slab size 90 cannot be lower than or equal to a previous class size\n",
            ),
            (
                &["-o", "slab_sizes=100-108"],
                "slab size 108 must be at least 8 bytes larger than previous class\n",
            ),
            (
                &["-o", "hot_lru_pct=50,warm_lru_pct=40"],
                "hot_lru_pct + warm_lru_pct cannot be more than 80% combined\n",
            ),
            (
                &["-o", "temporary_ttl=5,no_lru_maintainer"],
                "temporary_ttl requires lru_maintainer to be enabled\n",
            ),
            (&["-p", "70000"], "ERROR: Invalid port number 70000.\n"),
            (&["-U", "70000"], "ERROR: Invalid port number 70000.\n"),
        ];
        for (args, msg) in cases {
            fails(args, EX_USAGE, msg);
        }
        let many: Vec<String> = (1..=63).map(|i| (100 + i * 16).to_string()).collect();
        let spec = format!("slab_sizes={}", many.join("-"));
        fails(
            &["-o", &spec],
            EX_USAGE,
            "too many slab classes specified\n",
        );
    }

    #[test]
    fn post_processing() {
        // Only -U given: the TCP port follows it.
        let s = ok(&["-U", "5000"]);
        assert_eq!((s.port, s.udpport), (5000, 5000));
        let s = ok(&["-U", "5000", "-p", "6000"]);
        assert_eq!(s.port, 6000);
        // Items over 1MB reset the chunk max unless slab_chunk_max was given.
        let s = ok(&["-I", "2m", "-o", "no_chunked_items"]);
        assert_eq!(s.slab_chunk_size_max, 512 * 1024);
        let s = ok(&["-I", "2m", "-o", "slab_chunk_max=64"]);
        assert_eq!(s.slab_chunk_size_max, 64 * 1024);
        // no_modern keeps an explicit chunk max.
        let s = ok(&["-o", "slab_chunk_max=256,no_modern"]);
        assert_eq!(s.slab_chunk_size_max, 256 * 1024);
        // -Y makes the default protocol ascii and refuses any other.
        let s = ok(&["-Y", "/x"]);
        assert_eq!(s.auth_file.as_deref(), Some("/x"));
        assert_eq!(s.binding_protocol, Protocol::Ascii);
        assert!(parse_args(&["memcached", "-Y", "/x", "-B", "auto"].map(String::from)).is_err());
        // Duplicate and contained listeners are not repeated.
        let s = ok(&["-l", "127.0.0.10", "-l", "127.0.0.1", "-l", "10.0.0.1"]);
        assert_eq!(s.inter.as_deref(), Some("127.0.0.10,10.0.0.1"));
        assert_eq!(s.num_threads_per_udp, 1);
        // Whitespace before an option argument is dropped.
        assert_eq!(ok(&["-p", "  99"]).port, 99);
        let s = ok(&["-f", "1.5"]);
        assert_eq!(s.slab_config, "1.5");
        let s = ok(&["-m", "-1", "-D", "é"]);
        assert_eq!(s.maxbytes.load(Relaxed), 0xFFFF_FFFF_FFF0_0000);
        assert_eq!(s.prefix_delimiter, 0xC3);
        assert!(s.detail_enabled.load(Relaxed));
        let s = ok(&["-o", "track_sizes", "-I", "2m"]);
        assert!(s.track_sizes.load(Relaxed));
        assert_eq!(s.track_sizes_item_size_max, 1 << 20);
    }

    #[test]
    fn extstore_suboptions_are_read_as_c_reads_them() {
        let s = ok(&[
            "-o",
            "ext_item_size=100,ext_item_age=5,ext_low_ttl=3,ext_recache_rate=7,ext_wbuf_size=8,\
             ext_compact_under=2,ext_drop_under=1,ext_max_sleep=9,ext_max_frag=0.5,\
             ext_drop_unread,slab_automove_freeratio=0.02,ext_threads=4,ext_page_size=16",
        ]);
        let text = stats(&s);
        for line in [
            "STAT drop_privileges no\r\nSTAT ext_item_size 100\r\nSTAT ext_item_age 5\r\n",
            "STAT ext_low_ttl 3\r\nSTAT ext_recache_rate 7\r\nSTAT ext_wbuf_size 8388608\r\n",
            "STAT ext_compact_under 2\r\nSTAT ext_drop_under 1\r\nSTAT ext_max_sleep 9\r\n",
            "STAT ext_max_frag 0.50\r\nSTAT slab_automove_freeratio 0.020\r\n",
            "STAT ext_drop_unread yes\r\nSTAT ssl_enabled no\r\n",
        ] {
            assert!(text.contains(line), "{line}");
        }
        assert_eq!((s.ext.io_threadcount, s.ext.page_size), (4, 16 << 20));
        assert!(!s.ext_enabled);
        fails(&["-o", "ext_threads"], 1, "Missing ext_threads argument\n");
        fails(
            &["-o", "ext_max_frag=x"],
            1,
            "could not parse argument to ext_max_frag\n",
        );
        let on = ok(&[
            "-U",
            "0",
            "-o",
            "ext_path=/tmp/x:1G,ext_path=/tmp/y:64m:compact",
        ]);
        assert!(on.ext_enabled);
        assert_eq!(on.ext.paths[0].file, "/tmp/y");
        assert_eq!(
            (on.ext.paths[0].page_count, on.ext.paths[1].page_count),
            (1, 16)
        );
        // 1% of the last path's pages, at least one.
        assert_eq!(on.ext_rt.compact_under.load(Relaxed), 1);
        fails(
            &["-U", "11211", "-o", "ext_path=/tmp/x:1G"],
            64,
            "Cannot use UDP with extstore enabled (-U 0 to disable)\n",
        );
        fails(
            &["-U", "0", "-o", "ext_path=/tmp/x:0m"],
            64,
            "supplied ext_path has zero size, cannot use\n",
        );
        fails(
            &["-c", "0", "-o", "ext_path=/tmp/x:1G"],
            1,
            "Maximum connections must be greater than 0\n",
        );
    }

    #[test]
    fn metrics_listen_is_ours_and_checked() {
        let s = ok(&["-o", "metrics_listen=127.0.0.1:9150"]);
        assert_eq!(s.metrics_listen.as_deref(), Some("127.0.0.1:9150"));
        assert!(!stats(&s).contains("metrics"), "stats settings unchanged");
        assert_eq!(ok(&[]).metrics_listen, None);
        fails(
            &["-o", "metrics_listen"],
            1,
            "Missing metrics_listen argument\n",
        );
        fails(
            &["-o", "metrics_listen=9150"],
            1,
            "metrics_listen: expected ADDR:PORT, got '9150'\n",
        );
    }

    #[test]
    fn not_yet_built_list_names_known_options() {
        for entry in NOT_YET_BUILT {
            match entry.option {
                OptionName::Short(c) => assert!(SHORTOPTS.contains(&c)),
                OptionName::Sub(name) => assert!(lookup_subopt(name.as_bytes()).is_some()),
            }
            assert!(entry.message.starts_with("memcached: "));
        }
    }

    #[test]
    fn atomic_f64_round_trips() {
        let a = AtomicF64::new(0.8);
        assert_eq!(a.load(), 0.8);
        a.store(-2.5);
        assert_eq!(a.load(), -2.5);
    }
}
