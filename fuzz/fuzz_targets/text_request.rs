//! The text protocol's request-line parser on arbitrary bytes: classify, tokenize, and read
//! every token and number the handlers read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached::proto::tokenizer::{
    find_byte, lookup_key, parse_request, tok_to_i32, tok_to_u64, Tokens,
};

fuzz_target!(|data: &[u8]| {
    // A line as the connection frames it: up to and including the first "\n".
    let mut line = data.to_vec();
    match line.iter().position(|&b| b == b'\n') {
        Some(p) => line.truncate(p + 1),
        None => line.push(b'\n'),
    }
    let (_parsed, req) = parse_request(&line);
    let t = &req.tokens;
    for i in 0..=t.ntokens + 1 {
        if let Some(tok) = t.get(&line, i) {
            assert!(tok.len() <= line.len());
            let _ = tok_to_u64(tok);
            let _ = tok_to_i32(tok);
            let _ = memcached::settings::cnum::safe_strtoul(tok);
            let _ = memcached::settings::cnum::safe_strtod(tok);
        }
        let _ = t.get_u32(&line, i);
        let _ = t.get_i32(&line, i);
        let _ = t.offset(i);
    }
    let _ = t.end_offset();
    let _ = Tokens::tokenize(&line, 2);
    // The prefetch hint is a slice of the line; the search agrees with a plain scan.
    if let Some(key) = lookup_key(&line) {
        assert!(!key.is_empty() && key.len() <= 250);
        let at = key.as_ptr() as usize - line.as_ptr() as usize;
        assert!(at + key.len() <= line.len());
    }
    for from in [0, 1, 7, 16, line.len() / 2] {
        let want = line
            .get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b' '))
            .map_or(line.len(), |p| p + from);
        assert_eq!(find_byte(&line, from, b' '), want);
    }
});
