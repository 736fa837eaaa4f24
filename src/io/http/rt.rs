//! hyper's timer for glommio: [`GlommioTimer`]. (HTTP/1 serving needs no
//! executor; HTTP/2 would add one that spawns local tasks.)
//!
//! hyper's `rt::Timer` must be `Send + Sync` and its `rt::Sleep` futures too
//! (`Sleep: Send + Sync + Future`), but glommio timers hold `Rc`s into the
//! shard's reactor and are `!Send`. [`GlommioSleep`] bridges the two: it
//! records the thread that created it and refuses to be polled anywhere else.
//! In practice it never moves: hyper stores it inside the HTTP/1 connection
//! future, which is `!Send` itself (it owns the glommio socket).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use glommio::timer::Timer;
use hyper::rt::Sleep;

/// hyper timer backed by the current shard's glommio timers.
#[derive(Clone, Copy, Debug, Default)]
pub struct GlommioTimer;

impl hyper::rt::Timer for GlommioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(GlommioSleep::new(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(GlommioSleep::new(
            deadline.saturating_duration_since(Instant::now()),
        ))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<GlommioSleep>() {
            Some(ours) => ours.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// A glommio [`Timer`] that satisfies hyper's `Send + Sync` bound on sleeps.
///
/// Must be created on a glommio executor thread; panics if polled from
/// another thread, and leaks (rather than touch the `Rc`s) if dropped there.
#[derive(Debug)]
pub struct GlommioSleep {
    timer: ManuallyDrop<Timer>,
    owner: ThreadId,
}

// SAFETY: the only `!Send`/`!Sync` part is the glommio `Timer` (`Rc`s into the
// creating thread's reactor). It is reached only through `poll`, `reset` and
// `drop`, which all check that they run on the creating thread (`owner`):
// `poll`/`reset` panic otherwise and `drop` leaks. No `&self` method exposes the
// timer, so sharing `&GlommioSleep` across threads is harmless.
unsafe impl Send for GlommioSleep {}
// SAFETY: see above.
unsafe impl Sync for GlommioSleep {}

impl GlommioSleep {
    /// A sleep of `duration` on the current glommio executor.
    pub fn new(duration: Duration) -> Self {
        Self {
            timer: ManuallyDrop::new(Timer::new(duration)),
            owner: thread::current().id(),
        }
    }

    fn check_thread(&self) {
        assert_eq!(
            thread::current().id(),
            self.owner,
            "GlommioSleep used off its glommio executor thread"
        );
    }

    /// Move the deadline (hyper resets its header-read timer between requests).
    pub fn reset(&mut self, deadline: Instant) {
        self.check_thread();
        self.timer
            .reset(deadline.saturating_duration_since(Instant::now()));
    }
}

impl Sleep for GlommioSleep {}

impl Future for GlommioSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.check_thread();
        Pin::new(&mut *this.timer).poll(cx).map(|_| ())
    }
}

impl Drop for GlommioSleep {
    fn drop(&mut self) {
        if thread::current().id() == self.owner {
            // SAFETY: dropped exactly once, here, and never used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.timer) };
        }
    }
}
