//! The meta protocol: `mg`, `ms`, `md`, `ma`, `mn` and `me` (C's meta handlers in
//! proto_parser.c and proto_text.c). A request is `<cmd> <key> <flags>*`, each flag a letter
//! with an optional argument; replies are a two-letter code plus the flags asked to return.

use super::session::{Next, Session};
use super::text::realtime;
use super::tokenizer::{tok_to_i32, tok_to_u32, tok_to_u64, Request, Tokens};
use crate::base64::{base64_decode, base64_encode};
use crate::items::lookahead;
use crate::items::ops::{self, Created, Delta, StoreCmd, StoreResult};
use crate::items::store::{self, ItemRef};
use crate::items::{ITEM_FETCHED, ITEM_KEY_BINARY, ITEM_STALE, ITEM_TOKEN_SENT};
use crate::settings::cnum;
use crate::stats::{self, current_time, Clock};
use std::io::Write;

/// Most tokens a meta request may have (C's MFLAG_MAX_OPT_LENGTH).
const MAX_OPT_TOKENS: usize = 20;
/// Longest opaque (`O`) token (C's MFLAG_MAX_OPAQUE_LENGTH).
const MAX_OPAQUE_LENGTH: usize = 32;
/// Longest key.
pub const KEY_MAX_LENGTH: usize = 250;
/// Where a `b` (base64) key is decoded to.
pub type BinKey = crate::sys::KeyBuf<KEY_MAX_LENGTH>;
/// Refcount above which a fetch is refused rather than risk overflow (C's IT_REFCOUNT_LIMIT).
const REFCOUNT_LIMIT: u16 = 60000;

/// What a request's flags ask for (C's struct _meta_flags).
#[derive(Default, Debug)]
pub struct Flags {
    pub key_binary: bool,
    pub locked: bool,
    pub vivify: bool,
    pub autoviv_exptime: u32,
    pub exptime: u32,
    pub new_ttl: bool,
    pub recache_time: u32,
    pub value: bool,
    pub no_update: bool,
    pub no_reply: bool,
    pub remove_val: bool,
    pub client_flags: u32,
    pub has_cas: bool,
    pub req_cas_id: u64,
    pub has_cas_in: bool,
    pub cas_id_in: u64,
    pub mode: u8,
    pub initial: u64,
    pub delta: u64,
    pub set_stale: bool,
}

impl Flags {
    /// The key the request names: the decoded bytes with `b`, else the key token.
    pub fn key<'a>(&self, line: &'a [u8], t: &Tokens, binkey: &'a BinKey) -> &'a [u8] {
        if self.key_binary {
            binkey.as_slice()
        } else {
            t.get(line, 1).unwrap_or(b"")
        }
    }
}

/// The argument of a flag token (after its letter), or None when there is none.
fn arg(tok: &[u8]) -> Option<&[u8]> {
    if tok.len() > 1 {
        Some(&tok[1..])
    } else {
        None
    }
}

/// Reads the flags from token `start` on (C's _meta_flag_preparse): a pure function of the
/// line, its tokens and the clock (for TTLs). Errors as C reports them: some stop at once,
/// argument errors are reported after every flag was looked at. A `b` key is decoded into
/// `binkey`.
pub fn parse_flags(
    line: &[u8],
    t: &Tokens,
    start: usize,
    binkey: &mut BinKey,
    clock: &Clock,
) -> Result<Flags, &'static str> {
    let mut f = Flags::default();
    parse_flags_into(line, t, start, binkey, clock, &mut f).map(|()| f)
}

