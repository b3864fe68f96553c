//! The ASCII (text) protocol: runs one parsed command line against the server
//! (C's proto_text.c `process_command_ascii` and the command handlers).

use super::tokenizer::{parse_request, Command, Parsed, Request};
use crate::conn::{CloseReason, Conn, ConnState};
use crate::settings;
use crate::stats;
use crate::thread;

/// Highest level `verbosity` accepts (C's MAX_VERBOSITY_LEVEL).
const MAX_VERBOSITY_LEVEL: u32 = 2;

/// Admin commands looked up by name when the parser does not know the word.
/// A command handler: the connection, the request line and its tokens.
type Handler = fn(&mut Conn, &[u8], &Request);

const ADMIN_COMMANDS: &[(&[u8], Handler)] = &[
    (b"shutdown", process_shutdown_command),
    (b"verbosity", process_verbosity_command),
    #[cfg(feature = "debug-commands")]
    (b"debugtime", process_debugtime_command),
];

/// Handles one command line (with its "\n" or "\r\n").
pub fn process_command(c: &mut Conn, line: &[u8]) {
    c.resp_start();
    let (parsed, req) = parse_request(line);
    c.noreply = req.noreply;
    if settings::verbose() > 1 {
        let shown = &line[..line.len().saturating_sub(2)];
        eprintln!("<{} {}", c.fd, String::from_utf8_lossy(shown));
    }
    match parsed {
        Parsed::Ok => match req.command {
            Some(Command::Quit) => {
                c.set_state(ConnState::Mwrite);
                c.close_after_write = true;
                c.close_reason = CloseReason::Normal;
            }
            Some(Command::Version) => c.out_string(concat!("VERSION ", "1.6.45")),
            Some(Command::Stats) => process_stat(c, line, &req),
            // Data, meta and watch commands are built by later work; until then the server
            // answers as for an unknown command.
            _ => c.out_string("ERROR"),
        },
        Parsed::NotFound => {
            let t = &req.tokens;
            if let Some(word) = t.get(line, 0) {
                for (name, f) in ADMIN_COMMANDS {
                    if *name == word {
                        f(c, line, &req);
                        return;
                    }
                }
            }
            if t.ntokens > 1 {
                if let Some(last) = t.get(line, t.ntokens - 1) {
                    if last.starts_with(b"HTTP/") {
                        // Someone pointed a web client at us: hang up.
                        c.set_state(ConnState::Closing);
                        c.close_reason = CloseReason::Error;
                        return;
                    }
                }
            }
            c.out_string("ERROR");
        }
        Parsed::BadFormat => c.out_string("CLIENT_ERROR bad command line format"),
    }
}

fn process_verbosity_command(c: &mut Conn, line: &[u8], req: &Request) {
    match req.tokens.get_u32(line, 1) {
        Some(level) => {
            settings::set_verbose(level.min(MAX_VERBOSITY_LEVEL) as i32);
            c.out_string("OK");
        }
        None => c.out_string("CLIENT_ERROR bad command line format"),
    }
}

fn process_shutdown_command(c: &mut Conn, line: &[u8], req: &Request) {
    if !settings::get().shutdown_command {
        c.out_string("SERVER_ERROR: shutdown not enabled");
        return;
    }
    let t = &req.tokens;
    if t.ntokens == 1 {
        c.close_reason = CloseReason::Shutdown;
        c.set_state(ConnState::Closing);
        crate::server::request_stop(crate::server::StopKind::Normal);
    } else if t.ntokens == 2 && t.get(line, 1) == Some(b"graceful") {
        c.close_reason = CloseReason::Shutdown;
        c.set_state(ConnState::Closing);
        crate::server::request_stop(crate::server::StopKind::Graceful);
    } else {
        c.out_string("CLIENT_ERROR invalid shutdown mode");
    }
}

#[cfg(feature = "debug-commands")]
fn process_debugtime_command(c: &mut Conn, line: &[u8], req: &Request) {
    let t = &req.tokens;
    match t.get(line, 1) {
        None => c.out_string("ERROR"),
        Some(b"p") => {
            crate::server::set_clock_paused(true);
            c.out_string("OK");
        }
        Some(b"r") => {
            crate::server::set_clock_paused(false);
            c.out_string("OK");
        }
        Some(tok) => match super::tokenizer::tok_to_i64(tok) {
            Some(delta) => {
                crate::server::clock_add_delta(delta);
                c.out_string("OK");
            }
            None => c.out_string("ERROR"),
        },
    }
}

/// `stats [subcommand]` (C's process_stat).
fn process_stat(c: &mut Conn, line: &[u8], req: &Request) {
    let t = &req.tokens;
    let mut out = Vec::with_capacity(4096);
    if t.ntokens <= 1 {
        let totals = thread::stats_aggregate();
        stats::server_stats(&mut out, &totals, settings::get().num_threads);
    } else {
        // C compares only as many bytes as the client sent ("stats set" means settings).
        let sub = t.get(line, 1).unwrap_or(b"");
        let is = |name: &[u8]| name.starts_with(sub);
        if is(b"reset") {
            {
                let _g = stats::RESET_LOCK.lock();
                stats::STATS.reset();
                thread::stats_reset();
            }
            c.out_string("RESET");
            return;
        } else if is(b"settings") {
            settings::write_stats_settings(&mut out);
        } else {
            // detail, cachedump, conns, items, slabs, sizes... arrive with their subsystems.
            c.out_string("ERROR");
            return;
        }
    }
    out.extend_from_slice(b"END\r\n");
    c.write_body(out);
}
