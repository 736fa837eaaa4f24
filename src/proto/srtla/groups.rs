//! SRTLA receiver state: groups of links, registration, keep-alives, SRTLA
//! ACKs, the routing of SRT packets back to the sender, timeouts, and the
//! per-link figures (packets, bytes, NAKs routed, RTT).
//!
//! Sans-IO: datagrams and time go in, [`Event`]s come out; randomness for the
//! receiver's half of a group id is passed in. It knows nothing of SRT beyond
//! telling data, ACKs, ACKACKs and NAKs apart, and nothing of sockets or shards:
//! each link carries an opaque [`Via`] tag the shell uses to know which socket
//! (and which shard) the link is heard on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;

use super::packet::{self, Datagram, GroupId, ACK_SEQS, ID_LEN, ID_SENDER_PART};

/// Limits and timeouts, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_groups: usize,
    pub max_links_per_group: usize,
    pub link_timeout: Duration,
    pub group_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_groups: 200,
            max_links_per_group: 16,
            link_timeout: Duration::from_secs(10),
            group_timeout: Duration::from_secs(10),
        }
    }
}

/// A group's handle inside srtgate (the wire id is 256 bytes).
pub type Handle = u64;

/// The shell's tag for where a link is heard (socket, shard); kept per link
/// and handed back with everything sent to it.
pub type Via = u32;

/// What the receiver asks its shell to do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send `data` to `to`, through `via`.
    Send {
        to: SocketAddr,
        via: Via,
        data: Bytes,
    },
    /// An SRT packet for group `group`'s SRT session.
    Srt { group: Handle, data: Bytes },
    /// A group was registered (REG1 from `from`).
    GroupOpened {
        group: Handle,
        short: u32,
        from: SocketAddr,
    },
    /// A group ended; its SRT session must end too.
    GroupClosed { group: Handle, reason: &'static str },
    /// A link joined a group (REG2 answered with REG3).
    LinkUp {
        group: Handle,
        addr: SocketAddr,
        via: Via,
        links: usize,
    },
    /// A link left its group (timed out, moved to another group, group
    /// closed), with its last figures.
    LinkDown {
        group: Handle,
        link: LinkStats,
        reason: &'static str,
    },
    /// A datagram refused or dropped, for counters and rate-limited logs;
    /// `short` is the group's short id when one is known.
    Refused {
        from: SocketAddr,
        reason: &'static str,
        short: Option<u32>,
    },
}

/// One link's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    pub addr: SocketAddr,
    pub via: Via,
    /// SRT packets received on the link (not SRTLA keep-alives or registrations).
    pub packets: u64,
    pub bytes: u64,
    pub last_seen: Instant,
    /// SRT NAKs (retransmission requests) sent to the sender over this link.
    pub naks: u64,
    /// Round-trip time measured from an SRT ACK to its ACKACK on this link.
    pub rtt: Option<Duration>,
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    pub short: u32,
    pub created: Instant,
    /// Every datagram of the group's links, SRTLA packets included.
    pub packets_received: u64,
    pub bytes_received: u64,
    /// SRT packets handed to the group's SRT session.
    pub packets_forwarded: u64,
    pub bytes_forwarded: u64,
    pub links: Vec<LinkStats>,
}

#[derive(Debug)]
struct Link {
    stats: LinkStats,
    acks: [u32; ACK_SEQS],
    pending: usize,
}

/// SRT ACKs remembered per group to time their ACKACKs.
const ACK_RING: usize = 16;

#[derive(Debug)]
struct Group {
    id: GroupId,
    links: Vec<Link>,
    /// The link heard from most recently: SRT packets other than ACKs go there.
    last_heard: Option<SocketAddr>,
    last_activity: Instant,
    created: Instant,
    packets_received: u64,
    bytes_received: u64,
    packets_forwarded: u64,
    bytes_forwarded: u64,
    acks: [(u32, Option<Instant>); ACK_RING],
    ack_pos: usize,
}

/// The short id of a group in logs: its first four bytes (the sender's half,
/// so the sender's operator can match it with the sender's logs).
pub fn short_id(id: &GroupId) -> u32 {
    u32::from_be_bytes([id[0], id[1], id[2], id[3]])
}

