//! memcached, ported to Rust: a drop-in replacement for the C memcached 1.6.45 server.
//! doc/architecture.md maps each module to its C counterpart and to the threads that run it.

pub mod settings;
