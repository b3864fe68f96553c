//! The socket under a TLS session: OpenSSL's socket BIO, with read(2) and write(2) made
//! through syscall(2).
//!
//! libc's read and write are thread cancellation points, switching cancellation on and off
//! around every call (two atomic exchanges each); no thread here is ever cancelled, and the
//! plain-text path already calls the kernel directly (`sys::read`, `sys::sendmsg`). Over TLS
//! every request is one read and one write by OpenSSL through its BIO, so the BIO does the
//! same. It keeps the socket BIO's contract: retry flags on EAGAIN and friends, the EOF flag
//! on a zero read (OpenSSL tells a peer that went away without close_notify by it), flush
//! and dup succeed, every other control answers 0 (no kernel TLS: `-o ssl_kernel_tls` keeps
//! OpenSSL's own socket BIO, which it needs to hand records to the kernel).

use openssl_sys as ffi;
use std::ffi::{c_char, c_int, c_long, c_void};
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

extern "C" {
    // Not declared by openssl-sys.
    fn BIO_get_new_index() -> c_int;
    fn BIO_test_flags(b: *const ffi::BIO, flags: c_int) -> c_int;
}

/// OpenSSL's BIO_TYPE_SOURCE_SINK, BIO_FLAGS_IN_EOF and BIO_CTRL_DUP (not in openssl-sys).
const BIO_TYPE_SOURCE_SINK: c_int = 0x0400;
const BIO_FLAGS_IN_EOF: c_int = 0x800;
const BIO_CTRL_DUP: c_int = 12;

/// The method, made once by `init`; null if OpenSSL could not make it (sessions then use
/// OpenSSL's socket BIO).
static METHOD: AtomicPtr<ffi::BIO_METHOD> = AtomicPtr::new(std::ptr::null_mut());

/// Makes the method (at start-up, before any session).
pub fn init() {
    if !METHOD.load(Relaxed).is_null() {
        return;
    }
    // SAFETY: plain OpenSSL calls on a method object that is not shared until stored.
    unsafe {
        let index = BIO_get_new_index();
        if index < 0 {
            return;
        }
        let m = ffi::BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, c"memcached socket".as_ptr());
        if m.is_null() {
            return;
        }
        ffi::BIO_meth_set_read__fixed_rust(m, Some(read));
        ffi::BIO_meth_set_write__fixed_rust(m, Some(write));
        ffi::BIO_meth_set_ctrl__fixed_rust(m, Some(ctrl));
        METHOD.store(m, Relaxed);
    }
}

/// Puts `ssl` on socket `fd` for reading and writing (in place of SSL_set_fd). False when no
/// BIO could be made.
///
/// # Safety
/// `ssl` is a live session not yet on a socket; `fd` stays open as long as it is.
pub unsafe fn attach(ssl: *mut ffi::SSL, fd: RawFd) -> bool {
    let m = METHOD.load(Relaxed);
    if m.is_null() {
        return false;
    }
    // SAFETY: per the contract; the session takes the one reference for both directions.
    unsafe {
        let b = ffi::BIO_new(m);
        if b.is_null() {
            return false;
        }
        ffi::BIO_set_data(b, fd as isize as *mut c_void);
        ffi::BIO_set_init(b, 1);
        ffi::SSL_set_bio(ssl, b, b);
    }
    true
}

/// The socket a BIO of ours is on.
///
/// # Safety
/// `b` is a live BIO made by `attach`.
unsafe fn fd_of(b: *mut ffi::BIO) -> c_int {
    // SAFETY: per the contract; the data is the descriptor itself.
    unsafe { ffi::BIO_get_data(b) as isize as c_int }
}

/// Whether a failed call's errno says to try again later (OpenSSL's BIO_sock_non_fatal_error).
fn retryable() -> bool {
    let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    matches!(
        e,
        libc::EAGAIN
            | libc::EINTR
            | libc::EPROTO
            | libc::EINPROGRESS
            | libc::EALREADY
            | libc::ENOTCONN
    )
}

unsafe extern "C" fn read(b: *mut ffi::BIO, buf: *mut c_char, len: c_int) -> c_int {
    // SAFETY: OpenSSL passes its live BIO and `len` writable bytes at `buf`.
    unsafe { transfer(b, libc::SYS_read, buf.cast(), len) }
}

unsafe extern "C" fn write(b: *mut ffi::BIO, buf: *const c_char, len: c_int) -> c_int {
    // SAFETY: OpenSSL passes its live BIO and `len` readable bytes at `buf`; write(2) only
    // reads them.
    unsafe { transfer(b, libc::SYS_write, buf.cast_mut().cast(), len) }
}

/// One read(2) or write(2) (`nr`) of `len` bytes at `buf` on the BIO's socket, leaving the
/// socket BIO's flags: retry on a transient error, EOF on a read of nothing.
///
/// # Safety
/// `b` is a live BIO made by `attach`; `buf` holds `len` bytes the call may read or write.
unsafe fn transfer(b: *mut ffi::BIO, nr: c_long, buf: *mut c_void, len: c_int) -> c_int {
    if buf.is_null() || len < 0 {
        return 0;
    }
    // SAFETY: per the contract.
    unsafe {
        let n = libc::syscall(nr, fd_of(b), buf, len as usize);
        // errno before any other call can touch it.
        let retry = n < 0 && retryable();
        ffi::BIO_clear_retry_flags(b);
        if retry {
            if nr == libc::SYS_read {
                ffi::BIO_set_retry_read(b);
            } else {
                ffi::BIO_set_retry_write(b);
            }
        } else if n == 0 && nr == libc::SYS_read {
            ffi::BIO_set_flags(b, BIO_FLAGS_IN_EOF);
        }
        n as c_int
    }
}

unsafe extern "C" fn ctrl(b: *mut ffi::BIO, cmd: c_int, _num: c_long, _ptr: *mut c_void) -> c_long {
    match cmd {
        ffi::BIO_CTRL_FLUSH | BIO_CTRL_DUP => 1,
        // SAFETY: OpenSSL passes its live BIO.
        ffi::BIO_CTRL_EOF => c_long::from(unsafe { BIO_test_flags(b, BIO_FLAGS_IN_EOF) } != 0),
        _ => 0,
    }
}