/// The home tag a receiver wrote into a group id (its last byte).
pub fn home_of(id: &GroupId) -> u8 {
    id[ID_LEN - 1]
}

/// The SRTLA receiver: every group homed here and their links.
#[derive(Debug, Default)]
pub struct Receiver {
    limits: Limits,
    /// Written into the last byte of every group id made here, so any shard
    /// can tell which one a REG2 belongs to ([`home_of`]).
    home: u8,
    groups: HashMap<Handle, Group>,
    by_id: HashMap<GroupId, Handle>,
    by_addr: HashMap<SocketAddr, Handle>,
    next: Handle,
}

impl Receiver {
    pub fn new(limits: Limits, home: u8) -> Self {
        Self {
            limits,
            home,
            ..Self::default()
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// New limits apply to registrations and timeouts from now on; groups and
    /// links already over a lowered limit stay.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn groups(&self) -> impl Iterator<Item = Handle> + '_ {
        self.groups.keys().copied()
    }

    /// Whether `addr` is a link of a group homed here.
    pub fn has_link(&self, addr: &SocketAddr) -> bool {
        self.by_addr.contains_key(addr)
    }

    /// How many links a group has.
    pub fn link_count(&self, group: Handle) -> usize {
        self.groups.get(&group).map_or(0, |g| g.links.len())
    }

    /// The links of a group.
    pub fn links(&self, group: Handle) -> Vec<LinkStats> {
        self.groups
            .get(&group)
            .map(|g| g.links.iter().map(|l| l.stats.clone()).collect())
            .unwrap_or_default()
    }

    /// A group's figures, links included.
    pub fn stats(&self, group: Handle) -> Option<GroupStats> {
        let g = self.groups.get(&group)?;
        Some(GroupStats {
            short: short_id(&g.id),
            created: g.created,
            packets_received: g.packets_received,
            bytes_received: g.bytes_received,
            packets_forwarded: g.packets_forwarded,
            bytes_forwarded: g.bytes_forwarded,
            links: g.links.iter().map(|l| l.stats.clone()).collect(),
        })
    }

    /// Handle one datagram from `from`, heard through `via`.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        via: Via,
        data: Bytes,
        rng: &mut impl RngCore,
        out: &mut Vec<Event>,
    ) {
        if let Some(g) = self.by_addr.get(&from).and_then(|h| self.groups.get_mut(h)) {
            g.packets_received += 1;
            g.bytes_received += data.len() as u64;
        }
        match packet::classify(&data) {
            Datagram::Reg1(sender_id) => self.on_reg1(now, from, via, sender_id, rng, out),
            Datagram::Reg2(id) => self.on_reg2(now, from, via, id, out),
            Datagram::Keepalive => match self.touch(now, from) {
                Some(_) => out.push(Event::Send {
                    to: from,
                    via,
                    data,
                }),
                None => out.push(Event::Refused {
                    from,
                    reason: "keep-alive from an address that is no link",
                    short: None,
                }),
            },
            Datagram::Srt { data_seq } => match self.touch(now, from) {
                Some(group) => {
                    if let Some(ack) = self.on_srt(now, group, from, &data, data_seq) {
                        out.push(Event::Send {
                            to: from,
                            via,
                            data: ack,
                        });
                    }
                    out.push(Event::Srt { group, data });
                }
                None => out.push(Event::Refused {
                    from,
                    reason: "SRT packet from an address that is no link",
                    short: None,
                }),
            },
            Datagram::Invalid(reason) => {
                if reason.starts_with("REG") {
                    out.push(Event::Send {
                        to: from,
                        via,
                        data: packet::bare(packet::REG_ERR),
                    });
                }
                out.push(Event::Refused {
                    from,
                    reason,
                    short: None,
                });
            }
        }
    }

