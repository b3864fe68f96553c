//! Cyrus SASL for the binary protocol's `-S` authentication (C's sasl_defs.c, as built with
//! `--enable-sasl --enable-sasl-pwdb`): the library set up once at start-up with C's
//! callbacks (log lines by `-v` level, the config path from `SASL_CONF_PATH` or
//! `/etc/sasl{,2}/memcached.conf`, and the `MEMCACHED_SASL_PWDB` password file), and one
//! server context per connection, disposed when the connection goes.
//!
//! Our own declarations of the few libsasl2 functions used, linked against Debian's
//! libsasl2 as C links it.

use crate::settings;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uint, c_ulong, c_void};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

/// libsasl2's result codes that matter here.
pub const OK: c_int = 0;
pub const CONTINUE: c_int = 1;
const FAIL: c_int = -1;
const BADPARAM: c_int = -7;
const NOAUTHZ: c_int = -14;

// Callback ids and log levels of sasl.h.
const CB_LIST_END: c_ulong = 0;
const CB_LOG: c_ulong = 2;
const CB_GETCONFPATH: c_ulong = 5;
const CB_SERVER_USERDB_CHECKPASS: c_ulong = 0x8005;
const LOG_NONE: c_int = 0;
const LOG_FAIL: c_int = 2;
const LOG_WARN: c_int = 3;
const LOG_NOTE: c_int = 4;
const LOG_DEBUG: c_int = 5;
const LOG_TRACE: c_int = 6;
const LOG_PASS: c_int = 7;

/// The password file's longest line (C's MAX_ENTRY_LEN, fgets' buffer).
const MAX_ENTRY_LEN: usize = 256;

/// Opaque `sasl_conn_t`.
#[repr(C)]
struct RawConn {
    _private: [u8; 0],
}

/// `sasl_callback_t`: the procedure's real type depends on the id, as in C.
#[repr(C)]
struct Callback {
    id: c_ulong,
    proc_: *const c_void,
    context: *mut c_void,
}

