//! A one-shot stop signal for tasks of one shard: a listener whose address a
//! reload removed races its accept or receive loop against [`Stopper::stopped`].

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};

#[derive(Clone, Default)]
pub struct Stopper(Rc<Inner>);

#[derive(Default)]
struct Inner {
    stopped: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Stopper {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stop(&self) {
        self.0.stopped.set(true);
        for w in self.0.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.get()
    }

    /// Resolves once [`Stopper::stop`] has been called.
    pub fn stopped(&self) -> impl Future<Output = ()> + 'static {
        let inner = self.0.clone();
        poll_fn(move |cx| {
            if inner.stopped.get() {
                return Poll::Ready(());
            }
            let mut w = inner.wakers.borrow_mut();
            if !w.iter().any(|o| o.will_wake(cx.waker())) {
                w.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    /// Run `task` until it ends or the stopper fires.
    pub async fn run<F: Future<Output = ()>>(&self, task: F) {
        futures_lite::future::or(task, self.stopped()).await;
    }
}
