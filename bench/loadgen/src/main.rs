//! memcached-loadgen: a closed-loop load generator for the two bench/run workloads memcaslap
//! cannot produce: meta-protocol gets (`mg <key> v f t`), deep pipelines (D gets sent in
//! one write) and TLS. Each client thread drives its share of the connections with
//! non-blocking sockets and poll(2), declared here by hand because std has no wrapper for it.
//!
//! It preloads `--keys` keys, then for `--duration` seconds every connection writes `--depth`
//! requests at once, waits for all their replies, and writes the next batch. A request's
//! latency runs from the batch's write to the read that completed its reply. The output's
//! "Run time:" and "Latency us:" lines are what bench/report.py reads.
//!
//! `--tls` speaks TLS (the openssl crate over Debian's libssl), for the TLS workload.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::io::{AsRawFd, RawFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "\
usage: memcached-loadgen [options]
  --server HOST:PORT   the server (default 127.0.0.1:11211)
  --cmd get|mg         request type (default get); mg sends `mg <key> <mg-flags>`
  --mg-flags FLAGS     flags of each mg request (default \"v f t\")
  --depth D            requests written at once per connection, all replies awaited before
                       the next write (default 1: one request in flight per connection)
  --conns C            connections in all (default 32)
  --threads T          client threads; connections are spread over them (default 2)
  --duration SECS      seconds of load after the preload (default 10)
  --ops N              stop after N requests in all (rounded down to a multiple of
                       --depth), or after --duration if that comes first, so that two
                       servers can be compared on exactly the same work
  --keys N             distinct keys, all preloaded and then read uniformly (default 100000)
  --value-size BYTES   value size of the preloaded keys (default 64)
  --no-preload         skip the preload (the keys are already there)
  --tls                connect with TLS (no certificate checks)
";

struct Opts {
    server: String,
    cmd: Cmd,
    mg_flags: String,
    depth: usize,
    conns: usize,
    threads: usize,
    duration: f64,
    ops: Option<u64>,
    keys: u64,
    value_size: usize,
    preload: bool,
    tls: bool,
}

/// A connection to the server, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
}

impl Stream {
    /// Connects (blocking); `nonblocking` is set once the TLS handshake is done.
    fn connect(server: &str, tls: bool, nonblocking: bool) -> Result<Stream, String> {
        let tcp = TcpStream::connect(server).map_err(|e| format!("connect {server}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let s = if tls {
            use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
            let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
            b.set_verify(SslVerifyMode::NONE);
            let cfg = b.build().configure().map_err(|e| e.to_string())?;
            let s = cfg
                .verify_hostname(false)
                .use_server_name_indication(false)
                .connect("localhost", tcp)
                .map_err(|e| format!("TLS handshake with {server}: {e}"))?;
            Stream::Tls(Box::new(s))
        } else {
            Stream::Plain(tcp)
        };
        if nonblocking {
            s.tcp().set_nonblocking(true).map_err(|e| e.to_string())?;
        }
        Ok(s)
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(t) => t,
            Stream::Tls(s) => s.get_ref(),
        }
    }

    fn raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Cmd {
    Get,
    Mg,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        server: "127.0.0.1:11211".into(),
        cmd: Cmd::Get,
        mg_flags: "v f t".into(),
        depth: 1,
        conns: 32,
        threads: 2,
        duration: 10.0,
        ops: None,
        keys: 100_000,
        value_size: 64,
        preload: true,
        tls: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            return Err(String::new());
        }
        if a == "--no-preload" {
            o.preload = false;
            continue;
        }
        if a == "--tls" {
            o.tls = true;
            continue;
        }
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        let num = |v: &str| -> Result<u64, String> {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("{a}: '{v}' is not a positive integer")),
            }
        };
        match a.as_str() {
            "--server" => o.server = v,
            "--cmd" => {
                o.cmd = match v.as_str() {
                    "get" => Cmd::Get,
                    "mg" => Cmd::Mg,
                    _ => return Err(format!("--cmd: '{v}' is neither get nor mg")),
                }
            }
            "--mg-flags" => o.mg_flags = v,
            "--depth" => o.depth = num(&v)? as usize,
            "--conns" => o.conns = num(&v)? as usize,
            "--threads" => o.threads = num(&v)? as usize,
            "--duration" => {
                o.duration = match v.trim_end_matches('s').parse::<f64>() {
                    Ok(d) if d > 0.0 => d,
                    _ => return Err(format!("--duration: '{v}' is not a positive number")),
                }
            }
            "--ops" => o.ops = Some(num(&v)?),
            "--keys" => o.keys = num(&v)?,
            "--value-size" => o.value_size = num(&v)? as usize,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    o.threads = o.threads.min(o.conns);
    Ok(o)
}

