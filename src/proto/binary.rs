//! The binary protocol (C's proto_bin.c): 24-byte request headers, per-opcode checks of
//! extras/key/body lengths, quiet variants, and response packets. Values are read straight
//! into items as the text protocol does; the "\r\n" that items keep is added here.

use super::session::{Next, Session};
use super::text::realtime_wide;
use crate::items::ops::{self, Created, Delta, StoreCmd, StoreResult};
use crate::items::store::{self, ItemRef};
use crate::lent::CloseReason;
use crate::settings;
use crate::stats::{self, StatSink};
use std::sync::atomic::Ordering::Relaxed;

/// Request and response magic bytes.
pub const REQ_MAGIC: u8 = 0x80;
const RES_MAGIC: u8 = 0x81;
/// Header size.
pub const HEADER_LEN: usize = 24;
/// Longest body a request may announce (C's ITEM_SIZE_MAX_UPPER_LIMIT).
const BODY_MAX: u32 = 1024 * 1024 * 1024;
const KEY_MAX_LENGTH: usize = 250;

// Opcodes.
const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCREMENT: u8 = 0x05;
const DECREMENT: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
pub(super) const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const STAT: u8 = 0x10;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const REPLACEQ: u8 = 0x13;
const DELETEQ: u8 = 0x14;
const INCREMENTQ: u8 = 0x15;
const DECREMENTQ: u8 = 0x16;
const QUITQ: u8 = 0x17;
const FLUSHQ: u8 = 0x18;
const APPENDQ: u8 = 0x19;
const PREPENDQ: u8 = 0x1a;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATQ: u8 = 0x1e;
pub(super) const SASL_LIST_MECHS: u8 = 0x20;
pub(super) const SASL_AUTH: u8 = 0x21;
pub(super) const SASL_STEP: u8 = 0x22;
const GATK: u8 = 0x23;
const GATKQ: u8 = 0x24;

// Response statuses.
const SUCCESS: u16 = 0x00;
const KEY_ENOENT: u16 = 0x01;
const KEY_EEXISTS: u16 = 0x02;
const E2BIG: u16 = 0x03;
pub(super) const EINVAL: u16 = 0x04;
const NOT_STORED: u16 = 0x05;
const DELTA_BADVAL: u16 = 0x06;
pub(super) const AUTH_ERROR: u16 = 0x20;
const UNKNOWN_COMMAND: u16 = 0x81;
pub(super) const ENOMEM: u16 = 0x82;

/// The current request's header, in host order (C's c->binary_header), and what the reply
/// carries back.
#[derive(Debug, Default, Clone, Copy)]
pub struct BinState {
    /// Opcode after quiet forms are mapped to their loud ones.
    pub cmd: u8,
    /// The opcode as received (echoed in replies).
    pub opcode: u8,
    pub keylen: u16,
    pub extlen: u8,
    pub bodylen: u32,
    /// Echoed as received.
    pub opaque: [u8; 4],
    pub req_cas: u64,
    /// Replies to successes are suppressed (quiet opcodes).
    pub noreply: bool,
}

/// Runs one request whose header, extras and key have been read (the part of C's
/// try_read_command_binary after the framing): `ext` holds the extras (zero-padded), `key`
/// the key.
pub fn process_request(c: &mut dyn Session, b: BinState, ext: &[u8; 20], key: &[u8]) {
    *c.bin() = b;
    // The CAS a reply carries, set by the commands that return one.
    *c.cas() = 0;
    dispatch(c, ext, key);
}

/// Writes a response header into the current response (C's add_bin_header).
pub(super) fn add_header(c: &mut dyn Session, status: u16, extlen: u8, keylen: u16, bodylen: u32) {
    let b = *c.bin();
    let cas = *c.cas();
    let Some(r) = c.resp() else { return };
    r.wbuf.clear();
    r.item = None;
    r.body.clear();
    r.wbuf.push(RES_MAGIC);
    r.wbuf.push(b.opcode);
    r.wbuf.extend_from_slice(&keylen.to_be_bytes());
    r.wbuf.push(extlen);
    r.wbuf.push(0);
    r.wbuf.extend_from_slice(&status.to_be_bytes());
    r.wbuf.extend_from_slice(&bodylen.to_be_bytes());
    r.wbuf.extend_from_slice(&b.opaque);
    r.wbuf.extend_from_slice(&cas.to_be_bytes());
    if settings::verbose() > 1 {
        let fd = c.fd();
        if let Some(r) = c.resp() {
            eprint!(
                "{}",
                dump_header(
                    &format!(">{} Writing bin response:", fd),
                    &format!(">{}  ", fd),
                    &r.wbuf[..HEADER_LEN]
                )
            );
        }
    }
}

