//! Meta flag parsing (mg/ms/md/ma) on arbitrary request lines, with the clock passed in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached::proto::meta::{parse_flags, BinKey, KEY_MAX_LENGTH};
use memcached::proto::tokenizer::Tokens;
use memcached::stats::Clock;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let clock = Clock {
        now: u32::from(first) * 1000,
        process_started: 1_700_000_000,
    };
    let mut line = rest.to_vec();
    match line.iter().position(|&b| b == b'\n') {
        Some(p) => line.truncate(p + 1),
        None => line.push(b'\n'),
    }
    // ms has its length at token 2, so its flags start at 3.
    for start in [2, 3] {
        let Ok(t) = Tokens::tokenize(&line, start) else {
            continue;
        };
        let mut binkey = BinKey::new();
        if let Ok(f) = parse_flags(&line, &t, start, &mut binkey, &clock) {
            let key = f.key(&line, &t, &binkey);
            assert!(key.len() <= KEY_MAX_LENGTH);
        }
    }
});
