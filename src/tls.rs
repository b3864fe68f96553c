//! TLS (`-Z`; C's tls.c) over Debian's libssl: one server context for the process, built at
//! start-up from the `ssl_*` settings, its certificates reloaded by `refresh_certs` and SIGHUP;
//! one `TlsConn` per TLS client, made by the dispatcher as it accepts and then owned by the
//! worker that serves the connection. Reads and writes go through OpenSSL on the socket's own
//! descriptor; a worker's replies are gathered into its `ssl_wbuf_size` buffer and written as
//! one record, as C does.

mod bio;

use crate::logger;
use crate::settings::{self, Settings};
use crate::stats;
use openssl_sys as ffi;
use std::ffi::{c_char, c_int, c_void, CString};
use std::io::{self, IoSlice};
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

extern "C" {
    // Not declared by openssl-sys.
    fn SSL_set_fd(ssl: *mut ffi::SSL, fd: c_int) -> c_int;
    fn SSL_has_pending(ssl: *const ffi::SSL) -> c_int;
    fn ERR_error_string_n(e: std::ffi::c_ulong, buf: *mut c_char, len: usize);
    fn ERR_print_errors_cb(
        cb: unsafe extern "C" fn(*const c_char, usize, *mut c_void) -> c_int,
        u: *mut c_void,
    );
}

/// OpenSSL 3's SSL_OP_ENABLE_KTLS (not in openssl-sys).
const SSL_OP_ENABLE_KTLS: u64 = 1 << 3;
/// sysexits' EX_USAGE, C's exit status for a bad TLS configuration.
const EX_USAGE: i32 = 64;
/// Scope of server-side session caching (C's SESSION_ID_CONTEXT).
const SESSION_ID_CONTEXT: &[u8] = b"memcached";

/// A listener's TLS mode (C's MC_SSL_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenTls {
    /// Plain TCP (no `-Z`, or a `notls:` listener).
    Off,
    /// The context's verify mode (`-Z`).
    Default,
    /// `btls:`: no client certificate asked for.
    NoPeer,
    /// `mtls:`: a client certificate required.
    Peer,
}

/// The process's context; null until `init`.
static CTX: AtomicPtr<ffi::SSL_CTX> = AtomicPtr::new(std::ptr::null_mut());
/// Held while a connection object is made or the certificates are reloaded (C's ssl_ctx_lock).
static CTX_LOCK: Mutex<()> = Mutex::new(());

pub static HANDSHAKE_ERRORS: AtomicU64 = AtomicU64::new(0);
pub static PROTO_ERRORS: AtomicU64 = AtomicU64::new(0);
pub static NEW_SESSIONS: AtomicU64 = AtomicU64::new(0);
/// Server clock time of the last successful certificate load.
pub static LAST_CERT_REFRESH: AtomicU32 = AtomicU32::new(0);

/// "tlsv1.2" and so on (C's ssl_proto_text).
pub fn proto_text(version: i32) -> &'static str {
    match version {
        ffi::TLS1_VERSION => "tlsv1.0",
        ffi::TLS1_1_VERSION => "tlsv1.1",
        ffi::TLS1_2_VERSION => "tlsv1.2",
        ffi::TLS1_3_VERSION => "tlsv1.3",
        _ => "unknown",
    }
}

/// `ssl_min_version=N`: 0-3 name TLS 1.0-1.3 (C's ssl_set_min_version).
pub fn min_version_from_index(n: i64) -> Option<i32> {
    Some(match n {
        0 => ffi::TLS1_VERSION,
        1 => ffi::TLS1_1_VERSION,
        2 => ffi::TLS1_2_VERSION,
        3 => ffi::TLS1_3_VERSION,
        _ => return None,
    })
}

/// `ssl_verify_mode=N`: none, request, require, once (C's ssl_set_verify_mode).
pub fn verify_mode_from_index(n: i64) -> Option<i32> {
    let peer = ffi::SSL_VERIFY_PEER;
    let fail = ffi::SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    Some(match n {
        0 => ffi::SSL_VERIFY_NONE,
        1 => peer,
        2 => peer | fail,
        3 => peer | fail | ffi::SSL_VERIFY_CLIENT_ONCE,
        _ => return None,
    })
}

