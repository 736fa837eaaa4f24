//! Handcrafted SRT handshake packets, built with srt-protocol's own packet
//! types (so they are well-formed unless a test makes them otherwise), for the
//! hostile-input tests.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use srt_protocol::options::{KeySize, PacketCount, PacketSize, SrtVersion};
use srt_protocol::packet::{
    Auth, CipherType, ControlPacket, ControlTypes, HandshakeControlInfo, HandshakeVsInfo, HsV5Info,
    KeyFlags, KeyingMaterialMessage, Packet, PacketType, SeqNumber, ShakeType, SocketId,
    SocketType, SrtControlPacket, SrtHandshake, SrtShakeFlags, TimeStamp,
};

fn handshake(dest: u32, info: HandshakeControlInfo) -> Vec<u8> {
    let packet = Packet::Control(ControlPacket {
        timestamp: TimeStamp::from_micros(0),
        dest_sockid: SocketId(dest),
        control_type: ControlTypes::Handshake(info),
    });
    let mut buf = Vec::new();
    packet.serialize(&mut buf);
    buf
}

/// A caller's first packet, as libsrt sends it: HSv4 form, UDT_DGRAM, no cookie.
pub fn induction(socket_id: u32, init_seq: u32) -> Vec<u8> {
    handshake(
        0,
        HandshakeControlInfo {
            init_seq_num: SeqNumber::new_truncate(init_seq),
            max_packet_size: PacketSize(1500),
            max_flow_size: PacketCount(8192),
            shake_type: ShakeType::Induction,
            socket_id: SocketId(socket_id),
            syn_cookie: 0,
            peer_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            info: HandshakeVsInfo::V4(SocketType::Datagram),
        },
    )
}

/// Keying material with random salt and (meaningless) wrapped key bytes for
/// one key of `key_len` bytes.
pub fn keying_material(key_len: usize) -> KeyingMaterialMessage {
    KeyingMaterialMessage {
        pt: PacketType::KeyingMaterial,
        key_flags: KeyFlags::EVEN,
        keki: 0,
        cipher: CipherType::Ctr,
        auth: Auth::None,
        salt: (0..16).map(|_| rand::random::<u8>()).collect(),
        wrapped_keys: (0..key_len + 8).map(|_| rand::random::<u8>()).collect(),
    }
}

/// An HSv5 conclusion with the listener's cookie, an HSREQ extension, the
/// stream id, `key_size` and the given key-material extension.
pub fn conclusion(
    socket_id: u32,
    init_seq: u32,
    cookie: i32,
    streamid: &str,
    key_size: KeySize,
    ext_km: Option<SrtControlPacket>,
) -> Vec<u8> {
    let mut flags = SrtShakeFlags::TSBPDSND
        | SrtShakeFlags::TSBPDRCV
        | SrtShakeFlags::TLPKTDROP
        | SrtShakeFlags::NAKREPORT
        | SrtShakeFlags::REXMITFLG;
    if ext_km.is_some() {
        flags |= SrtShakeFlags::HAICRYPT;
    }
    handshake(
        0,
        HandshakeControlInfo {
            init_seq_num: SeqNumber::new_truncate(init_seq),
            max_packet_size: PacketSize(1500),
            max_flow_size: PacketCount(8192),
            shake_type: ShakeType::Conclusion,
            socket_id: SocketId(socket_id),
            syn_cookie: cookie,
            peer_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            info: HandshakeVsInfo::V5(HsV5Info {
                key_size,
                ext_hs: Some(SrtControlPacket::HandshakeRequest(SrtHandshake {
                    version: SrtVersion::new(1, 5, 1),
                    flags,
                    send_latency: Duration::from_millis(120),
                    recv_latency: Duration::from_millis(120),
                })),
                ext_km,
                ext_group: None,
                sid: Some(streamid.to_string()),
            }),
        },
    )
}

/// Parses a datagram as a handshake, if it is one.
pub fn parse_handshake(buf: &[u8]) -> Option<HandshakeControlInfo> {
    let mut b = buf;
    match Packet::parse(&mut b, false) {
        Ok(Packet::Control(ControlPacket {
            control_type: ControlTypes::Handshake(hs),
            ..
        })) => Some(hs),
        _ => None,
    }
}

/// What the listener answered to a conclusion.
#[derive(Debug)]
pub enum ConclusionReply {
    /// A conclusion back: the connection was accepted.
    Accepted,
    /// A rejection handshake, with the reason code.
    Rejected(String),
    /// Nothing (within the wait).
    Silent,
}

/// A caller socket on an ephemeral loopback port, talking to one listener.
pub struct Caller {
    pub sock: UdpSocket,
    pub socket_id: u32,
    pub init_seq: u32,
}

impl Caller {
    pub fn new(listener: SocketAddr) -> Caller {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind caller socket");
        sock.connect(listener).expect("connect caller socket");
        Caller {
            sock,
            socket_id: rand::random::<u32>() & 0x3fff_ffff | 1,
            init_seq: rand::random::<u32>() & 0x7fff_ffff,
        }
    }

    /// Receives handshakes until one arrives or `timeout` passes.
    pub fn recv_handshake(&self, timeout: Duration) -> Option<HandshakeControlInfo> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.sock.set_read_timeout(Some(left)).ok()?;
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some(hs) = parse_handshake(&buf[..n]) {
                        return Some(hs);
                    }
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                // ICMP port unreachable from an earlier send, etc.: keep waiting.
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// Sends an induction and returns the listener's cookie.
    pub fn induce(&self, timeout: Duration) -> Option<i32> {
        self.sock
            .send(&induction(self.socket_id, self.init_seq))
            .ok()?;
        let hs = self.recv_handshake(timeout)?;
        match (hs.shake_type, &hs.info) {
            (ShakeType::Induction, HandshakeVsInfo::V5(_)) => Some(hs.syn_cookie),
            _ => None,
        }
    }

    /// Sends a conclusion and classifies the answer.
    pub fn conclude(
        &self,
        cookie: i32,
        streamid: &str,
        key_size: KeySize,
        ext_km: Option<SrtControlPacket>,
        timeout: Duration,
    ) -> ConclusionReply {
        let pkt = conclusion(
            self.socket_id,
            self.init_seq,
            cookie,
            streamid,
            key_size,
            ext_km,
        );
        if self.sock.send(&pkt).is_err() {
            return ConclusionReply::Silent;
        }
        match self.recv_handshake(timeout) {
            Some(hs) => match hs.shake_type {
                ShakeType::Conclusion => ConclusionReply::Accepted,
                ShakeType::Rejection(r) => ConclusionReply::Rejected(format!("{r:?}")),
                other => ConclusionReply::Rejected(format!("unexpected {other:?}")),
            },
            None => ConclusionReply::Silent,
        }
    }
}
