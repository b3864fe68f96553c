//! Thin safe wrappers over the few socket syscalls the network code makes on raw descriptors
//! (descriptors are owned by connections and listeners, which close them exactly once).

use std::ffi::CString;
use std::io;
use std::io::IoSlice;
use std::mem;
use std::os::raw::c_int;
use std::os::unix::io::RawFd;

mod find;
mod key_buf;
mod lock;
mod prefetch;
mod read_buf;
pub use find::find_byte;
pub use key_buf::KeyBuf;
pub use lock::{Lock, LockGuard};
pub use prefetch::prefetch;
pub use read_buf::ReadBuf;

fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// read(2) into `buf`. Ok(0) is end of stream.
///
/// Through syscall(2) rather than libc's read: that wrapper is a thread cancellation point
/// and switches cancellation on and off around every call (about 70 instructions per read
/// and write pair); no thread here is ever cancelled.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which is writable for the call.
    cvt(unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) as isize })
}

/// write(2) of `buf`.
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which is readable for the call.
    cvt(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) as isize })
}

/// sendmsg(2) of gathered slices on a connected socket (C's tcp_sendmsg: the worker's seccomp
/// filter allows sendmsg on any descriptor but writev only on stdout and stderr).
pub fn sendmsg(fd: RawFd, iov: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is zeroed POD; it points at the caller's slices (IoSlice has iovec's
    // layout on unix), which live for the call.
    unsafe {
        let mut msg: libc::msghdr = mem::zeroed();
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len().min(1024) as _;
        // syscall(2), not libc's cancellation-point wrapper (see `read`).
        cvt(libc::syscall(libc::SYS_sendmsg, fd, &msg as *const libc::msghdr, 0) as isize)
    }
}

/// close(2). Errors are ignored as C memcached ignores them.
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe {
        libc::close(fd);
    }
}

/// accept4(2) with SOCK_NONBLOCK; returns the new descriptor.
pub fn accept_nonblock(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: null address pointers are allowed; we don't need the peer address here.
    let r = unsafe {
        libc::accept4(
            fd,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// listen(2) with the given backlog.
pub fn listen(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: plain syscall on an owned descriptor.
    if unsafe { libc::listen(fd, backlog) } != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// An eventfd used as a thread's notify channel.
pub fn eventfd() -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    let r = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Adds `n` to an eventfd counter.
pub fn eventfd_write(fd: RawFd, n: u64) -> io::Result<()> {
    write(fd, &n.to_ne_bytes()).map(|_| ())
}

/// Reads (and clears) an eventfd counter.
pub fn eventfd_read(fd: RawFd) -> io::Result<u64> {
    let mut b = [0u8; 8];
    let n = read(fd, &mut b)?;
    if n != 8 {
        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
    }
    Ok(u64::from_ne_bytes(b))
}

/// Sets an integer socket option.
pub fn setsockopt_int(fd: RawFd, level: c_int, name: c_int, val: c_int) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int of the stated size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const c_int).cast(),
            mem::size_of::<c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads an integer socket option.
pub fn getsockopt_int(fd: RawFd, level: c_int, name: c_int) -> io::Result<c_int> {
    let mut val: c_int = 0;
    let mut len = mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: val/len are live locals of the sizes passed.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut val as *mut c_int).cast(), &mut len) };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(val)
    }
}

/// SO_LINGER off (l_onoff = 0), as C memcached sets on listeners.
pub fn set_linger_off(fd: RawFd) -> io::Result<()> {
    let ling = libc::linger {
        l_onoff: 0,
        l_linger: 0,
    };
    // SAFETY: the option value points at a live linger struct of the stated size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&ling as *const libc::linger).cast(),
            mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes a descriptor non-blocking.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an owned descriptor with integer arguments.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL, 0);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A socket address as the kernel gives it, with its length.
#[derive(Clone, Copy)]
pub struct SockAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl SockAddr {
    pub fn empty() -> SockAddr {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid (AF_UNSPEC) value.
        SockAddr {
            storage: unsafe { mem::zeroed() },
            len: 0,
        }
    }

    pub fn family(&self) -> c_int {
        self.storage.ss_family as c_int
    }