/// The default minimum protocol and key format, for the settings.
pub const DEFAULT_MIN_VERSION: i32 = ffi::TLS1_2_VERSION;
pub const FILETYPE_PEM: i32 = ffi::SSL_FILETYPE_PEM;

/// The top error of OpenSSL's queue as text (C's print_ssl_error), or "".
fn top_error() -> String {
    // SAFETY: ERR_get_error reads this thread's error queue; ERR_error_string_n writes at
    // most `buf.len()` bytes, NUL included.
    unsafe {
        let e = ffi::ERR_get_error();
        if e == 0 {
            return String::new();
        }
        let mut buf = [0 as c_char; 256];
        ERR_error_string_n(e, buf.as_mut_ptr(), buf.len());
        std::ffi::CStr::from_ptr(buf.as_ptr())
            .to_string_lossy()
            .into_owned()
    }
}

unsafe extern "C" fn print_error_line(s: *const c_char, len: usize, _: *mut c_void) -> c_int {
    // SAFETY: OpenSSL hands a buffer of `len` bytes.
    let line = unsafe { std::slice::from_raw_parts(s.cast::<u8>(), len) };
    eprint!("{}", String::from_utf8_lossy(line));
    1
}

/// Prints and empties the rest of the error queue (C's ERR_print_errors_fp(stderr)).
fn print_errors() {
    // SAFETY: the callback only reads the buffer it is given.
    unsafe { ERR_print_errors_cb(print_error_line, std::ptr::null_mut()) };
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Loads the certificate chain, key and CA file into the context (C's
/// load_server_certificates). The error is the client-facing text, ending "\r\n".
fn load_server_certificates(s: &Settings) -> Result<(), String> {
    let ctx = CTX.load(Relaxed);
    if ctx.is_null() {
        return Err("Error TLS not enabled\r\n".to_string());
    }
    // An unset path is handed over as NULL and named "(null)", as C's printf does.
    let name = |p: &Option<String>| p.clone().unwrap_or_else(|| "(null)".to_string());
    let (chain, key) = (name(&s.ssl_chain_cert), name(&s.ssl_key));
    let c_chain = s.ssl_chain_cert.as_deref().map(cstring);
    let c_key = s.ssl_key.as_deref().map(cstring);
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    let guard = CTX_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: ctx is the live process context; the strings outlive the calls (OpenSSL fails
    // cleanly on a NULL path); the lock keeps connection objects from being made from a
    // half-loaded context.
    let res = unsafe {
        if ffi::SSL_CTX_use_certificate_chain_file(ctx, ptr(&c_chain)) != 1 {
            Err(format!(
                "Error loading the certificate chain: {} : {}",
                chain,
                top_error()
            ))
        } else if ffi::SSL_CTX_use_PrivateKey_file(ctx, ptr(&c_key), s.ssl_keyformat) != 1 {
            Err(format!("Error loading the key: {} : {}", key, top_error()))
        } else if ffi::SSL_CTX_check_private_key(ctx) != 1 {
            Err(format!("Error validating the certificate: {}", top_error()))
        } else if let Some(ca) = s.ssl_ca_cert.as_deref() {
            let c_ca = cstring(ca);
            if ffi::SSL_CTX_load_verify_locations(ctx, c_ca.as_ptr(), std::ptr::null()) != 1 {
                Err(format!(
                    "Error loading the CA certificate: {} : {}",
                    ca,
                    top_error()
                ))
            } else {
                ffi::SSL_CTX_set_client_CA_list(ctx, ffi::SSL_load_client_CA_file(c_ca.as_ptr()));
                Ok(())
            }
        } else {
            Ok(())
        }
    };
    drop(guard);
    match res {
        Ok(()) => {
            LAST_CERT_REFRESH.store(stats::current_time(), Relaxed);
            Ok(())
        }
        Err(mut msg) => {
            // C cuts the message to its buffer (a path, 64 and 256 bytes, less "\r\n").
            msg.truncate(4096 + 64 + 256 - 3);
            msg.push_str("\r\n");
            print_errors();
            Err(msg)
        }
    }
}

/// `refresh_certs` and SIGHUP: loads the certificates again (C's refresh_certs).
pub fn refresh_certs() -> Result<(), String> {
    load_server_certificates(settings::get())
}

unsafe extern "C" fn on_new_session(_: *mut ffi::SSL, _: *mut ffi::SSL_SESSION) -> c_int {
    NEW_SESSIONS.fetch_add(1, Relaxed);
    0
}

/// Builds the process context from the settings (C's ssl_init). On a bad certificate or
/// cipher list it prints C's message and returns the exit status.
pub fn init(s: &Settings) -> Result<(), i32> {
    ffi::init();
    // SAFETY: a new context from the server method; every call below configures it before
    // it is shared.
    let ctx = unsafe { ffi::SSL_CTX_new(ffi::TLS_server_method()) };
    if ctx.is_null() {
        eprintln!("Failed to create the SSL context");
        return Err(EX_USAGE);
    }
    // SAFETY: ctx is valid and not yet shared.
    unsafe { ffi::SSL_CTX_set_min_proto_version(ctx, s.ssl_min_version) };
    CTX.store(ctx, Relaxed);
    if let Err(msg) = load_server_certificates(s) {
        eprint!("{}", msg);
        return Err(EX_USAGE);
    }
    // SAFETY: as above; the strings outlive the calls; the callback only counts.
    unsafe {
        ffi::SSL_CTX_set_verify(ctx, s.ssl_verify_mode, None);
        if let Some(ciphers) = s.ssl_ciphers.as_deref() {
            let c = cstring(ciphers);
            if ffi::SSL_CTX_set_cipher_list(ctx, c.as_ptr()) != 1 {
                eprintln!("Error setting the provided cipher(s): {}", ciphers);
                return Err(EX_USAGE);
            }
        }
        if s.ssl_session_cache {
            ffi::SSL_CTX_sess_set_new_cb(ctx, Some(on_new_session));
            ffi::SSL_CTX_set_session_cache_mode(ctx, ffi::SSL_SESS_CACHE_SERVER);
            ffi::SSL_CTX_set_session_id_context(
                ctx,
                SESSION_ID_CONTEXT.as_ptr(),
                SESSION_ID_CONTEXT.len() as _,
            );
        } else {
            ffi::SSL_CTX_set_session_cache_mode(ctx, ffi::SSL_SESS_CACHE_OFF);
        }
        if s.ssl_kernel_tls {
            ffi::SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS as _);
        } else {
            bio::init();
        }
        ffi::SSL_CTX_set_options(ctx, ffi::SSL_OP_NO_RENEGOTIATION as _);
        ffi::SSL_CTX_set_mode(ctx, ffi::SSL_MODE_RELEASE_BUFFERS);
        // Read whole records (and whatever follows) in one read(2): without read-ahead
        // OpenSSL reads each record's 5-byte header and then its body, two system calls per
        // request. Bytes it holds that no SSL_read took yet raise no read event: `pending`
        // tells the connection to read before it waits.
        ffi::SSL_CTX_set_read_ahead(ctx, 1);
    }
    Ok(())
}

fn log_tls_error(fd: RawFd, msg: &str) {
    if logger::enabled(logger::LOG_CONNEVENTS) {
        logger::text(
            logger::LOG_CONNEVENTS,
            &format!("type=conntlserr fd={} msg={}", fd, msg),
        );
    }
}

/// One client's TLS session on its socket. Dropping it sends close_notify and frees it (C's
/// ssl_conn_close).
pub struct TlsConn {
    ssl: std::ptr::NonNull<ffi::SSL>,
    /// The last read wanted more bytes from the socket: what OpenSSL holds is then a partial
    /// record, and the socket's next bytes raise a read event.
    read_blocked: bool,
}

// SAFETY: an SSL object is used by one thread at a time: the dispatcher makes it and hands
// it to one worker, which alone uses it from then on.
unsafe impl Send for TlsConn {}

impl Drop for TlsConn {
    fn drop(&mut self) {
        // SAFETY: the object is live and owned here; it is not used after this.
        unsafe {
            ffi::SSL_shutdown(self.ssl.as_ptr());
            ffi::SSL_free(self.ssl.as_ptr());
        }
    }
}

/// Starts the server side of a handshake on an accepted socket (C's ssl_accept). None when
/// it failed at once (the caller closes the socket); a handshake that needs more bytes goes
/// on in the worker's reads.
pub fn accept(fd: RawFd, mode: ListenTls) -> Option<TlsConn> {
    let ctx = CTX.load(Relaxed);
    if ctx.is_null() {
        if settings::verbose() > 0 {
            eprintln!("SSL context is not initialized");
        }
        return None;
    }
    let ssl = {
        let _g = CTX_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: ctx is the live context; the lock keeps a reload from running meanwhile.
        unsafe { ffi::SSL_new(ctx) }
    };
    let Some(ssl) = std::ptr::NonNull::new(ssl) else {
        if settings::verbose() > 0 {
            eprintln!("Failed to created the SSL object");
        }
        // SAFETY: clears this thread's error queue.
        unsafe { ffi::ERR_clear_error() };
        return None;
    };
    let conn = TlsConn {
        ssl,
        read_blocked: false,
    };
    let p = ssl.as_ptr();
    // SAFETY: p is the new, unshared object; fd is the accepted socket it will own.
    unsafe {
        if !bio::attach(p, fd) {
            SSL_set_fd(p, fd);
        }
        match mode {
            ListenTls::NoPeer => ffi::SSL_set_verify(p, ffi::SSL_VERIFY_NONE, None),
            ListenTls::Peer => ffi::SSL_set_verify(
                p,
                ffi::SSL_VERIFY_PEER | ffi::SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                None,
            ),
            ListenTls::Default | ListenTls::Off => {}
        }
        ffi::ERR_clear_error();
        let ret = ffi::SSL_accept(p);
        if ret <= 0 {
            let err = ffi::SSL_get_error(p, ret);
            if err == ffi::SSL_ERROR_WANT_READ || err == ffi::SSL_ERROR_WANT_WRITE {
                ffi::ERR_clear_error();
            } else {
                let msg = if err == ffi::SSL_ERROR_SYSCALL {
                    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                    crate::sys::strerror(e)
                } else {
                    top_error()
                };
                log_tls_error(fd, &msg);
                ffi::ERR_clear_error();
                HANDSHAKE_ERRORS.fetch_add(1, Relaxed);
                // Freed without a close_notify, as C does; the socket is the caller's.
                std::mem::forget(conn);
                ffi::SSL_free(p);
                return None;
            }
        }
    }
    Some(conn)
}

thread_local! {
    /// The worker's write buffer (C's per-thread ssl_wbuf).
    static WBUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl TlsConn {
    /// Maps a failed SSL_read/SSL_write result to C's outcomes: would block, end of stream
    /// (Ok(0); UnexpectedEof when OpenSSL failed the session on a bare end of stream), or an
    /// error, logged and counted as C does.
    fn failed(&self, fd: RawFd, ret: c_int) -> io::Result<usize> {
        let p = self.ssl.as_ptr();
        // SAFETY: p is live; the error queue is this thread's.
        unsafe {
            let err = ffi::SSL_get_error(p, ret);
            let res = if err == ffi::SSL_ERROR_WANT_READ || err == ffi::SSL_ERROR_WANT_WRITE {
                Err(io::ErrorKind::WouldBlock.into())
            } else if err == ffi::SSL_ERROR_ZERO_RETURN {
                return Ok(0);
            } else if err == ffi::SSL_ERROR_SYSCALL {
                let e = io::Error::last_os_error();
                log_tls_error(fd, &crate::sys::strerror(e.raw_os_error().unwrap_or(0)));
                if ret == 0 {
                    Ok(0)
                } else {
                    Err(e)
                }
            } else if ret == 0 {
                // A peer gone without close_notify (OpenSSL's "unexpected eof"): C hands the
                // 0 back, which a read takes as the end of the stream (`read_done`).
                Err(io::ErrorKind::UnexpectedEof.into())
            } else {
                log_tls_error(fd, &top_error());
                PROTO_ERRORS.fetch_add(1, Relaxed);
                Err(io::Error::other("TLS error"))
            };
            ffi::ERR_clear_error();
            res
        }
    }

    /// Decrypted bytes into `buf` (C's ssl_read); the handshake runs inside as needed.
    pub fn read(&mut self, fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(c_int::MAX as usize) as c_int;
        // SAFETY: the pointer and length describe `buf`.
        let ret = unsafe { ffi::SSL_read(self.ssl.as_ptr(), buf.as_mut_ptr().cast(), n) };
        self.read_done(fd, ret)
    }

    /// `read` into a connection's read buffer at `from`, at most `max` bytes.
    pub fn read_buf(
        &mut self,
        fd: RawFd,
        buf: &mut crate::sys::ReadBuf,
        from: usize,
        max: usize,
    ) -> io::Result<usize> {
        let (p, len) = buf.spare(from, max);
        let n = len.min(c_int::MAX as usize) as c_int;
        // SAFETY: `p` and `n` describe the buffer's unfilled space, which OpenSSL writes into.
        let ret = unsafe { ffi::SSL_read(self.ssl.as_ptr(), p.cast(), n) };
        if ret > 0 {
            // SAFETY: SSL_read wrote `ret` bytes at `p`.
            unsafe { buf.mark_filled(from, ret as usize) };
        }
        self.read_done(fd, ret)
    }

    /// The outcome of an SSL_read that returned `ret`, noting whether it wanted more bytes.
    fn read_done(&mut self, fd: RawFd, ret: c_int) -> io::Result<usize> {
        if ret > 0 {
            self.read_blocked = false;
            return Ok(ret as usize);
        }
        let res = match self.failed(fd, ret) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
            res => res,
        };
        self.read_blocked = matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        res
    }

    /// Encrypts and writes `buf` whole (C's ssl_write).
    pub fn write(&mut self, fd: RawFd, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(c_int::MAX as usize) as c_int;
        // SAFETY: the pointer and length describe `buf`.
        let ret = unsafe { ffi::SSL_write(self.ssl.as_ptr(), buf.as_ptr().cast(), n) };
        if ret > 0 {
            return Ok(ret as usize);
        }
        self.failed(fd, ret)
    }

    /// Gathers as much of `iov` as fits the worker's buffer and writes it as one record
    /// (C's ssl_sendmsg). A retry after "would block" gathers the same bytes into the same
    /// buffer, as OpenSSL requires.
    pub fn sendmsg(&mut self, fd: RawFd, iov: &[IoSlice<'_>]) -> io::Result<usize> {
        WBUF.with(|w| {
            let mut w = w.borrow_mut();
            let size = settings::get().ssl_wbuf_size as usize;
            w.clear();
            if w.capacity() < size {
                w.reserve_exact(size);
            }
            for s in iov {
                let take = s.len().min(size - w.len());
                w.extend_from_slice(&s[..take]);
                if w.len() == size {
                    break;
                }
            }
            self.write(fd, &w)
        })
    }

    /// OpenSSL holds bytes (decrypted, or whole records read ahead) that no read has taken
    /// yet, and the last read did not stop for want of more: reading now gives data that no
    /// read event would announce.
    pub fn pending(&self) -> bool {
        // SAFETY: p is live.
        !self.read_blocked && unsafe { SSL_has_pending(self.ssl.as_ptr()) } == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_modes_as_c_numbers_them() {
        assert_eq!(proto_text(min_version_from_index(2).unwrap()), "tlsv1.2");
        assert_eq!(proto_text(min_version_from_index(3).unwrap()), "tlsv1.3");
        assert_eq!(proto_text(min_version_from_index(0).unwrap()), "tlsv1.0");
        assert_eq!(min_version_from_index(4), None);
        assert_eq!(verify_mode_from_index(0), Some(0));
        assert_eq!(verify_mode_from_index(1), Some(1));
        assert_eq!(verify_mode_from_index(2), Some(3));
        assert_eq!(verify_mode_from_index(3), Some(7));
        assert_eq!(verify_mode_from_index(-1), None);
    }
}
