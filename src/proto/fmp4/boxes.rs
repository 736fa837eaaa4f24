//! Minimal ISO BMFF box writing into a single [`BytesMut`].
//!
//! Boxes are written in place: [`begin`] emits a zero size placeholder plus the fourcc and
//! returns the box's start offset; [`end`] patches the 32-bit size once the children have
//! been written. Nothing is buffered per box, so a whole `moof`+`mdat` is produced in one
//! contiguous allocation.

use bytes::{BufMut, BytesMut};

/// Unity transformation matrix used by `mvhd` and `tkhd` (16.16 / 2.30 fixed point).
pub(crate) const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Starts a plain box; returns its start offset for [`end`].
pub(crate) fn begin(buf: &mut BytesMut, fourcc: &[u8; 4]) -> usize {
    let start = buf.len();
    buf.put_u32(0);
    buf.put_slice(fourcc);
    start
}

/// Starts a full box (version + 24-bit flags); returns its start offset for [`end`].
pub(crate) fn begin_full(buf: &mut BytesMut, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
    let start = begin(buf, fourcc);
    buf.put_u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
    start
}

/// Finishes the box started at `start` by patching its size field.
///
/// Callers guarantee boxes stay below 4 GiB (the fragmenter checks its `mdat` up front).
pub(crate) fn end(buf: &mut BytesMut, start: usize) {
    let size = u32::try_from(buf.len() - start).unwrap_or(u32::MAX);
    patch_u32(buf, start, size);
}

/// Overwrites the big-endian `u32` at `pos`.
pub(crate) fn patch_u32(buf: &mut BytesMut, pos: usize, value: u32) {
    buf[pos..pos + 4].copy_from_slice(&value.to_be_bytes());
}

/// Writes `n` zero bytes.
pub(crate) fn zeros(buf: &mut BytesMut, n: usize) {
    buf.put_bytes(0, n);
}

/// Writes the unity matrix.
pub(crate) fn matrix(buf: &mut BytesMut) {
    for v in UNITY_MATRIX {
        buf.put_u32(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sizes_are_patched() {
        let mut buf = BytesMut::new();
        let outer = begin(&mut buf, b"moov");
        let inner = begin_full(&mut buf, b"mvhd", 1, 0x123456);
        buf.put_u8(7);
        end(&mut buf, inner);
        end(&mut buf, outer);
        assert_eq!(
            &buf[..],
            &[
                0, 0, 0, 21, b'm', b'o', b'o', b'v', 0, 0, 0, 13, b'm', b'v', b'h', b'd', 1, 0x12,
                0x34, 0x56, 7
            ]
        );
    }
}