/// `parse_flags` into `f`, which must be `Flags::default()` (the commands parse in place
/// rather than move the flags by value on every request).
pub fn parse_flags_into(
    line: &[u8],
    t: &Tokens,
    start: usize,
    binkey: &mut BinKey,
    clock: &Clock,
    f: &mut Flags,
) -> Result<(), &'static str> {
    let key = t.get(line, 1).unwrap_or(b"");
    if key.len() > KEY_MAX_LENGTH {
        return Err("CLIENT_ERROR bad command line format");
    }
    if t.ntokens > MAX_OPT_TOKENS {
        return Err("CLIENT_ERROR options flags are too long");
    }
    let mut errstr = "CLIENT_ERROR bad command line format";
    let mut has_error = false;
    // Flags seen so far, one bit per byte value 64..127. Every flag is a letter: a token
    // starting below 64 (a digit) is an invalid flag at its first occurrence already.
    let mut seen = 0u64;
    let exp = |a: Option<&[u8]>| a.and_then(tok_to_i32).map(|e| clock.realtime(e));
    for i in start..t.ntokens {
        // Only flags with an argument need the token itself.
        let tok = || t.get(line, i).unwrap_or(b"");
        let o = line.get(t.offset(i)).copied().unwrap_or(0);
        let bit = if o >= 64 { 1u64 << ((o - 64) & 63) } else { 0 };
        if o >= 127 || seen & bit != 0 {
            return Err("CLIENT_ERROR duplicate flag");
        }
        seen |= bit;
        let bad_token = "CLIENT_ERROR bad token in command line format";
        match o {
            b'b' => {
                if binkey.fill(key.len(), |b| base64_decode(key, b)) == 0 {
                    errstr = "CLIENT_ERROR error decoding key";
                    has_error = true;
                }
                f.key_binary = true;
            }
            b'N' => {
                f.locked = true;
                f.vivify = true;
                match exp(arg(tok())) {
                    Some(e) => f.autoviv_exptime = e,
                    None => {
                        errstr = bad_token;
                        has_error = true;
                    }
                }
            }
            b'T' => {
                f.locked = true;
                match exp(arg(tok())) {
                    Some(e) => {
                        f.exptime = e;
                        f.new_ttl = true;
                    }
                    None => {
                        errstr = bad_token;
                        has_error = true;
                    }
                }
            }
            b'R' => {
                f.locked = true;
                match exp(arg(tok())) {
                    Some(e) => f.recache_time = e,
                    None => {
                        errstr = bad_token;
                        has_error = true;
                    }
                }
            }
            b'l' | b'h' => f.locked = true,
            b'O' | b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' => {}
            b'v' => f.value = true,
            b'u' => f.no_update = true,
            b'q' => f.no_reply = true,
            b'x' => f.remove_val = true,
            b'F' => match arg(tok()).and_then(tok_to_u32) {
                Some(v) => f.client_flags = v,
                None => has_error = true,
            },
            b'C' => match arg(tok()).and_then(tok_to_u64) {
                Some(v) => {
                    f.req_cas_id = v;
                    f.has_cas = true;
                }
                None => {
                    errstr = bad_token;
                    has_error = true;
                }
            },
            b'E' => match arg(tok()).and_then(tok_to_u64) {
                Some(v) => {
                    f.cas_id_in = v;
                    f.has_cas_in = true;
                }
                None => {
                    errstr = bad_token;
                    has_error = true;
                }
            },
            // The byte after the letter, whatever it is (C reads it unchecked).
            b'M' => f.mode = line.get(t.offset(i) + 1).copied().unwrap_or(0),
            b'J' => match arg(tok()).and_then(tok_to_u64) {
                Some(v) => f.initial = v,
                None => {
                    errstr = "CLIENT_ERROR invalid numeric initial value";
                    has_error = true;
                }
            },
            b'D' => match arg(tok()).and_then(tok_to_u64) {
                Some(v) => f.delta = v,
                None => {
                    errstr = "CLIENT_ERROR invalid numeric delta value";
                    has_error = true;
                }
            },
            b'I' => f.set_stale = true,
            _ => return Err("CLIENT_ERROR invalid flag"),
        }
    }
    if has_error {
        Err(errstr)
    } else {
        Ok(())
    }
}

/// " k<key>", base64 and " b" for binary keys (C's META_KEY).
fn put_key(w: &mut Vec<u8>, key: &[u8], binary: bool) {
    w.extend_from_slice(b" k");
    if binary {
        base64_encode(key, w);
        w.extend_from_slice(b" b");
    } else {
        w.extend_from_slice(key);
    }
}

