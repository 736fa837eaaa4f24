//! Hostile input on the SRT port while a publisher and a reader stream.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::craft::*;
use common::media::*;
use common::*;
use srt_protocol::options::KeySize;
use srt_protocol::packet::SrtControlPacket;

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random::<u8>()).collect()
}

/// Sends `packets` from one socket, 50 at a time with a short pause, so the
/// test measures the gateway's parsing, not the kernel's socket buffer.
fn send_paced(sock: &UdpSocket, packets: impl IntoIterator<Item = Vec<u8>>) -> usize {
    let mut sent = 0;
    for (i, p) in packets.into_iter().enumerate() {
        if sock.send(&p).is_ok() {
            sent += 1;
        }
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    sent
}

fn socket_to(gw: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.connect(gw).expect("connect");
    s
}

/// Blocks until the wall clock is early in a second: srt-protocol's cookie
/// changes with the second, and the induction and conclusion must share one.
fn wait_early_in_second() {
    for _ in 0..200 {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        if ms < 500 {
            return;
        }
        std::thread::sleep(Duration::from_millis((1000 - ms as u64).min(20)));
    }
}

#[test]
fn hostile_input_leaves_streams_and_process_intact() {
    let _cpu = heavy();
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new("hostile");
    let mut gw = Gateway::start(&dir);
    let addr: SocketAddr = format!("127.0.0.1:{}", gw.port).parse().unwrap();

    // A stream with a reader decoding it throughout.
    let mark = gw.mark();
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher",
        &gw.url("publish:live/h", PUBLISH_OPTS),
        &Source::default().seconds(90.0),
    );
    wait_publishing(
        &mut gw,
        mark,
        "live/h",
        &mut publisher,
        Duration::from_secs(15),
    );
    let read_url = gw.url("read:live/h", READ_OPTS);
    let mut reader = start_decode(&dir, "reader", &read_url, 15.0);
    gw.wait_log(mark, &["reading", "live/h"], Duration::from_secs(10));
    let hostile_start = Instant::now();

    // 1. Garbage: 2,000 datagrams of random bytes, random lengths 0..=1500.
    let s = socket_to(addr);
    let n = send_paced(
        &s,
        (0..2000).map(|_| random_bytes(rand::random::<usize>() % 1501)),
    );
    eprintln!("garbage: sent {n} datagrams");
    gw.assert_alive("after 2,000 garbage datagrams");

    // 2. Truncated handshakes: an induction and a conclusion cut at every length.
    let ind = induction(0x1234_5678, 42);
    let con = conclusion(
        0x1234_5679,
        43,
        0x0bad_c00c,
        "publish:live/truncated",
        KeySize::Unspecified,
        None,
    );
    let s = socket_to(addr);
    let mut cut = Vec::new();
    for len in 0..ind.len() {
        cut.push(ind[..len].to_vec());
    }
    for len in 0..con.len() {
        cut.push(con[..len].to_vec());
    }
    let n = send_paced(&s, cut);
    eprintln!("truncated handshakes: sent {n} datagrams");
    gw.assert_alive("after truncated handshakes");

    // 3. Oversized: a valid induction followed by 60 KB of junk, and 9000-byte
    //    datagrams (random, and starting with a handshake header).
    let s = socket_to(addr);
    let mut big = Vec::new();
    for _ in 0..10 {
        let mut p = induction(rand::random::<u32>() & 0x3fff_ffff, 7);
        p.extend(random_bytes(60 * 1024));
        big.push(p);
    }
    for i in 0..50 {
        let mut p = if i % 2 == 0 {
            induction(rand::random::<u32>() & 0x3fff_ffff, 9)
        } else {
            Vec::new()
        };
        let fill = 9000 - p.len();
        p.extend(random_bytes(fill));
        big.push(p);
    }
    let n = send_paced(&s, big);
    eprintln!("oversized: sent {n} datagrams");
    gw.assert_alive("after oversized datagrams");

    // 4. A flood of 500 inductions, each from its own source port.
    let mut flood_sent = 0;
    for i in 0..500u32 {
        let s = socket_to(addr);
        if s.send(&induction(0x2000_0000 + i, i)).is_ok() {
            flood_sent += 1;
        }
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    eprintln!("induction flood: sent {flood_sent} from distinct ports");
    gw.assert_alive("after the induction flood");

    // 5. The conclusion that drives srt-protocol 0.4.4 into
    //    `unimplemented!("Expected kmreq")`: a passphrase-protected path, the
    //    right cookie, key size 16, and a key-material *response* where a
    //    request belongs.
    let panic_mark = gw.mark();
    let mut outcome = None;
    let mut attempts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while outcome.is_none() && attempts.len() < 8 && Instant::now() < deadline {
        wait_early_in_second();
        let caller = Caller::new(addr);
        let Some(cookie) = caller.induce(Duration::from_secs(2)) else {
            attempts.push("no induction reply within 2s".to_string());
            continue;
        };
        let reply = caller.conclude(
            cookie,
            "publish:secure/aes128",
            KeySize::AES128,
            Some(SrtControlPacket::KeyRefreshResponse(keying_material(16))),
            Duration::from_millis(1500),
        );
        attempts.push(format!("cookie {cookie:#x}: reply {reply:?}"));
        // The session's fate is in the log: a contained panic, or a refusal.
        let found = wait_until(Duration::from_secs(2), || {
            gw.log_since(panic_mark)
                .lines()
                .any(|l| l.contains("panicked") || l.contains("refused"))
        });
        if found {
            let log = gw.log_since(panic_mark);
            outcome = log
                .lines()
                .find(|l| l.contains("panicked"))
                .or_else(|| log.lines().find(|l| l.contains("refused")))
                .map(str::to_string);
        }
        gw.assert_alive("after the key-material-response conclusion");
    }
    match &outcome {
        Some(line) => eprintln!("bad key material: gateway logged: {line}"),
        None => gw.fail(&format!(
            "expected srtgate to log `panicked` (contained) or `refused` for a conclusion \
             carrying a key-material response; it logged neither. Attempts:\n{}",
            indent(&attempts.join("\n"))
        )),
    }
    if outcome
        .as_deref()
        .is_some_and(|l| l.contains("refused") && !l.contains("reason"))
    {
        gw.fail(&format!(
            "the refusal of the bad key material names no reason: {}",
            outcome.unwrap()
        ));
    }
    eprintln!(
        "hostile phases took {:.1}s",
        hostile_start.elapsed().as_secs_f64()
    );

    // The process lives, the concurrent reader decoded cleanly, and a fresh
    // reader still sees the stream.
    gw.assert_alive("after all hostile input");
    let res = reader.wait(Duration::from_secs(40));
    assert_clean_decode(
        &gw,
        &reader,
        &res,
        "the reader that decoded live/h during the hostile input",
    );
    let p = probe(&dir, "ffprobe-after", &read_url, Duration::from_secs(30));
    assert_h264_aac(&gw, &p, "fresh ffprobe of live/h after the hostile input");
    assert!(
        publisher.is_running(),
        "the publisher stopped during the hostile input:\n{}",
        publisher.describe(None)
    );
    gw.assert_alive("at the end");
}