    /// The path of an AF_UNIX address, up to its NUL (empty for other families).
    pub fn unix_path(&self) -> Vec<u8> {
        if self.family() != libc::AF_UNIX {
            return Vec::new();
        }
        // SAFETY: the family says the storage holds a sockaddr_un, which fits in it.
        let a: &libc::sockaddr_un =
            unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_un) };
        a.sun_path
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect()
    }

    /// The port of an INET/INET6 address.
    pub fn port(&self) -> Option<u16> {
        self.to_std().map(|a| a.port())
    }

    /// Converts an INET/INET6 address to std's type.
    pub fn to_std(&self) -> Option<std::net::SocketAddr> {
        match self.family() {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in, which fits in it.
                let a: &libc::sockaddr_in =
                    unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                Some(std::net::SocketAddr::from((ip, u16::from_be(a.sin_port))))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it.
                let a: &libc::sockaddr_in6 =
                    unsafe { &*(&self.storage as *const _ as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                Some(std::net::SocketAddr::V6(std::net::SocketAddrV6::new(
                    ip,
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The kernel form of an INET/INET6 address (the inverse of `to_std`).
    pub fn from_std(sa: &std::net::SocketAddr) -> SockAddr {
        let mut a = SockAddr::empty();
        match sa {
            std::net::SocketAddr::V4(v4) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*v4.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: a sockaddr_in fits in (and is aligned for) sockaddr_storage.
                unsafe { std::ptr::write(&mut a.storage as *mut _ as *mut libc::sockaddr_in, sin) };
                a.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            std::net::SocketAddr::V6(v6) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: v6.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: v6.scope_id(),
                };
                // SAFETY: a sockaddr_in6 fits in (and is aligned for) sockaddr_storage.
                unsafe {
                    std::ptr::write(&mut a.storage as *mut _ as *mut libc::sockaddr_in6, sin6)
                };
                a.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        a
    }
}

type SockNameFn = unsafe extern "C" fn(c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> c_int;

fn sock_name(fd: RawFd, f: SockNameFn) -> io::Result<SockAddr> {
    let mut a = SockAddr::empty();
    a.len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage/len describe a live sockaddr_storage; `f` is getpeername or getsockname.
    let r = unsafe {
        f(
            fd,
            (&mut a.storage as *mut libc::sockaddr_storage).cast(),
            &mut a.len,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(a)
    }
}

/// getpeername(2).
pub fn getpeername(fd: RawFd) -> io::Result<SockAddr> {
    sock_name(fd, libc::getpeername)
}

/// getsockname(2).
pub fn getsockname(fd: RawFd) -> io::Result<SockAddr> {
    sock_name(fd, libc::getsockname)
}

/// One result of getaddrinfo(3), copied out of the C list.
pub struct AddrInfo {
    pub family: c_int,
    pub socktype: c_int,
    pub protocol: c_int,
    pub addr: SockAddr,
}

/// getaddrinfo(3) with AI_PASSIVE. On failure returns the EAI_* code (and errno for EAI_SYSTEM).
pub fn getaddrinfo_passive(
    host: Option<&str>,
    port: &str,
    socktype: c_int,
) -> Result<Vec<AddrInfo>, (c_int, io::Error)> {
    let host_c = match host.map(CString::new) {
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => return Err((libc::EAI_NONAME, io::Error::from_raw_os_error(0))),
        None => None,
    };
    let port_c =
        CString::new(port).map_err(|_| (libc::EAI_SERVICE, io::Error::from_raw_os_error(0)))?;
    // SAFETY: hints is zeroed POD with the fields getaddrinfo reads set; the result list is
    // walked while valid and freed once.
    unsafe {
        let mut hints: libc::addrinfo = mem::zeroed();
        hints.ai_flags = libc::AI_PASSIVE;
        hints.ai_family = libc::AF_UNSPEC;
        hints.ai_socktype = socktype;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        let rc = libc::getaddrinfo(
            host_c.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()),
            port_c.as_ptr(),
            &hints,
            &mut res,
        );
        if rc != 0 {
            return Err((rc, io::Error::last_os_error()));
        }
        let mut out = Vec::new();
        let mut p = res;
        while !p.is_null() {
            let ai = &*p;
            let mut addr = SockAddr::empty();
            let len = (ai.ai_addrlen as usize).min(mem::size_of::<libc::sockaddr_storage>());
            std::ptr::copy_nonoverlapping(
                ai.ai_addr as *const u8,
                (&mut addr.storage as *mut libc::sockaddr_storage).cast::<u8>(),
                len,
            );
            addr.len = len as libc::socklen_t;
            out.push(AddrInfo {
                family: ai.ai_family,
                socktype: ai.ai_socktype,
                protocol: ai.ai_protocol,
                addr,
            });
            p = ai.ai_next;
        }
        libc::freeaddrinfo(res);
        Ok(out)
    }
}

/// gai_strerror(3) text.
pub fn gai_strerror(code: c_int) -> String {
    // SAFETY: gai_strerror returns a pointer to a static NUL-terminated string.
    unsafe {
        std::ffi::CStr::from_ptr(libc::gai_strerror(code))
            .to_string_lossy()
            .into_owned()
    }
}

/// socket(2), non-blocking.
pub fn socket(family: c_int, socktype: c_int, protocol: c_int) -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(family, socktype, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// bind(2) to an address.
pub fn bind(fd: RawFd, addr: &SockAddr) -> io::Result<()> {
    // SAFETY: the storage holds a socket address of `len` bytes.
    let r = unsafe {
        libc::bind(
            fd,
            (&addr.storage as *const libc::sockaddr_storage).cast(),
            addr.len,
        )
    };
    if r != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A unix socket address for `path` (truncated to sun_path like C's strncpy).
pub fn unix_addr(path: &str) -> SockAddr {
    let mut a = SockAddr::empty();
    // SAFETY: sockaddr_un fits in sockaddr_storage; we write within sun_path's bounds.
    unsafe {
        let un = &mut *(&mut a.storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_un);
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let max = un.sun_path.len() - 1;
        for (i, b) in path.as_bytes().iter().take(max).enumerate() {
            un.sun_path[i] = *b as libc::c_char;
        }
    }
    a.len = mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    a
}

/// umask(2); returns the previous mask.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: plain syscall.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

/// strerror(3) text for an errno value.
pub fn strerror(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated string valid until the next call;
    // it is copied at once.
    unsafe {
        std::ffi::CStr::from_ptr(libc::strerror(errno))
            .to_string_lossy()
            .into_owned()
    }
}

/// perror(3)-style line: "prefix: strerror(errno)" to stderr.
pub fn perror(prefix: &str, err: &io::Error) {
    eprintln!("{}: {}", prefix, strerror(err.raw_os_error().unwrap_or(0)));
}

/// sendmsg(2) of gathered slices to `to` (one datagram).
pub fn sendmsg_to(fd: RawFd, iov: &[IoSlice<'_>], to: &SockAddr) -> io::Result<usize> {
    // SAFETY: msghdr is zeroed POD; it points at the caller's slices (iovec-compatible) and
    // address, all live for the call.
    unsafe {
        let mut msg: libc::msghdr = mem::zeroed();
        msg.msg_name =
            (&to.storage as *const libc::sockaddr_storage as *mut libc::sockaddr_storage).cast();
        msg.msg_namelen = to.len;
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len().min(1024) as _;
        cvt(libc::sendmsg(fd, &msg, 0) as isize)
    }
}

/// dup(2).
pub fn dup(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: plain syscall.
    let r = unsafe { libc::dup(fd) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Installs a signal handler (the handler must only touch atomics).
pub fn set_signal_handler(sig: c_int, handler: extern "C" fn(c_int)) {
    // SAFETY: installs a plain function pointer; the handlers used only store to atomics,
    // which is async-signal-safe.
    unsafe {
        libc::signal(sig, handler as *const () as libc::sighandler_t);
    }
}

/// Ignores a signal. Returns false if the disposition could not be set.
pub fn ignore_signal(sig: c_int) -> bool {
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe { libc::signal(sig, libc::SIG_IGN) != libc::SIG_ERR }
}

/// Seconds of CLOCK_MONOTONIC.
pub fn monotonic_secs() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec
}

/// User and system CPU time of the process, as (seconds, microseconds) pairs.
pub fn rusage_self() -> ((i64, i64), (i64, i64)) {
    let mut ru = mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we pass; zeroed memory is a valid rusage anyway.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    (
        (ru.ru_utime.tv_sec as i64, ru.ru_utime.tv_usec as i64),
        (ru.ru_stime.tv_sec as i64, ru.ru_stime.tv_usec as i64),
    )
}

/// poll(2) over `fds` with a timeout in milliseconds; returns how many have events.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    // SAFETY: the pointer and count describe `fds`, which is writable for the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    cvt(r as isize)
}

/// Wall-clock time as gettimeofday(2) gives it: seconds and microseconds.
pub fn realtime() -> (i64, i32) {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `tv` is a valid timeval to fill; a null timezone is allowed.
    unsafe { libc::gettimeofday(&mut tv, std::ptr::null_mut()) };
    // time_t and suseconds_t are both i64 on the targets built for.
    (tv.tv_sec, tv.tv_usec as i32)
}

/// The system's memory page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}
