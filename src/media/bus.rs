//! A single-shard broadcast of items (TS chunks, frames) with a GOP cache.
//!
//! The publisher side ([`Bus::publish`]) never waits: every reader has a bounded
//! queue, and a reader whose queue is full is emptied and skipped forward to the
//! next group start (a keyframe); the skip is counted. A new reader starts with a
//! copy of the current group (refcounted clones, no media copies), so it begins at
//! the latest keyframe at once.
//!
//! This module owns queues and wake-ups only. It knows nothing of protocols and
//! never crosses threads: it lives on one shard (`Rc`/`RefCell`), and the
//! cross-shard relay in [`crate::media::hub`] feeds a local bus on each shard.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

/// Why a reader's queue ended, or paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher went away.
    PublisherGone,
    /// The publisher went away and readers may wait this long for another;
    /// reported once, after which the queue goes on as before.
    Paused(std::time::Duration),
    /// The gateway is shutting down or the path was removed.
    Closed,
    /// The stream started over (another publisher, a new track list, items
    /// lost between shards): reported once, after which the queue goes on
    /// from the next group start.
    Restarted,
}

/// Bounds on what one group (GOP) may hold before the cache gives up on it.
const GOP_MAX_ITEMS: usize = 4096;
const GOP_MAX_BYTES: usize = 32 << 20;

/// Items carried by a bus report their size for the GOP cache bound.
pub trait BusItem: Clone {
    fn byte_len(&self) -> usize;
}

struct Slot<T> {
    queue: VecDeque<T>,
    waker: Option<Waker>,
    /// Waiting for the next group start after an overflow (or at join with no cache).
    need_key: bool,
    ended: Option<EndReason>,
    paused: Option<std::time::Duration>,
    /// Items still queued before [`EndReason::Restarted`] is to be told.
    restart_after: Option<usize>,
    /// Overflow events and items dropped by them.
    skips: u64,
    dropped: u64,
}

impl<T> Slot<T> {
    /// Whether the restart is due now (every item queued before it was taken).
    fn take_restart(&mut self) -> bool {
        if self.restart_after == Some(0) {
            self.restart_after = None;
            return true;
        }
        false
    }

    fn pop(&mut self) -> Option<T> {
        let item = self.queue.pop_front()?;
        if let Some(n) = self.restart_after.as_mut() {
            *n -= 1;
        }
        Some(item)
    }
}

struct Inner<T> {
    gop: Vec<T>,
    gop_bytes: usize,
    gop_valid: bool,
    readers: Vec<Weak<RefCell<Slot<T>>>>,
    capacity: usize,
}

/// The producer half. Cloning shares the same bus.
pub struct Bus<T: BusItem> {
    inner: Rc<RefCell<Inner<T>>>,
}

impl<T: BusItem> Clone for Bus<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// The consumer half; dropping it leaves the bus.
pub struct Reader<T: BusItem> {
    slot: Rc<RefCell<Slot<T>>>,
}

