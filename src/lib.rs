//! memcached, ported to Rust: a drop-in replacement for the C memcached 1.6.45 server.
//! doc/architecture.md maps each module to its C counterpart and to the threads that run it.

pub mod assoc;
pub mod authfile;
pub mod base64;
pub mod conn;
pub mod crawler;
pub mod crc32c;
pub mod daemon;
pub mod event;
pub mod evhttp;
pub mod extstore;
pub mod hash;
pub mod hooks;
pub mod items;
pub mod lent;
pub mod logger;
pub mod lru_maintainer;
pub mod metrics;
pub mod privileges;
pub mod proto;
pub mod report;
pub mod restart;
pub mod sasl;
pub mod server;
pub mod settings;
pub mod slab_automove;
pub mod slab_automove_extstore;
pub mod slabs;
pub mod slabs_mover;
pub mod stats;
pub mod storage;
pub mod sys;
pub mod thread;
pub mod tls;

/// The version this server reports (`version`, `stats`, `-V`).
pub const VERSION: &str = "1.6.45";