/// A header as C's -vv traces print it: a title, then four bytes per line.
pub fn dump_header(title: &str, line_prefix: &str, h: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::from(title);
    for (i, b) in h.iter().enumerate() {
        if i % 4 == 0 {
            s.push('\n');
            s.push_str(line_prefix);
        }
        let _ = write!(s, " 0x{:02x}", b);
    }
    s.push('\n');
    s
}

/// An error reply with C's texts; then the value is swallowed, or the reply flushed.
pub(super) fn write_error(c: &mut dyn Session, status: u16, text: Option<&str>, swallow: usize) {
    let text = text.unwrap_or(match status {
        ENOMEM => "Out of memory",
        UNKNOWN_COMMAND => "Unknown command",
        KEY_ENOENT => "Not found",
        EINVAL => "Invalid arguments",
        KEY_EEXISTS => "Data exists for key.",
        E2BIG => "Too large.",
        DELTA_BADVAL => "Non-numeric server-side value for incr or decr",
        NOT_STORED => "Not stored.",
        AUTH_ERROR => "Auth failure.",
        _ => "UNHANDLED ERROR",
    });
    if settings::verbose() > 1 {
        eprintln!(">{} Writing an error: {}", c.fd(), text);
    }
    add_header(c, status, 0, 0, text.len() as u32);
    if let Some(r) = c.resp() {
        r.skip = false;
        r.wbuf.extend_from_slice(text.as_bytes());
    }
    if swallow > 0 {
        c.set_next(Next::Swallow(swallow));
    } else {
        c.set_next(Next::Flush);
    }
}

/// Invalid arguments, then hang up (C's handle_binary_protocol_error).
fn protocol_error(c: &mut dyn Session) {
    write_error(c, EINVAL, None, 0);
    if settings::verbose() > 0 {
        let op = c.bin().opcode;
        eprintln!(
            "Protocol error (opcode {:02x}), close connection {}",
            op,
            c.fd()
        );
    }
    c.close_after_write();
}

/// A success reply with `extras`, `key` and `value` (C's write_bin_response); suppressed
/// for quiet opcodes except the get family.
pub(super) fn write_response(c: &mut dyn Session, extras: &[u8], key: &[u8], value: &[u8]) {
    let b = *c.bin();
    if !b.noreply || b.cmd == GET || b.cmd == GETK {
        add_header(
            c,
            SUCCESS,
            extras.len() as u8,
            key.len() as u16,
            (extras.len() + key.len() + value.len()) as u32,
        );
        if let Some(r) = c.resp() {
            r.wbuf.extend_from_slice(extras);
            r.wbuf.extend_from_slice(key);
            r.wbuf.extend_from_slice(value);
        }
    } else if let Some(r) = c.resp() {
        // Nothing is added, but the (empty) response stays: over UDP it still goes out as
        // an empty datagram, as in C.
        r.wbuf.clear();
    }
    c.set_next(Next::NewCmd);
}

/// A memory error (C's out_of_memory in binary mode: the "SERVER_ERROR " prefix dropped).
fn out_of_memory(c: &mut dyn Session, text: &str) {
    let text = text.strip_prefix("SERVER_ERROR ").unwrap_or(text);
    write_error(c, ENOMEM, Some(text), 0);
}

/// What C's checks of a request's lengths decide before running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run `cmd` (quiet opcodes mapped to their loud forms, `noreply` set for them).
    Run,
    /// "Unknown command", then `n` body bytes are swallowed (unknown opcodes).
    Unknown(usize),
    /// Key and extras longer than the body: "Unknown command", then close.
    BadLengths,
    /// A body over 1 GiB: "Invalid arguments", then close.
    TooLarge,
    /// Lengths an opcode does not allow (C's handle_binary_protocol_error): "Invalid
    /// arguments", then close.
    ProtocolError,
}