// ---- latency histogram ------------------------------------------------------------------

// Log-linear buckets over nanoseconds, as in HDR histograms: every power of two is split
// into 32 equal sub-buckets, so a bucket's width is at most 1/32 of its values (about 3%),
// whatever the magnitude, in a fixed 1920-slot array that threads merge by addition.
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let k = 63 - v.leading_zeros();
        let sub = (v >> (k - SUB_BITS)) - SUB;
        ((k - SUB_BITS + 1) as u64 * SUB + sub) as usize
    }

    // Smallest value that falls into bucket i.
    fn lower(i: usize) -> u64 {
        let i = i as u64;
        if i < SUB {
            return i;
        }
        let group = i / SUB;
        (SUB + i % SUB) << (group - 1)
    }

    fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.sum_ns += ns as u128;
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.total += o.total;
        self.sum_ns += o.sum_ns;
        self.min_ns = self.min_ns.min(o.min_ns);
        self.max_ns = self.max_ns.max(o.max_ns);
    }

    // The q-quantile in ns: the middle of the bucket holding it, kept within the observed
    // min and max (which are exact).
    fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let target = ((q * self.total as f64).ceil() as u64).max(1);
        let mut cum = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            cum += n;
            if cum >= target {
                let lo = Self::lower(i) as f64;
                let hi = if i + 1 < BUCKETS {
                    Self::lower(i + 1) as f64
                } else {
                    lo
                };
                let mid = (lo + hi) / 2.0;
                return mid.clamp(self.min_ns as f64, self.max_ns as f64);
            }
        }
        self.max_ns as f64
    }
}

// ---- requests and replies ---------------------------------------------------------------

fn key(n: u64) -> String {
    // 24 bytes, within memcaslap's 16-40 so the two generators' keys cost about the same
    format!("bench:loadgen:{n:010}")
}

// The same key as key(n), appended to out without allocating (the load loop's path).
fn push_key(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"bench:loadgen:");
    let mut digits = [b'0'; 10];
    let mut v = n;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits);
}

// One xorshift64* generator per connection: cheap, and no shared state between threads.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

enum Reply {
    Incomplete,
    Hit(usize),
    Miss(usize),
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn field_num(line: &[u8], idx: usize) -> Result<usize, String> {
    line.split(|&b| b == b' ')
        .nth(idx)
        .and_then(|f| std::str::from_utf8(f).ok())
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("bad reply line: {}", String::from_utf8_lossy(line)))
}

// Parses one reply at the start of buf; consumed byte counts come with Hit and Miss.
fn parse_reply(cmd: Cmd, buf: &[u8]) -> Result<Reply, String> {
    let Some(eol) = find_crlf(buf) else {
        return Ok(Reply::Incomplete);
    };
    let line = &buf[..eol];
    let after = eol + 2;
    match cmd {
        Cmd::Get => {
            if line == b"END" {
                return Ok(Reply::Miss(after));
            }
            if line.starts_with(b"VALUE ") {
                // VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\nEND\r\n
                let end = after + field_num(line, 3)? + 2 + 5;
                if buf.len() < end {
                    return Ok(Reply::Incomplete);
                }
                if &buf[end - 5..end] != b"END\r\n" {
                    return Err("VALUE not followed by END".into());
                }
                return Ok(Reply::Hit(end));
            }
        }
        Cmd::Mg => {
            if line == b"EN" {
                return Ok(Reply::Miss(after));
            }
            if line.starts_with(b"VA ") {
                let end = after + field_num(line, 1)? + 2;
                if buf.len() < end {
                    return Ok(Reply::Incomplete);
                }
                return Ok(Reply::Hit(end));
            }
            if line == b"HD" || line.starts_with(b"HD ") {
                return Ok(Reply::Hit(after));
            }
        }
    }
    Err(format!(
        "unexpected reply: {}",
        String::from_utf8_lossy(line)
    ))
}

// ---- preload ----------------------------------------------------------------------------

