//! SRTLA receiver state: groups of links, registration, keep-alives, SRTLA
//! ACKs, the routing of SRT packets back to the sender, and timeouts.
//!
//! Sans-IO: datagrams and time go in, [`Event`]s come out; randomness for the
//! receiver's half of a group id is passed in. It knows nothing of SRT beyond
//! telling data from ACKs, and nothing of sockets or shards.

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

/// What the receiver asks its shell to do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send `data` to `to` from the SRTLA socket.
    Send { to: SocketAddr, data: Bytes },
    /// An SRT packet for group `group`'s SRT session.
    Srt { group: Handle, data: Bytes },
    /// A group was registered.
    GroupOpened { group: Handle },
    /// A group ended; its SRT session must end too.
    GroupClosed { group: Handle, reason: &'static str },
    /// A datagram refused or dropped, for counters and rate-limited logs.
    Refused {
        from: SocketAddr,
        reason: &'static str,
    },
}

/// One link's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStats {
    pub addr: SocketAddr,
    pub packets: u64,
    pub bytes: u64,
    pub last_seen: Instant,
}

#[derive(Debug)]
struct Link {
    stats: LinkStats,
    acks: [u32; ACK_SEQS],
    pending: usize,
}

#[derive(Debug)]
struct Group {
    id: GroupId,
    links: Vec<Link>,
    /// The link heard from most recently: SRT packets other than ACKs go there.
    last_heard: Option<SocketAddr>,
    last_activity: Instant,
}

/// The SRTLA side of one listening socket (or of a group's home shard).
#[derive(Debug, Default)]
pub struct Receiver {
    limits: Limits,
    groups: HashMap<Handle, Group>,
    by_id: HashMap<GroupId, Handle>,
    by_addr: HashMap<SocketAddr, Handle>,
    next: Handle,
}

impl Receiver {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The links of a group, most useful for stats.
    pub fn links(&self, group: Handle) -> Vec<LinkStats> {
        self.groups
            .get(&group)
            .map(|g| g.links.iter().map(|l| l.stats.clone()).collect())
            .unwrap_or_default()
    }

