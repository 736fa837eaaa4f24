//! SRTLA bonded ingest with real peers: ffmpeg (libsrt) publishes through
//! `srtgate bond` (our SRTLA sender) bonding 127.0.0.1, .2 and .3 to the
//! gateway's SRTLA port, sometimes through a userspace relay that delays,
//! drops or cuts single links; ffprobe / ffmpeg read the stream back over SRT.
//! Hostile registrations come from a plain UDP socket.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::media::*;
use common::relay::{Link, LinksRelay};
use common::*;
use rand::{Rng, RngCore, SeedableRng};

const VIAS: [&str; 3] = ["127.0.0.1", "127.0.0.2", "127.0.0.3"];
/// Bonded senders run with a large SRT latency; so do these tests.
const BOND_PUBLISH_OPTS: &str = "&latency=1000000";

/// A gateway with SRTLA on `127.0.0.1:SRTLA_PORT` and `extra` keys (indented
/// two spaces) in `srtla:`; paths under `bond/` have 1 s of latency.
fn start_gateway(dir: &TestDir, extra_srtla: &str) -> (Gateway, u16) {
    let srtla_port = free_udp_port();
    let gw = Gateway::start_with(dir, |port| srtla_config(port, srtla_port, extra_srtla));
    (gw, srtla_port)
}

fn srtla_config(port: u16, srtla_port: u16, extra_srtla: &str) -> String {
    let bond_paths = "  - name: \"bond/*\"\n    latency: 1000ms\n";
    config_with(port, "", bond_paths).replace(
        "srtla:\n  enabled: false\n",
        &format!(
            "srtla:\n  listen: [\"127.0.0.1:{srtla_port}\"]\n  link_timeout: 3s\n  group_timeout: 4s\n{extra_srtla}"
        ),
    )
}

/// `srtgate bond`: takes an SRT caller on `127.0.0.1:PORT` (returned) and
/// bonds it over `vias` to `to`.
fn start_bond(dir: &TestDir, name: &str, to: SocketAddr, vias: &[&str]) -> (Peer, u16) {
    let port = free_udp_port();
    let mut args = vec![
        "bond".to_string(),
        "--srt".to_string(),
        format!("127.0.0.1:{port}"),
        "--to".to_string(),
        to.to_string(),
    ];
    for v in vias {
        args.extend(["--via".to_string(), v.to_string()]);
    }
    (
        Peer::spawn(dir, name, srtgate_bin(), &args, Out::Null),
        port,
    )
}

fn srtla_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// ffmpeg publishing `path` into the bond sender on `bond_port`.
fn publish_bonded(dir: &TestDir, bond_port: u16, path: &str, seconds: f64) -> Peer {
    let url = srt_url(bond_port, &format!("publish:{path}"), BOND_PUBLISH_OPTS);
    publish_ffmpeg(dir, "publisher", &url, &Source::default().seconds(seconds))
}

/// Waits until the group has `links` links (a `srtla link joined` line).
#[track_caller]
fn wait_links(gw: &mut Gateway, mark: usize, links: usize, timeout: Duration) -> String {
    gw.wait_log(
        mark,
        &["srtla link joined", &format!("links={links}")],
        timeout,
    )
}

