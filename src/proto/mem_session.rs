//! A session with no socket: runs a byte stream of requests (text, meta or binary) through the
//! parsers and handlers against the process's store and collects the replies, as a connection
//! would, in memory. For benchmarks and fuzzing of parsing and execution on their own.

use super::binary::{self, BinState, HEADER_LEN};
use super::response::Resp;
use super::session::{Next, Session};
use crate::items::ops::{Counters, StoreCmd};
use crate::items::store::ItemRef;
use crate::lent::{CloseReason, LentConn, LoanOwner};
use crate::stats::{ClassStats, ThreadStats};
use std::os::unix::io::RawFd;

/// Longest line looked for without a newline before giving up (C's 2048-byte rule; a huge
/// multiget may be longer).
const MAX_LINE: usize = 65536;

/// Takes back loans of in-memory sessions: there is no socket to resume or close.
struct NoOwner;

impl LoanOwner for NoOwner {
    fn end_loan(&self, _fd: RawFd, _close: bool, _tls: Option<crate::tls::TlsConn>) {}
}

static NO_OWNER: NoOwner = NoOwner;

/// The counters in-memory sessions charge (shared: they stand for one worker).
static COUNTERS: std::sync::LazyLock<(ThreadStats, ClassStats)> =
    std::sync::LazyLock::new(Default::default);

/// Makes the process a server with these arguments (settings, slabs, store), once; later calls
/// keep the first arguments.
pub fn init_server(args: &[&str]) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut argv = vec!["memcached".to_string()];
        argv.extend(args.iter().map(|s| s.to_string()));
        let Ok(s) = crate::settings::parse_args(&argv) else {
            return;
        };
        crate::settings::init_global(s);
        let s = crate::settings::get();
        crate::slabs::slabs_init(s, None);
        crate::items::store::init(s);
    });
}

/// An in-memory connection.
pub struct MemSession {
    resps: Vec<Resp>,
    next: Next,
    noreply: bool,
    close_after_write: bool,
    item: Option<ItemRef>,
    rlbytes: usize,
    ritem: usize,
    store_cmd: StoreCmd,
    cas: u64,
    bin: BinState,
    binary: bool,
    /// Always true: in-memory sessions run without `-S`.
    authenticated: bool,
    sasl: crate::sasl::SaslConn,
    /// Replies written so far.
    pub out: Vec<u8>,
}

impl Default for MemSession {
    fn default() -> Self {
        MemSession::new()
    }
}

impl MemSession {
    /// A new session; all in-memory sessions charge the same counters.
    pub fn new() -> MemSession {
        MemSession {
            resps: Vec::new(),
            next: Next::NewCmd,
            noreply: false,
            close_after_write: false,
            authenticated: true,
            sasl: Default::default(),
            item: None,
            rlbytes: 0,
            ritem: 0,
            store_cmd: StoreCmd::Set,
            cas: 0,
            bin: BinState::default(),
            binary: false,
            out: Vec::new(),
        }
    }

    /// Whether the session has closed (or was lent away): it reads nothing more.
    pub fn closed(&self) -> bool {
        matches!(self.next, Next::Close | Next::Lent)
    }

    /// Writes out the queued replies (into `out`).
    fn flush(&mut self) {
        for r in self.resps.drain(..) {
            if !r.skip {
                for p in r.parts() {
                    self.out.extend_from_slice(p);
                }
            }
        }
        if self.close_after_write {
            self.next = Next::Close;
        }
    }

    /// Feeds `input` as if read from the socket; returns the bytes not consumed (an
    /// unfinished request). Replies go to `out`.
    pub fn feed<'a>(&mut self, mut input: &'a [u8]) -> &'a [u8] {
        loop {
            match self.next {
                Next::Close | Next::Lent => return input,
                Next::Swallow(n) => {
                    let k = n.min(input.len());
                    input = &input[k..];
                    if k < n {
                        self.next = Next::Swallow(n - k);
                        return input;
                    }
                    self.next = Next::NewCmd;
                }
                Next::ReadValue => {
                    let Some(mut it) = self.item.take() else {
                        self.next = Next::Close;
                        continue;
                    };
                    let k = self.rlbytes.min(input.len());
                    it.write_at(self.ritem, &input[..k]);
                    self.ritem += k;
                    self.rlbytes -= k;
                    input = &input[k..];
                    if self.rlbytes > 0 {
                        self.item = Some(it);
                        return input;
                    }
                    self.next = Next::NewCmd;
                    if self.binary {
                        binary::complete_nread(self, it);
                    } else {
                        super::text::complete_nread_ascii(self, it);
                    }
                    self.after_command();
                }
                Next::NewCmd | Next::Flush => {
                    if input.is_empty() {
                        self.flush();
                        return input;
                    }
                    let used = if input[0] == binary::REQ_MAGIC {
                        self.binary_request(input)
                    } else {
                        self.text_request(input)
                    };
                    match used {
                        Some(n) => input = &input[n..],
                        None => {
                            self.flush();
                            return input;
                        }
                    }
                    self.after_command();
                }
            }
        }
    }

    fn after_command(&mut self) {
        self.noreply = false;
        if self.next == Next::Flush || self.resps.len() > 64 {
            self.flush();
            if self.next == Next::Flush {
                self.next = Next::NewCmd;
            }
        }
    }

    /// Runs one text line; None when the line is not complete yet.
    fn text_request(&mut self, input: &[u8]) -> Option<usize> {
        self.binary = false;
        let Some(el) = input.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
            if input.len() >= MAX_LINE {
                self.next = Next::Close;
                return Some(input.len());
            }
            return None;
        };
        let line = &input[..=el];
        self.next = Next::NewCmd;
        super::text::process_command(self, line);
        Some(line.len())
    }

    /// Runs one binary request once its header, extras and key are in; None until then.
    fn binary_request(&mut self, input: &[u8]) -> Option<usize> {
        self.binary = true;
        if input.len() < HEADER_LEN {
            return None;
        }
        let Some(b) = binary::decode_header(input) else {
            self.next = Next::Close;
            return Some(input.len());
        };
        let need = b.head_len();
        if input.len() < need {
            return None;
        }
        if !self.resp_start() {
            self.next = Next::Close;
            return Some(input.len());
        }
        let mut ext = [0u8; 20];
        let en = (b.extlen as usize).min(ext.len());
        ext[..en].copy_from_slice(&input[HEADER_LEN..HEADER_LEN + en]);
        let kstart = HEADER_LEN + b.extlen as usize;
        self.next = Next::NewCmd;
        binary::process_request(self, b, &ext, &input[kstart..need]);
        Some(need)
    }
}

