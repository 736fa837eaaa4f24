//! [`GlommioIo`]: a glommio TCP stream as hyper's `rt::Read` + `rt::Write`.
//!
//! glommio's `TcpStream` implements the futures-io traits (`AsyncRead`,
//! `AsyncWrite`, re-exported by futures-lite). Those read into an initialised
//! `&mut [u8]`, whereas hyper hands out a cursor over *uninitialised* memory
//! ([`ReadBufCursor`]). Rather than zeroing hyper's spare capacity on every read
//! (it can be tens of KiB) or casting uninitialised memory to `&mut [u8]`
//! (undefined behaviour), reads go through a small per-thread scratch buffer and
//! are copied with [`ReadBufCursor::put_slice`]: the cost is one `memcpy` of the
//! bytes actually received, and there is no `unsafe` on the read path. This is
//! sound because glommio's non-buffered `poll_read` uses the slice only during
//! the call (a `recv(MSG_DONTWAIT)`; when that would block it arms an io_uring
//! *poll* for readiness, not a `recv` into our buffer), so one buffer per shard
//! serves every connection of that shard.
//!
//! Writes implement `poll_write_vectored` with `sendmsg(MSG_DONTWAIT)` so hyper
//! uses its queueing write strategy: headers and body `Bytes` go out in one
//! `sendmsg` without hyper copying the body into its own buffer (without
//! vectored writes hyper "flattens", i.e. copies every body chunk). When the
//! socket is full the write falls back to glommio's `poll_write`, which arms the
//! io_uring readiness poll and the waker.
//!
//! A write that makes no progress for `write_stall` fails with `TimedOut`, so a
//! client that stops reading (or a dead peer) cannot hold a connection forever.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use hyper::rt::{Read, ReadBufCursor, Write};
use socket2::SockRef;

/// Size of the per-thread read scratch buffer: the most one `poll_read` takes.
const SCRATCH_SIZE: usize = 16 << 10;

thread_local! {
    /// One read buffer per shard thread, shared by all its connections.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_SIZE].into_boxed_slice());
}

/// A glommio TCP stream usable by hyper's HTTP/1 connection.
#[derive(Debug)]
pub struct GlommioIo {
    stream: TcpStream,
    write_stall: Option<Duration>,
    /// Armed when a write first goes pending; dropped on any write progress.
    stall_timer: Option<Timer>,
}

impl GlommioIo {
    /// Wrap `stream`; a write that makes no progress for `write_stall` fails.
    pub fn new(stream: TcpStream, write_stall: Option<Duration>) -> Self {
        Self {
            stream,
            write_stall,
            stall_timer: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// Bookkeeping around a write attempt: clear the stall timer on progress,
    /// arm or check it when the write is pending.
    fn track(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match res {
            Poll::Ready(r) => {
                self.stall_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let Some(limit) = self.write_stall else {
                    return Poll::Pending;
                };
                let timer = self.stall_timer.get_or_insert_with(|| Timer::new(limit));
                if Pin::new(timer).poll(cx).is_ready() {
                    self.stall_timer = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write stalled: peer is not reading",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl Read for GlommioIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &mut self.get_mut().stream;
        SCRATCH.with_borrow_mut(|scratch| {
            let want = buf.remaining().min(scratch.len());
            let n = ready!(Pin::new(stream).poll_read(cx, &mut scratch[..want]))?;
            buf.put_slice(&scratch[..n]);
            Poll::Ready(Ok(()))
        })
    }
}

impl Write for GlommioIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.track(cx, res)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // SAFETY: the descriptor belongs to `this.stream`, which outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(this.stream.as_raw_fd()) };
        let res = match SockRef::from(&fd)
            .send_vectored_with_flags(bufs, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Socket buffer full: let glommio arm the readiness poll. It
                // retries the send once itself, so progress is not lost.
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                Pin::new(&mut this.stream).poll_write(cx, first)
            }
            other => Poll::Ready(other),
        };
        this.track(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}