    fn on_reg1(
        &mut self,
        now: Instant,
        from: SocketAddr,
        via: Via,
        sender_id: &GroupId,
        rng: &mut impl RngCore,
        out: &mut Vec<Event>,
    ) {
        let short = Some(short_id(sender_id));
        if self.by_addr.contains_key(&from) {
            let reason = "REG1 from an address already in a group";
            refuse(out, from, via, packet::REG_ERR, reason, short);
            return;
        }
        if self.groups.len() >= self.limits.max_groups {
            let reason = "group limit reached (srtla.max_groups)";
            refuse(out, from, via, packet::REG_NAK, reason, short);
            return;
        }
        let mut id: GroupId = [0; ID_LEN];
        id[..ID_SENDER_PART].copy_from_slice(&sender_id[..ID_SENDER_PART]);
        rng.fill_bytes(&mut id[ID_SENDER_PART..]);
        id[ID_LEN - 1] = self.home;
        if self.by_id.contains_key(&id) {
            // 120 random bits collided: refuse rather than join two senders.
            refuse(out, from, via, packet::REG_ERR, "group id collision", short);
            return;
        }
        self.next += 1;
        let handle = self.next;
        self.groups.insert(
            handle,
            Group {
                id,
                links: Vec::new(),
                last_heard: None,
                last_activity: now,
                created: now,
                packets_received: 1,
                bytes_received: (2 + ID_LEN) as u64,
                packets_forwarded: 0,
                bytes_forwarded: 0,
                acks: [(0, None); ACK_RING],
                ack_pos: 0,
            },
        );
        self.by_id.insert(id, handle);
        out.push(Event::GroupOpened {
            group: handle,
            short: short_id(&id),
            from,
        });
        out.push(Event::Send {
            to: from,
            via,
            data: packet::reg2(&id),
        });
    }

    fn on_reg2(
        &mut self,
        now: Instant,
        from: SocketAddr,
        via: Via,
        id: &GroupId,
        out: &mut Vec<Event>,
    ) {
        let Some(&handle) = self.by_id.get(id) else {
            let reason = "REG2 for an unknown group";
            refuse(out, from, via, packet::REG_NGP, reason, Some(short_id(id)));
            return;
        };
        // A link that moved from another group is taken out there.
        if let Some(&other) = self.by_addr.get(&from) {
            if other != handle {
                self.remove_link(other, from, "moved to another group", out);
            }
        }
        let max_links = self.limits.max_links_per_group;
        let Some(group) = self.groups.get_mut(&handle) else {
            return;
        };
        group.last_activity = now;
        match group.links.iter_mut().find(|l| l.stats.addr == from) {
            Some(link) => {
                // A repeated REG2 (the sender missed our REG3): answer again.
                link.stats.last_seen = now;
                link.stats.via = via;
            }
            None => {
                if group.links.len() >= max_links {
                    let reason = "link limit reached (srtla.max_links_per_group)";
                    refuse(out, from, via, packet::REG_NAK, reason, Some(short_id(id)));
                    return;
                }
                group.links.push(Link {
                    stats: LinkStats {
                        addr: from,
                        via,
                        packets: 0,
                        bytes: 0,
                        last_seen: now,
                        naks: 0,
                        rtt: None,
                    },
                    acks: [0; ACK_SEQS],
                    pending: 0,
                });
                group.packets_received += 1;
                group.bytes_received += (2 + ID_LEN) as u64;
                self.by_addr.insert(from, handle);
                out.push(Event::LinkUp {
                    group: handle,
                    addr: from,
                    via,
                    links: group.links.len(),
                });
            }
        }
        out.push(Event::Send {
            to: from,
            via,
            data: packet::bare(packet::REG3),
        });
    }

    /// Record that a link was heard; returns its group.
    fn touch(&mut self, now: Instant, from: SocketAddr) -> Option<Handle> {
        let handle = *self.by_addr.get(&from)?;
        let group = self.groups.get_mut(&handle)?;
        let link = group.links.iter_mut().find(|l| l.stats.addr == from)?;
        link.stats.last_seen = now;
        group.last_activity = now;
        group.last_heard = Some(from);
        Some(handle)
    }

