//! What a command may ask of the layers above the protocol code: the `stats` reports that
//! read every layer, and a stop of the server. The server registers them at start-up (C
//! calls these directly; here the lower layer reaches up through function pointers). Until
//! then (unit tests, fuzzing) the reports are empty and a stop does nothing.

use crate::stats::StatSink;
use std::sync::OnceLock;

/// The server's answers to `stats`, `stats items|slabs|sizes`, `stats conns`, `stats reset`
/// and `shutdown`.
pub struct ServerHooks {
    /// `stats` with no argument.
    pub general: fn(&mut dyn StatSink),
    /// `stats items|slabs|sizes` by exact name; false for any other name.
    pub engine: fn(&[u8], &mut dyn StatSink) -> bool,
    /// `stats reset`.
    pub reset: fn(),
    /// `stats conns`.
    pub conns: fn(&mut dyn StatSink),
    /// `shutdown [graceful]`: asks the main loop to stop.
    pub stop: fn(graceful: bool),
}

static HOOKS: OnceLock<ServerHooks> = OnceLock::new();

const NONE: ServerHooks = ServerHooks {
    general: |_| {},
    engine: |_, _| false,
    reset: || {},
    conns: |_| {},
    stop: |_| {},
};

/// Registers the server's hooks (once, at start-up).
pub fn register(h: ServerHooks) {
    let _ = HOOKS.set(h);
}

/// The registered hooks.
#[inline]
pub fn get() -> &'static ServerHooks {
    HOOKS.get().unwrap_or(&NONE)
}
