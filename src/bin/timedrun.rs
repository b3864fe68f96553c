//! `timedrun SECONDS CMD ARGS...`: run CMD with a deadline.
//!
//! The test suite starts every server through this helper so that a hung
//! server can never outlive the test run. It is a drop-in replacement for the
//! helper of the same name that ships with the C server, with the same
//! observable behaviour:
//!
//! * fewer than two arguments: prints the usage line on stderr and exits 255;
//! * SECONDS is read like C `atoi` and must be in 1..=1799, otherwise the
//!   program aborts (SIGABRT), as the C helper's assertion does;
//! * CMD is looked up in `PATH` like `execvp`; when it cannot be started,
//!   `exec: <reason>` is printed and the exit status is 70 (EX_SOFTWARE);
//! * the exit status is the child's exit status, or 128 + signal number when
//!   the child was killed by a signal;
//! * SIGALRM (the deadline), SIGHUP, SIGINT, SIGUSR1, SIGTERM and SIGPIPE
//!   sent to us are acted upon. SIGHUP is always relayed to the child as is.
//!   For the others an escalation ladder is climbed, one step per signal:
//!   first the signal itself is relayed (for the deadline, "Timeout.. killing
//!   the process" is printed and SIGALRM is sent), then SIGTERM, then SIGKILL
//!   for every later step. After each step the child gets five more seconds
//!   before the next step.
//!
//! One deliberate difference: the C helper installs its signal handlers only
//! after forking, so a signal that reaches it while the child is being
//! started kills it and orphans the child. Here the signals are blocked from
//! the start and collected synchronously (sigwaitinfo), so none is lost.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::process::CommandExt;
use std::process::{self, Command};

/// sysexits.h: internal software error.
const EX_SOFTWARE: i32 = 70;
/// sysexits.h: system error (e.g. cannot fork).
const EX_OSERR: i32 = 71;

/// Upper bound (exclusive) for the deadline, in seconds.
const MAX_NAPTIME: i64 = 1800;
/// Grace period given to the child after each signal we send it.
const GRACE_SECONDS: u32 = 5;

/// Signals that interrupt the wait for the child, plus SIGCHLD which tells
/// us the child changed state.
const WATCHED_SIGNALS: [libc::c_int; 7] = [
    libc::SIGALRM,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGUSR1,
    libc::SIGTERM,
    libc::SIGPIPE,
    libc::SIGCHLD,
];

/// Write a diagnostic line on stderr; a failing stderr is not our problem.
fn complain(msg: &str) {
    let _ = writeln!(io::stderr(), "{msg}");
}

/// The text C's `strerror` gives for an I/O error, without Rust's
/// " (os error N)" suffix.
fn reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rfind(" (os error ") {
        Some(cut) if err.raw_os_error().is_some() => text[..cut].to_string(),
        _ => text,
    }
}

/// Print `what: <strerror(errno)>` like C's `perror`.
fn perror(what: &str) {
    complain(&format!("{what}: {}", reason(&io::Error::last_os_error())));
}

/// Parse the way C `atoi` does: optional leading whitespace, an optional
/// sign, then decimal digits up to the first non-digit. No digits gives 0.
/// Saturates instead of overflowing; anything that large is rejected anyway.
fn atoi(text: &[u8]) -> i64 {
    let mut rest = text;
    while let Some((&c, tail)) = rest.split_first() {
        if matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
            rest = tail;
        } else {
            break;
        }
    }
    let mut negative = false;
    if let Some((&c, tail)) = rest.split_first() {
        if c == b'+' || c == b'-' {
            negative = c == b'-';
            rest = tail;
        }
    }
    let mut value: i64 = 0;
    for &c in rest.iter().take_while(|c| c.is_ascii_digit()) {
        value = value.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    if negative {
        -value
    } else {
        value
    }
}

/// Ask for SIGALRM in `seconds` seconds (0 cancels a pending alarm).
fn set_alarm(seconds: u32) {
    // SAFETY: alarm(2) has no memory-safety preconditions.
    unsafe {
        libc::alarm(seconds);
    }
}

/// What the signal state was before `take_over_signals` changed it, for the
/// child to start from (as the C helper's child does, since that one forks
/// before touching any signal).
#[derive(Clone, Copy)]
struct SignalState {
    mask: libc::sigset_t,
    actions: [libc::sigaction; WATCHED_SIGNALS.len()],
}

/// Block the watched signals and give them their default dispositions, so
/// that they stay pending until `next_signal` collects them. Blocking them
/// before the child exists means a signal sent to us at any moment is
/// relayed, never lost and never fatal to us (the C helper only installs its
/// handlers after forking). Returns the watched set and the previous state.
fn take_over_signals() -> (libc::sigset_t, SignalState) {
    // SAFETY: every sigset_t and sigaction below is plain data, zeroed and
    // then initialised through the libc calls before being read;
    // pthread_sigmask and sigaction only read their input pointers and write
    // their output pointers, which point to live locals. The dispositions are
    // changed while the signals are blocked, so none of them can take its
    // default action on us in between.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signo in &WATCHED_SIGNALS {
            libc::sigaddset(&mut set, signo);
        }
        let mut before = SignalState {
            mask: std::mem::zeroed(),
            actions: [std::mem::zeroed(); WATCHED_SIGNALS.len()],
        };
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut before.mask);
        // An inherited SIG_IGN would discard the signal even while blocked
        // (and for SIGCHLD would make children reap themselves).
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        for (i, &signo) in WATCHED_SIGNALS.iter().enumerate() {
            libc::sigaction(signo, &default, &mut before.actions[i]);
        }
        (set, before)
    }
}