/// The integer value of `key=` in a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let digits: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Every `srtla link left` line since `mark`.
fn links_left(gw: &Gateway, mark: usize) -> Vec<String> {
    gw.log_since(mark)
        .lines()
        .filter(|l| l.contains("srtla link left"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn three_bonded_links_carry_h264_aac_and_a_vanished_sender_is_cleaned_up() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("srtla_three_links");
    let (mut gw, srtla_port) = start_gateway(&dir, "");
    let mark = gw.mark();
    let (mut bond, bond_port) = start_bond(&dir, "bond", srtla_addr(srtla_port), &VIAS);
    wait_links(&mut gw, mark, 3, Duration::from_secs(10));
    let mut publisher = publish_bonded(&dir, bond_port, "bond/three", 60.0);
    wait_publishing(
        &mut gw,
        mark,
        "bond/three",
        &mut publisher,
        Duration::from_secs(15),
    );
    let p = probe(
        &dir,
        "probe",
        &gw.url("read:bond/three", READ_OPTS),
        Duration::from_secs(20),
    );
    assert_h264_aac(&gw, &p, "ffprobe of the bonded stream");
    decode_clean(
        &gw,
        &dir,
        "decode",
        &gw.url("read:bond/three", READ_OPTS),
        10.0,
    );

    // The sender vanishes: its links time out, then its group, and the
    // path is free for another publisher.
    let gone = gw.mark();
    bond.kill();
    publisher.kill();
    let vanished = Instant::now();
    let closed = gw.wait_log(
        gone,
        &["srtla group closed", "group timed out"],
        Duration::from_secs(10),
    );
    let took = vanished.elapsed();
    if took > Duration::from_millis(4000 + 1500) {
        gw.fail(&format!(
            "the group should close within group_timeout (4 s) of its sender vanishing; it took {took:?}: {closed}"
        ));
    }
    gw.wait_log(gone, &["closed", "bond/three"], Duration::from_secs(5));
    let left = links_left(&gw, gone);
    if left.len() != 3 {
        gw.fail(&format!(
            "expected the three links to leave the group, got {left:#?}"
        ));
    }
    // Every link carried a fair part of the stream.
    let bytes: Vec<u64> = left.iter().filter_map(|l| field(l, "bytes")).collect();
    let total: u64 = bytes.iter().sum();
    if bytes.len() != 3 || bytes.iter().any(|&b| b * 10 < total) {
        gw.fail(&format!(
            "expected each of the 3 links to carry at least 10% of the bytes; they carried {bytes:?}"
        ));
    }
    let mark = gw.mark();
    let mut again = publish_ffmpeg(
        &dir,
        "publisher-again",
        &gw.url("publish:bond/three", PUBLISH_OPTS),
        &Source::default().seconds(10.0),
    );
    wait_publishing(
        &mut gw,
        mark,
        "bond/three",
        &mut again,
        Duration::from_secs(15),
    );
    gw.assert_alive("after the bonded session");
}

#[test]
fn a_bonded_stream_plays_over_hls() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("srtla_hls");
    let srtla_port = free_udp_port();
    let http_port = free_tcp_port();
    let mut gw = Gateway::start_with(&dir, |port| {
        srtla_config(port, srtla_port, "").replace(
            "http:\n  enabled: false\n",
            &format!("http:\n  listen: [\"127.0.0.1:{http_port}\"]\n"),
        )
    });
    let mark = gw.mark();
    let (_bond, bond_port) = start_bond(&dir, "bond", srtla_addr(srtla_port), &VIAS[..2]);
    wait_links(&mut gw, mark, 2, Duration::from_secs(10));
    let mut publisher = publish_bonded(&dir, bond_port, "bond/hls", 40.0);
    wait_publishing(
        &mut gw,
        mark,
        "bond/hls",
        &mut publisher,
        Duration::from_secs(15),
    );
    for variant in ["ts", "ll"] {
        let url = format!("http://127.0.0.1:{http_port}/bond/hls/{variant}.m3u8");
        let p = probe(
            &dir,
            &format!("probe_{variant}"),
            &url,
            Duration::from_secs(30),
        );
        assert_h264_aac(
            &gw,
            &p,
            &format!("ffprobe of the bonded stream over HLS ({variant})"),
        );
        decode_clean(&gw, &dir, &format!("decode_{variant}"), &url, 6.0);
    }
}

#[test]
fn bonded_ingest_over_ipv6() {
    let _cpu = light();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("srtla_ipv6");
    let srtla_port = free_udp_port();
    let mut gw = Gateway::start_with(&dir, |port| {
        srtla_config(port, srtla_port, "").replace(
            &format!("listen: [\"127.0.0.1:{srtla_port}\"]"),
            &format!("listen: [\"127.0.0.1:{srtla_port}\", \"[::1]:{srtla_port}\"]"),
        )
    });
    let mark = gw.mark();
    let to: SocketAddr = format!("[::1]:{srtla_port}").parse().unwrap();
    let (_bond, bond_port) = start_bond(&dir, "bond", to, &["::1"]);
    let line = wait_links(&mut gw, mark, 1, Duration::from_secs(10));
    assert!(line.contains("[::1]:"), "the link should be IPv6: {line}");
    let mut publisher = publish_bonded(&dir, bond_port, "bond/six", 30.0);
    wait_publishing(
        &mut gw,
        mark,
        "bond/six",
        &mut publisher,
        Duration::from_secs(15),
    );
    let p = probe(
        &dir,
        "probe",
        &gw.url("read:bond/six", READ_OPTS),
        Duration::from_secs(20),
    );
    assert_h264_aac(&gw, &p, "ffprobe of the stream bonded over IPv6");
}

#[test]
fn a_link_cut_and_another_added_mid_stream_leave_the_output_intact() {
    let _cpu = heavy();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("srtla_cut_add");
    let (mut gw, srtla_port) = start_gateway(&dir, "");
    let relay = LinksRelay::start(
        srtla_addr(srtla_port),
        &[
            Link::clean(VIAS[0]),
            Link::clean(VIAS[1]),
            Link::clean(VIAS[2]).down(),
        ],
        1,
    );
    let mark = gw.mark();
    let (_bond, bond_port) = start_bond(&dir, "bond", srtla_addr(relay.port), &VIAS);
    wait_links(&mut gw, mark, 2, Duration::from_secs(10));
    let mut publisher = publish_bonded(&dir, bond_port, "bond/cut", 60.0);
    wait_publishing(
        &mut gw,
        mark,
        "bond/cut",
        &mut publisher,
        Duration::from_secs(15),
    );
    let url = gw.url("read:bond/cut", READ_OPTS);
    let mut decoder = start_decode(&dir, "decode", &url, 20.0);
    std::thread::sleep(Duration::from_secs(4));

    let cut = gw.mark();
    relay.set_up(VIAS[0], false);
    let left = gw.wait_log(
        cut,
        &["srtla link left", "link timed out"],
        Duration::from_secs(10),
    );
    let added = gw.mark();
    relay.set_up(VIAS[2], true);
    wait_links(&mut gw, added, 2, Duration::from_secs(10));

    let res = decoder.wait(Duration::from_secs(60));
    assert_clean_decode(
        &gw,
        &decoder,
        &res,
        &format!("decode across a link cut ({left}) and a link added"),
    );
    let (up3, _) = relay.counts(VIAS[2]);
    assert!(
        up3 > 100,
        "the added link should carry traffic; it forwarded {up3} datagrams"
    );
    gw.assert_alive("after the link changes");
}

#[test]
fn a_link_dropping_ten_percent_leaves_the_output_intact() {
    let _cpu = heavy();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("srtla_lossy_link");
    let (mut gw, srtla_port) = start_gateway(&dir, "");
    let relay = LinksRelay::start(
        srtla_addr(srtla_port),
        &[
            Link::clean(VIAS[0]).loss(0.10),
            Link::clean(VIAS[1]),
            Link::clean(VIAS[2]),
        ],
        2,
    );
    let mark = gw.mark();
    let (_bond, bond_port) = start_bond(&dir, "bond", srtla_addr(relay.port), &VIAS);
    wait_links(&mut gw, mark, 3, Duration::from_secs(10));
    let mut publisher = publish_bonded(&dir, bond_port, "bond/lossy", 60.0);
    wait_publishing(
        &mut gw,
        mark,
        "bond/lossy",
        &mut publisher,
        Duration::from_secs(15),
    );
    decode_clean(
        &gw,
        &dir,
        "decode",
        &gw.url("read:bond/lossy", READ_OPTS),
        12.0,
    );
    // The sender shrinks a lossy link's window, so it ends up carrying less.
    let (_, dropped) = relay.counts(VIAS[0]);
    assert!(
        dropped > 0,
        "the lossy link should have dropped packets; it dropped {dropped}"
    );
}

/// One run of the delay scenario: links 20 / 60 / 120 ms; returns the
/// `resequencing` line the session logs when it closes.
fn delayed_links_run(dir: &TestDir, name: &str, max_hold: &str) -> String {
    let srtla_port = free_udp_port();
    let mut gw = Gateway::start_with(dir, |port| {
        srtla_config(
            port,
            srtla_port,
            &format!("  max_reorder_hold: {max_hold}\n"),
        )
    });
    let ms = Duration::from_millis;
    let relay = LinksRelay::start(
        srtla_addr(srtla_port),
        &[
            Link::clean(VIAS[0]).delay(ms(20)),
            Link::clean(VIAS[1]).delay(ms(60)),
            Link::clean(VIAS[2]).delay(ms(120)),
        ],
        3,
    );
    let mark = gw.mark();
    let (_bond, bond_port) =
        start_bond(dir, &format!("bond-{name}"), srtla_addr(relay.port), &VIAS);
    wait_links(&mut gw, mark, 3, Duration::from_secs(10));
    let path = format!("bond/{name}");
    let mut publisher = publish_bonded(dir, bond_port, &path, 60.0);
    wait_publishing(
        &mut gw,
        mark,
        &path,
        &mut publisher,
        Duration::from_secs(15),
    );
    decode_clean(
        &gw,
        dir,
        &format!("decode-{name}"),
        &gw.url(&format!("read:{path}"), READ_OPTS),
        8.0,
    );
    let end = gw.mark();
    gw.signal(libc::SIGTERM);
    gw.wait_log(end, &["resequencing"], Duration::from_secs(10))
}

#[test]
fn links_with_different_delays_cause_no_spurious_retransmission_requests() {
    let _cpu = heavy();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("srtla_delays");
    let with = delayed_links_run(&dir, "with", "500ms");
    let without = delayed_links_run(&dir, "without", "0s");
    let naks = |l: &str| field(l, "naks_sent").unwrap_or(u64::MAX);
    // Without holding, a packet that filled a gap counts as late.
    let reordered = |l: &str| field(l, "reordered").unwrap_or(0) + field(l, "late").unwrap_or(0);
    eprintln!(
        "links 20/60/120 ms, 8 s: with resequencing {} retransmission requests ({} packets reordered); without {} ({} reordered)",
        naks(&with),
        reordered(&with),
        naks(&without),
        reordered(&without)
    );
    assert!(
        reordered(&with) > 30 && reordered(&without) > 30,
        "the links' delays should reorder packets in both runs:\nwith: {with}\nwithout: {without}"
    );
    assert!(
        naks(&without) >= 10,
        "without resequencing the reordering should cause retransmission requests: {without}"
    );
    assert!(
        naks(&with) * 5 <= naks(&without) && naks(&with) <= 10,
        "with resequencing, retransmission requests should stay near zero \
         (at most 10, and a fifth of the run without):\nwith: {with}\nwithout: {without}"
    );
}

type Replies = std::collections::BTreeMap<u16, usize>;

/// Replies to `sock` until none comes for `quiet`, by SRTLA type.
fn collect_replies(sock: &UdpSocket, quiet: Duration) -> Replies {
    sock.set_read_timeout(Some(quiet)).unwrap();
    let mut seen = Replies::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = sock.recv(&mut buf) {
        if n >= 2 {
            *seen
                .entry(u16::from_be_bytes([buf[0], buf[1]]))
                .or_insert(0) += 1;
        }
    }
    seen
}

/// Sends `datagrams` from `sock` while another thread counts the replies
/// (so a burst of answers cannot overflow the socket's receive buffer);
/// returns the replies once all is sent and none came for half a second.
fn exchange(sock: &UdpSocket, datagrams: impl Iterator<Item = Vec<u8>>) -> Replies {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let reader = sock.try_clone().expect("clone socket");
    let sent = Arc::new(AtomicBool::new(false));
    let counter = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut all = Replies::new();
            loop {
                let done = sent.load(Ordering::Relaxed);
                let got = collect_replies(&reader, Duration::from_millis(500));
                let quiet = got.is_empty();
                for (t, n) in got {
                    *all.entry(t).or_insert(0) += n;
                }
                if done && quiet {
                    return all;
                }
            }
        })
    };
    for d in datagrams {
        sock.send(&d).unwrap();
        std::thread::sleep(Duration::from_micros(100));
    }
    sent.store(true, Ordering::Relaxed);
    counter.join().expect("reply counter")
}

