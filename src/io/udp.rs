//! UDP sends with generic segmentation offload (GSO, `UDP_SEGMENT`).
//!
//! A reader's share of one video frame is a run of equal-sized SRT data packets
//! to one peer. Handed to the kernel as one `sendmsg` with `UDP_SEGMENT`, the run
//! costs one trip through the socket, routing and queueing layers instead of one
//! per packet; the kernel cuts it into datagrams (the last may be shorter).
//! Where the kernel refuses GSO, callers fall back to one send per datagram.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Segments per GSO send; the kernel allows up to 64 and 64 KiB in all.
pub const MAX_SEGMENTS: usize = 40;

static GSO_REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether GSO sends are worth trying (the kernel has not refused one).
pub fn gso_enabled() -> bool {
    !GSO_REFUSED.load(Ordering::Relaxed)
}

/// Send `buf` as datagrams of `segment` bytes (the last may be shorter) to `to`,
/// without blocking. `Ok(false)` if the socket buffer is full or GSO is refused
/// (nothing was sent; send the datagrams one by one instead).
pub fn send_segments(fd: RawFd, buf: &[u8], segment: u16, to: SocketAddr) -> io::Result<bool> {
    let addr = socket2::SockAddr::from(to);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // Room for one cmsg carrying a u16, aligned as the kernel expects.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
    // SAFETY: an all-zero msghdr is valid; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = addr.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = addr.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points at `space` zeroed bytes, enough for one cmsg
    // with a u16 payload; CMSG_FIRSTHDR/CMSG_DATA stay within it.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), segment);
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT)
    };
    if sent >= 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ENOBUFS) => Ok(false),
        Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOPROTOOPT) => {
            if !GSO_REFUSED.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %err, "UDP GSO refused by the kernel; sending datagrams one by one");
            }
            Ok(false)
        }
        _ => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn one_send_arrives_as_separate_datagrams() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = Vec::new();
        for i in 0..5u8 {
            buf.extend(std::iter::repeat_n(i, if i == 4 { 300 } else { 1000 }));
        }
        let sent = send_segments(tx.as_raw_fd(), &buf, 1000, rx.local_addr().unwrap()).unwrap();
        if !sent {
            eprintln!("GSO unavailable here; the fallback path is used");
            return;
        }
        let mut got = Vec::new();
        let mut d = [0u8; 2000];
        for _ in 0..5 {
            let (n, from) = rx.recv_from(&mut d).unwrap();
            assert_eq!(from, tx.local_addr().unwrap());
            got.push((n, d[0]));
        }
        assert_eq!(
            got,
            vec![(1000, 0), (1000, 1), (1000, 2), (1000, 3), (300, 4)]
        );
    }
}
