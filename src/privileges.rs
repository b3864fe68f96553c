//! `-o drop_privileges`: seccomp syscall filters per thread role (C's linux_priv.c). The
//! dispatcher (main thread) and each worker load an allow-list once they are set up; any
//! other syscall traps, and the SIGSYS handler reports the syscall number and ends the
//! process, as C does. Threads started before the filters (maintainer, crawler, logger, slab
//! mover, hash expander) run unfiltered, as in C.
//!
//! The lists are C's, plus what this build's runtime needs where C's libc needed something
//! else; each addition says why.

use crate::settings;
use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

/// C's message; the three `?` become the syscall number (kept at the same offsets).
const KILL_MSG: &[u8] = b"Seccomp policy failure. Caught syscall ???. This is either an exploit attempt, or your system is not supported yet.\n";
const NUM_AT: usize = 39;

/// The SIGSYS handler: only async-signal-safe calls (write, _exit), no allocation.
extern "C" fn on_sigsys(_: libc::c_int, si: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let mut msg = [0u8; KILL_MSG.len()];
    msg.copy_from_slice(KILL_MSG);
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler; for SIGSYS its
    // union holds the syscall number at si_syscall (after si_call_addr).
    let nr = unsafe { sigsys_syscall(si) };
    msg[NUM_AT] = b'0' + ((nr / 100) % 10) as u8;
    msg[NUM_AT + 1] = b'0' + ((nr / 10) % 10) as u8;
    msg[NUM_AT + 2] = b'0' + (nr % 10) as u8;
    // SAFETY: write and _exit are async-signal-safe; msg lives on this stack.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(libc::EXIT_FAILURE);
    }
}

/// The syscall number of a SIGSYS siginfo (`si_syscall`, which the libc crate does not name).
///
/// # Safety
/// `si` must point at the siginfo of a SIGSYS delivered by seccomp.
unsafe fn sigsys_syscall(si: *const libc::siginfo_t) -> u32 {
    #[repr(C)]
    struct SigsysInfo {
        signo: libc::c_int,
        errno: libc::c_int,
        code: libc::c_int,
        call_addr: *mut libc::c_void,
        syscall: libc::c_int,
        arch: libc::c_uint,
    }
    // SAFETY: per the caller, `si` is a SIGSYS siginfo, whose layout begins as SigsysInfo
    // (the fields after `code` start at the union, pointer-aligned).
    let nr = unsafe { (*si.cast::<SigsysInfo>()).syscall };
    nr.max(0) as u32
}

/// Installs the SIGSYS handler (C's setup_privilege_violations_handler).
pub fn setup_violations_handler() {
    // SAFETY: sigaction with a zeroed struct, a handler of the SA_SIGINFO signature and an
    // empty mask.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = on_sigsys as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        libc::sigaction(libc::SIGSYS, &act, std::ptr::null_mut());
    }
}

