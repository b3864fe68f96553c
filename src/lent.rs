//! A client connection lent to a side thread (C's conn_watch hand-off: the logger for `watch`,
//! the LRU crawler for dumps), and the connection facts those threads and the logger name
//! (transport, close reason). Foundation layer: the side threads below the connection layer
//! hold loans; the connection layer makes them and takes them back through `LoanOwner`.

use crate::tls::TlsConn;
use std::io;
use std::os::unix::io::RawFd;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Local,
    Tcp,
    Udp,
}

/// Why a connection closed (logged by `watch connevents`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    None,
    Normal,
    Error,
    IdleTimeout,
    Shutdown,
}

/// Whoever lent a connection (its worker): told when the loan ends.
pub trait LoanOwner: Sync {
    /// Queue the connection back, with its TLS session: resume it, or close it when `close`.
    fn end_loan(&self, fd: RawFd, close: bool, tls: Option<TlsConn>);
}

/// A connection lent by its worker to a side thread. The worker has parked the connection
/// with no event and does not touch its descriptor until this loan ends, so the borrower
/// alone reads and writes `fd()` meanwhile. Ending the loan (`give_back`, `close`, or
/// dropping it, which closes) queues the connection back to its worker.
pub struct LentConn {
    fd: RawFd,
    owner: &'static dyn LoanOwner,
    ended: bool,
    /// The connection's TLS session, lent with it: the borrower reads and writes through it.
    tls: Option<TlsConn>,
}

impl LentConn {
    /// Made by the worker that parks the connection.
    pub fn new(fd: RawFd, owner: &'static dyn LoanOwner, tls: Option<TlsConn>) -> LentConn {
        LentConn {
            fd,
            owner,
            ended: false,
            tls,
        }
    }

    /// Reads from the client (through its TLS session when it has one).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(t) => t.read(self.fd, buf),
            None => crate::sys::read(self.fd, buf),
        }
    }

    /// Writes to the client (through its TLS session when it has one).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            Some(t) => t.write(self.fd, buf),
            None => crate::sys::write(self.fd, buf),
        }
    }

    /// The client socket (non-blocking).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Returns the connection to its worker, which resumes reading commands (C's
    /// redispatch_conn).
    pub fn give_back(mut self) {
        self.end(false);
    }

    /// Ends a loan the borrower refused at once, while the lending worker still runs the
    /// connection's command (it takes the connection back itself, with the TLS session
    /// returned here; nothing is queued).
    pub fn cancel(mut self) -> Option<TlsConn> {
        self.ended = true;
        self.tls.take()
    }

    /// Has the worker close the connection (C's sidethread_conn_close).
    pub fn close(mut self) {
        self.end(true);
    }

    fn end(&mut self, close: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        if close && crate::settings::verbose() > 1 {
            eprintln!("<{} connection closing from side thread.", self.fd);
        }
        self.owner.end_loan(self.fd, close, self.tls.take());
    }
}

impl Drop for LentConn {
    fn drop(&mut self) {
        self.end(true);
    }
}
