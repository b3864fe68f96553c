//! The binary protocol's SASL commands under `-S` (C's bin_list_sasl_mechs,
//! process_bin_sasl_auth, process_bin_complete_sasl_auth and authenticated() in proto_bin.c):
//! which commands an unauthenticated client may send, the mechanism list, and AUTH/STEP,
//! whose data is read into an item first as C reads it. The library calls are in
//! `crate::sasl`.

use super::binary::{
    add_header, write_error, write_response, AUTH_ERROR, EINVAL, ENOMEM, SASL_AUTH,
    SASL_LIST_MECHS, SASL_STEP, VERSION,
};
use super::session::{Next, Session};
use crate::items::ops::StoreCmd;
use crate::items::store::{self, ItemRef};
use crate::sasl::{self, Exchange};
use crate::settings;
use crate::stats;

/// The reply status asking the client for another step.
const AUTH_CONTINUE: u16 = 0x21;
/// Longest mechanism name accepted (C's MAX_SASL_MECH_LEN).
const MAX_SASL_MECH_LEN: usize = 32;

/// Whether the command may run on this connection (C's authenticated()): the SASL commands
/// and VERSION always, the rest once the client has authenticated. Looks at the opcode as
/// received.
pub fn allowed(c: &mut dyn Session) -> bool {
    let op = c.bin().opcode;
    let ok = is_open(op) || c.authenticated();
    if settings::verbose() > 1 {
        eprintln!(
            "authenticated() in cmd 0x{:02x} is {}",
            op,
            if ok { "true" } else { "false" }
        );
    }
    ok
}

/// Opcodes a client may send before authenticating.
pub fn is_open(op: u8) -> bool {
    matches!(op, SASL_LIST_MECHS | SASL_AUTH | SASL_STEP | VERSION)
}

/// C's init_sasl_conn: every SASL command starts the client over as unauthenticated.
fn init_conn(c: &mut dyn Session) {
    c.set_authenticated(false);
    c.sasl().ensure();
}

/// SASL_LIST_MECHS.
pub fn list_mechs(c: &mut dyn Session) {
    init_conn(c);
    match c.sasl().list_mechs() {
        Ok(list) => write_response(c, &[], &[], &list),
        Err(_) => {
            if settings::verbose() > 0 {
                eprintln!("Failed to list SASL mechanisms.");
            }
            write_error(c, AUTH_ERROR, None, 0);
        }
    }
}

/// SASL_AUTH and SASL_STEP: the mechanism is the key; the data is read into an item of its
/// own first, and `complete` runs when it is in.
pub fn auth(c: &mut dyn Session, key: &[u8]) {
    let b = *c.bin();
    let vlen = (b.bodylen - b.keylen as u32) as usize;
    if key.len() > MAX_SASL_MECH_LEN {
        return write_error(c, EINVAL, None, vlen);
    }
    let Some(st) = store::store() else { return };
    match st.alloc(key, 0, 0, vlen as i32 + 2) {
        // The data must be in one piece to be handed to the library.
        Some(it) if !it.is_chunked() => c.read_value(it, vlen, StoreCmd::Set),
        _ => write_error(c, ENOMEM, None, vlen),
    }
}

/// The AUTH or STEP data is in: run the exchange and reply.
pub fn complete(c: &mut dyn Session, it: ItemRef) {
    init_conn(c);
    let b = *c.bin();
    let vlen = (b.bodylen - b.keylen as u32) as usize;
    let mech = it.key();
    let data = it.contiguous().map_or(&[][..], |d| &d[..vlen.min(d.len())]);
    if settings::verbose() > 0 {
        let end = mech.iter().position(|&x| x == 0).unwrap_or(mech.len());
        eprintln!(
            "mech:  ``{}'' with {} bytes of data",
            String::from_utf8_lossy(&mech[..end]),
            vlen
        );
    }
    let ex = if b.cmd == SASL_AUTH {
        let ex = c.sasl().start(mech, data);
        c.sasl().started = ex.result == sasl::OK || ex.result == sasl::CONTINUE;
        ex
    } else if !c.sasl().started {
        if settings::verbose() > 0 {
            eprintln!(
                "{}: SASL_STEP called but sasl_server_start not called for this connection!",
                c.fd()
            );
        }
        Exchange::failed(-1)
    } else {
        c.sasl().step(data)
    };
    drop(it);
    if settings::verbose() > 0 {
        eprintln!("sasl result code:  {}", ex.result);
    }
    let ts = c.counters().thread;
    match ex.result {
        sasl::OK => {
            c.set_authenticated(true);
            write_response(c, &[], &[], b"Authenticated");
            stats::bump(&ts.auth_cmds, 1);
        }
        sasl::CONTINUE => {
            add_header(c, AUTH_CONTINUE, 0, 0, ex.out.len() as u32);
            if let Some(r) = c.resp() {
                r.wbuf.extend_from_slice(&ex.out);
            }
            c.set_next(Next::Flush);
        }
        r => {
            if settings::verbose() > 0 {
                eprintln!("Unknown sasl response:  {}", r);
            }
            write_error(c, AUTH_ERROR, None, 0);
            stats::bump(&ts.auth_cmds, 1);
            stats::bump(&ts.auth_errors, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_open;

    #[test]
    fn open_commands() {
        for op in [0x20, 0x21, 0x22, 0x0b] {
            assert!(is_open(op));
        }
        // Quiet and other forms are not exempt, as in C (it looks at the raw opcode).
        for op in [0x00, 0x01, 0x07, 0x0a, 0x10, 0x17, 0x23] {
            assert!(!is_open(op));
        }
    }
}