/// Rules as (syscall name, optional "argument N, masked with M, equals V").
type Rule = (&'static str, Option<(u32, u64, u64)>);

/// "Argument `arg` equals `v`".
fn eq(arg: u32, v: u64) -> Option<(u32, u64, u64)> {
    Some((arg, u64::MAX, v))
}

fn allow(list: &mut Vec<Rule>, names: &[&'static str]) {
    list.extend(names.iter().map(|&n| (n, None)));
}

/// Syscalls every filtered thread needs.
const COMMON: &[&str] = &[
    "sigreturn",
    "rt_sigreturn",
    "rt_sigprocmask",
    "rt_sigaction",
    "futex",
    "epoll_wait",
    "epoll_pwait",
    "epoll_ctl",
    "mmap",
    "munmap",
    "brk",
    "msync",
    "exit",
    // Rust's runtime gives each thread a signal stack for stack-overflow reports and takes
    // it down when the thread (or the process) ends.
    "sigaltstack",
];

/// The dispatcher's list (C's drop_privileges).
fn main_rules(s: &settings::Settings) -> Vec<Rule> {
    let mut r = Vec::new();
    allow(&mut r, COMMON);
    allow(
        &mut r,
        &[
            "accept4",
            "accept",
            "write",
            "writev",
            "fstat",
            "close",
            "shmctl",
            "exit_group",
            "umask",
            "clock_gettime",
            "gettimeofday",
        ],
    );
    r.push(("ioctl", eq(1, libc::TIOCGWINSZ)));
    r.push(("ioctl", eq(1, libc::TCGETS)));
    // Beyond C: SIGHUP reloads the auth file (and TLS certificates) on this thread, which
    // C's list kills the process for. Files may be opened for reading only.
    r.push((
        "openat",
        Some((2, libc::O_ACCMODE as u64, libc::O_RDONLY as u64)),
    ));
    allow(&mut r, &["read", "lseek", "statx", "newfstatat"]);
    if s.memory_file.is_some() {
        // Beyond C, whose filter kills the process as a graceful stop writes the `-e`
        // metadata file (restart.rs): it is created, written and synced here.
        allow(&mut r, &["openat", "fsync"]);
    }
    if s.pid_file.is_some() {
        // Beyond C, whose filter kills the process here: a daemon removes its pid file as
        // it stops.
        allow(&mut r, &["unlink", "unlinkat"]);
    }
    kernel_tls_rules(s, &mut r);
    if cfg!(feature = "debug-commands") {
        allow(
            &mut r,
            &["open", "fcntl", "read", "readv", "lseek", "getpid"],
        );
        if s.relaxed_privileges {
            // access and mkdir are C's names; arm64 has only their *at forms.
            allow(
                &mut r,
                &["openat", "mkdir", "access", "mkdirat", "faccessat"],
            );
        }
    }
    r
}

/// A worker's list (C's drop_worker_privileges).
fn worker_rules(s: &settings::Settings) -> Vec<Rule> {
    let mut r = Vec::new();
    allow(&mut r, COMMON);
    allow(
        &mut r,
        &[
            "poll",
            "ppoll",
            "read",
            "readv",
            "mprotect",
            "getpeername",
            "close",
            "sendmsg",
            "getrusage",
            "mremap",
            "recvfrom",
            // `lru_crawler enable` starts the crawler thread from a worker: C lists clone;
            // glibc since 2.34 creates threads with clone3, and a new thread registers its
            // robust list and rseq area, and Rust's thread start reads its stack bounds
            // (pthread_getattr_np asks for the CPU mask) and sets a signal stack and name.
            "clone",
            "clone3",
            "set_robust_list",
            "rseq",
            "sched_getaffinity",
            // Rust's std asks for the thread id (its locks of stderr and of thread handles).
            "gettid",
            // Rust's hash maps seed themselves once per thread.
            "getrandom",
            "madvise",
            // stats
            "getsockname",
            "getpid",
        ],
    );
    r.push(("ioctl", eq(1, libc::TIOCGWINSZ)));
    r.push(("prctl", eq(0, libc::PR_SET_NAME as u64)));
    if s.shutdown_command {
        allow(
            &mut r,
            &["tgkill", "tkill", "exit_group", "fstat", "getpid", "gettid"],
        );
    }
    if s.sasl {
        // Beyond C, whose filter kills the process at the first SASL exchange: Cyrus SASL
        // reads its configuration and sasldb (read-only, under file locks) from the worker
        // that runs the exchange, and logs failures to syslog over a unix socket. The
        // server's name is found before the filter (sasl.rs).
        allow(
            &mut r,
            &[
                "lseek",
                "fstat",
                "newfstatat",
                "statx",
                "fcntl",
                "flock",
                "pread64",
                "uname",
                "connect",
                "sendto",
            ],
        );
        r.push(("socket", eq(0, libc::AF_UNIX as u64)));
        r.push((
            "openat",
            Some((2, libc::O_ACCMODE as u64, libc::O_RDONLY as u64)),
        ));
    }
    if s.relaxed_privileges {
        allow(
            &mut r,
            &[
                "openat",
                "mkdir",
                "access",
                "open",
                "fcntl",
                "lseek",
                "write",
                "writev",
                "socket",
                // arm64 has only the *at forms of mkdir and access.
                "mkdirat",
                "faccessat",
            ],
        );
    } else if s.ssl_enabled {
        // Beyond C, whose filter kills the process at the first TLS reply: OpenSSL writes
        // records to the socket with write(2), and looks certificates up in files while it
        // verifies a client's (read-only).
        allow(&mut r, &["write", "lseek", "fstat", "newfstatat", "statx"]);
        r.push((
            "openat",
            Some((2, libc::O_ACCMODE as u64, libc::O_RDONLY as u64)),
        ));
        r.push(("writev", eq(0, 1)));
        r.push(("writev", eq(0, 2)));
    } else {
        // stdout and stderr
        for fd in [1, 2] {
            r.push(("write", eq(0, fd)));
            r.push(("writev", eq(0, fd)));
        }
    }
    kernel_tls_rules(s, &mut r);
    r
}

/// OpenSSL's level of kernel TLS socket options (SOL_TLS).
const SOL_TLS: u64 = 282;

/// Beyond C, whose filters kill the process at the first TLS reply: with `-o ssl_kernel_tls`
/// OpenSSL asks for the kernel's TLS layer (TCP_ULP) once a session's keys are set, on the
/// dispatcher (a TLS 1.3 server sets its traffic keys inside the accept's first handshake
/// step) or a worker, hands it the keys (SOL_TLS), and reads records with their type through
/// recvmsg. On a kernel without it the first call fails and OpenSSL goes on by itself.
fn kernel_tls_rules(s: &settings::Settings, r: &mut Vec<Rule>) {
    if s.ssl_enabled && s.ssl_kernel_tls {
        r.push(("setsockopt", eq(1, libc::SOL_TCP as u64)));
        r.push(("setsockopt", eq(1, SOL_TLS)));
        allow(r, &["recvmsg"]);
    }
}

/// Builds and loads a filter on the calling thread; false if any step failed.
fn load(rules: &[Rule]) -> bool {
    let Ok(mut ctx) = ScmpFilterContext::new(ScmpAction::Trap) else {
        // C returns without a filter when the context cannot be made.
        return true;
    };
    for &(name, cond) in rules {
        // A name this architecture does not have (open, poll, epoll_wait on arm64) resolves
        // to one of libseccomp's negative pseudo-numbers, which a rule ignores, as in C.
        let Ok(sc) = ScmpSyscall::from_name(name) else {
            continue;
        };
        let res = match cond {
            None => ctx.add_rule(ScmpAction::Allow, sc),
            Some((arg, mask, v)) => {
                let op = if mask == u64::MAX {
                    ScmpCompareOp::Equal
                } else {
                    ScmpCompareOp::MaskedEqual(mask)
                };
                ctx.add_rule_conditional(ScmpAction::Allow, sc, &[ScmpArgCompare::new(arg, op, v)])
            }
        };
        if res.is_err() {
            return false;
        }
    }
    ctx.load().is_ok()
}

/// Filters the dispatcher, once every thread is started (C's drop_privileges).
pub fn drop_privileges() {
    if !load(&main_rules(settings::get())) {
        eprintln!("Failed to set a seccomp profile on the main thread");
        std::process::exit(libc::EXIT_FAILURE);
    }
}

/// Filters the calling worker before it serves clients (C's drop_worker_privileges).
pub fn drop_worker_privileges() {
    if !load(&worker_rules(settings::get())) {
        eprintln!("Failed to set a seccomp profile on a worker thread");
        std::process::exit(libc::EXIT_FAILURE);
    }
}

/// `misbehave` (memcached-debug): tries what no filtered worker may do, opening a TCP socket
/// and running a command. True if either worked; under the filter the first one kills the
/// process.
pub fn misbehave() -> bool {
    let mut allowed = false;
    // SAFETY: plain syscalls; the socket is closed at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if fd != -1 {
            allowed = true;
            libc::close(fd);
        }
        if libc::system(c"sleep 0".as_ptr()) != -1 {
            allowed = true;
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use libseccomp::ScmpArch;

    #[test]
    fn the_message_has_its_number_where_c_puts_it() {
        assert_eq!(&KILL_MSG[NUM_AT..NUM_AT + 3], b"???");
    }

    #[test]
    fn every_rule_names_a_known_syscall_here() {
        let s = settings::Settings::default();
        for (name, _) in main_rules(&s).into_iter().chain(worker_rules(&s)) {
            let known = ScmpSyscall::from_name(name).is_ok();
            let other_arch = matches!(name, "open" | "poll" | "epoll_wait" | "access" | "mkdir");
            assert!(known || other_arch, "{name}");
        }
    }

    /// The images ship an arm64 build, where some of C's names do not exist (glibc calls the
    /// newer form instead): each rule must name an arm64 syscall, or one whose arm64
    /// replacement is allowed in the same list. Checked here because seccomp filters cannot
    /// be loaded under qemu's user-mode emulation, the only arm64 this project runs on.
    #[test]
    fn every_list_covers_arm64() {
        let arm64 = |n: &str| {
            ScmpSyscall::from_name_by_arch(n, ScmpArch::Aarch64)
                .is_ok_and(|s| s.as_raw_syscall() >= 0)
        };
        let replaced_by = |n: &str| match n {
            "open" => Some("openat"),
            "poll" => Some("ppoll"),
            "epoll_wait" => Some("epoll_pwait"),
            "access" => Some("faccessat"),
            "mkdir" => Some("mkdirat"),
            "unlink" => Some("unlinkat"),
            "sigreturn" => Some("rt_sigreturn"),
            _ => None,
        };
        let mut s = settings::Settings::default();
        for (sasl, tls, relaxed, pid) in [
            (false, false, false, false),
            (true, true, false, true),
            (true, false, true, true),
        ] {
            s.sasl = sasl;
            s.ssl_enabled = tls;
            s.ssl_kernel_tls = tls;
            s.relaxed_privileges = relaxed;
            s.pid_file = pid.then(|| "/tmp/p".into());
            for rules in [main_rules(&s), worker_rules(&s)] {
                for &(name, _) in &rules {
                    if arm64(name) {
                        continue;
                    }
                    let other = replaced_by(name).unwrap_or_else(|| panic!("{name} on arm64"));
                    assert!(arm64(other), "{other}");
                    assert!(rules.iter().any(|&(n, _)| n == other), "{name}: no {other}");
                }
            }
        }
    }
}