/// " O<opaque>", or Err when the token is too long.
fn put_opaque(w: &mut Vec<u8>, tok: &[u8]) -> Result<(), &'static str> {
    if tok.len() > MAX_OPAQUE_LENGTH {
        return Err("CLIENT_ERROR opaque token too long");
    }
    w.push(b' ');
    w.extend_from_slice(tok);
    Ok(())
}

/// Appends the flags a reply without an item returns: opaque (`O`) and key (`k`), in request
/// order. Err when an opaque is too long.
fn put_opaque_and_key(
    w: &mut Vec<u8>,
    line: &[u8],
    t: &Tokens,
    key: &[u8],
    binary: bool,
) -> Result<(), &'static str> {
    for i in 2..t.ntokens {
        match line.get(t.offset(i)).copied().unwrap_or(0) {
            b'O' => put_opaque(w, t.get(line, i).unwrap_or(b""))?,
            b'k' => put_key(w, key, binary),
            _ => {}
        }
    }
    Ok(())
}

/// Replies with an error line that quiet mode does not hide (C's pout_errstring).
fn err(c: &mut dyn Session, msg: &str) {
    c.out_errstring(msg);
}

/// `mg <key> <flags>*` (C's process_mget_cmd).
pub fn process_mget(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let mut binkey = BinKey::new();
    let mut f = Flags::default();
    if let Err(e) = parse_flags_into(line, t, 2, &mut binkey, &Clock::now(), &mut f) {
        return err(c, e);
    }
    let key = f.key(line, t, &binkey);
    let Some(st) = store::store() else {
        return err(c, "SERVER_ERROR out of memory");
    };
    let ctr = c.counters();
    let ts = ctr.thread;
    // Flags that read or change the item hold its lock throughout (the bump comes last).
    let lock = f.locked.then(|| st.lock(key));
    let mut it = match &lock {
        Some(l) => l.get(Some(ts), false),
        None => st.get_ahead(
            st.hashed(key),
            Some(ts),
            !f.no_update,
            lookahead::hints(line),
        ),
    };
    if it.as_ref().is_some_and(|i| i.refcount() > REFCOUNT_LIMIT) {
        drop(it);
        drop(lock);
        return err(c, "SERVER_ERROR refcount overflow during fetch");
    }
    let mut item_created = false;
    // N implies `locked`.
    if let (None, true, Some(l)) = (&it, f.vivify, &lock) {
        if let Some(mut n) = st.alloc(key, 0, realtime(0), 2) {
            n.data_mut().copy_from_slice(b"\r\n");
            let cas = if f.has_cas_in {
                f.cas_id_in
            } else {
                st.next_cas()
            };
            l.link(&n, cas);
            item_created = true;
            it = Some(n);
        }
    }
    let mut w = take_wbuf(c);
    let mut ttl_set = false;
    if let Some(it) = it {
        let mut value = f.value;
        if f.has_cas && it.cas() == f.req_cas_id {
            value = false;
        }
        let nbytes = it.value_len() - 2;
        if value {
            w.extend_from_slice(b"VA ");
            super::push_decimal(&mut w, nbytes as u64);
        } else {
            w.extend_from_slice(b"HD");
        }
        let mut won = false;
        let now = current_time();
        for i in 2..t.ntokens {
            // A token's first byte is its flag; only O needs the whole token.
            match line.get(t.offset(i)).copied().unwrap_or(0) {
                b'T' => {
                    ttl_set = true;
                    // T implies `locked`.
                    if let Some(l) = &lock {
                        l.set_exptime(&it, f.exptime);
                    }
                }
                b'N' if item_created => {
                    if let Some(l) = &lock {
                        l.set_exptime(&it, f.autoviv_exptime);
                    }
                    won = true;
                }
                b'R' if it.flags() & ITEM_TOKEN_SENT == 0
                    && !item_created
                    && it.exptime() != 0
                    && it.exptime() < f.recache_time =>
                {
                    won = true;
                }
                b's' => {
                    w.extend_from_slice(b" s");
                    super::push_decimal(&mut w, nbytes as u64);
                }
                b't' => {
                    if it.exptime() == 0 {
                        w.extend_from_slice(b" t-1");
                    } else {
                        w.extend_from_slice(b" t");
                        super::push_decimal(&mut w, it.exptime().wrapping_sub(now) as u64);
                    }
                }
                b'c' => {
                    w.extend_from_slice(b" c");
                    super::push_decimal(&mut w, it.cas());
                }
                b'f' => {
                    w.extend_from_slice(b" f");
                    super::push_decimal(&mut w, it.client_flags() as u64);
                }
                b'l' => {
                    w.extend_from_slice(b" l");
                    super::push_decimal(&mut w, now.wrapping_sub(it.time()) as u64);
                }
                b'h' => {
                    w.extend_from_slice(if it.flags() & ITEM_FETCHED != 0 {
                        b" h1"
                    } else {
                        b" h0"
                    });
                }
                b'O' => {
                    if let Err(e) = put_opaque(&mut w, t.get(line, i).unwrap_or(b"")) {
                        drop(it);
                        drop(lock);
                        restore(c, w);
                        return err(c, e);
                    }
                }
                b'k' => put_key(&mut w, it.key(), it.flags() & ITEM_KEY_BINARY != 0),
                _ => {}
            }
        }
        // Already handed out a token: say so (and do not hand out another).
        if it.flags() & ITEM_TOKEN_SENT != 0 {
            w.extend_from_slice(b" Z");
        }
        if it.flags() & ITEM_STALE != 0 {
            w.extend_from_slice(b" X");
            if it.flags() & ITEM_TOKEN_SENT == 0 {
                won = true;
            }
        }
        if won {
            w.extend_from_slice(b" W");
            // A stale item's win can come without `locked`: take the lock for the flag.
            match &lock {
                Some(l) => l.update_flags(&it, ITEM_TOKEN_SENT, 0),
                None => st.lock(key).update_flags(&it, ITEM_TOKEN_SENT, 0),
            }
        }
        w.extend_from_slice(b"\r\n");
        if let (Some(l), false) = (&lock, f.no_update) {
            l.bump(&it);
        }
        let cls = it.class();
        let lru = it.clsid();
        if ttl_set {
            stats::bump(&ts.touch_cmds, 1);
            stats::bump(&ctr.class.class(cls).touch_hits, 1);
        } else {
            stats::bump(&ctr.class.lru_hits[lru as usize], 1);
            stats::bump(&ts.get_cmds, 1);
        }
        drop(lock);
        restore(c, w);
        if value && it.is_hdr() {
            if super::attach_flash(c, it, super::response::FlashReply::Meta).is_err() {
                // No memory to read the value into: a miss (C's get_oom_extstore path).
                stats::bump(&ts.get_misses, 1);
                if let Some(r) = c.resp() {
                    r.wbuf.clear();
                    r.wbuf.extend_from_slice(b"EN\r\n");
                }
            }
        } else if let Some(r) = c.resp() {
            if value {
                r.item = Some(it);
            }
        }
        c.set_next(Next::NewCmd);
        return;
    }
    {
        drop(lock);
        stats::bump(&ts.get_misses, 1);
        stats::bump(&ts.get_cmds, 1);
        w.extend_from_slice(b"EN");
        if let Err(e) = put_opaque_and_key(&mut w, line, t, key, f.key_binary) {
            restore(c, w);
            return err(c, e);
        }
        w.extend_from_slice(b"\r\n");
        restore(c, w);
        if f.no_reply {
            if let Some(r) = c.resp() {
                r.skip = true;
            }
        }
    }
    c.set_next(Next::NewCmd);
}