fn read_more(s: &mut Stream, buf: &mut Vec<u8>) -> io::Result<()> {
    let old = buf.len();
    buf.resize(old + 65536, 0);
    let n = s.read(&mut buf[old..])?;
    buf.truncate(old + n);
    if n == 0 {
        return Err(io::Error::new(
            ErrorKind::UnexpectedEof,
            "server closed the connection",
        ));
    }
    Ok(())
}

// Sets keys lo..hi over one blocking connection, 128 sets per write.
fn preload(server: &str, tls: bool, lo: u64, hi: u64, value: &[u8]) -> Result<(), String> {
    let mut s = Stream::connect(server, tls, false)?;
    let mut out = Vec::new();
    let mut inbuf = Vec::new();
    let mut k = lo;
    while k < hi {
        let batch_end = (k + 128).min(hi);
        out.clear();
        for n in k..batch_end {
            out.extend_from_slice(format!("set {} 0 0 {}\r\n", key(n), value.len()).as_bytes());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        s.write_all(&out)
            .map_err(|e| format!("preload write: {e}"))?;
        let mut left = batch_end - k;
        let mut pos = 0;
        while left > 0 {
            match find_crlf(&inbuf[pos..]) {
                Some(eol) => {
                    if &inbuf[pos..pos + eol] != b"STORED" {
                        let line = String::from_utf8_lossy(&inbuf[pos..pos + eol]).into_owned();
                        return Err(format!("preload: set got '{line}'"));
                    }
                    pos += eol + 2;
                    left -= 1;
                }
                None => read_more(&mut s, &mut inbuf).map_err(|e| format!("preload read: {e}"))?,
            }
        }
        inbuf.drain(..pos);
        k = batch_end;
    }
    Ok(())
}

// ---- load -------------------------------------------------------------------------------

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}
const POLLIN: i16 = 0x1;
const POLLOUT: i16 = 0x4;
extern "C" {
    fn poll(fds: *mut PollFd, nfds: std::os::raw::c_ulong, timeout: i32) -> i32;
}

struct Conn {
    sock: Stream,
    out: Vec<u8>,
    out_pos: usize,
    // Replies land in inbuf[in_end..]; inbuf[in_pos..in_end] is read and not yet parsed.
    inbuf: Vec<u8>,
    in_pos: usize,
    in_end: usize,
    pending: usize,
    // The request budget (--ops) ran out: no more batches on this connection.
    done: bool,
    sent_at: Instant,
    rng: Rng,
}

struct Stats {
    hist: Histogram,
    misses: u64,
    errors: Vec<String>,
}

impl Conn {
    // Writes the next batch into out, if the --ops budget still has room for it.
    fn start_batch(&mut self, o: &Opts, budget: &AtomicU64) -> bool {
        if o.ops.is_some() {
            let depth = o.depth as u64;
            let claimed = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(depth)
            });
            if claimed.is_err() {
                self.done = true;
                return false;
            }
        }
        self.out.clear();
        self.out_pos = 0;
        for _ in 0..o.depth {
            let n = self.rng.next() % o.keys;
            match o.cmd {
                Cmd::Get => {
                    self.out.extend_from_slice(b"get ");
                    push_key(&mut self.out, n);
                }
                Cmd::Mg => {
                    self.out.extend_from_slice(b"mg ");
                    push_key(&mut self.out, n);
                    self.out.push(b' ');
                    self.out.extend_from_slice(o.mg_flags.as_bytes());
                }
            }
            self.out.extend_from_slice(b"\r\n");
        }
        self.pending = o.depth;
        self.sent_at = Instant::now();
        true
    }

    fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.sock.write(&self.out[self.out_pos..]) {
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    // Reads what is there, accounts every complete reply, starts the next batch when the
    // current one is done and the run is not over. Err ends this connection.
    fn on_readable(
        &mut self,
        o: &Opts,
        st: &mut Stats,
        deadline: Instant,
        budget: &AtomicU64,
    ) -> Result<(), String> {
        loop {
            // Keep 64 KiB of room behind the unparsed bytes: move them to the front, and
            // grow the buffer only for a reply larger than that (zeroing once, not per read).
            if self.inbuf.len() - self.in_end < 65536 {
                self.inbuf.copy_within(self.in_pos..self.in_end, 0);
                self.in_end -= self.in_pos;
                self.in_pos = 0;
                if self.inbuf.len() - self.in_end < 65536 {
                    let want = self.in_end + 65536;
                    self.inbuf.resize(want, 0);
                }
            }
            match self.sock.read(&mut self.inbuf[self.in_end..]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => self.in_end += n,
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock => break,
                    ErrorKind::Interrupted => continue,
                    _ => return Err(format!("read: {e}")),
                },
            }
        }
        let now = Instant::now();
        while self.pending > 0 {
            match parse_reply(o.cmd, &self.inbuf[self.in_pos..self.in_end])? {
                Reply::Incomplete => break,
                Reply::Hit(n) => self.in_pos += n,
                Reply::Miss(n) => {
                    self.in_pos += n;
                    st.misses += 1;
                }
            }
            st.hist.record((now - self.sent_at).as_nanos() as u64);
            self.pending -= 1;
        }
        if self.pending == 0 && self.in_pos < self.in_end {
            return Err("more reply bytes than requests".into());
        }
        if self.pending == 0 && now < deadline && self.start_batch(o, budget) {
            self.flush().map_err(|e| format!("write: {e}"))?;
        }
        Ok(())
    }
}