#[link(name = "sasl2")]
extern "C" {
    fn sasl_server_init(callbacks: *const Callback, appname: *const c_char) -> c_int;
    fn sasl_server_new(
        service: *const c_char,
        server_fqdn: *const c_char,
        user_realm: *const c_char,
        iplocalport: *const c_char,
        ipremoteport: *const c_char,
        callbacks: *const Callback,
        flags: c_uint,
        pconn: *mut *mut RawConn,
    ) -> c_int;
    fn sasl_listmech(
        conn: *mut RawConn,
        user: *const c_char,
        prefix: *const c_char,
        sep: *const c_char,
        suffix: *const c_char,
        result: *mut *const c_char,
        plen: *mut c_uint,
        pcount: *mut c_int,
    ) -> c_int;
    fn sasl_server_start(
        conn: *mut RawConn,
        mech: *const c_char,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_server_step(
        conn: *mut RawConn,
        clientin: *const c_char,
        clientinlen: c_uint,
        serverout: *mut *const c_char,
        serveroutlen: *mut c_uint,
    ) -> c_int;
    fn sasl_dispose(pconn: *mut *mut RawConn);
}

/// The host name handed to each context as its realm (empty when unknown).
static HOSTNAME: OnceLock<CString> = OnceLock::new();
/// The server's fully qualified name, found at start-up under `-o drop_privileges`.
static SERVER_FQDN: OnceLock<CString> = OnceLock::new();
/// `MEMCACHED_SASL_PWDB`, read at start-up.
static PWDB: OnceLock<Option<CString>> = OnceLock::new();
/// The config path found by the first lookup; libsasl keeps the pointer it is given.
static CONF_PATH: OnceLock<Option<CString>> = OnceLock::new();

/// Sets libsasl up for `-S` (C's init_sasl); exits as C does when it cannot.
pub fn init() {
    let pwdb = std::env::var_os("MEMCACHED_SASL_PWDB").map(|p| {
        use std::os::unix::ffi::OsStringExt;
        CString::new(p.into_vec()).unwrap_or_default()
    });
    let mut callbacks = vec![
        Callback {
            id: CB_SERVER_USERDB_CHECKPASS,
            proc_: userdb_checkpass as *const c_void,
            context: std::ptr::null_mut(),
        },
        Callback {
            id: CB_LOG,
            proc_: log as *const c_void,
            context: std::ptr::null_mut(),
        },
        Callback {
            id: CB_GETCONFPATH,
            proc_: getconfpath as *const c_void,
            context: std::ptr::null_mut(),
        },
        Callback {
            id: CB_LIST_END,
            proc_: std::ptr::null(),
            context: std::ptr::null_mut(),
        },
    ];
    if pwdb.is_none() {
        if settings::verbose() > 0 {
            eprintln!("INFO: MEMCACHED_SASL_PWDB not specified. Internal passwd database disabled");
        }
        // C ends the list at its first entry here, so the log and config callbacks go too.
        callbacks[0].id = CB_LIST_END;
        callbacks[0].proc_ = std::ptr::null();
    }
    let _ = PWDB.set(pwdb);
    if settings::get().drop_privileges {
        // Beyond C: the server's name is looked up here, before the seccomp filters, instead
        // of by every new SASL context in a worker (a resolver the worker filter forbids).
        if let Some(name) = fq_hostname() {
            let _ = SERVER_FQDN.set(name);
        }
    }
    let _ = HOSTNAME.set(hostname().unwrap_or_else(|| {
        if settings::verbose() > 0 {
            eprintln!("Error discovering hostname for SASL");
        }
        CString::default()
    }));
    // libsasl keeps the list for the life of the process.
    let callbacks: &'static [Callback] = Vec::leak(callbacks);
    // SAFETY: the list is terminated and lives forever; each procedure has the signature its
    // id calls for; the app name is a NUL-terminated literal.
    let r = unsafe { sasl_server_init(callbacks.as_ptr(), c"memcached".as_ptr()) };
    if r != OK {
        eprintln!("Error initializing sasl.");
        std::process::exit(libc::EXIT_FAILURE);
    }
    if settings::verbose() > 0 {
        eprintln!("Initialized SASL.");
    }
}

fn hostname() -> Option<CString> {
    let mut buf = [0u8; 1025];
    // SAFETY: the buffer is writable for its length less the byte kept as a terminator.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if r == -1 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    CString::new(&buf[..end]).ok()
}

/// The host's fully qualified name as libsasl finds it when given none (its
/// get_fqhostname): the host name if it has a dot, else the resolver's canonical name for
/// it, else the host name.
fn fq_hostname() -> Option<CString> {
    let name = hostname()?;
    if name.as_bytes().contains(&b'.') {
        return Some(name);
    }
    // SAFETY: hints is zeroed POD with only the flag set; `res` is freed with freeaddrinfo,
    // and the canonical name is copied before that.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut res) != 0
            || res.is_null()
        {
            return Some(name);
        }
        let canon = (*res).ai_canonname;
        let out = if canon.is_null() {
            name
        } else {
            CStr::from_ptr(canon).to_owned()
        };
        libc::freeaddrinfo(res);
        Some(out)
    }
}

/// C's sasl_log: libsasl's messages on stderr, by `-v` level.
extern "C" fn log(_context: *mut c_void, level: c_int, message: *const c_char) -> c_int {
    let v = settings::verbose();
    let show = match level {
        LOG_NONE => false,
        LOG_PASS | LOG_TRACE | LOG_DEBUG | LOG_NOTE => v >= 2,
        LOG_WARN | LOG_FAIL => v >= 1,
        _ => true,
    };
    if show && !message.is_null() {
        // SAFETY: libsasl passes a NUL-terminated message, live for the call.
        let m = unsafe { CStr::from_ptr(message) };
        eprintln!(
            "SASL (severity {}): {}",
            level,
            String::from_utf8_lossy(m.to_bytes())
        );
    }
    OK
}

