//! Binary protocol framing on arbitrary bytes: header decode, the length checks that decide
//! what a request is, and where its key and value would sit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memcached::proto::binary::{classify, decode_header, Verdict, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Some(mut h) = decode_header(data) else {
        return;
    };
    let need = h.head_len();
    assert!(need >= HEADER_LEN);
    if classify(&mut h) == Verdict::Run {
        // A request that runs has its key and extras inside its body.
        let body = h.bodylen as usize;
        assert!(h.keylen as usize + h.extlen as usize <= body);
        assert!(h.keylen <= 250);
        if data.len() >= need {
            let key = &data[HEADER_LEN + h.extlen as usize..need];
            assert_eq!(key.len(), h.keylen as usize);
        }
    }
});