fn run_thread(
    o: &Opts,
    nconns: usize,
    seed: u64,
    go: &AtomicBool,
    budget: &AtomicU64,
    start: Instant,
) -> Stats {
    let mut st = Stats {
        hist: Histogram::new(),
        misses: 0,
        errors: Vec::new(),
    };
    let mut conns = Vec::new();
    for i in 0..nconns {
        let sock = match Stream::connect(&o.server, o.tls, true) {
            Ok(s) => s,
            Err(e) => {
                st.errors.push(e);
                return st;
            }
        };
        conns.push(Conn {
            sock,
            out: Vec::new(),
            out_pos: 0,
            inbuf: vec![0; 131072],
            in_pos: 0,
            in_end: 0,
            pending: 0,
            done: false,
            sent_at: start,
            // odd, distinct, non-zero seeds per connection
            rng: Rng((seed * 1_000_003 + i as u64) * 2 + 1),
        });
    }
    // All threads start the load together, after every connection is up.
    while !go.load(Ordering::Acquire) {
        thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(o.duration);
    for c in conns.iter_mut() {
        if c.start_batch(o, budget) {
            if let Err(e) = c.flush() {
                st.errors.push(format!("write: {e}"));
            }
        }
    }
    let mut alive = vec![true; conns.len()];
    let mut fds: Vec<PollFd> = Vec::with_capacity(conns.len());
    let mut idx: Vec<usize> = Vec::with_capacity(conns.len());
    loop {
        let now = Instant::now();
        let busy = |(i, c): (usize, &Conn)| alive[i] && !(c.done && c.pending == 0);
        if now >= deadline || !conns.iter().enumerate().any(busy) {
            break;
        }
        fds.clear();
        idx.clear();
        for (i, c) in conns.iter().enumerate() {
            if !busy((i, c)) {
                continue;
            }
            let mut ev = POLLIN;
            if c.out_pos < c.out.len() {
                ev |= POLLOUT;
            }
            fds.push(PollFd {
                fd: c.sock.raw_fd(),
                events: ev,
                revents: 0,
            });
            idx.push(i);
        }
        let ms = (deadline - now).as_millis().clamp(1, 100) as i32;
        // SAFETY: fds is a valid array of fds.len() pollfd structs for the call's duration.
        let r = unsafe { poll(fds.as_mut_ptr(), fds.len() as std::os::raw::c_ulong, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            st.errors.push(format!("poll: {e}"));
            break;
        }
        for (f, &i) in fds.iter().zip(&idx) {
            if f.revents == 0 {
                continue;
            }
            let c = &mut conns[i];
            let mut res = Ok(());
            if f.revents & POLLOUT != 0 {
                res = c.flush().map_err(|e| format!("write: {e}"));
            }
            if res.is_ok() && f.revents & !POLLOUT != 0 {
                res = c.on_readable(o, &mut st, deadline, budget);
            }
            if let Err(e) = res {
                st.errors.push(e);
                alive[i] = false;
            }
        }
    }
    st
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            if !e.is_empty() {
                eprintln!("memcached-loadgen: {e}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "loadgen: cmd={} mg_flags=\"{}\" depth={} conns={} threads={} keys={} value_size={} duration={}s ops={} server={}",
        if o.cmd == Cmd::Get { "get" } else { "mg" },
        o.mg_flags,
        o.depth,
        o.conns,
        o.threads,
        o.keys,
        o.value_size,
        o.duration,
        o.ops.map_or("-".to_string(), |n| n.to_string()),
        o.server
    );

    if o.preload {
        let t0 = Instant::now();
        let value = vec![b'v'; o.value_size];
        let per = o.keys.div_ceil(o.threads as u64);
        let handles: Vec<_> = (0..o.threads as u64)
            .map(|t| {
                let (o, value) = (o.clone(), value.clone());
                thread::spawn(move || {
                    let (lo, hi) = ((t * per).min(o.keys), ((t + 1) * per).min(o.keys));
                    preload(&o.server, o.tls, lo, hi, &value)
                })
            })
            .collect();
        for h in handles {
            if let Err(e) = h.join().expect("preload thread") {
                eprintln!("memcached-loadgen: {e}");
                return ExitCode::from(1);
            }
        }
        println!(
            "preload: {} keys of {} bytes in {:.2}s",
            o.keys,
            o.value_size,
            t0.elapsed().as_secs_f64()
        );
    }

    let go = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicU64::new(o.ops.unwrap_or(0)));
    let start = Instant::now();
    let handles: Vec<_> = (0..o.threads)
        .map(|t| {
            // spread the connections evenly, the first threads take the remainder
            let n = o.conns / o.threads + usize::from(t < o.conns % o.threads);
            let (o, go, budget) = (o.clone(), go.clone(), budget.clone());
            thread::spawn(move || run_thread(&o, n, t as u64 + 1, &go, &budget, start))
        })
        .collect();
    // Give the threads time to connect; the load starts when all are up.
    thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    go.store(true, Ordering::Release);
    let mut all = Stats {
        hist: Histogram::new(),
        misses: 0,
        errors: Vec::new(),
    };
    for h in handles {
        let st = h.join().expect("load thread");
        all.hist.merge(&st.hist);
        all.misses += st.misses;
        all.errors.extend(st.errors);
    }
    let secs = t0.elapsed().as_secs_f64().min(o.duration).max(1e-9);
    let h = &all.hist;
    let us = |ns: f64| ns / 1000.0;
    println!(
        "Run time: {:.2}s Ops: {} TPS: {:.0} Misses: {} Errors: {}",
        secs,
        h.total,
        h.total as f64 / secs,
        all.misses,
        all.errors.len()
    );
    let avg = if h.total > 0 {
        h.sum_ns as f64 / h.total as f64
    } else {
        0.0
    };
    println!(
        "Latency us: min={:.1} p50={:.1} p90={:.1} p99={:.1} p99.9={:.1} max={:.1} avg={:.1}",
        us(if h.total > 0 { h.min_ns as f64 } else { 0.0 }),
        us(h.quantile(0.50)),
        us(h.quantile(0.90)),
        us(h.quantile(0.99)),
        us(h.quantile(0.999)),
        us(h.max_ns as f64),
        us(avg)
    );
    println!("Histogram (bucket lower bound in us: requests):");
    for (i, &n) in h.counts.iter().enumerate() {
        if n > 0 {
            println!("  {:.3}: {}", Histogram::lower(i) as f64 / 1000.0, n);
        }
    }
    for e in all.errors.iter().take(10) {
        eprintln!("memcached-loadgen: error: {e}");
    }
    if !all.errors.is_empty() || h.total == 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous() {
        for v in [
            0u64,
            1,
            31,
            32,
            33,
            63,
            64,
            65,
            1000,
            123_456_789,
            u64::MAX / 3,
        ] {
            let i = Histogram::index(v);
            assert!(Histogram::lower(i) <= v, "{v}");
            assert!(i + 1 == BUCKETS || Histogram::lower(i + 1) > v, "{v}");
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn parses_replies() {
        assert!(matches!(
            parse_reply(Cmd::Get, b"END\r\n"),
            Ok(Reply::Miss(5))
        ));
        assert!(matches!(
            parse_reply(Cmd::Get, b"VALUE k 0 2\r\nab\r\nEND\r\n"),
            Ok(Reply::Hit(22))
        ));
        assert!(matches!(
            parse_reply(Cmd::Get, b"VALUE k 0 2\r\nab\r\nEN"),
            Ok(Reply::Incomplete)
        ));
        assert!(matches!(
            parse_reply(Cmd::Mg, b"VA 2 f0 t-1\r\nab\r\n"),
            Ok(Reply::Hit(17))
        ));
        assert!(matches!(
            parse_reply(Cmd::Mg, b"EN\r\n"),
            Ok(Reply::Miss(4))
        ));
        assert!(parse_reply(Cmd::Mg, b"CLIENT_ERROR bad\r\n").is_err());
    }
}