/// Where the config lives when `SASL_CONF_PATH` is not set: the first of
/// `/etc/sasl{,2}/memcached.conf` that exists, as a directory holding `memcached.conf` or
/// as a file (then its directory).
fn default_conf_path() -> Option<&'static str> {
    const LOCATIONS: [(&str, &str, &str); 2] = [
        (
            "/etc/sasl/memcached.conf",
            "/etc/sasl/memcached.conf/memcached.conf",
            "/etc/sasl",
        ),
        (
            "/etc/sasl2/memcached.conf",
            "/etc/sasl2/memcached.conf/memcached.conf",
            "/etc/sasl2",
        ),
    ];
    for (place, file_in_dir, dir) in LOCATIONS {
        if std::path::Path::new(file_in_dir).exists() {
            return Some(place);
        }
        if std::path::Path::new(place).exists() {
            return Some(dir);
        }
    }
    None
}

/// C's sasl_getconf (the getconfpath form libsasl2 2.1.28 asks for).
extern "C" fn getconfpath(_context: *mut c_void, path: *mut *const c_char) -> c_int {
    let found = CONF_PATH.get_or_init(|| match std::env::var_os("SASL_CONF_PATH") {
        Some(p) => {
            use std::os::unix::ffi::OsStringExt;
            CString::new(p.into_vec()).ok()
        }
        None => default_conf_path().and_then(|p| CString::new(p).ok()),
    });
    if settings::verbose() > 0 {
        match found {
            Some(p) => eprintln!(
                "Reading configuration from: <{}>",
                String::from_utf8_lossy(p.as_bytes())
            ),
            None => eprintln!("Failed to locate a config path"),
        }
    }
    let ptr = found.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
    if !path.is_null() {
        // SAFETY: libsasl passes a writable slot for the path; the string is static.
        unsafe { *path = ptr };
    }
    if ptr.is_null() {
        FAIL
    } else {
        OK
    }
}

/// C's sasl_server_userdb_checkpass: `user:password` lines of `MEMCACHED_SASL_PWDB`.
extern "C" fn userdb_checkpass(
    _conn: *mut RawConn,
    _context: *mut c_void,
    user: *const c_char,
    pass: *const c_char,
    passlen: c_uint,
    _propctx: *mut c_void,
) -> c_int {
    if user.is_null() || (pass.is_null() && passlen > 0) {
        return NOAUTHZ;
    }
    // SAFETY: libsasl passes a NUL-terminated user name, and `passlen` bytes of password.
    let user = unsafe { CStr::from_ptr(user) }.to_bytes();
    let pass: &[u8] = if passlen == 0 {
        &[]
    } else {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(pass.cast::<u8>(), passlen as usize) }
    };
    let shown = String::from_utf8_lossy(user);
    if pass.len() + user.len() > MAX_ENTRY_LEN - 4 {
        eprintln!(
            "WARNING: Failed to authenticate <{}> due to too long password ({})",
            shown, passlen as c_int
        );
        return NOAUTHZ;
    }
    let Some(Some(path)) = PWDB.get() else {
        return NOAUTHZ;
    };
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
    let contents = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) => {
            if settings::verbose() > 0 {
                crate::sys::perror(
                    &format!("WARNING: Failed to open sasl database <{}>", path.display()),
                    &e,
                );
            }
            return NOAUTHZ;
        }
    };
    if pwdb_matches(&contents, user, pass) {
        return OK;
    }
    if settings::verbose() > 0 {
        eprintln!("INFO: User <{}> failed to authenticate", shown);
    }
    NOAUTHZ
}

