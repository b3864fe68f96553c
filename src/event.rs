//! Safe wrappers over the libevent FFI (libevent 2.1.12, compiled statically by libevent-sys).
//!
//! Every event loop of the server (dispatcher, each worker) owns one `EventBase` created with
//! `EVENT_BASE_FLAG_NOLOCK`: a base and its events are only ever touched by the thread that runs
//! the loop, so neither type is `Send`.
//!
//! Objects that receive events implement `Handler` and are handed to libevent as a leaked `Box`
//! through `register`; the callback trampoline turns the raw argument back into `&mut T` and frees
//! the box when the handler says so. That is the only place raw callback arguments are touched.

use libevent_sys as ev;
use std::ffi::CStr;
use std::os::raw::{c_int, c_short, c_void};
use std::os::unix::io::RawFd;
use std::ptr::NonNull;
use std::time::Duration;

pub const EV_TIMEOUT: i16 = ev::EV_TIMEOUT as i16;
pub const EV_READ: i16 = ev::EV_READ as i16;
pub const EV_WRITE: i16 = ev::EV_WRITE as i16;
pub const EV_PERSIST: i16 = ev::EV_PERSIST as i16;

/// The version string of the linked libevent, as `stats` reports it.
pub fn version() -> &'static str {
    // SAFETY: event_get_version returns a pointer to a static NUL-terminated string.
    let s = unsafe { CStr::from_ptr(ev::event_get_version()) };
    s.to_str().unwrap_or("unknown")
}

/// One libevent `event_base`, owned by the thread that runs its loop.
pub struct EventBase {
    raw: NonNull<ev::event_base>,
}

impl EventBase {
    /// A base without internal locking: it is used only by the thread that created it.
    pub fn new() -> Option<EventBase> {
        // SAFETY: plain constructor calls; every pointer is checked before use and the config
        // is freed once the base exists.
        unsafe {
            let cfg = ev::event_config_new();
            if cfg.is_null() {
                return None;
            }
            ev::event_config_set_flag(
                cfg,
                ev::event_base_config_flag_EVENT_BASE_FLAG_NOLOCK as c_int,
            );
            let base = ev::event_base_new_with_config(cfg);
            ev::event_config_free(cfg);
            NonNull::new(base).map(|raw| EventBase { raw })
        }
    }

    /// Runs the loop until `loopexit`/`loopbreak` or until no events remain. Returns libevent's
    /// result (0 normal, 1 no events, -1 error).
    pub fn dispatch(&self) -> i32 {
        // SAFETY: the base is valid for self's lifetime and used on its own thread.
        unsafe { ev::event_base_loop(self.raw.as_ptr(), 0) }
    }

    /// Runs one iteration: waits for at least one event and handles what is ready.
    pub fn loop_once(&self) -> i32 {
        // SAFETY: as in dispatch.
        unsafe { ev::event_base_loop(self.raw.as_ptr(), ev::EVLOOP_ONCE as c_int) }
    }

    /// The base for other libevent modules of this crate (evhttp).
    pub(crate) fn as_raw(&self) -> *mut ev::event_base {
        self.raw.as_ptr()
    }

    /// Whether `loopexit` ended the loop (C's event_base_got_exit).
    pub fn got_exit(&self) -> bool {
        // SAFETY: as in dispatch.
        unsafe { ev::event_base_got_exit(self.raw.as_ptr()) != 0 }
    }

    /// Makes the running loop return after the current round of callbacks.
    pub fn loopexit(&self) {
        // SAFETY: a NULL timeout means "exit after this iteration".
        unsafe {
            ev::event_base_loopexit(self.raw.as_ptr(), std::ptr::null());
        }
    }