/// Decodes a request header (at least 24 bytes): None when the magic byte is wrong.
pub fn decode_header(h: &[u8]) -> Option<BinState> {
    if h.len() < HEADER_LEN || h[0] != REQ_MAGIC {
        return None;
    }
    Some(BinState {
        cmd: h[1],
        opcode: h[1],
        keylen: u16::from_be_bytes([h[2], h[3]]),
        extlen: h[4],
        bodylen: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        opaque: [h[12], h[13], h[14], h[15]],
        req_cas: u64::from_be_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]),
        noreply: false,
    })
}

impl BinState {
    /// Bytes of the header, extras and key: what must be read before the request runs.
    pub fn head_len(&self) -> usize {
        HEADER_LEN + self.keylen as usize + self.extlen as usize
    }
}

/// C's length checks, in C's order (process_bin_packet and the per-opcode checks of
/// dispatch_bin_command); maps a quiet opcode to its loud form with `noreply`. A pure
/// function of the header.
pub fn classify(b: &mut BinState) -> Verdict {
    let (extlen, keylen, bodylen) = (b.extlen as u32, b.keylen as u32, b.bodylen);
    if keylen > bodylen || keylen + extlen > bodylen {
        return Verdict::BadLengths;
    }
    if bodylen > BODY_MAX {
        return Verdict::TooLarge;
    }
    b.noreply = true;
    if keylen as usize > KEY_MAX_LENGTH {
        return Verdict::ProtocolError;
    }
    b.cmd = match b.opcode {
        SETQ => SET,
        ADDQ => ADD,
        REPLACEQ => REPLACE,
        DELETEQ => DELETE,
        INCREMENTQ => INCREMENT,
        DECREMENTQ => DECREMENT,
        QUITQ => QUIT,
        FLUSHQ => FLUSH,
        APPENDQ => APPEND,
        PREPENDQ => PREPEND,
        GETQ => GET,
        GETKQ => GETK,
        GATQ => GAT,
        GATKQ => GATK,
        op => {
            b.noreply = false;
            op
        }
    };
    let ok = match b.cmd {
        VERSION | NOOP | QUIT => extlen == 0 && keylen == 0 && bodylen == 0,
        FLUSH => keylen == 0 && bodylen == extlen && (extlen == 0 || extlen == 4),
        SET | ADD | REPLACE => extlen == 8 && keylen != 0 && bodylen >= keylen + 8,
        GET | GETK => extlen == 0 && bodylen == keylen && keylen > 0,
        DELETE => keylen > 0 && extlen == 0 && bodylen == keylen,
        INCREMENT | DECREMENT => keylen > 0 && extlen == 20 && bodylen == keylen + extlen,
        APPEND | PREPEND => keylen > 0 && extlen == 0,
        STAT => extlen == 0,
        SASL_LIST_MECHS => extlen == 0 && keylen == 0 && bodylen == 0,
        SASL_AUTH | SASL_STEP => extlen == 0 && keylen != 0,
        TOUCH | GAT | GATK => extlen == 4 && keylen != 0,
        _ => return Verdict::Unknown(bodylen as usize),
    };
    if ok {
        Verdict::Run
    } else {
        Verdict::ProtocolError
    }
}

