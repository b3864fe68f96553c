//! A tiny HTTP server over libevent's evhttp (libevent_extra, linked with the rest of the
//! bundled libevent), for the metrics endpoint: one listening address on an `EventBase` of its
//! own (evhttp answers malformed requests with 400 itself), every request handed to one plain
//! function that returns status, content type and body. evhttp never blocks: a client that stops reading is dropped after the timeout.

use crate::event::EventBase;
use libevent_sys as ev;
use std::ffi::CString;
use std::os::raw::{c_char, c_void};
use std::ptr::NonNull;

/// What a handler answers.
pub struct Reply {
    pub status: i32,
    pub reason: &'static str,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// The request as a handler sees it.
pub struct Request<'a> {
    /// The path of the URI, without query ("/metrics").
    pub path: &'a [u8],
    /// GET or HEAD (other methods are handed over too, for the handler to refuse).
    pub get: bool,
    pub head: bool,
}

/// The handler: a plain function, called on the base's thread.
pub type HttpHandler = fn(&Request<'_>) -> Reply;

/// A listening HTTP server; lives as long as the process (it is never freed).
pub struct HttpServer {
    _raw: NonNull<ev::evhttp>,
}

unsafe extern "C" fn on_request(req: *mut ev::evhttp_request, arg: *mut c_void) {
    // SAFETY: `arg` is the handler function pointer given to evhttp_set_gencb in `listen`
    // (a fn pointer cast to a data pointer and back); `req` is a live request evhttp owns
    // until a reply is sent, which this function always does.
    unsafe {
        let handler: HttpHandler = std::mem::transmute::<*mut c_void, HttpHandler>(arg);
        let cmd = ev::evhttp_request_get_command(req);
        let head = cmd == ev::evhttp_cmd_type_EVHTTP_REQ_HEAD;
        let get = head || cmd == ev::evhttp_cmd_type_EVHTTP_REQ_GET;
        let uri = ev::evhttp_request_get_evhttp_uri(req);
        let path = if uri.is_null() {
            std::ptr::null()
        } else {
            ev::evhttp_uri_get_path(uri)
        };
        let path: &[u8] = if path.is_null() {
            b""
        } else {
            std::ffi::CStr::from_ptr(path).to_bytes()
        };
        let reply = handler(&Request { path, get, head });
        let headers = ev::evhttp_request_get_output_headers(req);
        if let Ok(ct) = CString::new(reply.content_type) {
            ev::evhttp_add_header(headers, c"Content-Type".as_ptr(), ct.as_ptr());
        }
        let buf = ev::evbuffer_new();
        if buf.is_null() {
            ev::evhttp_send_error(req, 500, std::ptr::null());
            return;
        }
        ev::evbuffer_add(buf, reply.body.as_ptr().cast(), reply.body.len());
        let reason = CString::new(reply.reason).unwrap_or_default();
        ev::evhttp_send_reply(req, reply.status, reason.as_ptr(), buf);
        ev::evbuffer_free(buf);
    }
}

impl HttpServer {
    /// Listens on `addr:port` on `base`, answering through `handler`; `timeout_secs` drops a
    /// connection that neither sends nor reads for that long. Err: C's kind of message.
    pub fn listen(
        base: &EventBase,
        addr: &str,
        port: u16,
        timeout_secs: i32,
        handler: HttpHandler,
    ) -> Result<HttpServer, String> {
        let caddr = CString::new(addr).map_err(|_| format!("bad address {addr}"))?;
        // SAFETY: the base is valid and used on this thread; the handler is a plain fn
        // pointer, valid for the life of the process; evhttp copies the address string.
        unsafe {
            let raw = NonNull::new(ev::evhttp_new(base.as_raw()))
                .ok_or_else(|| "evhttp_new failed".to_string())?;
            // Every method reaches the handler, which answers what it does not serve.
            ev::evhttp_set_allowed_methods(raw.as_ptr(), 0xffff);
            ev::evhttp_set_timeout(raw.as_ptr(), timeout_secs);
            ev::evhttp_set_max_headers_size(raw.as_ptr(), 16384);
            ev::evhttp_set_max_body_size(raw.as_ptr(), 0);
            ev::evhttp_set_gencb(
                raw.as_ptr(),
                Some(on_request),
                handler as *const () as *mut c_void,
            );
            let bound = ev::evhttp_bind_socket_with_handle(
                raw.as_ptr(),
                caddr.as_ptr() as *const c_char,
                port,
            );
            if bound.is_null() {
                let err = std::io::Error::last_os_error();
                ev::evhttp_free(raw.as_ptr());
                return Err(format!("failed to listen on {addr}:{port}: {err}"));
            }
            Ok(HttpServer { _raw: raw })
        }
    }
}