impl<T: BusItem> Bus<T> {
    /// `capacity`: items a reader may have queued before it is skipped.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Rc::new(RefCell::new(Inner {
                gop: Vec::new(),
                gop_bytes: 0,
                gop_valid: false,
                readers: Vec::new(),
                capacity: capacity.max(2),
            })),
        }
    }

    /// Publish one item; `key` marks the start of a group (a video keyframe).
    pub fn publish(&self, item: T, key: bool) {
        let mut inner = self.inner.borrow_mut();
        if key {
            inner.gop.clear();
            inner.gop_bytes = 0;
            inner.gop_valid = true;
        }
        if inner.gop_valid {
            inner.gop_bytes += item.byte_len();
            if inner.gop.len() >= GOP_MAX_ITEMS || inner.gop_bytes > GOP_MAX_BYTES {
                // A group this long is not worth replaying; new readers wait for the next key.
                inner.gop.clear();
                inner.gop_bytes = 0;
                inner.gop_valid = false;
            } else {
                inner.gop.push(item.clone());
            }
        }
        let capacity = inner.capacity;
        let mut dead = false;
        for weak in &inner.readers {
            let Some(slot) = weak.upgrade() else {
                dead = true;
                continue;
            };
            let mut s = slot.borrow_mut();
            if s.need_key && !key {
                s.dropped += 1;
                continue;
            }
            if s.queue.len() >= capacity {
                s.dropped += s.queue.len() as u64;
                s.queue.clear();
                if s.restart_after.is_some() {
                    s.restart_after = Some(0);
                }
                s.skips += 1;
                if !key {
                    s.need_key = true;
                    s.dropped += 1;
                    continue;
                }
            }
            s.need_key = false;
            s.queue.push_back(item.clone());
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
        if dead {
            inner.readers.retain(|w| w.strong_count() > 0);
        }
    }

    /// Join: the reader starts with the current group, or waits for the next one.
    pub fn subscribe(&self) -> Reader<T> {
        let mut inner = self.inner.borrow_mut();
        let queue: VecDeque<T> = if inner.gop_valid {
            inner.gop.iter().cloned().collect()
        } else {
            VecDeque::new()
        };
        let slot = Rc::new(RefCell::new(Slot {
            need_key: queue.is_empty(),
            queue,
            waker: None,
            ended: None,
            paused: None,
            restart_after: None,
            skips: 0,
            dropped: 0,
        }));
        inner.readers.push(Rc::downgrade(&slot));
        Reader { slot }
    }

    /// End every reader (they drain what they have queued first) and forget the group.
    pub fn end(&self, reason: EndReason) {
        let mut inner = self.inner.borrow_mut();
        inner.gop.clear();
        inner.gop_bytes = 0;
        inner.gop_valid = false;
        for weak in inner.readers.drain(..) {
            if let Some(slot) = weak.upgrade() {
                let mut s = slot.borrow_mut();
                s.ended = Some(reason);
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// The publisher went away but may come back: readers keep their place,
    /// are told once (see [`EndReason::Paused`]) and resume at the next group.
    pub fn pause(&self, grace: std::time::Duration) {
        let mut inner = self.inner.borrow_mut();
        inner.gop.clear();
        inner.gop_bytes = 0;
        inner.gop_valid = false;
        for weak in &inner.readers {
            if let Some(slot) = weak.upgrade() {
                let mut s = slot.borrow_mut();
                s.paused = Some(grace);
                s.need_key = true;
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// The stream starts over: readers drain what they have, are told once
    /// ([`EndReason::Restarted`]) and go on from the next group start.
    pub fn restart(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.gop.clear();
        inner.gop_bytes = 0;
        inner.gop_valid = false;
        for weak in &inner.readers {
            if let Some(slot) = weak.upgrade() {
                let mut s = slot.borrow_mut();
                s.restart_after = Some(s.queue.len());
                s.need_key = true;
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// The current group, for replaying to a new relay.
    pub fn gop(&self) -> Vec<T> {
        let inner = self.inner.borrow();
        if inner.gop_valid {
            inner.gop.clone()
        } else {
            Vec::new()
        }
    }

    #[cfg(test)]
    fn reader_count(&self) -> usize {
        self.inner
            .borrow()
            .readers
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl<T: BusItem> Reader<T> {
    /// Next item without waiting: `Ok(None)` when empty, `Err` once ended and drained.
    pub fn try_recv(&self) -> Result<Option<T>, EndReason> {
        let mut s = self.slot.borrow_mut();
        if s.take_restart() {
            return Err(EndReason::Restarted);
        }
        match s.pop() {
            Some(item) => Ok(Some(item)),
            None => {
                if let Some(reason) = s.ended {
                    return Err(reason);
                }
                if let Some(grace) = s.paused.take() {
                    return Err(EndReason::Paused(grace));
                }
                Ok(None)
            }
        }
    }

    /// Wait for the next item.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv { reader: self }
    }

    /// (skip events, items dropped) so far.
    pub fn skips(&self) -> (u64, u64) {
        let s = self.slot.borrow();
        (s.skips, s.dropped)
    }

    pub fn queued(&self) -> usize {
        self.slot.borrow().queue.len()
    }
}

/// Future of [`Reader::recv`]; cancel-safe (nothing is taken until it resolves).
pub struct Recv<'a, T: BusItem> {
    reader: &'a Reader<T>,
}

impl<T: BusItem> Future for Recv<'_, T> {
    type Output = Result<T, EndReason>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.reader.slot.borrow_mut();
        if s.take_restart() {
            return Poll::Ready(Err(EndReason::Restarted));
        }
        if let Some(item) = s.pop() {
            return Poll::Ready(Ok(item));
        }
        if let Some(reason) = s.ended {
            return Poll::Ready(Err(reason));
        }
        if let Some(grace) = s.paused.take() {
            return Poll::Ready(Err(EndReason::Paused(grace)));
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_is_told_once_after_the_queue_then_the_next_group_follows() {
        let bus = Bus::new(8);
        bus.publish(1, true);
        let r = bus.subscribe();
        bus.restart();
        bus.publish(2, false);
        bus.publish(3, true);
        assert_eq!(r.try_recv(), Ok(Some(1)));
        assert_eq!(r.try_recv(), Err(EndReason::Restarted));
        assert_eq!(drain(&r), vec![3]);
    }

    impl BusItem for u32 {
        fn byte_len(&self) -> usize {
            4
        }
    }

    fn drain(r: &Reader<u32>) -> Vec<u32> {
        let mut v = Vec::new();
        while let Ok(Some(x)) = r.try_recv() {
            v.push(x);
        }
        v
    }

    #[test]
    fn new_reader_starts_at_latest_group() {
        let bus = Bus::new(16);
        bus.publish(1, true);
        bus.publish(2, false);
        bus.publish(3, true);
        bus.publish(4, false);
        let r = bus.subscribe();
        assert_eq!(drain(&r), vec![3, 4]);
        bus.publish(5, false);
        assert_eq!(drain(&r), vec![5]);
    }

    #[test]
    fn reader_without_cache_waits_for_key() {
        let bus = Bus::new(16);
        let r = bus.subscribe();
        bus.publish(1, false);
        bus.publish(2, true);
        assert_eq!(drain(&r), vec![2]);
    }

    #[test]
    fn slow_reader_skips_to_next_key_and_is_counted() {
        let bus = Bus::new(4);
        bus.publish(0, true);
        let r = bus.subscribe();
        for i in 1..=5 {
            bus.publish(i, false);
        }
        // Queue held 0..=3, overflowed at 4 -> cleared, waiting for a key; 5 dropped too.
        assert_eq!(drain(&r), Vec::<u32>::new());
        bus.publish(6, true);
        bus.publish(7, false);
        assert_eq!(drain(&r), vec![6, 7]);
        assert_eq!(r.skips().0, 1);
        assert!(r.skips().1 >= 5);
    }

    #[test]
    fn end_is_seen_after_draining() {
        let bus = Bus::new(4);
        bus.publish(1, true);
        let r = bus.subscribe();
        bus.end(EndReason::PublisherGone);
        assert_eq!(r.try_recv(), Ok(Some(1)));
        assert_eq!(r.try_recv(), Err(EndReason::PublisherGone));
    }

    #[test]
    fn dropped_readers_are_forgotten() {
        let bus: Bus<u32> = Bus::new(4);
        let r = bus.subscribe();
        assert_eq!(bus.reader_count(), 1);
        drop(r);
        bus.publish(1, true);
        assert_eq!(bus.reader_count(), 0);
    }

    #[test]
    fn pause_is_reported_once_then_readers_resume_at_the_next_group() {
        let bus = Bus::new(8);
        bus.publish(1, true);
        let r = bus.subscribe();
        bus.pause(std::time::Duration::from_secs(3));
        // A reader joining during the pause gets no stale group.
        let late = bus.subscribe();
        assert_eq!(r.try_recv(), Ok(Some(1)));
        assert_eq!(
            r.try_recv(),
            Err(EndReason::Paused(std::time::Duration::from_secs(3)))
        );
        assert_eq!(r.try_recv(), Ok(None));
        bus.publish(2, false);
        bus.publish(3, true);
        assert_eq!(drain(&r), vec![3]);
        assert_eq!(drain(&late), vec![3]);
    }
}