const REG1: u16 = 0x9200;
const REG2: u16 = 0x9201;
const REG_ERR: u16 = 0x9210;
const REG_NGP: u16 = 0x9211;
const REG_NAK: u16 = 0x9212;

fn reg(ty: u16, id: &[u8; 256]) -> Vec<u8> {
    let mut v = ty.to_be_bytes().to_vec();
    v.extend_from_slice(id);
    v
}

#[test]
fn hostile_registrations_hit_limits_and_spare_the_live_group() {
    let _cpu = light();
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new("srtla_hostile");
    let (mut gw, srtla_port) = start_gateway(&dir, "  max_groups: 20\n");
    let mark = gw.mark();
    let (_bond, bond_port) = start_bond(&dir, "bond", srtla_addr(srtla_port), &VIAS[..2]);
    wait_links(&mut gw, mark, 2, Duration::from_secs(10));
    let mut publisher = publish_bonded(&dir, bond_port, "bond/live", 60.0);
    wait_publishing(
        &mut gw,
        mark,
        "bond/live",
        &mut publisher,
        Duration::from_secs(15),
    );
    let url = gw.url("read:bond/live", READ_OPTS);
    let mut decoder = start_decode(&dir, "decode", &url, 12.0);
    let rss_before = rss_kib(gw.pid());

    let target = srtla_addr(srtla_port);
    let attacker = UdpSocket::bind("127.0.0.9:0").expect("bind attacker");
    attacker.connect(target).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    // 1,000 REG1s with random ids: 19 more groups fit beside the live one.
    let mut ids = rand::rngs::StdRng::seed_from_u64(10);
    let replies = exchange(
        &attacker,
        (0..1000).map(|_| {
            let mut id = [0u8; 256];
            ids.fill_bytes(&mut id);
            reg(REG1, &id)
        }),
    );
    let (reg2, nak) = (
        replies.get(&REG2).copied().unwrap_or(0),
        replies.get(&REG_NAK).copied().unwrap_or(0),
    );
    if reg2 != 19 || nak != 981 {
        gw.fail(&format!(
            "1,000 REG1s with max_groups 20 and one live group: expected 19 REG2 and 981 REG_NAK, got {replies:x?}"
        ));
    }
    // REG2s for groups that do not exist: REG_NGP each.
    let replies = exchange(
        &attacker,
        (0..200).map(|_| {
            let mut id = [0u8; 256];
            ids.fill_bytes(&mut id);
            reg(REG2, &id)
        }),
    );
    assert_eq!(
        replies.get(&REG_NGP).copied(),
        Some(200),
        "REG2 with unknown ids: expected 200 REG_NGP, got {replies:x?}"
    );
    // Truncated registrations: REG_ERR. Oversized datagrams, unknown types and
    // a keep-alive flood from an address that is no link: no answer.
    let fixed = vec![
        reg(REG1, &[1; 256])[..100].to_vec(),
        reg(REG2, &[1; 256])[..40].to_vec(),
        vec![0x92, 0x55, 0, 0],
        vec![0x92; 4000],
    ];
    let flood = (0..5000u32).flat_map(|i| {
        let mut ka = vec![0x90, 0x00];
        ka.extend_from_slice(&i.to_be_bytes());
        let mut junk = vec![0u8; rng.gen_range(0..1500)];
        rng.fill_bytes(&mut junk);
        // Junk never starts like a registration (that would be answered).
        if junk.len() >= 2 && junk[0] == 0x92 {
            junk[0] = 0x12;
        }
        [ka, junk]
    });
    let replies = exchange(&attacker, fixed.into_iter().chain(flood));
    assert_eq!(
        replies.get(&REG_ERR).copied(),
        Some(2),
        "two truncated registrations: expected 2 REG_ERR and nothing else, got {replies:x?}"
    );
    let others: usize = replies
        .iter()
        .filter(|(t, _)| **t != REG_ERR && **t != REG_NGP && **t != REG_NAK)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        others, 0,
        "no keep-alive echo or other answer to a stranger: {replies:x?}"
    );

    let res = decoder.wait(Duration::from_secs(60));
    assert_clean_decode(
        &gw,
        &decoder,
        &res,
        "decode of the live group during the flood",
    );
    let rss_after = rss_kib(gw.pid());
    eprintln!("srtgate RSS before the flood {rss_before} KiB, after {rss_after} KiB");
    if rss_after > rss_before + 64 * 1024 {
        gw.fail(&format!(
            "memory grew from {rss_before} KiB to {rss_after} KiB during the flood"
        ));
    }
    // The 19 idle groups time out, and registration works again.
    gw.wait_log(
        mark,
        &["srtla group closed", "group timed out"],
        Duration::from_secs(10),
    );
    let fresh = UdpSocket::bind("127.0.0.10:0").unwrap();
    fresh.connect(target).unwrap();
    let mut ok = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok && Instant::now() < deadline {
        fresh.send(&reg(REG1, &[7; 256])).unwrap();
        ok = collect_replies(&fresh, Duration::from_millis(300)).contains_key(&REG2);
    }
    if !ok {
        gw.fail("after the idle groups timed out, a new REG1 should get a REG2");
    }
    let log = gw.log();
    assert!(
        log.contains("srtla refused") && log.contains("max_groups"),
        "refusals should be logged with the limit's name"
    );
    gw.assert_alive("after the flood");
}