/// The current response's line buffer, emptied, to build a reply in without allocating
/// (give it back with `restore` or `reply`).
fn take_wbuf(c: &mut dyn Session) -> Vec<u8> {
    let mut w = Vec::new();
    if let Some(r) = c.resp() {
        std::mem::swap(&mut w, &mut r.wbuf);
    }
    w.clear();
    w
}

/// Puts a built reply line back into the current response object.
fn restore(c: &mut dyn Session, mut w: Vec<u8>) {
    if let Some(r) = c.resp() {
        std::mem::swap(&mut w, &mut r.wbuf);
    }
}

/// Makes `w` (from `take_wbuf`) the current response's line.
fn reply(c: &mut dyn Session, w: Vec<u8>, skip: bool) {
    restore(c, w);
    if let Some(r) = c.resp() {
        r.skip = skip;
    }
    c.set_next(Next::NewCmd);
}

/// `ms <key> <datalen> <flags>*`: allocates the item and reads the value like `set` (C's
/// process_mset_command); the reply is made when the value is in (`finalize_mset`).
pub fn process_mset(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let vlen = req.vlen;
    let swallow = |c: &mut dyn Session, msg: &str| {
        c.out_errstring(msg);
        c.set_next(Next::Swallow(vlen));
    };
    let mut binkey = BinKey::new();
    let mut f = Flags::default();
    if let Err(e) = parse_flags_into(line, t, 3, &mut binkey, &Clock::now(), &mut f) {
        return swallow(c, e);
    }
    let key = f.key(line, t, &binkey);
    let mut exptime = f.exptime;
    let mut cmd = match f.mode {
        0 | b'S' => StoreCmd::Set,
        b'E' => StoreCmd::Add,
        b'A' if f.vivify => {
            exptime = f.autoviv_exptime;
            StoreCmd::AppendViv
        }
        b'A' => StoreCmd::Append,
        b'P' if f.vivify => {
            exptime = f.autoviv_exptime;
            StoreCmd::PrependViv
        }
        b'P' => StoreCmd::Prepend,
        b'R' => StoreCmd::Replace,
        _ => return swallow(c, "CLIENT_ERROR invalid mode for ms M token"),
    };
    if f.has_cas && matches!(cmd, StoreCmd::Set | StoreCmd::Replace) {
        cmd = StoreCmd::Cas;
    }
    let Some(st) = store::store() else {
        return swallow(c, "SERVER_ERROR out of memory storing object");
    };
    let Some(mut it) = st.alloc(key, f.client_flags, exptime, vlen as i32) else {
        let (msg, status) = if !st.item_size_ok(key.len(), f.client_flags, vlen) {
            stats::bump(&c.counters().thread.store_too_large, 1);
            (
                "SERVER_ERROR object too large for cache",
                ops::STORE_TOO_LARGE,
            )
        } else {
            stats::bump(&c.counters().thread.store_no_memory, 1);
            (
                "SERVER_ERROR out of memory storing object",
                ops::STORE_NO_MEMORY,
            )
        };
        if crate::logger::enabled(crate::logger::LOG_MUTATIONS) {
            // C passes this entry's arguments shifted by two and the command as a pointer:
            // command "na", no size, the descriptor as the expiry time, and an undefined
            // class (0 here).
            let sfd = crate::logger::cur_sfd();
            crate::logger::item_store(status, -1, key, 0, sfd as u32, 0, sfd);
        }
        // A failed store must not leave the old value behind.
        st.delete(key, Some(c.counters().thread));
        return swallow(c, msg);
    };
    it.set_cas_unlinked(f.req_cas_id);
    if f.key_binary {
        it.set_flags_unlinked(ITEM_KEY_BINARY);
    }
    stats::bump(&c.counters().class.class(it.clsid()).set_cmds, 1);
    // The CAS to store under is drawn now, before the flags are checked (as C does).
    *c.cas() = if f.has_cas_in {
        f.cas_id_in
    } else {
        st.next_cas()
    };
    // Note which return flags were asked for; the reply is built after the store.
    let mut stash = take_wbuf(c);
    for i in 3..t.ntokens {
        let tok = t.get(line, i).unwrap_or(b"");
        match tok.first().copied().unwrap_or(0) {
            b'O' => {
                if let Err(e) = put_opaque(&mut stash, tok) {
                    restore(c, stash);
                    return swallow(c, e);
                }
            }
            b'k' => stash.extend_from_slice(b" k"),
            b'c' => stash.extend_from_slice(b" c"),
            b's' => stash.extend_from_slice(b" s"),
            _ => {}
        }
    }
    // Errors from here on are always shown; only a success is quiet.
    c.set_noreply(false);
    let set_stale = f.set_stale && cmd == StoreCmd::Cas;
    let no_reply = f.no_reply;
    restore(c, stash);
    if let Some(r) = c.resp() {
        r.mset_res = true;
        r.set_stale = set_stale;
        r.skip = no_reply;
    }
    c.read_value(it, vlen, cmd);
}

