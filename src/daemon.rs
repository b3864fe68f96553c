//! Process set-up done by C's main() and daemon.c: core and file limits, dropping root,
//! daemonizing, mlockall, the pid file and signal dispositions.

use crate::sys;
use std::ffi::CString;
use std::io;

/// exit codes from sysexits.h, as C uses them.
pub const EX_USAGE: i32 = 64;
pub const EX_NOUSER: i32 = 67;
pub const EX_OSERR: i32 = 71;

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// perror(3) with a formatted prefix (C's vperror).
pub fn vperror(msg: &str) {
    eprintln!("{}: {}", msg, sys::strerror(errno()));
}

/// `-r`: raise the core file limit, failing if cores stay disabled.
pub fn raise_core_limit() {
    // SAFETY: getrlimit/setrlimit fill and read plain rlimit structs on the stack.
    unsafe {
        let mut rlim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_CORE, &mut rlim) == 0 {
            let inf = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &inf) != 0 {
                let old = libc::rlimit {
                    rlim_cur: rlim.rlim_max,
                    rlim_max: rlim.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &old);
            }
        }
        if libc::getrlimit(libc::RLIMIT_CORE, &mut rlim) != 0 || rlim.rlim_cur == 0 {
            eprintln!("failed to ensure corefile creation");
            std::process::exit(EX_OSERR);
        }
    }
}

/// Sets RLIMIT_NOFILE to maxconns, as C does (fatal only in the non-debug build).
pub fn set_nofile_limit(maxconns: i32) {
    // SAFETY: plain rlimit structs on the stack.
    unsafe {
        let mut rlim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlim) != 0 {
            eprintln!("failed to getrlimit number of files");
            std::process::exit(EX_OSERR);
        }
        rlim.rlim_cur = maxconns as libc::rlim_t;
        rlim.rlim_max = maxconns as libc::rlim_t;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) != 0 && !cfg!(feature = "debug-commands") {
            eprintln!(
                "failed to set rlimit for open files. Try starting as root or requesting smaller maxconns value."
            );
            std::process::exit(EX_OSERR);
        }
    }
}

/// Refuses to run as root without `-u`, and otherwise switches to that user.
pub fn drop_root(username: Option<&str>) {
    // SAFETY: getuid/geteuid have no preconditions; getpwnam's result is read at once; setgroups
    // with an empty list; setgid/setuid with ids from the passwd entry.
    unsafe {
        if libc::getuid() != 0 && libc::geteuid() != 0 {
            return;
        }
        let name = match username {
            Some(u) if !u.is_empty() => u,
            _ => {
                eprintln!("must add '-u root' to start as root");
                std::process::exit(EX_USAGE);
            }
        };
        let cname = CString::new(name).unwrap_or_default();
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            eprintln!("can't find the user {} to switch to", name);
            std::process::exit(EX_NOUSER);
        }
        let (uid, gid) = ((*pw).pw_uid, (*pw).pw_gid);
        if libc::setgroups(0, std::ptr::null()) < 0 {
            let e = errno();
            eprintln!("failed to drop supplementary groups: {}", sys::strerror(e));
            if e != libc::EPERM {
                std::process::exit(EX_OSERR);
            }
        }
        if libc::setgid(gid) < 0 || libc::setuid(uid) < 0 {
            eprintln!("failed to assume identity of user {}", name);
            std::process::exit(EX_OSERR);
        }
    }
}

/// Forks into the background (C's daemonize): the parent exits, the child starts a session,
/// changes to / unless `nochdir`, and points stdio at /dev/null unless `noclose`.
pub fn daemonize(nochdir: bool, noclose: bool) -> io::Result<()> {
    // SAFETY: the process is still single-threaded here (workers start later), so fork is
    // safe; the rest are plain syscalls on owned descriptors.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        if !nochdir && libc::chdir(c"/".as_ptr()) != 0 {
            vperror("chdir");
            return Err(io::Error::last_os_error());
        }
        if !noclose {
            let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0);
            if fd != -1 {
                for (target, what) in [(0, "dup2 stdin"), (1, "dup2 stdout"), (2, "dup2 stderr")] {
                    if libc::dup2(fd, target) < 0 {
                        vperror(what);
                        libc::close(fd);
                        return Err(io::Error::last_os_error());
                    }
                }
                if libc::close(fd) < 0 {
                    vperror("close");
                    return Err(io::Error::last_os_error());
                }
            }
        }
    }
    Ok(())
}

/// `-k`: lock all pages, warning (not failing) if the kernel refuses.
pub fn lock_memory() {
    // SAFETY: plain syscall.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        eprintln!(
            "warning: -k invalid, mlockall() failed: {}",
            sys::strerror(errno())
        );
    }
}

/// Writes the pid file through a temporary name (C's save_pid).
pub fn save_pid(path: &str) {
    if let Ok(old) = std::fs::read_to_string(path) {
        let first = old.lines().next().unwrap_or("").trim();
        if let Ok(pid) = first.parse::<u32>() {
            // SAFETY: kill with signal 0 only checks whether the process exists.
            if unsafe { libc::kill(pid as libc::pid_t, 0) } == 0 {
                eprintln!(
                    "WARNING: The pid file contained the following (running) pid: {}",
                    pid
                );
            }
        }
    }
    let tmp = format!("{}.tmp", path);
    if let Err(e) = std::fs::write(&tmp, format!("{}\n", std::process::id())) {
        eprintln!(
            "Could not open the pid file {} for writing: {}",
            tmp,
            sys::strerror(e.raw_os_error().unwrap_or(0))
        );
        return;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        eprintln!(
            "Could not rename the pid file from {} to {}: {}",
            tmp,
            path,
            sys::strerror(e.raw_os_error().unwrap_or(0))
        );
    }
}

/// Removes the pid file at exit of a daemon.
pub fn remove_pidfile(path: Option<&str>) {
    if let Some(p) = path {
        if let Err(e) = std::fs::remove_file(p) {
            eprintln!(
                "Could not remove the pid file {}: {}",
                p,
                sys::strerror(e.raw_os_error().unwrap_or(0))
            );
        }
    }
}
