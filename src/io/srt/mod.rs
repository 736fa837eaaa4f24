//! SRT on glommio: one listener task per (shard, address) that demultiplexes
//! datagrams by peer address, runs handshakes, and hands each accepted peer to a
//! session task of its own ([`session`]).
//!
//! srt-protocol is used sans-IO (`Listen` per pending handshake, one
//! `DuplexConnection` per session). Every call into it is made through
//! [`contain`], so that a panic inside it ends that handshake or session only.

pub mod accept;
pub mod access;
pub mod end;
pub mod listener;
pub mod session;
pub mod stats;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Waker;

use srt_protocol::packet::Packet;

/// Run a call into srt-protocol, turning a panic into an error message.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown panic payload".to_owned()
        }
    })
}

/// Why a session was told to stop from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Shutdown,
    TakenOver,
    /// The SRTLA group carrying the session closed (why).
    Srtla(&'static str),
    /// An operator asked for it through the API.
    Kicked,
    /// A configuration reload: the path's rules no longer let the session in,
    /// or its listener went (why).
    Reload(&'static str),
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Shutdown => "gateway shutting down",
            StopReason::TakenOver => "taken over by a new publisher",
            StopReason::Srtla(why) | StopReason::Reload(why) => why,
            StopReason::Kicked => "kicked through the API",
        }
    }
}

/// Packets waiting for a session task, pushed by the listener.
pub struct Mailbox {
    queue: RefCell<VecDeque<(Packet, usize)>>,
    waker: RefCell<Option<Waker>>,
    stop: Cell<Option<StopReason>>,
    done: Cell<bool>,
}

/// Packets a session may have waiting before new ones are dropped.
const MAILBOX_CAP: usize = 8192;

impl Mailbox {
    pub fn new() -> Self {
        Self {
            queue: RefCell::new(VecDeque::with_capacity(64)),
            waker: RefCell::new(None),
            stop: Cell::new(None),
            done: Cell::new(false),
        }
    }

    /// Queue a packet (with its wire length); false if the session is overloaded.
    pub fn push(&self, packet: Packet, len: usize) -> bool {
        let mut q = self.queue.borrow_mut();
        if q.len() >= MAILBOX_CAP {
            return false;
        }
        q.push_back((packet, len));
        if q.len() == 1 {
            self.wake();
        }
        true
    }

    pub fn stop(&self, reason: StopReason) {
        if self.stop.get().is_none() {
            self.stop.set(Some(reason));
        }
        self.wake();
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop.get()
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub fn register(&self, waker: &Waker) {
        let mut w = self.waker.borrow_mut();
        match &*w {
            Some(old) if old.will_wake(waker) => {}
            _ => *w = Some(waker.clone()),
        }
    }

    pub fn has_packets(&self) -> bool {
        !self.queue.borrow().is_empty()
    }

    pub fn drain_into(&self, out: &mut Vec<(Packet, usize)>) {
        out.extend(self.queue.borrow_mut().drain(..));
    }

    /// Set by the session when it ends; the listener then forgets the peer.
    pub fn set_done(&self) {
        self.done.set(true);
        self.queue.borrow_mut().clear();
    }

    pub fn is_done(&self) -> bool {
        self.done.get()
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}
