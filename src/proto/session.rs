//! What a command sees of the connection it runs for (C's `conn` as the protocol handlers use
//! it), as a trait the connection implements: response objects to write into, the worker's
//! counters, and the ways to say what the connection does once the command has run (`Next`).
//! Handlers never see connection states, sockets or buffers; an in-memory session runs them
//! with no socket at all (unit tests, fuzzing).

use super::binary::BinState;
use super::response::{Resp, WRITE_BUFFER_SIZE};
use crate::items::ops::{Counters, StoreCmd};
use crate::items::store::ItemRef;
use crate::lent::{CloseReason, LentConn};
use crate::settings;
use std::os::unix::io::RawFd;

/// What the connection does once a command has run (the states C's handlers set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Parse the next command (conn_new_cmd).
    NewCmd,
    /// Write everything queued before reading on (conn_mwrite).
    Flush,
    /// Read the value into the item handed over with `Session::read_value` (conn_nread);
    /// the protocol's `complete_nread` runs when it is in.
    ReadValue,
    /// Read and drop this many bytes (conn_swallow).
    Swallow(usize),
    /// Close the connection (conn_closing).
    Close,
    /// The connection was lent to a side thread (conn_watch).
    Lent,
}

/// The connection as command handlers use it.
pub trait Session {
    /// The client's descriptor (for `-vv` lines).
    fn fd(&self) -> RawFd;
    /// The counters of the worker running the command.
    fn counters(&self) -> Counters<'static>;
    /// Replies queued on the connection, the current one included.
    fn queued(&self) -> usize;
    /// Starts the response object of a new reply (C's resp_start); false when none can be
    /// had.
    #[must_use]
    fn resp_start(&mut self) -> bool;
    /// The current reply's response object (starting one if none is queued); None when none
    /// can be had, and the connection then closes.
    fn resp(&mut self) -> Option<&mut Resp>;
    /// Drops every queued reply and the item being read (C's conn_release_items).
    fn release_items(&mut self);
    /// The command asked for no reply.
    fn noreply(&self) -> bool;
    fn set_noreply(&mut self, noreply: bool);
    /// What the connection does after this command.
    fn set_next(&mut self, next: Next);
    /// Close once the queued replies are written.
    fn close_after_write(&mut self);
    /// Why the connection closes (for `watch connevents`).
    fn set_close_reason(&mut self, reason: CloseReason);
    /// Reads `len` value bytes into `it` next; `cmd` stores it then (`Next::ReadValue`).
    /// The current response waits for a value from flash (C's conn_resp_suspend): nothing
    /// is written until every such read is back.
    fn suspend(&mut self) {}
    fn read_value(&mut self, it: ItemRef, len: usize, cmd: StoreCmd);
    /// The storage command whose value was read.
    fn store_cmd(&self) -> StoreCmd;
    /// C's `c->cas`: the CAS an `ms` drew for its store, or the one a binary reply carries.
    fn cas(&mut self) -> &mut u64;
    /// The binary request being handled.
    fn bin(&mut self) -> &mut BinState;
    /// Lends the connection to a side thread (`watch`, crawler dumps): replies queued for
    /// this command are dropped (`Next::Lent`).
    fn lend(&mut self) -> LentConn;
    /// `-S`: whether the client has authenticated (C's `c->authenticated`).
    fn authenticated(&self) -> bool;
    fn set_authenticated(&mut self, yes: bool);
    /// `-S`: the connection's SASL context.
    fn sasl(&mut self) -> &mut crate::sasl::SaslConn;
    /// Takes back a loan the side thread refused at once; the command goes on with a fresh
    /// response for its error reply.
    fn unlend(&mut self, lent: LentConn);

    /// Replies with one line plus "\r\n" (C's out_string), honouring noreply.
    fn out_string(&mut self, s: &str) {
        let noreply = self.noreply();
        let fd = self.fd();
        let Some(r) = self.resp() else {
            return;
        };
        r.reset();
        if noreply {
            r.skip = true;
            if settings::verbose() > 1 {
                eprintln!(">{} NOREPLY {}", fd, s);
            }
            self.set_next(Next::NewCmd);
            return;
        }
        if settings::verbose() > 1 {
            eprintln!(">{} {}", fd, s);
        }
        let s = if s.len() + 2 > WRITE_BUFFER_SIZE {
            "SERVER_ERROR output line too long"
        } else {
            s
        };
        r.wbuf.extend_from_slice(s.as_bytes());
        r.wbuf.extend_from_slice(b"\r\n");
        self.set_next(Next::NewCmd);
    }

    /// Like out_string but ignores noreply, so clients see protocol errors.
    fn out_errstring(&mut self, s: &str) {
        self.set_noreply(false);
        self.out_string(s);
    }

    /// Queues a pre-built body as the current reply (C's write_and_free).
    fn write_body(&mut self, body: Vec<u8>) {
        let Some(r) = self.resp() else {
            return;
        };
        r.body = body;
        self.set_next(Next::NewCmd);
    }
}
