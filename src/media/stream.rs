//! One path as one shard sees it: the stream's TS chunks (for SRT readers) and
//! frames (for every other output) on two local [`Bus`]es with GOP caches, its
//! [`Description`], and which publisher generation feeds it.
//!
//! A [`Stream`] is fed by the local publisher or by the relay from the shard
//! that owns the publisher ([`crate::io::hub`]); outputs and readers on this
//! shard subscribe to it. It never crosses threads and does no I/O.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use super::bus::{Bus, EndReason};
use super::describe::Description;
use super::registry::Wants;
use super::{Frame, TsChunk};

pub struct Stream {
    pub path: Arc<str>,
    pub ts: Bus<TsChunk>,
    pub frames: Bus<Frame>,
    /// Generation of the publisher feeding this shard now; 0 = none.
    gen: Cell<u64>,
    /// The last generation that fed this shard (kept after it leaves).
    last_gen: Cell<u64>,
    description: RefCell<Option<Arc<Description>>>,
    ts_readers: Cell<usize>,
    frame_readers: Cell<usize>,
    local_publisher: Cell<bool>,
}

impl Stream {
    /// `capacity`: items a reader may have queued before it skips.
    pub fn new(path: Arc<str>, capacity: usize) -> Self {
        Self {
            path,
            ts: Bus::new(capacity),
            frames: Bus::new(capacity),
            gen: Cell::new(0),
            last_gen: Cell::new(0),
            description: RefCell::new(None),
            ts_readers: Cell::new(0),
            frame_readers: Cell::new(0),
            local_publisher: Cell::new(false),
        }
    }

    pub fn gen(&self) -> u64 {
        self.gen.get()
    }

    pub fn has_publisher(&self) -> bool {
        self.gen.get() != 0
    }

    pub fn has_local_publisher(&self) -> bool {
        self.local_publisher.get()
    }

    pub fn set_local_publisher(&self, on: bool) {
        self.local_publisher.set(on);
    }

    /// The current publisher's description, once its tracks are known.
    pub fn description(&self) -> Option<Arc<Description>> {
        self.description.borrow().clone()
    }

    pub fn set_description(&self, d: Arc<Description>) {
        *self.description.borrow_mut() = Some(d);
    }

    /// What this shard's readers and outputs want of the stream.
    pub fn wants(&self) -> Wants {
        Wants {
            ts: self.ts_readers.get() > 0,
            frames: self.frame_readers.get() > 0,
        }
    }

    /// A reader (`ts`) or a frame output joins (`delta` 1) or leaves (-1).
    pub fn count(&self, ts: bool, delta: isize) {
        let c = if ts {
            &self.ts_readers
        } else {
            &self.frame_readers
        };
        c.set(c.get().saturating_add_signed(delta));
    }

    pub fn is_unused(&self) -> bool {
        self.wants() == Wants::default() && !self.local_publisher.get()
    }

    /// Media of generation `gen` arrives: false if it is stale. A newer
    /// generation than the last one restarts readers, who go on from its
    /// first keyframe.
    pub fn begin(&self, gen: u64) -> bool {
        let current = self.gen.get();
        if gen == current {
            return true;
        }
        if gen < current || gen < self.last_gen.get() {
            return false;
        }
        if self.last_gen.get() != 0 {
            self.restart();
        }
        self.gen.set(gen);
        self.last_gen.set(gen);
        true
    }

    /// Readers and outputs go on from the next keyframe, told once.
    pub fn restart(&self) {
        self.ts.restart();
        self.frames.restart();
    }

    /// The publisher of generation `gen` left. TS readers end, or wait `grace`
    /// for another; frame outputs always stay (they linger on their own terms).
    pub fn publisher_gone(&self, gen: u64, grace: Duration) {
        let current = self.gen.get();
        // current 0: the publisher left before its first media got here.
        if current != gen && current != 0 {
            return;
        }
        self.gen.set(0);
        self.last_gen.set(self.last_gen.get().max(gen));
        if grace.is_zero() {
            self.ts.end(EndReason::PublisherGone);
        } else {
            self.ts.pause(grace);
        }
        self.frames.pause(grace);
    }

    /// End everything (shutdown).
    pub fn close(&self) {
        self.ts.end(EndReason::Closed);
        self.frames.end(EndReason::Closed);
    }
}
