//! Parsing and execution on their own, with no socket: the text request parser, meta flag
//! parsing, the binary header checks, get/set run through an in-memory session against
//! the store, and the checksum of a flash read. `cargo bench --bench protocol` prints nanoseconds per operation (the median of
//! several timed runs); bench/RESULTS.md keeps the figures.

use memcached::proto::binary::{classify, decode_header};
use memcached::proto::mem_session::{init_server, MemSession};
use memcached::proto::meta::{parse_flags, BinKey};
use memcached::proto::tokenizer::{parse_request, Tokens};
use memcached::stats::Clock;
use std::hint::black_box;
use std::time::Instant;

/// Runs `f` `iters` times per sample, for several samples; returns the median ns per call.
fn time(iters: u64, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..9)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn report(name: &str, ns: f64) {
    println!("{name:<40} {ns:>9.1} ns/op");
}

fn main() {
    init_server(&["-m", "64"]);
    const N: u64 = 200_000;

    for line in [
        &b"get user:1234567890\r\n"[..],
        b"get k1 k2 k3 k4 k5 k6 k7 k8 k9 k10\r\n",
        b"set user:1234567890 0 0 100 noreply\r\n",
        b"mg user:1234567890 v c f t k O123\r\n",
    ] {
        let shown = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        report(
            &format!("parse  {}", &shown[..shown.len().min(31)]),
            time(N, || {
                black_box(parse_request(black_box(line)));
            }),
        );
    }

    let clock = Clock {
        now: 1000,
        process_started: 1_700_000_000,
    };
    let mg = b"mg user:1234567890 v c f t k N30 T60 O123\r\n";
    let t = Tokens::tokenize(mg, 2).expect("tokens");
    report(
        "meta flags  mg v c f t k N30 T60 O123",
        time(N, || {
            let mut binkey = BinKey::new();
            let f = parse_flags(black_box(mg), &t, 2, &mut binkey, &clock);
            black_box(f.is_ok());
        }),
    );

    // The key hashes (`-o hash_algorithm`), on a typical key and a longest one.
    for (name, f) in [
        ("murmur3", memcached::hash::murmur3_32 as fn(&[u8]) -> u32),
        ("jenkins", memcached::hash::jenkins_32),
        ("xxh3", memcached::hash::xxh3_32),
    ] {
        for len in [24usize, 250] {
            let key: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            report(
                &format!("hash  {name} {len}-byte key"),
                time(N * 5, || {
                    black_box(f(black_box(&key)));
                }),
            );
        }
    }

    let mut get = vec![0x80, 0x0c, 0, 16, 0, 0, 0, 0, 0, 0, 0, 16];
    get.extend_from_slice(&[0; 12]);
    get.extend_from_slice(b"user:1234567890x");
    report(
        "binary header  GETK",
        time(N, || {
            if let Some(mut h) = decode_header(black_box(&get)) {
                black_box(classify(&mut h));
            }
        }),
    );

    let mut s = MemSession::new();
    let value = [b'v'; 100];
    let mut set = b"set user:1234567890 0 0 100\r\n".to_vec();
    set.extend_from_slice(&value);
    set.extend_from_slice(b"\r\n");
    report(
        "execute  set 100 B",
        time(N, || {
            s.feed(black_box(&set));
            s.out.clear();
        }),
    );
    report(
        "execute  get hit 100 B",
        time(N, || {
            s.feed(black_box(b"get user:1234567890\r\n"));
            s.out.clear();
        }),
    );
    report(
        "execute  get miss",
        time(N, || {
            s.feed(black_box(b"get nosuchkey\r\n"));
            s.out.clear();
        }),
    );
    report(
        "execute  mg hit v c f",
        time(N, || {
            s.feed(black_box(b"mg user:1234567890 v c f\r\n"));
            s.out.clear();
        }),
    );
    let mut bset = vec![0x81u8; 0];
    bset.extend_from_slice(&[0x80, 0x01, 0, 15, 8, 0, 0, 0, 0, 0, 0, 123]);
    bset.extend_from_slice(&[0; 12]);
    bset.extend_from_slice(&[0; 8]);
    bset.extend_from_slice(b"user:1234567890");
    bset.extend_from_slice(&value);
    report(
        "execute  binary set 100 B",
        time(N, || {
            s.feed(black_box(&bset));
            s.out.clear();
        }),
    );

    // The checksum of a flash read: a 4 KiB value with its item header, and a 64 KiB one.
    for len in [4096 + 48, 65536 + 48] {
        let data: Vec<u8> = (0..len as u32).map(|i| (i * 31) as u8).collect();
        report(
            &format!("crc32c  {len} B"),
            time(N / 10, || {
                black_box(memcached::crc32c::crc32c(0, black_box(&data)));
            }),
        );
    }
}