impl Session for MemSession {
    fn fd(&self) -> RawFd {
        -1
    }

    fn counters(&self) -> Counters<'static> {
        Counters {
            thread: &COUNTERS.0,
            class: &COUNTERS.1,
        }
    }

    fn queued(&self) -> usize {
        self.resps.len()
    }

    fn resp_start(&mut self) -> bool {
        self.resps.push(Resp::default());
        true
    }

    fn resp(&mut self) -> Option<&mut Resp> {
        if self.resps.is_empty() {
            self.resps.push(Resp::default());
        }
        self.resps.last_mut()
    }

    fn release_items(&mut self) {
        self.item = None;
        self.resps.clear();
    }

    fn noreply(&self) -> bool {
        self.noreply
    }

    fn set_noreply(&mut self, noreply: bool) {
        self.noreply = noreply;
    }

    fn set_next(&mut self, next: Next) {
        self.next = next;
    }

    fn close_after_write(&mut self) {
        self.close_after_write = true;
    }

    fn set_close_reason(&mut self, _reason: CloseReason) {}

    fn read_value(&mut self, it: ItemRef, len: usize, cmd: StoreCmd) {
        self.item = Some(it);
        self.ritem = 0;
        self.rlbytes = len;
        self.store_cmd = cmd;
        self.next = Next::ReadValue;
    }

    fn store_cmd(&self) -> StoreCmd {
        self.store_cmd
    }

    fn cas(&mut self) -> &mut u64 {
        &mut self.cas
    }

    fn bin(&mut self) -> &mut BinState {
        &mut self.bin
    }

    fn authenticated(&self) -> bool {
        self.authenticated
    }

    fn set_authenticated(&mut self, yes: bool) {
        self.authenticated = yes;
    }

    fn sasl(&mut self) -> &mut crate::sasl::SaslConn {
        &mut self.sasl
    }

    fn lend(&mut self) -> LentConn {
        self.resps.clear();
        self.next = Next::Lent;
        LentConn::new(-1, &NO_OWNER, None)
    }

    fn unlend(&mut self, lent: LentConn) {
        lent.cancel();
        self.next = Next::NewCmd;
        self.resps.push(Resp::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_of_text_meta_and_binary_requests_runs_without_a_socket() {
        let settings = crate::items::store::tests::test_settings(&["-m", "2"]);
        crate::items::store::init(settings);
        let mut s = MemSession::new();
        let rest = s.feed(b"set mk 5 0 3\r\nabc\r\nget mk\r\nmg mk v f\r\nincr n 1\r\nmn\r\n");
        assert!(rest.is_empty());
        assert_eq!(
            s.out,
            b"STORED\r\nVALUE mk 5 3\r\nabc\r\nEND\r\nVA 3 f5\r\nabc\r\nNOT_FOUND\r\nMN\r\n"
        );
        // A value split across reads, then a request left unfinished.
        s.out.clear();
        assert!(s.feed(b"set mk2 0 0 4\r\nab").is_empty());
        assert_eq!(s.feed(b"cd\r\nget mk2\r\nget"), b"get");
        assert_eq!(s.out, b"STORED\r\nVALUE mk2 0 4\r\nabcd\r\nEND\r\n");
        // A binary GETK.
        s.out.clear();
        let mut req = vec![0x80, 0x0c, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3];
        req.extend_from_slice(&[0; 12]);
        req.extend_from_slice(b"mk2");
        assert!(s.feed(&req).is_empty());
        assert_eq!(&s.out[..2], &[0x81, 0x0c]);
        assert!(s.out.ends_with(b"mk2abcd"));
        // quit closes after its replies.
        s.out.clear();
        assert_eq!(s.feed(b"get mk\r\nquit\r\nget mk\r\n"), b"get mk\r\n");
        assert!(s.closed());
    }
}
