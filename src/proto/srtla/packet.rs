//! SRTLA wire format (BELABOX-compatible): the packet types that share a UDP
//! port with the SRT packets they carry.
//!
//! Every SRTLA packet starts with a big-endian u16 type in 0x9000..=0x92FF;
//! anything else on an SRTLA port is an SRT packet (data: top bit clear;
//! control: 0x8000 | type with small types, or 0xFFFF). Parsing never panics.

use bytes::{BufMut, Bytes, BytesMut};

pub const KEEPALIVE: u16 = 0x9000;
pub const ACK: u16 = 0x9100;
pub const REG1: u16 = 0x9200;
pub const REG2: u16 = 0x9201;
pub const REG3: u16 = 0x9202;
pub const REG_ERR: u16 = 0x9210;
pub const REG_NGP: u16 = 0x9211;
pub const REG_NAK: u16 = 0x9212;

/// Length of a group id.
pub const ID_LEN: usize = 256;
/// The part of the id the sender chooses; the receiver fills the rest.
pub const ID_SENDER_PART: usize = 128;
/// Sequence numbers per SRTLA ACK.
pub const ACK_SEQS: usize = 10;
/// Size of an SRTLA ACK: type, 2 reserved bytes, ten u32 sequence numbers.
pub const ACK_LEN: usize = 4 + 4 * ACK_SEQS;

/// A group id as it travels in REG1/REG2.
pub type GroupId = [u8; ID_LEN];

/// One datagram received on an SRTLA port, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// REG1 with the sender's id (only the first 128 bytes are the sender's).
    Reg1(&'a GroupId),
    /// REG2 with a full group id.
    Reg2(&'a GroupId),
    /// KEEPALIVE, with whatever payload it carried (echoed back as is).
    Keepalive,
    /// An SRT packet, with its data sequence number when it is a data packet.
    Srt { data_seq: Option<u32> },
    /// An SRTLA type the receiver does not take (REG3, ACK, errors), or a
    /// registration packet of the wrong length.
    Invalid(&'static str),
}

/// Classify a datagram. SRT packets shorter than an SRT header are invalid.
pub fn classify(buf: &[u8]) -> Datagram<'_> {
    if buf.len() < 2 {
        return Datagram::Invalid("shorter than a packet type");
    }
    let ty = u16::from_be_bytes([buf[0], buf[1]]);
    let id: Option<&GroupId> = buf[2..].try_into().ok();
    match ty {
        REG1 => id.map_or(
            Datagram::Invalid("REG1 of the wrong length"),
            Datagram::Reg1,
        ),
        REG2 => id.map_or(
            Datagram::Invalid("REG2 of the wrong length"),
            Datagram::Reg2,
        ),
        KEEPALIVE => Datagram::Keepalive,
        0x9001..=0x91FF | 0x9203..=0x92FF => {
            Datagram::Invalid("SRTLA packet type not taken by a receiver")
        }
        _ if buf.len() < 16 => Datagram::Invalid("shorter than an SRT header"),
        _ if buf[0] & 0x80 == 0 => Datagram::Srt {
            data_seq: Some(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]])),
        },
        _ => Datagram::Srt { data_seq: None },
    }
}

/// SRT control types the SRTLA layer looks at.
const SRT_ACK: u8 = 0x02;
const SRT_NAK: u8 = 0x03;
const SRT_ACKACK: u8 = 0x06;

fn srt_control_type(buf: &[u8]) -> Option<u8> {
    (buf.len() >= 16 && buf[0] == 0x80).then(|| buf[1])
}

/// The type-specific field of an SRT control packet (the ACK number of ACKs
/// and ACKACKs).
fn srt_type_info(buf: &[u8]) -> u32 {
    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]])
}

/// Whether an SRT packet is an ACK (sent to every link of a group).
pub fn is_srt_ack(buf: &[u8]) -> bool {
    srt_control_type(buf) == Some(SRT_ACK)
}

/// Whether an SRT packet is a NAK (a retransmission request).
pub fn is_srt_nak(buf: &[u8]) -> bool {
    srt_control_type(buf) == Some(SRT_NAK)
}

/// The ACK number of a full SRT ACK (light ACKs carry 0 and are not timed).
pub fn srt_ack_number(buf: &[u8]) -> Option<u32> {
    (srt_control_type(buf) == Some(SRT_ACK))
        .then(|| srt_type_info(buf))
        .filter(|&n| n != 0)
}

/// The ACK number an SRT ACKACK answers.
pub fn srt_ackack_number(buf: &[u8]) -> Option<u32> {
    (srt_control_type(buf) == Some(SRT_ACKACK)).then(|| srt_type_info(buf))
}

/// A packet of only a type (REG3, REG_ERR, REG_NGP, REG_NAK).
pub fn bare(ty: u16) -> Bytes {
    Bytes::copy_from_slice(&ty.to_be_bytes())
}

/// REG1 carrying the sender's id (the receiver keeps its first half).
pub fn reg1(id: &GroupId) -> Bytes {
    registration(REG1, id)
}

/// REG2 carrying a full group id.
pub fn reg2(id: &GroupId) -> Bytes {
    registration(REG2, id)
}

fn registration(ty: u16, id: &GroupId) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + ID_LEN);
    b.put_u16(ty);
    b.put_slice(id);
    b.freeze()
}

/// An SRTLA ACK for ten data sequence numbers.
pub fn ack(seqs: &[u32; ACK_SEQS]) -> Bytes {
    let mut b = BytesMut::with_capacity(ACK_LEN);
    b.put_u16(ACK);
    b.put_u16(0);
    for s in seqs {
        b.put_u32(*s);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_registration_and_srt() {
        let mut reg1 = vec![0x92, 0x00];
        reg1.extend([7u8; ID_LEN]);
        assert!(matches!(classify(&reg1), Datagram::Reg1(id) if id[0] == 7));
        assert_eq!(
            classify(&reg1[..100]),
            Datagram::Invalid("REG1 of the wrong length")
        );
        assert_eq!(classify(&[0x90, 0x00]), Datagram::Keepalive);
        assert!(matches!(classify(&[0x92, 0x02]), Datagram::Invalid(_)));
        let mut data = vec![0u8; 16 + 188];
        data[..4].copy_from_slice(&1234u32.to_be_bytes());
        assert_eq!(
            classify(&data),
            Datagram::Srt {
                data_seq: Some(1234)
            }
        );
        let mut ctl = vec![0u8; 16];
        ctl[0] = 0x80;
        ctl[1] = 0x02;
        assert_eq!(classify(&ctl), Datagram::Srt { data_seq: None });
        assert!(is_srt_ack(&ctl));
        assert!(matches!(classify(&[0x12]), Datagram::Invalid(_)));
        assert!(matches!(
            classify(&[0x12, 0x34, 0x56]),
            Datagram::Invalid(_)
        ));
    }

    #[test]
    fn builds_replies_with_the_right_sizes() {
        assert_eq!(&bare(REG3)[..], &[0x92, 0x02]);
        let id = [3u8; ID_LEN];
        let r = reg2(&id);
        assert_eq!(r.len(), 258);
        assert_eq!(classify(&r), Datagram::Reg2(&id));
        let a = ack(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(a.len(), ACK_LEN);
        assert_eq!(&a[..4], &[0x91, 0x00, 0, 0]);
        assert_eq!(&a[40..], &10u32.to_be_bytes());
    }
}
