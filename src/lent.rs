//! A client connection lent to a side thread (C's conn_watch hand-off: the logger for `watch`,
//! the LRU crawler for dumps), and the connection facts those threads and the logger name
//! (transport, close reason). Foundation layer: the side threads below the connection layer
//! hold loans; the connection layer makes them and takes them back through `LoanOwner`.

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
    /// Queue the connection back: resume it, or close it when `close`.
    fn end_loan(&self, fd: RawFd, close: bool);
}

/// A connection lent by its worker to a side thread. The worker has parked the connection
/// with no event and does not touch its descriptor until this loan ends, so the borrower
/// alone reads and writes `fd()` meanwhile. Ending the loan (`give_back`, `close`, or
/// dropping it, which closes) queues the connection back to its worker.
pub struct LentConn {
    fd: RawFd,
    owner: &'static dyn LoanOwner,
    ended: bool,
}

impl LentConn {
    /// Made by the worker that parks the connection.
    pub fn new(fd: RawFd, owner: &'static dyn LoanOwner) -> LentConn {
        LentConn {
            fd,
            owner,
            ended: false,
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
    /// connection's command (it takes the connection back itself; nothing is queued).
    pub fn cancel(mut self) {
        self.ended = true;
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
        self.owner.end_loan(self.fd, close);
    }
}

impl Drop for LentConn {
    fn drop(&mut self) {
        self.end(true);
    }
}
