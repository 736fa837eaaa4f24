//! Per-session SRT figures srt-protocol 0.4 does not fill (RTT, receive loss),
//! computed from the packets the shell sees going in and out.
//!
//! Sans-IO: `now` is an argument. Receive loss is counted from sequence gaps in
//! arriving data; RTT on the receiving side from our full ACK to the peer's ACK2
//! (ACKACK) with the same ACK number, and on the sending side from the RTT the
//! peer reports in its full ACKs.

use std::time::{Duration, Instant};

use srt_protocol::packet::{Acknowledgement, ControlTypes, FullAckSeqNumber, Packet};

const SEQ_MOD: u32 = 1 << 31;
const ACK_RING: usize = 16;

#[derive(Debug, Default, Clone)]
pub struct SrtStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub data_in: u64,
    pub data_out: u64,
    /// Sequence numbers seen missing on arrival.
    pub lost_in: u64,
    /// Sequence numbers the peer reported lost (NAKs received).
    pub lost_out: u64,
    pub retrans_in: u64,
    pub retrans_out: u64,
    pub naks_in: u64,
    pub naks_out: u64,
    pub rtt: Option<Duration>,
    /// RTT variance: the peer's figure from its ACKs, or ours from ACK/ACK2 pairs.
    pub rtt_var: Option<Duration>,
    next_seq: Option<u32>,
    acks: [Option<(FullAckSeqNumber, Instant)>; ACK_RING],
    ack_pos: usize,
}

/// Number of sequence numbers in an SRT loss list.
pub fn loss_list_len(list: impl Iterator<Item = u32>) -> u64 {
    let mut n = 0u64;
    let mut range_start: Option<u32> = None;
    for v in list {
        match range_start.take() {
            Some(start) => n += u64::from(v.wrapping_sub(start) % SEQ_MOD) + 1,
            None if v & 0x8000_0000 != 0 => range_start = Some(v & 0x7fff_ffff),
            None => n += 1,
        }
    }
    if range_start.is_some() {
        n += 1;
    }
    n
}

impl SrtStats {
    pub fn on_recv(&mut self, now: Instant, packet: &Packet, wire_len: usize) {
        self.packets_in += 1;
        self.bytes_in += wire_len as u64;
        match packet {
            Packet::Data(d) => {
                self.data_in += 1;
                if d.retransmitted {
                    self.retrans_in += 1;
                }
                let seq = d.seq_number.as_raw();
                match self.next_seq {
                    None => self.next_seq = Some((seq + 1) % SEQ_MOD),
                    Some(expected) => {
                        let ahead = seq.wrapping_sub(expected) % SEQ_MOD;
                        if ahead < SEQ_MOD / 2 {
                            self.lost_in += u64::from(ahead);
                            self.next_seq = Some((seq + 1) % SEQ_MOD);
                        }
                    }
                }
            }
            Packet::Control(c) => match &c.control_type {
                ControlTypes::Ack2(n) => {
                    if let Some(slot) = self
                        .acks
                        .iter_mut()
                        .find(|s| matches!(s, Some((m, _)) if m == n))
                    {
                        let (_, sent) = slot.take().expect("matched Some");
                        let sample = now.saturating_duration_since(sent);
                        // RFC 6298-style smoothing of the deviation (1/4 gain).
                        if let Some(prev) = self.rtt {
                            let dev = sample.abs_diff(prev);
                            let var = self.rtt_var.unwrap_or(dev);
                            self.rtt_var = Some((var * 3 + dev) / 4);
                        }
                        self.rtt = Some(sample);
                    }
                }
                ControlTypes::Ack(Acknowledgement::Full(_, stats, _))
                | ControlTypes::Ack(Acknowledgement::Small(_, stats)) => {
                    let rtt = stats.rtt.mean_as_duration();
                    if !rtt.is_zero() {
                        self.rtt = Some(rtt);
                        self.rtt_var = Some(stats.rtt.variance_as_duration());
                    }
                }
                ControlTypes::Nak(list) => {
                    self.naks_in += 1;
                    self.lost_out += loss_list_len(list.iter_compressed());
                }
                _ => {}
            },
        }
    }

    pub fn on_send(&mut self, now: Instant, packet: &Packet, wire_len: usize) {
        self.packets_out += 1;
        self.bytes_out += wire_len as u64;
        match packet {
            Packet::Data(d) => {
                self.data_out += 1;
                if d.retransmitted {
                    self.retrans_out += 1;
                }
            }
            Packet::Control(c) => match &c.control_type {
                ControlTypes::Ack(Acknowledgement::Full(_, _, n)) => {
                    self.acks[self.ack_pos] = Some((*n, now));
                    self.ack_pos = (self.ack_pos + 1) % ACK_RING;
                }
                ControlTypes::Nak(_) => self.naks_out += 1,
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use srt_protocol::packet::{
        AckStatistics, ControlPacket, DataEncryption, DataPacket, MsgNumber, PacketLocation,
        SeqNumber, SocketId, TimeStamp,
    };
    use srt_protocol::protocol::time::Rtt;

    fn data(seq: u32, retransmitted: bool) -> Packet {
        Packet::Data(DataPacket {
            seq_number: SeqNumber::new_truncate(seq),
            message_loc: PacketLocation::ONLY,
            in_order_delivery: false,
            encryption: DataEncryption::None,
            retransmitted,
            message_number: MsgNumber::new_truncate(0),
            timestamp: TimeStamp::from_micros(0),
            dest_sockid: SocketId(1),
            payload: Bytes::from_static(&[0; 188]),
        })
    }

    #[test]
    fn gaps_count_as_loss_and_late_packets_do_not() {
        let t = Instant::now();
        let mut s = SrtStats::default();
        for seq in [10, 11, 14, 12, 13, 15] {
            s.on_recv(t, &data(seq, seq == 12 || seq == 13), 200);
        }
        assert_eq!(s.lost_in, 2);
        assert_eq!(s.retrans_in, 2);
        assert_eq!(s.data_in, 6);
    }

    #[test]
    fn loss_across_sequence_wrap() {
        let t = Instant::now();
        let mut s = SrtStats::default();
        s.on_recv(t, &data(SEQ_MOD - 2, false), 200);
        s.on_recv(t, &data(1, false), 200);
        assert_eq!(s.lost_in, 2);
    }

    #[test]
    fn loss_lists_count_ranges_and_singles() {
        assert_eq!(loss_list_len([5u32].into_iter()), 1);
        assert_eq!(loss_list_len([0x8000_0000 | 5, 9, 12].into_iter()), 6);
    }

    #[test]
    fn rtt_from_ack_and_ackack() {
        let t = Instant::now();
        let mut s = SrtStats::default();
        let n = FullAckSeqNumber::new(7).expect("nonzero");
        let ack = Packet::Control(ControlPacket {
            timestamp: TimeStamp::from_micros(0),
            dest_sockid: SocketId(1),
            control_type: ControlTypes::Ack(Acknowledgement::Full(
                SeqNumber::new_truncate(1),
                AckStatistics {
                    rtt: Rtt::default(),
                    buffer_available: 0,
                    packet_receive_rate: None,
                    estimated_link_capacity: None,
                    data_receive_rate: None,
                },
                n,
            )),
        });
        s.on_send(t, &ack, 60);
        let ack2 = Packet::Control(ControlPacket {
            timestamp: TimeStamp::from_micros(0),
            dest_sockid: SocketId(1),
            control_type: ControlTypes::Ack2(n),
        });
        s.on_recv(t + Duration::from_millis(30), &ack2, 60);
        assert_eq!(s.rtt, Some(Duration::from_millis(30)));
    }
}