    /// Registers `obj` for events on `fd` (a timer when `fd` is -1). The box is leaked to
    /// libevent and handed back to `T::handle` on each event; it is freed when `handle` returns
    /// `Disposition::Release` (an object never released lives as long as the process).
    /// The event is added at once, with `timeout` if given (a periodic timer with EV_PERSIST).
    /// Returns false (and drops `obj`) if libevent refuses the event.
    pub fn register<T: Handler>(
        &self,
        fd: RawFd,
        flags: i16,
        timeout: Option<Duration>,
        obj: Box<T>,
    ) -> bool {
        let ptr = Box::into_raw(obj);
        // SAFETY: `ptr` comes from Box::into_raw and stays valid until the trampoline (or the
        // error path below) turns it back into a Box exactly once.
        unsafe {
            let raw = ev::event_new(
                self.raw.as_ptr(),
                fd,
                flags as c_short,
                Some(trampoline::<T>),
                ptr as *mut c_void,
            );
            let Some(raw) = NonNull::new(raw) else {
                drop(Box::from_raw(ptr));
                return false;
            };
            let ev = Event {
                raw,
                flags,
                waiting: false,
            };
            if !ev.add(timeout) {
                drop(ev);
                drop(Box::from_raw(ptr));
                return false;
            }
            (*ptr).set_event(ev);
            true
        }
    }

    /// Creates a timer (or a persistent fd watch) whose callback is a plain function, for the
    /// loop's own housekeeping (clock tick, notify channel). `arg` is passed through untouched.
    ///
    /// # Safety
    /// `arg` must stay valid for as long as the returned event exists.
    pub unsafe fn new_raw_event(
        &self,
        fd: RawFd,
        flags: i16,
        cb: RawCallback,
        arg: *mut c_void,
    ) -> Option<Event> {
        // SAFETY: forwarded contract: the caller keeps `arg` alive while the event exists.
        let raw = unsafe { ev::event_new(self.raw.as_ptr(), fd, flags as c_short, Some(cb), arg) };
        NonNull::new(raw).map(|raw| Event {
            raw,
            flags,
            waiting: false,
        })
    }
}

impl Drop for EventBase {
    fn drop(&mut self) {
        // SAFETY: the base was created by event_base_new_with_config and is freed once; events
        // still attached are the owners' business (they are freed before the base in practice).
        unsafe { ev::event_base_free(self.raw.as_ptr()) }
    }
}

/// A C callback for `new_raw_event`.
pub type RawCallback = unsafe extern "C" fn(c_int, c_short, *mut c_void);

/// What a handler wants done with itself after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Keep,
    /// Free the object (its Drop frees its event, closes its fd, etc.).
    Release,
    /// Take the object back from libevent: its box goes to `Handler::park`, which must
    /// drop the object's event (the object waits, without events, until it is registered
    /// again).
    Park,
}

/// An object that owns a libevent event and receives its callbacks.
pub trait Handler {
    /// Called once by `register` with the event created for the object.
    fn set_event(&mut self, ev: Event);
    /// Called on every event; `which` is the EV_* mask that fired.
    fn handle(&mut self, fd: RawFd, which: i16) -> Disposition;
    /// Receives the object when `handle` returned `Disposition::Park`. The default frees it.
    fn park(self: Box<Self>)
    where
        Self: Sized,
    {
    }
}

unsafe extern "C" fn trampoline<T: Handler>(fd: c_int, which: c_short, arg: *mut c_void) {
    let ptr = arg as *mut T;
    // SAFETY: `arg` is the pointer leaked by `register::<T>`; libevent calls back on the base's
    // own thread only, so no other reference to the object is live during this call.
    let disposition = unsafe { (*ptr).handle(fd, which) };
    match disposition {
        Disposition::Keep => {}
        Disposition::Release => {
            // SAFETY: the object asked to be released; this is the single place its box is
            // reclaimed and its Drop deletes the event, so libevent will not call back again.
            drop(unsafe { Box::from_raw(ptr) });
        }
        Disposition::Park => {
            // SAFETY: as for Release, the box is reclaimed once here; `park` drops the event
            // that holds the raw pointer before anything else can use it.
            T::park(unsafe { Box::from_raw(ptr) });
        }
    }
}