fn dispatch(c: &mut dyn Session, ext: &[u8; 20], key: &[u8]) {
    let verdict = classify(c.bin());
    match verdict {
        Verdict::BadLengths => {
            write_error(c, UNKNOWN_COMMAND, None, 0);
            c.close_after_write();
            return;
        }
        Verdict::TooLarge => {
            write_error(c, EINVAL, None, 0);
            c.close_after_write();
            return;
        }
        _ => {}
    }
    // With -S, C refuses a client that has not authenticated before any other check.
    if settings::get().sasl && !super::sasl::allowed(c) {
        write_error(c, AUTH_ERROR, None, 0);
        c.close_after_write();
        return;
    }
    match verdict {
        Verdict::BadLengths | Verdict::TooLarge => {}
        Verdict::ProtocolError => return protocol_error(c),
        Verdict::Unknown(n) => return write_error(c, UNKNOWN_COMMAND, None, n),
        Verdict::Run => {}
    }
    match c.bin().cmd {
        VERSION => write_response(c, &[], &[], crate::VERSION.as_bytes()),
        FLUSH => process_flush(c, ext),
        NOOP => {
            write_response(c, &[], &[], &[]);
            // noop flushes the pipeline.
            c.set_next(Next::Flush);
        }
        SET | ADD | REPLACE => process_update(c, ext, key),
        GET | GETK | TOUCH | GAT | GATK => process_get_or_touch(c, ext, key),
        DELETE => process_delete(c, key),
        INCREMENT | DECREMENT => process_incr(c, ext, key),
        APPEND | PREPEND => process_append_prepend(c, key),
        STAT => process_stat(c, key),
        SASL_LIST_MECHS | SASL_AUTH | SASL_STEP if !settings::get().sasl => {
            // A server without -S answers as C's guard does.
            let b = *c.bin();
            write_error(
                c,
                UNKNOWN_COMMAND,
                None,
                (b.bodylen - b.keylen as u32) as usize,
            )
        }
        SASL_LIST_MECHS => super::sasl::list_mechs(c),
        SASL_AUTH | SASL_STEP => super::sasl::auth(c, key),
        QUIT => {
            write_response(c, &[], &[], &[]);
            c.set_next(Next::Flush);
            c.close_after_write();
            c.set_close_reason(CloseReason::Normal);
        }
        _ => {
            let n = c.bin().bodylen as usize;
            write_error(c, UNKNOWN_COMMAND, None, n)
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// get/getk/gat/gatk/touch and quiet forms (C's process_bin_get_or_touch).
fn process_get_or_touch(c: &mut dyn Session, ext: &[u8; 20], key: &[u8]) {
    let cmd = c.bin().cmd;
    let touch = matches!(cmd, TOUCH | GAT | GATK);
    let return_key = matches!(cmd, GETK | GATK);
    let return_value = cmd != TOUCH;
    if settings::verbose() > 1 {
        eprintln!(
            "<{} {} {}",
            c.fd(),
            if touch { "TOUCH" } else { "GET" },
            String::from_utf8_lossy(key)
        );
    }
    let Some(st) = store::store() else { return };
    let ctr = c.counters();
    let ts = ctr.thread;
    let found = if touch {
        let exptime = realtime_wide(be32(ext) as i64);
        ops::get_and_touch(&st.lock(key), exptime, ts)
    } else {
        st.get(key, Some(ts), true)
    };
    let found = found.filter(|it| it.refcount() <= 60000);
    if stats::detail_enabled() {
        stats::prefix_record_get(key, found.is_some());
    }
    match found {
        Some(it) => {
            if touch {
                stats::bump(&ts.touch_cmds, 1);
                stats::bump(&ctr.class.class(it.class()).touch_hits, 1);
            } else {
                stats::bump(&ts.get_cmds, 1);
                stats::bump(&ctr.class.lru_hits[it.clsid() as usize], 1);
            }
            let vlen = it.value_len() - 2;
            let mut bodylen = 4 + vlen as u32;
            let mut keylen = 0u16;
            if cmd == TOUCH {
                bodylen -= vlen as u32;
            } else if return_key {
                bodylen += key.len() as u32;
                keylen = key.len() as u16;
            }
            add_header(c, SUCCESS, 4, keylen, bodylen);
            let flash = return_value && it.is_hdr();
            let cas = it.cas();
            let flags = it.client_flags();
            let mut held = Some(it);
            if let Some(r) = c.resp() {
                // C writes the item's CAS into the header after building (and tracing) it.
                r.wbuf[16..24].copy_from_slice(&cas.to_be_bytes());
                r.wbuf.extend_from_slice(&flags.to_be_bytes());
                if return_key {
                    r.wbuf.extend_from_slice(key);
                }
                if return_value && !flash {
                    r.item_trim = 2;
                    r.item = held.take();
                }
            }
            if let Some(it) = held.filter(|_| flash) {
                let quiet = c.bin().noreply;
                if let Some(r) = c.resp() {
                    r.item_trim = 2;
                }
                let reply = super::response::FlashReply::Binary { quiet };
                if super::attach_flash(c, it, reply).is_err() {
                    // No memory to read the value into: a miss (C's get_oom_extstore path).
                    if let Some(r) = c.resp() {
                        r.wbuf.clear();
                    }
                    if !touch {
                        stats::bump(&ts.get_misses, 1);
                    }
                    if quiet {
                        if let Some(r) = c.resp() {
                            r.skip = true;
                        }
                    } else if return_key {
                        add_header(c, KEY_ENOENT, 0, key.len() as u16, key.len() as u32);
                        if let Some(r) = c.resp() {
                            r.wbuf.extend_from_slice(key);
                        }
                    } else {
                        write_error(c, KEY_ENOENT, None, 0);
                        return;
                    }
                }
            }
            c.set_next(Next::NewCmd);
        }
        None => {
            if touch {
                stats::bump(&ts.touch_cmds, 1);
                stats::bump(&ts.touch_misses, 1);
            } else {
                stats::bump(&ts.get_cmds, 1);
                stats::bump(&ts.get_misses, 1);
            }
            if c.bin().noreply {
                c.set_next(Next::NewCmd);
            } else if return_key {
                add_header(c, KEY_ENOENT, 0, key.len() as u16, key.len() as u32);
                if let Some(r) = c.resp() {
                    r.wbuf.extend_from_slice(key);
                }
                c.set_next(Next::NewCmd);
            } else {
                write_error(c, KEY_ENOENT, None, 0);
            }
        }
    }
}

/// set/add/replace: allocates the item and reads the value into it (C's
/// process_bin_update).
fn process_update(c: &mut dyn Session, ext: &[u8; 20], key: &[u8]) {
    let b = *c.bin();
    let flags = be32(&ext[0..4]);
    let exptime = be32(&ext[4..8]) as i64;
    let vlen = (b.bodylen - (b.keylen as u32 + b.extlen as u32)) as usize;
    if settings::verbose() > 1 {
        let what = match b.cmd {
            ADD => "ADD",
            SET => "SET",
            _ => "REPLACE",
        };
        eprintln!(
            "<{} {} {} Value len is {}",
            c.fd(),
            what,
            String::from_utf8_lossy(key),
            vlen
        );
    }
    if stats::detail_enabled() {
        stats::prefix_record_set(key);
    }
    let Some(st) = store::store() else { return };
    let Some(mut it) = st.alloc(key, flags, realtime_wide(exptime), vlen as i32 + 2) else {
        let status = if !st.item_size_ok(key.len(), flags, vlen + 2) {
            write_error(c, E2BIG, None, vlen);
            ops::STORE_TOO_LARGE
        } else {
            out_of_memory(c, "SERVER_ERROR Out of memory allocating item");
            ops::STORE_NO_MEMORY
        };
        if crate::logger::enabled(crate::logger::LOG_MUTATIONS) {
            // C logs command 0 and passes its arguments shifted by one: the request's
            // expiration as the size, no TTL, the descriptor as the class.
            let sfd = c.fd();
            let exp = be32(&ext[4..8]) as i32;
            crate::logger::item_store(status, 0, key, exp, 0, sfd as u8, sfd);
        }
        // A failed set must not leave the old value behind.
        if b.cmd == SET {
            st.delete(key, Some(c.counters().thread));
        }
        c.set_next(Next::Swallow(vlen));
        return;
    };
    it.set_cas_unlinked(b.req_cas);
    let mut cmd = match b.cmd {
        ADD => StoreCmd::Add,
        REPLACE => StoreCmd::Replace,
        _ => StoreCmd::Set,
    };
    if b.req_cas != 0 {
        cmd = StoreCmd::Cas;
    }
    start_value(c, it, cmd, vlen);
}

fn start_value(c: &mut dyn Session, it: ItemRef, cmd: StoreCmd, vlen: usize) {
    c.read_value(it, vlen, cmd);
}

/// append/prepend (C's process_bin_append_prepend).
fn process_append_prepend(c: &mut dyn Session, key: &[u8]) {
    let b = *c.bin();
    let vlen = (b.bodylen - b.keylen as u32) as usize;
    if settings::verbose() > 1 {
        eprintln!("Value len is {}", vlen);
    }
    if stats::detail_enabled() {
        stats::prefix_record_set(key);
    }
    let Some(st) = store::store() else { return };
    let Some(mut it) = st.alloc(key, 0, 0, vlen as i32 + 2) else {
        if !st.item_size_ok(key.len(), 0, vlen + 2) {
            write_error(c, E2BIG, None, vlen);
        } else {
            out_of_memory(c, "SERVER_ERROR Out of memory allocating item");
        }
        c.set_next(Next::Swallow(vlen));
        return;
    };
    it.set_cas_unlinked(b.req_cas);
    let cmd = if b.cmd == APPEND {
        StoreCmd::Append
    } else {
        StoreCmd::Prepend
    };
    start_value(c, it, cmd, vlen);
}

/// The value is in: add the "\r\n" items keep and store (C's complete_update_bin).
pub fn complete_nread(c: &mut dyn Session, mut it: ItemRef) {
    if matches!(c.bin().cmd, SASL_AUTH | SASL_STEP) {
        return super::sasl::complete(c, it);
    }
    let ctr = c.counters();
    stats::bump(&ctr.class.class(it.class()).set_cmds, 1);
    let n = it.value_len();
    it.write_at(n - 2, b"\r\n");
    let Some(st) = store::store() else { return };
    let cas_in = if settings::get().use_cas {
        st.next_cas()
    } else {
        0
    };
    let cmd = c.store_cmd();
    let out = ops::store_item(&st.lock(it.key()), &it, cmd, cas_in, false, ctr);
    *c.cas() = out.cas;
    match out.result {
        StoreResult::Stored => write_response(c, &[], &[], &[]),
        StoreResult::Exists => write_error(c, KEY_EEXISTS, None, 0),
        StoreResult::NotFound => write_error(c, KEY_ENOENT, None, 0),
        StoreResult::NotStored => {
            let status = match cmd {
                StoreCmd::Add => KEY_EEXISTS,
                StoreCmd::Replace => KEY_ENOENT,
                _ => NOT_STORED,
            };
            write_error(c, status, None, 0);
        }
    }
}

/// delete (C's process_bin_delete).
fn process_delete(c: &mut dyn Session, key: &[u8]) {
    if settings::verbose() > 1 {
        eprintln!("Deleting {}", String::from_utf8_lossy(key));
    }
    if stats::detail_enabled() {
        stats::prefix_record_delete(key);
    }
    let Some(st) = store::store() else { return };
    let ctr = c.counters();
    let req_cas = c.bin().req_cas;
    let res = {
        let l = st.lock(key);
        match l.get(Some(ctr.thread), false) {
            Some(it) if req_cas == 0 || req_cas == it.cas() => {
                stats::bump(&ctr.class.class(it.class()).delete_hits, 1);
                l.unlink(&it);
                Some(true)
            }
            Some(_) => Some(false),
            None => None,
        }
    };
    match res {
        Some(true) => write_response(c, &[], &[], &[]),
        Some(false) => write_error(c, KEY_EEXISTS, None, 0),
        None => {
            write_error(c, KEY_ENOENT, None, 0);
            stats::bump(&ctr.thread.delete_misses, 1);
        }
    }
}

/// increment/decrement with initial value and expiry (C's complete_incr_bin).
fn process_incr(c: &mut dyn Session, ext: &[u8; 20], key: &[u8]) {
    let delta = be64(&ext[0..8]);
    let initial = be64(&ext[8..16]);
    let expiration = be32(&ext[16..20]);
    let incr = c.bin().cmd == INCREMENT;
    if settings::verbose() > 1 {
        eprintln!(
            "incr {} {}, {}, {}",
            String::from_utf8_lossy(key),
            delta as i64,
            initial,
            expiration as i32
        );
    }
    let Some(st) = store::store() else { return };
    let ctr = c.counters();
    let req_cas = c.bin().req_cas;
    let mut buf = [0u8; 20];
    let l = st.lock(key);
    let res = ops::add_delta(&l, incr, delta, Some(req_cas), &mut buf, ctr);
    match res {
        Delta::Ok(it, n) => {
            drop(l);
            let value = std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            *c.cas() = it.cas();
            write_response(c, &[], &[], &value.to_be_bytes());
        }
        Delta::NonNumeric => write_error(c, DELTA_BADVAL, None, 0),
        Delta::Eom => out_of_memory(c, "SERVER_ERROR Out of memory incrementing value"),
        Delta::NotFound if expiration != 0xffff_ffff => {
            let exptime = realtime_wide(expiration as i64);
            let cas_in = || {
                if settings::get().use_cas {
                    st.next_cas()
                } else {
                    0
                }
            };
            match ops::create_number(&l, initial, exptime, cas_in, ctr) {
                Created::Stored(_, cas) => {
                    drop(l);
                    *c.cas() = cas;
                    write_response(c, &[], &[], &initial.to_be_bytes());
                }
                Created::NotStored => write_error(c, NOT_STORED, None, 0),
                Created::NoMemory => {
                    out_of_memory(c, "SERVER_ERROR Out of memory allocating new item")
                }
            }
        }
        Delta::NotFound => {
            stats::bump(
                if incr {
                    &ctr.thread.incr_misses
                } else {
                    &ctr.thread.decr_misses
                },
                1,
            );
            write_error(c, KEY_ENOENT, None, 0);
        }
        Delta::CasMismatch => write_error(c, KEY_EEXISTS, None, 0),
    }
}

/// flush with an optional delay (C's process_bin_flush).
fn process_flush(c: &mut dyn Session, ext: &[u8; 20]) {
    let s = settings::get();
    if !s.flush_enabled {
        return write_error(c, AUTH_ERROR, None, 0);
    }
    let exptime = if c.bin().extlen == 4 {
        be32(ext) as i64
    } else {
        0
    };
    let new_oldest = if exptime > 0 {
        realtime_wide(exptime).wrapping_sub(1)
    } else {
        stats::current_time().wrapping_sub(1)
    };
    s.oldest_live.store(new_oldest, Relaxed);
    if let Some(st) = store::store() {
        st.flush_expired(new_oldest);
    }
    stats::bump(&c.counters().thread.flush_cmds, 1);
    write_response(c, &[], &[], &[]);
}

/// Stats as binary packets: one per stat (key = name, value = value), then an empty one
/// (C's append_bin_stats).
struct BinStats<'a> {
    out: &'a mut Vec<u8>,
    opaque: [u8; 4],
}

impl BinStats<'_> {
    fn packet(&mut self, key: &[u8], value: &[u8]) {
        let o = &mut *self.out;
        o.push(RES_MAGIC);
        o.push(STAT);
        o.extend_from_slice(&(key.len() as u16).to_be_bytes());
        o.extend_from_slice(&[0, 0, 0, 0]);
        o.extend_from_slice(&((key.len() + value.len()) as u32).to_be_bytes());
        o.extend_from_slice(&self.opaque);
        o.extend_from_slice(&[0; 8]);
        o.extend_from_slice(key);
        o.extend_from_slice(value);
    }
}

impl StatSink for BinStats<'_> {
    fn stat(&mut self, name: &str, value: &dyn std::fmt::Display) {
        let v = value.to_string();
        self.packet(name.as_bytes(), v.as_bytes());
    }
    fn stat_bytes(&mut self, name: &str, value: &[u8]) {
        self.packet(name.as_bytes(), value);
    }
}

