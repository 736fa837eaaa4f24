//! [`SharedBody`]: a zero-copy response body over shared [`Bytes`] chunks.
//!
//! An HLS segment or playlist is held once per shard (e.g. the TS packets of a
//! segment as a list of `Bytes`); each response only bumps reference counts.
//! The chunk list is an `Rc<[Bytes]>`, so the body is `!Send`, which hyper's
//! HTTP/1 server accepts.

use std::convert::Infallible;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// Response body yielding shared chunks; its exact length becomes `Content-Length`.
#[derive(Clone, Debug)]
pub struct SharedBody {
    chunks: Rc<[Bytes]>,
    next: usize,
    remaining: u64,
}

impl SharedBody {
    /// A body of the given chunks, sent in order.
    pub fn new(chunks: Rc<[Bytes]>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks,
            next: 0,
            remaining,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self::new(Rc::from([]))
    }

    /// Bytes not yet sent (all of them for a fresh body).
    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// A body of one chunk.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self::new(Rc::from([bytes.into()]))
    }
}

impl Body for SharedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while let Some(chunk) = this.chunks.get(this.next) {
            this.next += 1;
            if !chunk.is_empty() {
                this.remaining -= chunk.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    #[test]
    fn yields_chunks_and_exact_size() {
        let a = Bytes::from_static(b"abc");
        let mut body = SharedBody::new(Rc::from([
            a.clone(),
            Bytes::new(),
            Bytes::from_static(b"de"),
        ]));
        assert_eq!(body.size_hint().exact(), Some(5));
        let mut cx = Context::from_waker(Waker::noop());
        let mut got = Vec::new();
        while let Poll::Ready(Some(Ok(f))) = Pin::new(&mut body).poll_frame(&mut cx) {
            let data = f.into_data().unwrap();
            got.extend_from_slice(&data);
            if data.as_ptr() == a.as_ptr() {
                got.push(b'!'); // same memory: not copied
            }
        }
        assert_eq!(got, b"abc!de");
        assert!(body.is_end_stream());
        assert!(SharedBody::empty().is_end_stream());
    }
}
