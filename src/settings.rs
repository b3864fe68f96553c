//! Settings: command-line parsing (`-h`, every flag of memcached 1.6.45), validation, and the
//! `stats settings` report. Read-only after start-up except the fields held in atomics.
//!
//! STUB: the interface below is what the rest of the server uses; the full parser replaces it.

use std::sync::atomic::AtomicI32;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ascii,
    Binary,
    Negotiating,
}

#[derive(Debug)]
pub struct Settings {
    pub maxbytes: u64,
    pub maxconns: i32,
    pub port: i32,
    pub udpport: i32,
    pub inter: Option<String>,
    pub verbose: AtomicI32,
    pub socketpath: Option<String>,
    pub access: u32,
    pub num_threads: i32,
    pub reqs_per_event: i32,
    pub use_cas: bool,
    pub binding_protocol: Protocol,
    pub backlog: i32,
    pub item_size_max: i32,
    pub maxconns_fast: bool,
    pub shutdown_command: bool,
    pub idle_timeout: i32,
    // process options (C keeps these as locals of main)
    pub do_daemonize: bool,
    pub maxcore: bool,
    pub username: Option<String>,
    pub pid_file: Option<String>,
    pub lock_memory: bool,
}

static GLOBAL: OnceLock<Settings> = OnceLock::new();

/// Installs the settings for the life of the process. Called once by main.
pub fn init_global(s: Settings) {
    let _ = GLOBAL.set(s);
}

/// The process-wide settings. Panics only if called before `init_global` (a programming error).
pub fn get() -> &'static Settings {
    GLOBAL.get().expect("settings used before init")
}

/// Parses argv (argv[0] included). On `-h`, `-V`, `-i` or a bad value it prints what C prints
/// and returns Err(exit status).
pub fn parse_args(_argv: &[String]) -> Result<Settings, i32> {
    Ok(Settings {
        maxbytes: 64 * 1024 * 1024,
        maxconns: 1024,
        port: 11211,
        udpport: 0,
        inter: None,
        verbose: AtomicI32::new(0),
        socketpath: None,
        access: 0o700,
        num_threads: 4,
        reqs_per_event: 20,
        use_cas: true,
        binding_protocol: Protocol::Negotiating,
        backlog: 1024,
        item_size_max: 1024 * 1024,
        maxconns_fast: true,
        shutdown_command: false,
        idle_timeout: 0,
        do_daemonize: false,
        maxcore: false,
        username: None,
        pid_file: None,
        lock_memory: false,
    })
}

/// Appends `STAT name value\r\n` lines for `stats settings`, in C's order (without END).
pub fn write_stats_settings(_out: &mut Vec<u8>) {}