/// Whether a password file holds `user:pass`, read as C reads it: in fgets pieces of up to
/// 255 bytes (a longer line is several pieces), each zero-padded; the password must be
/// followed by ':', a line end or the end of the piece. Every piece is looked at, so the time
/// taken does not say where a match was. `user` and `pass` together are at most 252 bytes
/// (checked by the caller).
pub fn pwdb_matches(contents: &[u8], user: &[u8], pass: &[u8]) -> bool {
    let (ulen, plen) = (user.len(), pass.len());
    if ulen + plen > MAX_ENTRY_LEN - 4 {
        return false;
    }
    let mut ok = false;
    let mut rest = contents;
    while !rest.is_empty() {
        let mut n = rest.len().min(MAX_ENTRY_LEN - 1);
        if let Some(nl) = rest[..n].iter().position(|&b| b == b'\n') {
            n = nl + 1;
        }
        let mut buf = [0u8; MAX_ENTRY_LEN];
        buf[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        if same(user, &buf[..ulen])
            && buf[ulen] == b':'
            && same(pass, &buf[ulen + 1..ulen + 1 + plen])
            && matches!(buf[ulen + 1 + plen], b':' | b'\n' | b'\r' | 0)
        {
            ok = true;
        }
    }
    ok
}

/// Compares without stopping at the first difference (C's safe_memcmp).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A connection's SASL state (C's `sasl_conn` and `sasl_started`): the library context is
/// made on first use and disposed with the connection.
pub struct SaslConn {
    raw: *mut RawConn,
    /// An AUTH has begun an exchange that a STEP may continue.
    pub started: bool,
}

// SAFETY: a context belongs to one connection, used only by the thread running it; libsasl
// keeps no thread affinity for server contexts.
unsafe impl Send for SaslConn {}

impl Default for SaslConn {
    fn default() -> Self {
        SaslConn {
            raw: std::ptr::null_mut(),
            started: false,
        }
    }
}

impl Drop for SaslConn {
    fn drop(&mut self) {
        self.dispose();
    }
}

/// What a start or a step answered: libsasl's code and the data to send back.
pub struct Exchange {
    pub result: c_int,
    pub out: Vec<u8>,
}

impl SaslConn {
    /// Makes the context if there is none yet (C's init_sasl_conn, past its authenticated
    /// reset); a failure leaves none, and the calls below then fail.
    pub fn ensure(&mut self) {
        if !self.raw.is_null() {
            return;
        }
        let realm = HOSTNAME
            .get()
            .filter(|h| !h.as_bytes().is_empty())
            .map_or(std::ptr::null(), |h| h.as_ptr());
        let fqdn = SERVER_FQDN.get().map_or(std::ptr::null(), |h| h.as_ptr());
        let mut raw = std::ptr::null_mut();
        // SAFETY: the strings are NUL-terminated and outlive the call (the realm and name are
        // static; libsasl copies them); `raw` is a writable slot.
        let r = unsafe {
            sasl_server_new(
                c"memcached".as_ptr(),
                fqdn,
                realm,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                0,
                &mut raw,
            )
        };
        if r != OK {
            if settings::verbose() > 0 {
                eprintln!("Failed to initialize SASL conn.");
            }
            return;
        }
        self.raw = raw;
    }

    /// Frees the context (C's sasl_dispose at connection cleanup).
    pub fn dispose(&mut self) {
        if !self.raw.is_null() {
            // SAFETY: raw came from sasl_server_new and is disposed once, then forgotten.
            unsafe { sasl_dispose(&mut self.raw) };
            self.raw = std::ptr::null_mut();
        }
        self.started = false;
    }

    /// The mechanisms on offer, separated by spaces.
    pub fn list_mechs(&mut self) -> Result<Vec<u8>, c_int> {
        if self.raw.is_null() {
            return Err(BADPARAM);
        }
        let mut out: *const c_char = std::ptr::null();
        let mut len: c_uint = 0;
        // SAFETY: raw is a live context; the affixes are NUL-terminated literals; the result
        // slots are writable; the list stays valid until the next call on this context and
        // is copied before that.
        let r = unsafe {
            sasl_listmech(
                self.raw,
                std::ptr::null(),
                c"".as_ptr(),
                c" ".as_ptr(),
                c"".as_ptr(),
                &mut out,
                &mut len,
                std::ptr::null_mut(),
            )
        };
        if r != OK {
            return Err(r);
        }
        Ok(copy_out(out, len))
    }

    /// Begins an exchange with `mech` (cut at a NUL byte, as C's string is) and the client's
    /// first data (none when empty).
    pub fn start(&mut self, mech: &[u8], data: &[u8]) -> Exchange {
        if self.raw.is_null() {
            return Exchange::failed(BADPARAM);
        }
        let end = mech.iter().position(|&b| b == 0).unwrap_or(mech.len());
        let Ok(mech) = CString::new(&mech[..end]) else {
            return Exchange::failed(BADPARAM);
        };
        let (din, dlen) = input(data);
        let mut out: *const c_char = std::ptr::null();
        let mut len: c_uint = 0;
        // SAFETY: raw is a live context; mech is NUL-terminated; the client data is `dlen`
        // readable bytes (or null); the output slots are writable and the output is copied
        // before the next call on this context.
        let r =
            unsafe { sasl_server_start(self.raw, mech.as_ptr(), din, dlen, &mut out, &mut len) };
        Exchange {
            result: r,
            out: copy_out(out, len),
        }
    }

    /// Continues an exchange with the client's next data.
    pub fn step(&mut self, data: &[u8]) -> Exchange {
        if self.raw.is_null() {
            return Exchange::failed(BADPARAM);
        }
        let (din, dlen) = input(data);
        let mut out: *const c_char = std::ptr::null();
        let mut len: c_uint = 0;
        // SAFETY: as in `start`.
        let r = unsafe { sasl_server_step(self.raw, din, dlen, &mut out, &mut len) };
        Exchange {
            result: r,
            out: copy_out(out, len),
        }
    }
}

impl Exchange {
    /// What C reports when the exchange never ran (a STEP before an AUTH).
    pub fn failed(result: c_int) -> Exchange {
        Exchange {
            result,
            out: Vec::new(),
        }
    }
}

/// Client data as libsasl takes it: null when there is none.
fn input(data: &[u8]) -> (*const c_char, c_uint) {
    if data.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (data.as_ptr().cast(), data.len() as c_uint)
    }
}

