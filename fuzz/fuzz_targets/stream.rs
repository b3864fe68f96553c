//! Arbitrary byte streams through parsing and execution: text, meta and binary requests run
//! against the process's store by an in-memory session (no socket), split into reads at
//! arbitrary points, as a client's bytes may arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached::proto::mem_session::{init_server, MemSession};

fuzz_target!(|data: &[u8]| {
    init_server(&["-m", "8", "-o", "no_lru_crawler,no_lru_maintainer,no_slab_reassign"]);
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let mut s = MemSession::new();
    let mut pending: Vec<u8> = Vec::new();
    for piece in data.chunks(step) {
        pending.extend_from_slice(piece);
        let left = s.feed(&pending).len();
        pending.drain(..pending.len() - left);
        s.out.clear();
        if s.closed() {
            break;
        }
    }
    // `verbosity` is process-wide: leave none for the next input.
    memcached::settings::set_verbose(0);
});