    /// Count an SRT packet from a link, time ACKACKs; every tenth data packet,
    /// returns the SRTLA ACK to send back on that link.
    fn on_srt(
        &mut self,
        now: Instant,
        handle: Handle,
        from: SocketAddr,
        data: &[u8],
        data_seq: Option<u32>,
    ) -> Option<Bytes> {
        let group = self.groups.get_mut(&handle)?;
        let link = group.links.iter_mut().find(|l| l.stats.addr == from)?;
        link.stats.packets += 1;
        link.stats.bytes += data.len() as u64;
        group.packets_forwarded += 1;
        group.bytes_forwarded += data.len() as u64;
        if let Some(ack_no) = packet::srt_ackack_number(data) {
            let sent = group
                .acks
                .iter_mut()
                .find(|(n, t)| *n == ack_no && t.is_some())
                .and_then(|slot| slot.1.take());
            if let Some(sent) = sent {
                let sample = now.saturating_duration_since(sent);
                link.stats.rtt = Some(match link.stats.rtt {
                    // Smoothed like SRT's own RTT: 7/8 old, 1/8 new.
                    Some(rtt) => (rtt * 7 + sample) / 8,
                    None => sample,
                });
            }
        }
        let seq = data_seq?;
        link.acks[link.pending] = seq;
        link.pending += 1;
        if link.pending < ACK_SEQS {
            return None;
        }
        link.pending = 0;
        Some(packet::ack(&link.acks))
    }

    /// Where an SRT packet from the group's session goes: ACKs to every link,
    /// everything else to the link heard from most recently. Each destination
    /// comes with its [`Via`].
    pub fn route(
        &mut self,
        now: Instant,
        group: Handle,
        srt_packet: &[u8],
        to: &mut Vec<(SocketAddr, Via)>,
    ) {
        let Some(g) = self.groups.get_mut(&group) else {
            return;
        };
        if packet::is_srt_ack(srt_packet) {
            if let Some(ack_no) = packet::srt_ack_number(srt_packet) {
                g.acks[g.ack_pos] = (ack_no, Some(now));
                g.ack_pos = (g.ack_pos + 1) % ACK_RING;
            }
            to.extend(g.links.iter().map(|l| (l.stats.addr, l.stats.via)));
            return;
        }
        let index = g
            .last_heard
            .and_then(|a| g.links.iter().position(|l| l.stats.addr == a))
            .or_else(|| (0..g.links.len()).max_by_key(|&i| g.links[i].stats.last_seen));
        if let Some(link) = index.map(|i| &mut g.links[i]) {
            if packet::is_srt_nak(srt_packet) {
                link.stats.naks += 1;
            }
            to.push((link.stats.addr, link.stats.via));
        }
    }

    fn remove_link(
        &mut self,
        group: Handle,
        addr: SocketAddr,
        reason: &'static str,
        out: &mut Vec<Event>,
    ) {
        if let Some(g) = self.groups.get_mut(&group) {
            if let Some(i) = g.links.iter().position(|l| l.stats.addr == addr) {
                let link = g.links.swap_remove(i);
                out.push(Event::LinkDown {
                    group,
                    link: link.stats,
                    reason,
                });
            }
            if g.last_heard == Some(addr) {
                g.last_heard = None;
            }
        }
        if self.by_addr.get(&addr) == Some(&group) {
            self.by_addr.remove(&addr);
        }
    }

    /// Expire silent links, and groups silent for the group timeout.
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<Event>) {
        let (link_timeout, group_timeout) = (self.limits.link_timeout, self.limits.group_timeout);
        let mut gone_links = Vec::new();
        let mut gone_groups = Vec::new();
        for (&handle, g) in &self.groups {
            for l in &g.links {
                if now.saturating_duration_since(l.stats.last_seen) >= link_timeout {
                    gone_links.push((handle, l.stats.addr));
                }
            }
            if now.saturating_duration_since(g.last_activity) >= group_timeout {
                gone_groups.push(handle);
            }
        }
        for (handle, addr) in gone_links {
            self.remove_link(handle, addr, "link timed out (srtla.link_timeout)", out);
        }
        for handle in gone_groups {
            self.close(handle, "group timed out (srtla.group_timeout)", out);
        }
    }

    /// End a group (timeout, shutdown).
    pub fn close(&mut self, group: Handle, reason: &'static str, out: &mut Vec<Event>) {
        let addrs: Vec<SocketAddr> = match self.groups.get(&group) {
            Some(g) => g.links.iter().map(|l| l.stats.addr).collect(),
            None => return,
        };
        for addr in addrs {
            self.remove_link(group, addr, "group closed", out);
        }
        if let Some(g) = self.groups.remove(&group) {
            self.by_id.remove(&g.id);
            out.push(Event::GroupClosed { group, reason });
        }
    }

    /// The earliest time [`Receiver::on_timer`] has something to do.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.groups
            .values()
            .flat_map(|g| {
                g.links
                    .iter()
                    .map(|l| l.stats.last_seen + self.limits.link_timeout)
                    .chain(std::iter::once(g.last_activity + self.limits.group_timeout))
            })
            .min()
    }
}