/// One libevent `struct event`. Freed (and thus removed from its base) on drop.
pub struct Event {
    raw: NonNull<ev::event>,
    flags: i16,
    /// Registered in this thread's wake table (see `wait_for_wake`).
    waiting: bool,
}

thread_local! {
    /// Events that `wake(token)` may activate, by token: entries are added by
    /// `Event::wait_for_wake` and taken out by `stop_waiting` or the event's drop, so every
    /// entry names a live event of this thread's base.
    static WAKE_TABLE: std::cell::RefCell<std::collections::HashMap<i32, NonNull<ev::event>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Activates the event waiting under `token` on this thread, if any, as if `which` had
/// happened (C's event_active on a connection whose IO came back): its handler runs in the
/// loop's next round of callbacks, with no system call. False if nothing waits under it.
pub fn wake(token: i32, which: i16) -> bool {
    WAKE_TABLE.with(|t| match t.borrow().get(&token) {
        Some(raw) => {
            // SAFETY: entries only name live events of this thread (see WAKE_TABLE); event_active
            // works on an event whether or not it is pending.
            unsafe { ev::event_active(raw.as_ptr(), which as c_int, 1) };
            true
        }
        None => false,
    })
}

impl Event {
    /// Adds the event to its base, with an optional timeout.
    pub fn add(&self, timeout: Option<Duration>) -> bool {
        let tv;
        let tvp = match timeout {
            Some(d) => {
                tv = ev::timeval {
                    tv_sec: d.as_secs() as _,
                    tv_usec: d.subsec_micros() as _,
                };
                &tv as *const ev::timeval
            }
            None => std::ptr::null(),
        };
        // SAFETY: the event is valid while self lives; tvp is null or points at `tv` which
        // outlives the call (libevent copies it).
        unsafe { ev::event_add(self.raw.as_ptr(), tvp) == 0 }
    }

    /// Removes the event from its base (it can be added again).
    pub fn del(&self) -> bool {
        // SAFETY: the event is valid while self lives.
        unsafe { ev::event_del(self.raw.as_ptr()) == 0 }
    }

    /// The flags the event was last assigned.
    pub fn flags(&self) -> i16 {
        self.flags
    }

    /// Lets `wake(token)` activate this event until `stop_waiting` (or the event goes).
    pub fn wait_for_wake(&mut self, token: i32) {
        WAKE_TABLE.with(|t| t.borrow_mut().insert(token, self.raw));
        self.waiting = true;
    }

    /// Ends `wait_for_wake`.
    pub fn stop_waiting(&mut self, token: i32) {
        if self.waiting {
            WAKE_TABLE.with(|t| {
                let mut t = t.borrow_mut();
                if t.get(&token) == Some(&self.raw) {
                    t.remove(&token);
                }
            });
            self.waiting = false;
        }
    }

    /// Changes the watched flags of a registered handler's event (C's update_event): the event is
    /// deleted, reassigned to the same fd, callback and argument, and added again.
    pub fn reassign(&mut self, new_flags: i16, timeout: Option<Duration>) -> bool {
        // SAFETY: event_get_* read fields of the valid event; event_assign is called on a
        // deleted (non-pending) event as libevent requires.
        unsafe {
            let raw = self.raw.as_ptr();
            let base = ev::event_get_base(raw);
            let fd = ev::event_get_fd(raw);
            let cb = ev::event_get_callback(raw);
            let arg = ev::event_get_callback_arg(raw);
            if ev::event_del(raw) != 0 {
                return false;
            }
            if ev::event_assign(raw, base, fd, new_flags as c_short, cb, arg) != 0 {
                return false;
            }
        }
        self.flags = new_flags;
        self.add(timeout)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if self.waiting {
            let raw = self.raw;
            WAKE_TABLE.with(|t| t.borrow_mut().retain(|_, r| *r != raw));
        }
        // SAFETY: event_free deletes the event if pending and releases it; called once.
        unsafe { ev::event_free(self.raw.as_ptr()) }
    }
}