/// STAT with an optional group name as the key (C's process_bin_stat).
fn process_stat(c: &mut dyn Session, key: &[u8]) {
    if settings::verbose() > 1 {
        eprintln!("<{} STATS {}", c.fd(), String::from_utf8_lossy(key));
    }
    let s = settings::get();
    let mut body = Vec::new();
    let mut sink = BinStats {
        out: &mut body,
        opaque: c.bin().opaque,
    };
    if key.is_empty() {
        (crate::hooks::get().general)(&mut sink);
    } else if key.starts_with(b"reset") {
        (crate::hooks::get().reset)();
    } else if key.starts_with(b"settings") {
        settings::write_stats_settings(&mut sink);
    } else if key.starts_with(b"detail") {
        let rest = &key[6..];
        if !s.dump_enabled {
            return write_error(c, KEY_ENOENT, None, 0);
        }
        if rest.starts_with(b" dump") {
            let mut dump = Vec::new();
            stats::prefix_dump(&mut dump);
            sink.packet(b"detailed", &dump);
        } else if rest.starts_with(b" on") {
            s.detail_enabled.store(true, Relaxed);
        } else if rest.starts_with(b" off") {
            s.detail_enabled.store(false, Relaxed);
        } else {
            return write_error(c, KEY_ENOENT, None, 0);
        }
    } else if !(crate::hooks::get().engine)(key, &mut sink) {
        return write_error(c, KEY_ENOENT, None, 0);
    }
    sink.packet(&[], &[]);
    if let Some(r) = c.resp() {
        r.wbuf.clear();
        r.body = body;
    }
    c.set_next(Next::NewCmd);
}