/// Builds a meta set's reply from the stashed return flags (C's _finalize_mset).
pub fn finalize_mset(c: &mut dyn Session, it: &ItemRef, out: ops::StoreOutcome) {
    let Some(r) = c.resp() else { return };
    let quiet = r.skip;
    // The stash is at most 20 short tokens; keep a copy while the line is rebuilt.
    let mut saved = [0u8; 1024];
    let n = r.wbuf.len().min(saved.len());
    saved[..n].copy_from_slice(&r.wbuf[..n]);
    let stash = &saved[..n];
    let mut w = take_wbuf(c);
    w.extend_from_slice(match out.result {
        StoreResult::Stored => b"HD",
        StoreResult::Exists => b"EX",
        StoreResult::NotFound => b"NF",
        StoreResult::NotStored => b"NS",
    });
    let mut i = 0;
    while i < stash.len() {
        // Each entry is " X..." (X a flag letter).
        let flag = stash.get(i + 1).copied().unwrap_or(0);
        let end = stash[i + 1..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(stash.len(), |p| i + 1 + p);
        match flag {
            b'O' => w.extend_from_slice(&stash[i..end]),
            b'k' => put_key(&mut w, it.key(), it.flags() & ITEM_KEY_BINARY != 0),
            b'c' => {
                let _ = write!(w, " c{}", out.cas);
            }
            b's' => {
                let n = if out.nbytes != 0 {
                    out.nbytes
                } else {
                    it.value_len()
                };
                let _ = write!(w, " s{}", n - 2);
            }
            _ => {}
        }
        i = end;
    }
    w.extend_from_slice(b"\r\n");
    let skip = quiet && out.result == StoreResult::Stored;
    if let Some(r) = c.resp() {
        r.mset_res = false;
    }
    reply(c, w, skip);
}

/// `md <key> <flags>*` (C's process_mdelete_cmd).
pub fn process_mdelete(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let mut binkey = BinKey::new();
    let mut f = Flags::default();
    if let Err(e) = parse_flags_into(line, t, 2, &mut binkey, &Clock::now(), &mut f) {
        return err(c, e);
    }
    let key = f.key(line, t, &binkey);
    // Two bytes for the status, known later; the returned flags follow (C builds it so).
    let mut w = take_wbuf(c);
    w.extend_from_slice(b"..");
    if let Err(e) = put_opaque_and_key(&mut w, line, t, key, f.key_binary) {
        restore(c, w);
        return err(c, e);
    }
    let Some(st) = store::store() else {
        restore(c, w);
        return err(c, "SERVER_ERROR out of memory");
    };
    let ctr = c.counters();
    let ts = ctr.thread;
    let mut skip = false;
    let status: &[u8] = {
        let l = st.lock(key);
        match l.get(Some(ts), false) {
            None => {
                stats::bump(&ts.delete_misses, 1);
                b"NF"
            }
            Some(it) if f.has_cas && it.cas() != f.req_cas_id => {
                stats::bump(&ts.delete_misses, 1);
                b"EX"
            }
            Some(mut it) => {
                let mut status: &[u8] = b"HD";
                let mut go_on = true;
                if f.remove_val {
                    // Replace the value with an empty tombstone.
                    let Some(mut n) = st.alloc(key, f.client_flags, f.exptime, 2) else {
                        drop(it);
                        drop(l);
                        restore(c, w);
                        return err(c, "SERVER_ERROR out of memory");
                    };
                    n.data_mut().copy_from_slice(b"\r\n");
                    let cas_in = if f.has_cas_in { f.cas_id_in } else { it.cas() };
                    let out = ops::store_item(&l, &n, StoreCmd::Set, cas_in, false, ctr);
                    if out.result == StoreResult::Stored {
                        it = n;
                    } else {
                        status = b"NS";
                        go_on = false;
                    }
                }
                if go_on {
                    if f.set_stale {
                        if f.new_ttl {
                            l.set_exptime(&it, f.exptime);
                        }
                        l.update_flags(&it, ITEM_STALE, ITEM_TOKEN_SENT);
                        let cas = if f.has_cas_in {
                            f.cas_id_in
                        } else {
                            st.next_cas()
                        };
                        l.set_cas(&it, cas);
                    } else {
                        stats::bump(&ctr.class.class(it.class()).delete_hits, 1);
                        if crate::logger::enabled(crate::logger::LOG_DELETIONS) {
                            crate::logger::deletion(
                                it.key(),
                                it.value_len() as i32,
                                crate::logger::META_DELETE_CMD,
                                it.class(),
                            );
                        }
                        if !f.remove_val {
                            l.unlink(&it);
                        }
                    }
                    skip = f.no_reply;
                }
                status
            }
        }
    };
    w[..2].copy_from_slice(status);
    w.extend_from_slice(b"\r\n");
    reply(c, w, skip);
}

/// `ma <key> <flags>*` (C's process_marithmetic_cmd).
pub fn process_marithmetic(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let mut binkey = BinKey::new();
    let mut f = Flags::default();
    if parse_flags_into(line, t, 2, &mut binkey, &Clock::now(), &mut f).is_err() {
        return err(c, "CLIENT_ERROR invalid or duplicate flag");
    }
    // No D flag means a delta of one.
    if !t_has(line, t, 2, b'D') {
        f.delta = 1;
    }
    let key = f.key(line, t, &binkey);
    let incr = match f.mode {
        0 | b'I' | b'+' => true,
        b'D' | b'-' => false,
        _ => return err(c, "CLIENT_ERROR invalid mode for ma M token"),
    };
    let Some(st) = store::store() else {
        return err(c, "SERVER_ERROR out of memory");
    };
    let ctr = c.counters();
    let ts = ctr.thread;
    let mut buf = [0u8; 20];
    let l = st.lock(key);
    let mut w = take_wbuf(c);
    let mut skip = false;
    let mut item_created = false;
    let mut cas = 0u64;
    let res = ops::add_delta(&l, incr, f.delta, Some(f.req_cas_id), &mut buf, ctr);
    let mut digits_len = 0;
    let it: Option<ItemRef> = match res {
        Delta::Ok(it, n) => {
            skip = f.no_reply;
            if f.has_cas_in {
                l.set_cas(&it, f.cas_id_in);
            }
            cas = it.cas();
            digits_len = n;
            Some(it)
        }
        Delta::NonNumeric => {
            drop(l);
            return err(
                c,
                "CLIENT_ERROR cannot increment or decrement non-numeric value",
            );
        }
        Delta::Eom => {
            drop(l);
            return err(c, "SERVER_ERROR out of memory");
        }
        Delta::NotFound if f.vivify => {
            let digits = cnum::u64_decimal(f.initial, &mut buf).len();
            buf.copy_within(20 - digits.., 0);
            digits_len = digits;
            let cas_in = || {
                if f.has_cas_in {
                    f.cas_id_in
                } else {
                    st.next_cas()
                }
            };
            match ops::create_number(&l, f.initial, 0, cas_in, ctr) {
                Created::Stored(n, stored_cas) => {
                    item_created = true;
                    cas = stored_cas;
                    skip = f.no_reply;
                    Some(n)
                }
                Created::NotStored => {
                    w.extend_from_slice(b"NS");
                    None
                }
                Created::NoMemory => {
                    drop(l);
                    return err(c, "SERVER_ERROR Out of memory allocating new item");
                }
            }
        }
        Delta::NotFound => {
            stats::bump(
                if incr {
                    &ts.incr_misses
                } else {
                    &ts.decr_misses
                },
                1,
            );
            w.extend_from_slice(b"NF");
            None
        }
        Delta::CasMismatch => {
            w.extend_from_slice(b"EX");
            None
        }
    };
    let now = current_time();
    if let Some(it) = &it {
        if f.value {
            let _ = write!(w, "VA {}", digits_len);
        } else {
            w.extend_from_slice(b"HD");
        }
        for i in 2..t.ntokens {
            let tok = t.get(line, i).unwrap_or(b"");
            match tok.first().copied().unwrap_or(0) {
                b'c' => {
                    let _ = write!(w, " c{}", cas);
                }
                b't' => {
                    if it.exptime() == 0 {
                        w.extend_from_slice(b" t-1");
                    } else {
                        w.extend_from_slice(b" t");
                        super::push_decimal(&mut w, it.exptime().wrapping_sub(now) as u64);
                    }
                }
                b'T' => l.set_exptime(it, f.exptime),
                b'N' if item_created => l.set_exptime(it, f.autoviv_exptime),
                b'O' => {
                    if let Err(e) = put_opaque(&mut w, tok) {
                        drop(l);
                        return err(c, e);
                    }
                }
                b'k' => put_key(&mut w, key, f.key_binary),
                _ => {}
            }
        }
        if f.value {
            w.extend_from_slice(b"\r\n");
            w.extend_from_slice(&buf[..digits_len]);
        }
    } else if let Err(e) = put_opaque_and_key(&mut w, line, t, key, f.key_binary) {
        drop(l);
        return err(c, e);
    }
    drop(it);
    drop(l);
    w.extend_from_slice(b"\r\n");
    reply(c, w, skip);
}

/// Whether a flag token starting with `flag` is present from token `start` on.
fn t_has(line: &[u8], t: &Tokens, start: usize, flag: u8) -> bool {
    (start..t.ntokens).any(|i| line.get(t.offset(i)) == Some(&flag))
}

/// `me <key> [b]`: a one-line dump of an item's metadata (C's process_meta_command).
pub fn process_meta_dump(c: &mut dyn Session, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let tok_key = t.get(line, 1).unwrap_or(b"");
    if t.ntokens < 2 || tok_key.len() > KEY_MAX_LENGTH {
        return c.out_string("CLIENT_ERROR bad command line format");
    }
    let mut binkey = BinKey::new();
    let mut key = tok_key;
    // C only looks for `b` when another token follows it.
    if t.ntokens >= 4 && t.get(line, 2) == Some(b"b") {
        if binkey.fill(tok_key.len(), |b| base64_decode(tok_key, b)) == 0 {
            return c.out_string("CLIENT_ERROR bad command line format");
        }
        key = binkey.as_slice();
    }
    let ctr = c.counters();
    let found = store::store().and_then(|st| st.get(key, Some(ctr.thread), false));
    match found {
        Some(it) => {
            let now = current_time();
            let mut w = take_wbuf(c);
            w.extend_from_slice(b"ME ");
            if it.flags() & ITEM_KEY_BINARY != 0 {
                base64_encode(it.key(), &mut w);
            } else {
                w.extend_from_slice(it.key());
            }
            let exp = if it.exptime() == 0 {
                -1
            } else {
                it.exptime().wrapping_sub(now) as i32
            };
            let _ = write!(
                w,
                " exp={} la={} cas={} fetch={} cls={} size={}\r\n",
                exp,
                now.wrapping_sub(it.time()),
                it.cas(),
                if it.flags() & ITEM_FETCHED != 0 {
                    "yes"
                } else {
                    "no"
                },
                it.class(),
                it.ntotal()
            );
            reply(c, w, false);
        }
        None => c.out_string("EN"),
    }
    stats::bump(&ctr.thread.meta_cmds, 1);
}