/// In the forked child, just before exec: put back the signal state we
/// started with, except SIGPIPE, which std has already reset to its default
/// (the Rust runtime ignores it in this process).
fn restore_signals(before: &SignalState) -> io::Result<()> {
    for (i, &signo) in WATCHED_SIGNALS.iter().enumerate() {
        if signo == libc::SIGPIPE {
            continue;
        }
        // SAFETY: sigaction is async-signal-safe and only reads the saved,
        // initialised struct.
        if unsafe { libc::sigaction(signo, &before.actions[i], std::ptr::null_mut()) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: sigprocmask is async-signal-safe and only reads the saved,
    // initialised mask (the child is single-threaded here).
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &before.mask, std::ptr::null_mut()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Wait for one of the watched signals.
fn next_signal(set: &libc::sigset_t) -> io::Result<libc::c_int> {
    loop {
        // SAFETY: `set` points to an initialised sigset_t; a null info
        // pointer is allowed.
        let signo = unsafe { libc::sigwaitinfo(set, std::ptr::null_mut()) };
        if signo > 0 {
            return Ok(signo);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Send `signo` to `pid`, reporting like the C helper if it fails.
fn send_signal(pid: libc::pid_t, signo: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signo) };
    if rc < 0 {
        perror("lost child when trying to kill");
    }
}

/// Collect the child if it has exited: its raw wait status, or None while it
/// still runs (SIGCHLD also reports stops and continues).
fn try_reap(pid: libc::pid_t) -> io::Result<Option<libc::c_int>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if rc == pid {
        Ok(Some(status))
    } else if rc == 0 {
        Ok(None)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Shell-style exit code for a raw wait status.
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        0x80 | libc::WTERMSIG(status)
    }
}

/// Wait for the child, relaying signals and escalating as described in the
/// module documentation. Returns our exit code.
fn supervise(pid: libc::pid_t, watched: &libc::sigset_t) -> i32 {
    // How many signals have interrupted the wait so far (SIGHUP restarts
    // the count).
    let mut step: u32 = 0;
    loop {
        let signo = match next_signal(watched) {
            Ok(signo) => signo,
            Err(err) => {
                complain(&format!("sigwaitinfo: {}", reason(&err)));
                return EX_SOFTWARE;
            }
        };
        if signo == libc::SIGCHLD {
            match try_reap(pid) {
                Ok(Some(status)) => return exit_code(status),
                Ok(None) => continue,
                Err(err) => {
                    complain(&format!("waitpid: {}", reason(&err)));
                    return EX_SOFTWARE;
                }
            }
        }
        if signo == libc::SIGHUP {
            // Reload requests go through untouched and reset the ladder.
            send_signal(pid, libc::SIGHUP);
            step = 1;
            continue;
        }
        let relay = match step {
            0 => {
                if signo == libc::SIGALRM {
                    complain("Timeout.. killing the process");
                }
                signo
            }
            1 => libc::SIGTERM,
            _ => libc::SIGKILL,
        };
        send_signal(pid, relay);
        set_alarm(GRACE_SECONDS);
        step = step.saturating_add(1);
    }
}

fn usage() -> ! {
    complain("./timedrun <naptime in sec> args...");
    process::exit(-1);
}

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.len() < 3 {
        usage();
    }

    let naptime = {
        use std::os::unix::ffi::OsStrExt;
        atoi(args[1].as_bytes())
    };
    if !(naptime > 0 && naptime < MAX_NAPTIME) {
        complain(&format!(
            "timedrun: naptime must be between 1 and {} seconds, got {:?}",
            MAX_NAPTIME - 1,
            args[1]
        ));
        process::abort();
    }
    let (watched, before) = take_over_signals();
    // In range 1..1800, so the conversion cannot fail.
    set_alarm(u32::try_from(naptime).unwrap_or(1));

    // Command resolves the program through PATH like execvp, and hands the
    // child the default SIGPIPE disposition (the Rust runtime ignores it).
    let mut command = Command::new(&args[2]);
    command.args(&args[3..]);
    // The pre-exec hook gives the child the signal state we were started
    // with. (Having a hook also makes std fork + execvp rather than use
    // posix_spawn, whose glibc version leaves libc-internal signals ignored.)
    // SAFETY: the hook only makes async-signal-safe calls (sigaction,
    // sigprocmask) on data copied into the closure; it allocates nothing and
    // takes no locks, as required between fork and exec.
    unsafe {
        command.pre_exec(move || restore_signals(&before));
    }
    let child = command.spawn();
    let code = match child {
        Ok(child) => match libc::pid_t::try_from(child.id()) {
            Ok(pid) => supervise(pid, &watched),
            Err(_) => EX_SOFTWARE,
        },
        Err(err) => {
            let is_fork_failure =
                matches!(err.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOMEM));
            if is_fork_failure {
                complain(&format!("fork: {}", reason(&err)));
                EX_OSERR
            } else {
                complain(&format!("exec: {}", reason(&err)));
                EX_SOFTWARE
            }
        }
    };
    process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::atoi;

    #[test]
    fn atoi_reads_like_c() {
        assert_eq!(atoi(b"600"), 600);
        assert_eq!(atoi(b"  \t42xyz"), 42);
        assert_eq!(atoi(b"+7"), 7);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b""), 0);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b"- 5"), 0);
        assert!(atoi(b"99999999999999999999999999") >= 1800);
    }
}