fn copy_out(out: *const c_char, len: c_uint) -> Vec<u8> {
    if out.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: libsasl returned `len` readable bytes at `out`, valid until the context's next
    // call.
    unsafe { std::slice::from_raw_parts(out.cast::<u8>(), len as usize) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::pwdb_matches;

    #[test]
    fn pwdb_lines() {
        let db = b"alice:secret\nbob:pw:extra\r\ncarol:x";
        assert!(pwdb_matches(db, b"alice", b"secret"));
        assert!(pwdb_matches(db, b"bob", b"pw"));
        assert!(pwdb_matches(db, b"carol", b"x"));
        assert!(!pwdb_matches(db, b"alice", b"secre"));
        assert!(!pwdb_matches(db, b"alice", b"secrets"));
        assert!(!pwdb_matches(db, b"ali", b"ce:secret"));
        assert!(!pwdb_matches(db, b"dave", b"secret"));
        assert!(!pwdb_matches(b"", b"alice", b"secret"));
    }

    #[test]
    fn pwdb_long_lines_are_pieces() {
        // A 300-byte line is read as a 255-byte piece and the rest: an entry can start in
        // the second piece.
        let mut db = vec![b'z'; 255];
        db.extend_from_slice(b"eve:pw\n");
        assert!(pwdb_matches(&db, b"eve", b"pw"));
        // Too long together: refused before the file is read.
        assert!(!pwdb_matches(b"u:p\n", &[b'u'; 200], &[b'p'; 53]));
    }

    #[test]
    fn pwdb_empty_password() {
        assert!(pwdb_matches(b"nopw:\n", b"nopw", b""));
        assert!(!pwdb_matches(b"nopw:x\n", b"nopw", b""));
    }
}