    /// Handle one datagram from `from`.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: Bytes,
        rng: &mut impl RngCore,
        out: &mut Vec<Event>,
    ) {
        match packet::classify(&data) {
            Datagram::Reg1(sender_id) => self.on_reg1(now, from, sender_id, rng, out),
            Datagram::Reg2(id) => self.on_reg2(now, from, id, out),
            Datagram::Keepalive => match self.touch(now, from, 0, None) {
                Some(_) => out.push(Event::Send { to: from, data }),
                None => out.push(Event::Refused {
                    from,
                    reason: "keep-alive from an address that is no link",
                }),
            },
            Datagram::Srt { data_seq } => {
                let len = data.len();
                match self.touch(now, from, len, data_seq) {
                    Some((group, ack)) => {
                        if let Some(ack) = ack {
                            out.push(Event::Send {
                                to: from,
                                data: ack,
                            });
                        }
                        out.push(Event::Srt { group, data });
                    }
                    None => out.push(Event::Refused {
                        from,
                        reason: "SRT packet from an address that is no link",
                    }),
                }
            }
            Datagram::Invalid(reason) => {
                if reason.starts_with("REG") {
                    out.push(Event::Send {
                        to: from,
                        data: packet::bare(packet::REG_ERR),
                    });
                }
                out.push(Event::Refused { from, reason });
            }
        }
    }

    fn on_reg1(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender_id: &GroupId,
        rng: &mut impl RngCore,
        out: &mut Vec<Event>,
    ) {
        if self.by_addr.contains_key(&from) {
            refuse(
                out,
                from,
                packet::REG_ERR,
                "REG1 from an address already in a group",
            );
            return;
        }
        if self.groups.len() >= self.limits.max_groups {
            refuse(
                out,
                from,
                packet::REG_NAK,
                "group limit reached (max_groups)",
            );
            return;
        }
        let mut id: GroupId = [0; ID_LEN];
        id[..ID_SENDER_PART].copy_from_slice(&sender_id[..ID_SENDER_PART]);
        rng.fill_bytes(&mut id[ID_SENDER_PART..]);
        if self.by_id.contains_key(&id) {
            // 128 random bytes collided: refuse rather than join two senders.
            refuse(out, from, packet::REG_ERR, "group id collision");
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
            },
        );
        self.by_id.insert(id, handle);
        out.push(Event::GroupOpened { group: handle });
        out.push(Event::Send {
            to: from,
            data: packet::reg2(&id),
        });
    }

    fn on_reg2(&mut self, now: Instant, from: SocketAddr, id: &GroupId, out: &mut Vec<Event>) {
        let Some(&handle) = self.by_id.get(id) else {
            refuse(out, from, packet::REG_NGP, "REG2 for an unknown group");
            return;
        };
        // A link that moved from another group (or came back) is taken out there.
        if let Some(&other) = self.by_addr.get(&from) {
            if other != handle {
                self.remove_link(other, from);
            }
        }
        let max_links = self.limits.max_links_per_group;
        let Some(group) = self.groups.get_mut(&handle) else {
            return;
        };
        if !group.links.iter().any(|l| l.stats.addr == from) {
            if group.links.len() >= max_links {
                refuse(
                    out,
                    from,
                    packet::REG_NAK,
                    "link limit reached (max_links_per_group)",
                );
                return;
            }
            group.links.push(Link {
                stats: LinkStats {
                    addr: from,
                    packets: 0,
                    bytes: 0,
                    last_seen: now,
                },
                acks: [0; ACK_SEQS],
                pending: 0,
            });
            self.by_addr.insert(from, handle);
        }
        if let Some(link) = group.links.iter_mut().find(|l| l.stats.addr == from) {
            link.stats.last_seen = now;
        }
        group.last_activity = now;
        out.push(Event::Send {
            to: from,
            data: packet::bare(packet::REG3),
        });
    }

    /// Record traffic on a link; returns its group and, every tenth data
    /// packet, the SRTLA ACK to send back on that link.
    fn touch(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        data_seq: Option<u32>,
    ) -> Option<(Handle, Option<Bytes>)> {
        let handle = *self.by_addr.get(&from)?;
        let group = self.groups.get_mut(&handle)?;
        let link = group.links.iter_mut().find(|l| l.stats.addr == from)?;
        link.stats.last_seen = now;
        group.last_activity = now;
        group.last_heard = Some(from);
        let mut ack = None;
        if len > 0 {
            link.stats.packets += 1;
            link.stats.bytes += len as u64;
        }
        if let Some(seq) = data_seq {
            link.acks[link.pending] = seq;
            link.pending += 1;
            if link.pending == ACK_SEQS {
                link.pending = 0;
                ack = Some(packet::ack(&link.acks));
            }
        }
        Some((handle, ack))
    }

    /// Where an SRT packet from the group's session goes: ACKs to every link,
    /// everything else to the link heard from most recently.
    pub fn route(&self, group: Handle, srt_packet: &[u8], to: &mut Vec<SocketAddr>) {
        let Some(g) = self.groups.get(&group) else {
            return;
        };
        if packet::is_srt_ack(srt_packet) {
            to.extend(g.links.iter().map(|l| l.stats.addr));
        } else if let Some(addr) = g
            .last_heard
            .or_else(|| g.links.first().map(|l| l.stats.addr))
        {
            to.push(addr);
        }
    }

    fn remove_link(&mut self, group: Handle, addr: SocketAddr) {
        if let Some(g) = self.groups.get_mut(&group) {
            g.links.retain(|l| l.stats.addr != addr);
            if g.last_heard == Some(addr) {
                g.last_heard = None;
            }
        }
        if self.by_addr.get(&addr) == Some(&group) {
            self.by_addr.remove(&addr);
        }
    }

    /// Expire silent links, and groups silent (or without links) for the group timeout.
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
            self.remove_link(handle, addr);
        }
        for handle in gone_groups {
            self.close(handle, "group timed out", out);
        }
    }

    /// End a group (timeout, or its SRT session ended).
    pub fn close(&mut self, group: Handle, reason: &'static str, out: &mut Vec<Event>) {
        if let Some(g) = self.groups.remove(&group) {
            self.by_id.remove(&g.id);
            for l in &g.links {
                self.by_addr.remove(&l.stats.addr);
            }
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
fn refuse(out: &mut Vec<Event>, from: SocketAddr, reply: u16, reason: &'static str) {
    out.push(Event::Send {
        to: from,
        data: packet::bare(reply),
    });
    out.push(Event::Refused { from, reason });
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
                Event::Send { to, data } => Some((*to, data.to_vec())),
                _ => None,
            })
            .collect()
    }

    /// REG1 on link 1, REG2 on each link; returns the receiver, group handle and id.
    fn registered(links: &[u8]) -> (Receiver, Handle, GroupId, Instant) {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(7);
        let mut r = Receiver::new(Limits::default());
        let mut out = Vec::new();
        r.on_datagram(
            t0,
            addr(links[0]),
            reg(packet::REG1, &[0xAB; ID_LEN]),
            &mut rng,
            &mut out,
        );
        let group = out
            .iter()
            .find_map(|e| match e {
                Event::GroupOpened { group } => Some(*group),
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
            r.on_datagram(t0, addr(l), reg(packet::REG2, &id), &mut rng, &mut out);
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
            Bytes::from_static(&[0x90, 0x00, 1, 2]),
            &mut rng,
            &mut out,
        );
        assert_eq!(sends(&out), vec![(addr(2), vec![0x90, 0x00, 1, 2])]);
        out.clear();
        for seq in 100..120 {
            r.on_datagram(t0, addr(1), data(seq), &mut rng, &mut out);
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
        r.on_datagram(t0, addr(3), data(1), &mut rng, &mut out);
        let mut to = Vec::new();
        let mut srt_ack = vec![0u8; 44];
        srt_ack[0] = 0x80;
        srt_ack[1] = 0x02;
        r.route(group, &srt_ack, &mut to);
        to.sort();
        assert_eq!(to, vec![addr(1), addr(2), addr(3)]);
        to.clear();
        let mut nak = vec![0u8; 20];
        nak[0] = 0x80;
        nak[1] = 0x03;
        r.route(group, &nak, &mut to);
        assert_eq!(to, vec![addr(3)]);
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
        r.on_datagram(t0, addr(5), data(1), &mut rng, &mut out);
        assert!(sends(&out).is_empty());
        assert!(matches!(out[0], Event::Refused { .. }));
    }

    #[test]
    fn limits_hold_and_answer_reg_nak() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(3);
        let mut r = Receiver::new(Limits {
            max_groups: 3,
            max_links_per_group: 2,
            ..Limits::default()
        });
        let mut out = Vec::new();
        for n in 1..=1000u16 {
            let from = SocketAddr::from(([127, 0, 0, 1], n));
            let mut id = [0u8; ID_LEN];
            rng.fill_bytes(&mut id);
            r.on_datagram(t0, from, reg(packet::REG1, &id), &mut rng, &mut out);
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
        r.on_datagram(t0, addr(3), reg(packet::REG2, &id), &mut rng, &mut out);
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
        r.on_datagram(t5, addr(1), data(1), &mut rng, &mut out);
        r.on_timer(t0 + Duration::from_secs(11), &mut out);
        assert_eq!(r.links(group).len(), 1, "link 2 was silent for 11 s");
        // Link 2 returns from a new address (NAT rebinding) with a REG2.
        out.clear();
        r.on_datagram(
            t0 + Duration::from_secs(12),
            addr(7),
            reg(packet::REG2, &id),
            &mut rng,
            &mut out,
        );
        assert_eq!(r.links(group).len(), 2);
        out.clear();
        r.on_timer(t0 + Duration::from_secs(30), &mut out);
        assert!(out.contains(&Event::GroupClosed {
            group,
            reason: "group timed out"
        }));
        assert_eq!(r.group_count(), 0);
        assert!(r.next_timeout().is_none());
    }

    #[test]
    fn random_datagrams_never_panic() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(5);
        let mut r = Receiver::new(Limits::default());
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
            r.on_datagram(t0, from, Bytes::from(v), &mut rng, &mut out);
            out.clear();
        }
        assert!(r.group_count() <= Limits::default().max_groups);
    }
}