/// `srtla.max_groups` changed through the API applies to the next
/// registration: no restart, the groups already registered stay.
#[test]
fn srtla_limits_change_live_through_the_api() {
    let _cpu = light();
    let dir = TestDir::new("srtla_live_limits");
    let api_port = free_tcp_port();
    let srtla_port = free_udp_port();
    let mut gw = Gateway::start_with(&dir, |port| {
        srtla_config(port, srtla_port, "  max_groups: 2\n").replace(
            "api:\n  enabled: false\n",
            &format!("api:\n  listen: [\"127.0.0.1:{api_port}\"]\n"),
        )
    });
    let sock = UdpSocket::bind("127.0.0.7:0").expect("bind");
    sock.connect(srtla_addr(srtla_port)).unwrap();
    let mut ids = rand::rngs::StdRng::seed_from_u64(77);
    let mut register = |n: usize| {
        let batch: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let mut id = [0u8; 256];
                ids.fill_bytes(&mut id);
                reg(REG1, &id)
            })
            .collect();
        let r = exchange(&sock, batch.into_iter());
        (
            r.get(&REG2).copied().unwrap_or(0),
            r.get(&REG_NAK).copied().unwrap_or(0),
        )
    };
    assert_eq!(
        register(5),
        (2, 3),
        "max_groups 2: two groups, three refusals"
    );
    let mut client = common::http::Client::new();
    let res = client
        .request_body(
            "PATCH",
            &format!("http://127.0.0.1:{api_port}/v1/config"),
            &[("content-type", "application/merge-patch+json")],
            br#"{"srtla": {"max_groups": 5}}"#,
        )
        .unwrap_or_else(|e| gw.fail(&format!("PATCH: {e}")));
    assert_eq!(res.status, 200, "{}", res.describe());
    assert!(
        res.text().contains("\"srtla_settings\":true"),
        "{}",
        res.text()
    );
    assert_eq!(
        register(5),
        (3, 2),
        "after max_groups 5: three more groups beside the two, two refusals"
    );
    gw.assert_alive("after the live limit change");
}
