//! Framing of requests in the read buffer (C's try_read_command_* functions): the text
//! protocol's line, a binary request's header and key, and the `set` line and token of an
//! unauthenticated `-Y` client. Each hands a whole request to the protocol module.

use super::{memchr, Conn, ConnState};
use crate::items::lookahead::{self, Ahead};
use crate::items::store;
use crate::proto::session::Session;
use crate::proto::tokenizer::lookup_key;
use crate::settings;
use crate::stats::current_time;
use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;

impl Conn {
    /// Frames the one request an unauthenticated `-Y` client may send, its `set` line and
    /// then its token (C's try_read_command_asciiauth). False when more bytes are needed.
    pub(super) fn try_read_command_asciiauth(&mut self) -> bool {
        use crate::proto::auth::{self, AuthLine};
        if self.auth_token_len == 0 {
            let window = &self.rbuf[self.rcurr..self.rcurr + self.rbytes];
            match auth::parse_line(window) {
                AuthLine::NeedMore => return false,
                AuthLine::Close => {
                    self.set_state(ConnState::Closing);
                    return true;
                }
                AuthLine::Refuse { consumed, reply } => {
                    self.rbytes -= consumed;
                    self.rcurr += consumed;
                    if self.resps.is_empty() && !self.resp_start() {
                        self.set_state(ConnState::Closing);
                        return true;
                    }
                    self.out_string(reply);
                    return true;
                }
                AuthLine::Token { consumed, size } => {
                    self.rbytes -= consumed;
                    self.rcurr += consumed;
                    self.auth_token_len = size + 2;
                }
            }
        }
        let len = self.auth_token_len as usize;
        if self.rbytes < len {
            return false;
        }
        if self.resps.is_empty() && !self.resp_start() {
            self.set_state(ConnState::Closing);
            return true;
        }
        let start = self.rcurr;
        self.rbytes -= len;
        self.rcurr += len;
        self.auth_token_len = 0;
        // The token is checked in place; the buffer is lent out for the call.
        let rbuf = std::mem::take(&mut self.rbuf);
        self.authenticated = auth::process_token(self, &rbuf[start..start + len]);
        self.rbuf = rbuf;
        true
    }

    /// Frames one binary request (C's try_read_command_binary): once its header, extras and
    /// key are in the read buffer, the protocol runs it. False when more bytes are needed.
    pub(super) fn try_read_command_binary(&mut self) -> bool {
        use crate::proto::binary::{self as bin, HEADER_LEN};
        if self.rbytes < HEADER_LEN {
            return false;
        }
        let h = &self.rbuf[self.rcurr..self.rcurr + HEADER_LEN];
        if settings::verbose() > 1 {
            let (title, prefix) = (
                format!("<{} Read binary protocol data:", self.fd),
                format!("<{}   ", self.fd),
            );
            eprint!("{}", bin::dump_header(&title, &prefix, h));
        }
        let Some(b) = bin::decode_header(h) else {
            if settings::verbose() > 0 {
                eprintln!("Invalid magic:  {:x}", h[0]);
            }
            self.set_state(ConnState::Closing);
            return true;
        };
        let need = b.head_len();
        if self.rbytes < need {
            // More bytes needed. A header whose key cannot fit the read buffer waits too, as
            // in C: once the buffer is full the next read gets nothing and the connection
            // closes.
            return false;
        }
        if !self.resp_start() {
            self.set_state(ConnState::Closing);
            return true;
        }
        self.last_cmd_time_now();
        let start = self.rcurr + HEADER_LEN;
        let mut ext = [0u8; 20];
        let en = (b.extlen as usize).min(ext.len());
        ext[..en].copy_from_slice(&self.rbuf[start..start + en]);
        let kstart = start + b.extlen as usize;
        let key_range = kstart..kstart + b.keylen as usize;
        self.rbytes -= need;
        self.rcurr += need;
        // The key is read in place; the buffer is lent out for the call.
        let rbuf = std::mem::take(&mut self.rbuf);
        bin::process_request(self, b, &ext, &rbuf[key_range]);
        self.rbuf = rbuf;
        true
    }