/// Answer `from` with a bare SRTLA reply and report why.
fn refuse(
    out: &mut Vec<Event>,
    from: SocketAddr,
    via: Via,
    reply: u16,
    reason: &'static str,
    short: Option<u32>,
) {
    out.push(Event::Send {
        to: from,
        via,
        data: packet::bare(reply),
    });
    out.push(Event::Refused {
        from,
        reason,
        short,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 5000 + u16::from(n)))
    }

    fn reg(ty: u16, id: &GroupId) -> Bytes {
        let mut v = ty.to_be_bytes().to_vec();
        v.extend_from_slice(id);
        Bytes::from(v)
    }

    fn data(seq: u32) -> Bytes {
        let mut v = vec![0u8; 16 + 1316];
        v[..4].copy_from_slice(&seq.to_be_bytes());
        Bytes::from(v)
    }

    fn sends(out: &[Event]) -> Vec<(SocketAddr, Vec<u8>)> {
        out.iter()
            .filter_map(|e| match e {
                Event::Send { to, data, .. } => Some((*to, data.to_vec())),
                _ => None,
            })
            .collect()
    }

    /// REG1 on link 1, REG2 on each link; returns the receiver, group handle and id.
    fn registered(links: &[u8]) -> (Receiver, Handle, GroupId, Instant) {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(7);
        let mut r = Receiver::new(Limits::default(), 0);
        let mut out = Vec::new();
        r.on_datagram(
            t0,
            addr(links[0]),
            0,
            reg(packet::REG1, &[0xAB; ID_LEN]),
            &mut rng,
            &mut out,
        );
        let group = out
            .iter()
            .find_map(|e| match e {
                Event::GroupOpened { group, .. } => Some(*group),
                _ => None,
            })
            .expect("group opened");
        let reply = &sends(&out)[0].1;
        assert_eq!(&reply[..2], &packet::REG2.to_be_bytes());
        let id: GroupId = reply[2..].try_into().unwrap();
        assert_eq!(&id[..ID_SENDER_PART], &[0xAB; ID_SENDER_PART][..]);
        assert_ne!(&id[ID_SENDER_PART..], &[0xAB; ID_LEN - ID_SENDER_PART][..]);
        for &l in links {
            out.clear();
            r.on_datagram(t0, addr(l), 0, reg(packet::REG2, &id), &mut rng, &mut out);
            assert_eq!(
                sends(&out),
                vec![(addr(l), packet::REG3.to_be_bytes().to_vec())]
            );
        }
        (r, group, id, t0)
    }

    #[test]
    fn registration_keepalive_and_ack_every_ten_packets() {
        let (mut r, group, _, t0) = registered(&[1, 2]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut out = Vec::new();
        r.on_datagram(
            t0,
            addr(2),
            0,
            Bytes::from_static(&[0x90, 0x00, 1, 2]),
            &mut rng,
            &mut out,
        );
        assert_eq!(sends(&out), vec![(addr(2), vec![0x90, 0x00, 1, 2])]);
        out.clear();
        for seq in 100..120 {
            r.on_datagram(t0, addr(1), 0, data(seq), &mut rng, &mut out);
        }
        let srt = out
            .iter()
            .filter(|e| matches!(e, Event::Srt { group: g, .. } if *g == group))
            .count();
        assert_eq!(srt, 20);
        let acks = sends(&out);
        assert_eq!(acks.len(), 2);
        assert_eq!(acks[1].0, addr(1));
        assert_eq!(
            acks[1].1,
            packet::ack(&[110, 111, 112, 113, 114, 115, 116, 117, 118, 119]).to_vec()
        );
        assert_eq!(r.links(group).iter().map(|l| l.packets).sum::<u64>(), 20);
    }

    #[test]
    fn srt_acks_go_to_every_link_the_rest_to_the_last_heard() {
        let (mut r, group, _, t0) = registered(&[1, 2, 3]);
        let mut rng = StdRng::seed_from_u64(1);
        let mut out = Vec::new();
        r.on_datagram(t0, addr(3), 0, data(1), &mut rng, &mut out);
        let mut to = Vec::new();
        let mut srt_ack = vec![0u8; 44];
        srt_ack[0] = 0x80;
        srt_ack[1] = 0x02;
        r.route(t0, group, &srt_ack, &mut to);
        to.sort();
        assert_eq!(to, vec![(addr(1), 0), (addr(2), 0), (addr(3), 0)]);
        to.clear();
        let mut nak = vec![0u8; 20];
        nak[0] = 0x80;
        nak[1] = 0x03;
        r.route(t0, group, &nak, &mut to);
        assert_eq!(to, vec![(addr(3), 0)]);
        assert_eq!(r.links(group).iter().map(|l| l.naks).sum::<u64>(), 1);
    }

    #[test]
    fn refusals_are_answered_per_the_protocol() {
        let (mut r, _, id, t0) = registered(&[1]);
        let mut rng = StdRng::seed_from_u64(2);
        let mut out = Vec::new();
        // Unknown group id: REG_NGP.
        r.on_datagram(
            t0,
            addr(9),
            0,
            reg(packet::REG2, &[1; ID_LEN]),
            &mut rng,
            &mut out,
        );
        assert_eq!(
            sends(&out),
            vec![(addr(9), packet::REG_NGP.to_be_bytes().to_vec())]
        );
        // REG1 from an address already in a group: REG_ERR.
        out.clear();
        r.on_datagram(
            t0,
            addr(1),
            0,
            reg(packet::REG1, &[5; ID_LEN]),
            &mut rng,
            &mut out,
        );
        assert_eq!(
            sends(&out),
            vec![(addr(1), packet::REG_ERR.to_be_bytes().to_vec())]
        );
        // Truncated REG2: REG_ERR.
        out.clear();
        r.on_datagram(
            t0,
            addr(4),
            0,
            reg(packet::REG2, &id).slice(..50),
            &mut rng,
            &mut out,
        );
        assert_eq!(
            sends(&out),
            vec![(addr(4), packet::REG_ERR.to_be_bytes().to_vec())]
        );
        // SRT from a stranger: dropped, nothing sent.
        out.clear();
        r.on_datagram(t0, addr(5), 0, data(1), &mut rng, &mut out);
        assert!(sends(&out).is_empty());
        assert!(matches!(out[0], Event::Refused { .. }));
    }

    #[test]
    fn limits_hold_and_answer_reg_nak() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(3);
        let mut r = Receiver::new(
            Limits {
                max_groups: 3,
                max_links_per_group: 2,
                ..Limits::default()
            },
            0,
        );
        let mut out = Vec::new();
        for n in 1..=1000u16 {
            let from = SocketAddr::from(([127, 0, 0, 1], n));
            let mut id = [0u8; ID_LEN];
            rng.fill_bytes(&mut id);
            r.on_datagram(t0, from, 0, reg(packet::REG1, &id), &mut rng, &mut out);
        }
        assert_eq!(r.group_count(), 3);
        let naks = sends(&out)
            .iter()
            .filter(|(_, d)| d[..] == packet::REG_NAK.to_be_bytes())
            .count();
        assert_eq!(naks, 997);
        // Links over the limit.
        let (mut r, _, id, t0) = registered(&[1, 2]);
        r.set_limits(Limits {
            max_links_per_group: 2,
            ..Limits::default()
        });
        out.clear();
        r.on_datagram(t0, addr(3), 0, reg(packet::REG2, &id), &mut rng, &mut out);
        assert_eq!(
            sends(&out),
            vec![(addr(3), packet::REG_NAK.to_be_bytes().to_vec())]
        );
    }

    #[test]
    fn silent_links_and_groups_time_out_and_a_link_can_come_back() {
        let (mut r, group, id, t0) = registered(&[1, 2]);
        let mut rng = StdRng::seed_from_u64(4);
        let mut out = Vec::new();
        let t5 = t0 + Duration::from_secs(5);
        r.on_datagram(t5, addr(1), 0, data(1), &mut rng, &mut out);
        r.on_timer(t0 + Duration::from_secs(11), &mut out);
        assert_eq!(r.links(group).len(), 1, "link 2 was silent for 11 s");
        // Link 2 returns from a new address (NAT rebinding) with a REG2.
        out.clear();
        r.on_datagram(
            t0 + Duration::from_secs(12),
            addr(7),
            0,
            reg(packet::REG2, &id),
            &mut rng,
            &mut out,
        );
        assert_eq!(r.links(group).len(), 2);
        out.clear();
        r.on_timer(t0 + Duration::from_secs(30), &mut out);
        assert!(out.contains(&Event::GroupClosed {
            group,
            reason: "group timed out (srtla.group_timeout)"
        }));
        assert_eq!(r.group_count(), 0);
        assert!(r.next_timeout().is_none());
    }

    #[test]
    fn ids_carry_the_home_and_links_get_rtt_from_ackack() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(6);
        let mut r = Receiver::new(Limits::default(), 3);
        let mut out = Vec::new();
        r.on_datagram(
            t0,
            addr(1),
            0,
            reg(packet::REG1, &[9; ID_LEN]),
            &mut rng,
            &mut out,
        );
        let id: GroupId = sends(&out)[0].1[2..].try_into().unwrap();
        assert_eq!(home_of(&id), 3);
        assert_eq!(short_id(&id), 0x0909_0909);
        let group = match out[0] {
            Event::GroupOpened { group, .. } => group,
            ref e => panic!("{e:?}"),
        };
        for l in [1, 2] {
            r.on_datagram(t0, addr(l), 7, reg(packet::REG2, &id), &mut rng, &mut out);
        }
        // A full ACK (number 42) goes to both links; its ACKACK returns on link 2.
        let mut ack = vec![0u8; 44];
        ack[..2].copy_from_slice(&[0x80, 0x02]);
        ack[4..8].copy_from_slice(&42u32.to_be_bytes());
        let mut to = Vec::new();
        r.route(t0, group, &ack, &mut to);
        assert_eq!(to.len(), 2);
        assert!(to.iter().all(|(_, via)| *via == 7));
        let mut ackack = vec![0u8; 16];
        ackack[..2].copy_from_slice(&[0x80, 0x06]);
        ackack[4..8].copy_from_slice(&42u32.to_be_bytes());
        let later = t0 + Duration::from_millis(35);
        r.on_datagram(later, addr(2), 7, Bytes::from(ackack), &mut rng, &mut out);
        let links = r.links(group);
        let rtt = |n: u8| links.iter().find(|l| l.addr == addr(n)).unwrap().rtt;
        assert_eq!(rtt(2), Some(Duration::from_millis(35)));
        assert_eq!(rtt(1), None);
        let stats = r.stats(group).unwrap();
        assert_eq!(stats.packets_forwarded, 1);
        assert_eq!(stats.links.len(), 2);
    }

    #[test]
    fn random_datagrams_never_panic() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(5);
        let mut r = Receiver::new(Limits::default(), 0);
        let mut out = Vec::new();
        for i in 0..20_000u32 {
            let len = (rng.next_u32() % 400) as usize;
            let mut v = vec![0u8; len];
            rng.fill_bytes(&mut v);
            if len >= 2 && i % 3 == 0 {
                v[0] = 0x92;
                v[1] = (i % 4) as u8;
            }
            let from = SocketAddr::from(([127, 0, 0, 1], (i % 50) as u16 + 1));
            r.on_datagram(t0, from, 0, Bytes::from(v), &mut rng, &mut out);
            out.clear();
        }
        assert!(r.group_count() <= Limits::default().max_groups);
    }
}