    pub(super) fn try_read_command_ascii(&mut self) -> bool {
        if self.rbytes == 0 {
            return false;
        }
        let window = &self.rbuf[self.rcurr..self.rcurr + self.rbytes];
        let Some(el) = memchr(b'\n', window) else {
            if self.rbytes > 2048 {
                // No newline in the first 2k: only a huge multiget may be that long.
                let end = self.rbytes.saturating_sub(6);
                let mut p = 0;
                while p < end && window[p] == b' ' {
                    p += 1;
                }
                let rest = &window[p..];
                if p > 100 || !(rest.starts_with(b"get ") || rest.starts_with(b"gets ")) {
                    self.set_state(ConnState::Closing);
                    return true;
                }
                if !self.rbuf_malloced && !self.rbuf_switch_to_malloc() {
                    self.set_state(ConnState::Closing);
                    return true;
                }
            }
            return false;
        };
        let len = el + 1;
        self.last_cmd_time = current_time();
        self.slot.last_cmd_time.store(self.last_cmd_time, Relaxed);
        let start = self.rcurr;
        // A fetch with more lines read behind it learns what they fetch, for prefetching.
        if self.rbytes > len && matches!(window, [b'g', b'e', b't', ..] | [b'm', b'g', b' ', ..]) {
            let ahead = self.lookahead(len);
            lookahead::set_hints(window, ahead);
        }
        // The command is parsed in place; the buffer is lent out for the call.
        let rbuf = std::mem::take(&mut self.rbuf);
        crate::proto::text::process_command(self, &rbuf[start..start + len]);
        self.rbuf = rbuf;
        self.rbytes -= len;
        self.rcurr += len;
        true
    }

    /// Hash values of the keys fetched by the two lines after the one at `rcurr` (`len`
    /// bytes long), from what is already read (see `items::lookahead`). The second line's is
    /// kept, so the next line's call reads only one line further. Only lines of up to
    /// `LOOKAHEAD_LINE` bytes are looked at, so a long partial line is not scanned again for
    /// every command.
    fn lookahead(&self, len: usize) -> Ahead {
        const LOOKAHEAD_LINE: usize = 512;
        let Some(st) = store::store() else {
            return Ahead::default();
        };
        // Offsets below are from `rcurr`, the start of the line being run.
        let unparsed = &self.rbuf[self.rcurr..self.rcurr + self.rbytes];
        let line_at = |at: usize| -> Option<&[u8]> {
            let w = unparsed.get(at..unparsed.len().min(at.saturating_add(LOOKAHEAD_LINE)))?;
            memchr(b'\n', w).map(|el| &w[..=el])
        };
        let peek = PEEK.get();
        let at1 = len;
        let (len1, near) = if peek.len != 0 && peek.at == unparsed.as_ptr() as usize + at1 {
            (peek.len as usize, peek.hv)
        } else {
            let Some(line) = line_at(at1) else {
                return Ahead::default();
            };
            (line.len(), lookup_key(line).map(|k| st.hash(k)))
        };
        let at2 = at1 + len1;
        let far = match line_at(at2) {
            Some(line) => {
                let hv = lookup_key(line).map(|k| st.hash(k));
                PEEK.set(Peek {
                    at: line.as_ptr() as usize,
                    len: line.len() as u32,
                    hv,
                });
                hv
            }
            None => {
                PEEK.set(Peek::NONE);
                None
            }
        };
        Ahead { near, far }
    }
}

/// A line `Conn::lookahead` read ahead: where it starts in memory, its length (0: none) and
/// the hash of the key it fetches. Kept for the worker's next command: if that one is the line
/// before it, the line is not read and hashed again. An address that matches by chance (the
/// buffer was reused) only makes for a useless prefetch.
#[derive(Clone, Copy)]
struct Peek {
    at: usize,
    len: u32,
    hv: Option<u32>,
}

impl Peek {
    const NONE: Peek = Peek {
        at: 0,
        len: 0,
        hv: None,
    };
}

thread_local! {
    static PEEK: Cell<Peek> = const { Cell::new(Peek::NONE) };
}
