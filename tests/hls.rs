//! HLS and LL-HLS with real peers: ffmpeg publishes over SRT; ffprobe and
//! ffmpeg read the playlists over HTTP; a player-like follower of our own
//! (`common::hls`) checks what a player would get, alone and 200 at a time;
//! hostile HTTP comes from raw sockets.

mod common;

use std::time::{Duration, Instant};

use common::hls::{self as hlsc, FollowOpts};
use common::http;
use common::media::*;
use common::*;

/// A gateway with HTTP on `127.0.0.1:HTTP` and `[::1]:HTTP`; `extra_http`
/// and `extra_hls` are keys (indented two spaces) for those sections.
fn start_gateway(dir: &TestDir, extra_http: &str, extra_hls: &str) -> (Gateway, u16) {
    let http_port = free_tcp_port();
    let gw = Gateway::start_with(dir, |port| {
        config_with(port, "", "  - name: \"noread/*\"\n    read: { allow: false }\n").replace(
            "http:\n  enabled: false\n",
            &format!(
                "http:\n  listen: [\"127.0.0.1:{http_port}\", \"[::1]:{http_port}\"]\n{extra_http}hls:\n  keep_after_end: 30s\n{extra_hls}"
            ),
        )
    });
    (gw, http_port)
}

fn base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Publish a 1 s GOP stream on `path` and wait until srtgate says so.
fn publish(gw: &mut Gateway, dir: &TestDir, name: &str, path: &str, src: &Source) -> Peer {
    let mark = gw.mark();
    let url = srt_url(gw.port, &format!("publish:{path}"), PUBLISH_OPTS);
    let mut p = publish_ffmpeg(dir, name, &url, src);
    wait_publishing(gw, mark, path, &mut p, Duration::from_secs(10));
    p
}

/// Wait until `url` lists at least `n` complete segments; returns the playlist.
#[track_caller]
fn wait_segments(gw: &Gateway, url: &str, n: usize) -> hlsc::MediaPlaylist {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(r) = http::get(url) {
            if r.status == 200 {
                match hlsc::parse_media(&r.text()) {
                    Ok(p) if p.segments.len() >= n => return p,
                    Ok(_) => {}
                    Err(e) => gw.fail(&format!(
                        "{url}: playlist does not parse: {e}\n{}",
                        r.text()
                    )),
                }
            }
        }
        if Instant::now() > deadline {
            gw.fail(&format!("{url}: fewer than {n} segments after 15 s"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn header<'a>(r: &'a http::Response, name: &str) -> &'a str {
    r.header(name).unwrap_or("")
}

#[test]
fn both_variants_play_in_ffmpeg_with_the_right_headers() {
    require_tools(&["ffmpeg", "ffprobe"]);
    let _cpu = heavy();
    let dir = TestDir::new("hls_variants");
    let (mut gw, hp) = start_gateway(&dir, "", "");
    let src = Source::default().gop(25).seconds(40.0);
    let _pub = publish(&mut gw, &dir, "pub", "live/v", &src);
    let b = base(hp);

    for (variant, seg_ext) in [("ts", "ts"), ("ll", "m4s")] {
        let url = format!("{b}/live/v/{variant}.m3u8");
        let pl = wait_segments(&gw, &url, 3);
        // Durations: 1 s GOPs at 25 fps, target 1 s: every segment is 1 s.
        for s in &pl.segments {
            assert!(s.uri.ends_with(seg_ext), "{url}: {}", s.uri);
            assert!(
                (s.duration - 1.0).abs() < 0.045,
                "{url}: segment {} lasts {} s, expected 1 s",
                s.msn,
                s.duration
            );
        }
        assert_eq!(pl.target_duration, 1, "{url}");
        assert!(pl.segments[0].program_date_time.is_some(), "{url}: no PDT");
        if variant == "ll" {
            let sc = pl.server_control.as_ref().expect("EXT-X-SERVER-CONTROL");
            assert!(sc.can_block_reload, "{url}");
            assert!(!pl.maps.is_empty(), "{url}: no EXT-X-MAP");
            let parts = pl.parts();
            assert!(parts.len() >= 5, "{url}: only {} parts", parts.len());
            for (msn, i, p) in &parts {
                assert!(
                    p.duration <= 0.2 + 1e-6 && p.duration >= 0.1,
                    "{url}: part {msn}.{i} lasts {} s (target 0.2 s)",
                    p.duration
                );
            }
            assert!(pl.part_hint().is_some(), "{url}: no EXT-X-PRELOAD-HINT");
        }
        // Headers a CDN and a browser need.
        let r = http::get(&url).unwrap();
        assert_eq!(header(&r, "content-type"), "application/vnd.apple.mpegurl");
        assert_eq!(header(&r, "cache-control"), "no-cache");
        assert_eq!(header(&r, "access-control-allow-origin"), "*");
        let seg = format!("{b}/live/v/{}", pl.segments[0].uri);
        let r = http::get(&seg).unwrap();
        assert_eq!(r.status, 200, "{seg}");
        assert!(header(&r, "cache-control").contains("immutable"), "{seg}");
        let want = if variant == "ts" {
            "video/mp2t"
        } else {
            "video/mp4"
        };
        assert_eq!(header(&r, "content-type"), want);
        let h = http::head(&seg).unwrap();
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        assert_eq!(header(&h, "content-length"), r.body.len().to_string());

        let probe = probe(
            &dir,
            &format!("probe_{variant}"),
            &url,
            Duration::from_secs(20),
        );
        assert_h264_aac(&gw, &probe, &format!("ffprobe {url}"));
        decode_clean(&gw, &dir, &format!("decode_{variant}"), &url, 10.0);
    }
    // index.m3u8 is the LL variant by default; it also works over IPv6.
    let r = http::get(&format!("http://[::1]:{hp}/live/v/index.m3u8")).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("#EXT-X-PART-INF"), "{}", r.text());
    // The index lists the path.
    let r = http::get(&format!("{b}/v1/paths")).unwrap();
    assert!(r.text().contains("\"path\":\"live/v\""), "{}", r.text());
    assert!(r.text().contains("\"H264\",\"AAC\""), "{}", r.text());
    gw.assert_alive("after both variants");
}

#[test]
fn low_latency_follower_gets_every_part_with_blocking_reloads() {
    require_tools(&["ffmpeg"]);
    let _cpu = light();
    let dir = TestDir::new("hls_ll_follow");
    let (mut gw, hp) = start_gateway(&dir, "", "");
    let src = Source::default().gop(25).seconds(30.0);
    let _pub = publish(&mut gw, &dir, "pub", "live/ll", &src);
    let url = format!("{}/live/ll/ll.m3u8", base(hp));
    let pl = wait_segments(&gw, &url, 1);

    // A blocking reload for the hinted part comes back once it exists.
    let (msn, part) = pl.next_part_position();
    let t0 = Instant::now();
    let r = http::get(&format!("{url}?_HLS_msn={msn}&_HLS_part={part}")).unwrap();
    assert_eq!(r.status, 200);
    let after = hlsc::parse_media(&r.text()).unwrap();
    assert!(
        after.has_part(msn, part),
        "part {msn}.{part} missing:\n{}",
        r.text()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "blocked {:?}",
        t0.elapsed()
    );
    // Too far ahead is a 400, as the spec asks.
    let r = http::get(&format!("{url}?_HLS_msn={}", msn + 10)).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    let opts = FollowOpts {
        preload: true,
        start_back: Some(1),
        ..FollowOpts::low_latency()
    };
    let rep = hlsc::follow(&url, Duration::from_secs(8), &opts);
    assert!(rep.is_clean(), "{}", rep.summary());
    assert!(rep.parts.len() >= 25, "{}", rep.summary());
    assert!(rep.blocking_reloads >= 20, "{}", rep.summary());
    assert!(
        rep.parts.iter().all(|p| p.status == 200),
        "{}",
        rep.summary()
    );
    gw.assert_alive("after the LL follower");
}

#[test]
fn publisher_reconnect_continues_the_playlist() {
    require_tools(&["ffmpeg"]);
    let _cpu = heavy();
    let dir = TestDir::new("hls_reconnect");
    let (mut gw, hp) = start_gateway(&dir, "", "");
    let b = base(hp);
    let src = Source::default().gop(25).seconds(6.0);
    let mut first = publish(&mut gw, &dir, "pub1", "live/re", &src);
    let url = format!("{b}/live/re/ts.m3u8");
    wait_segments(&gw, &url, 2);

    // A follower watches across the gap.
    let follower = {
        let url = url.clone();
        std::thread::spawn(move || {
            let opts = FollowOpts {
                stop_at_endlist: false,
                ..FollowOpts::default()
            };
            hlsc::follow(&url, Duration::from_secs(16), &opts)
        })
    };
    let _ = first.wait(Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    // Long enough to still be live for the decode at the end (a playlist
    // without a publisher has no ENDLIST: players wait for it to return).
    let second_src = Source::default().gop(25).seconds(40.0).tone(880);
    let _second = publish(&mut gw, &dir, "pub2", "live/re", &second_src);
    let rep = follower.join().expect("follower");
    assert!(rep.gaps.is_empty(), "{}", rep.summary());
    assert!(rep.sequence_regressions.is_empty(), "{}", rep.summary());
    assert!(rep.is_contiguous(), "{}", rep.summary());
    assert_eq!(rep.discontinuities.len(), 1, "{}", rep.summary());
    let d = rep.discontinuities[0];
    let after = rep.segments.iter().filter(|s| s.msn >= d).count();
    assert!(
        after >= 3,
        "only {after} segments after the reconnect: {}",
        rep.summary()
    );
    // The LL variant went through the same: one playlist, with a
    // discontinuity (listed, or already counted by the sequence).
    let ll = http::get(&format!("{b}/live/re/ll.m3u8")).unwrap().text();
    let pl = hlsc::parse_media(&ll).unwrap();
    assert!(
        pl.segments.iter().any(|s| s.discontinuity) || pl.discontinuity_sequence == 1,
        "{ll}"
    );
    let text = http::get(&url).unwrap().text();
    assert!(
        text.contains("#EXT-X-DISCONTINUITY\n") || text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1"),
        "{text}"
    );
    // A player starting now plays through.
    decode_clean(&gw, &dir, "decode_after", &url, 4.0);
}

#[test]
fn two_hundred_clients_get_every_segment() {
    require_tools(&["ffmpeg"]);
    let _cpu = heavy();
    let dir = TestDir::new("hls_load");
    let (mut gw, hp) = start_gateway(&dir, "", "");
    let src = Source::default().gop(25).seconds(40.0).size(640, 360);
    let _pub = publish(&mut gw, &dir, "pub", "live/load", &src);
    let b = base(hp);
    wait_segments(&gw, &format!("{b}/live/load/ts.m3u8"), 2);
    let rss_before = rss_kib(gw.pid());

    let opts = FollowOpts {
        start_back: Some(1),
        stop_at_endlist: false,
        ..FollowOpts::default()
    };
    let ts = hlsc::load_with(
        200,
        &format!("{b}/live/load/ts.m3u8"),
        Duration::from_secs(10),
        &opts,
        Duration::from_millis(500),
    );
    let rss_after = rss_kib(gw.pid());
    for r in &ts {
        assert!(r.is_clean(), "{}", r.summary());
        assert!(r.segments.len() >= 8, "{}", r.summary());
    }
    let shared = hlsc::check_identical(&ts).unwrap_or_else(|e| gw.fail(&e));
    assert!(shared >= 8, "{shared} segments seen by all");
    // Memory: the window of segments, not a copy per client.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB with 200 clients"
    );
    gw.assert_alive("after 200 clients");
}

#[test]
fn bad_requests_are_refused_and_viewers_do_not_notice() {
    require_tools(&["ffmpeg"]);
    let _cpu = light();
    let dir = TestDir::new("hls_hostile");
    let (mut gw, hp) = start_gateway(&dir, "  header_timeout: 2s\n", "");
    let src = Source::default().gop(25).seconds(40.0);
    let _pub = publish(&mut gw, &dir, "pub", "live/h", &src);
    let b = base(hp);
    let addr = format!("127.0.0.1:{hp}");
    let url = format!("{b}/live/h/ts.m3u8");
    wait_segments(&gw, &url, 2);

    // A viewer follows the stream the whole time.
    let viewer = {
        let url = url.clone();
        std::thread::spawn(move || {
            let opts = FollowOpts {
                start_back: Some(1),
                stop_at_endlist: false,
                ..FollowOpts::default()
            };
            hlsc::follow(&url, Duration::from_secs(12), &opts)
        })
    };
    // Slow-loris clients: closed after the header timeout.
    let loris: Vec<_> = (0..20)
        .map(|_| {
            http::SlowLoris::new()
                .interval(Duration::from_millis(300))
                .limit(Duration::from_secs(10))
                .spawn(&addr)
        })
        .collect();

    let mark = gw.mark();
    for bad in [
        "/../../etc/passwd",
        "/static/..%2f..%2fetc/passwd",
        "/live/h/..%2e/x",
    ] {
        let req = format!("GET {bad} HTTP/1.1\r\nHost: x\r\n\r\n");
        let r = http::raw_exchange(&addr, req.as_bytes(), Duration::from_secs(5)).unwrap();
        assert_eq!(
            r.status(),
            Some(400),
            "{bad}: {:?}",
            String::from_utf8_lossy(&r.bytes)
        );
    }
    gw.wait_log(mark, &["path traversal"], Duration::from_secs(5));
    // Unknown paths: 404 with a JSON reason.
    for unknown in [
        "/nope/x/index.m3u8",
        "/live/none/ts.m3u8",
        "/live/h/seg1.ts",
        "/x.php",
    ] {
        let r = http::get(&format!("{b}{unknown}")).unwrap();
        assert_eq!(r.status, 404, "{unknown}");
        assert_eq!(header(&r, "content-type"), "application/json");
        assert!(r.text().contains("\"error\""), "{}", r.text());
    }
    // Huge headers: 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let r = http::raw_exchange(&addr, big.as_bytes(), Duration::from_secs(5)).unwrap();
    assert_eq!(
        r.status(),
        Some(431),
        "{:?}",
        String::from_utf8_lossy(&r.bytes)
    );
    // Garbage: 400 and closed.
    let r = http::raw_exchange(
        &addr,
        b"\x16\x03\x01\x02\x00garbage\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        r.status(),
        Some(400),
        "{:?}",
        String::from_utf8_lossy(&r.bytes)
    );
    // A method we do not serve.
    let r = http::request("DELETE", &format!("{b}/live/h/ts.m3u8"), &[]).unwrap();
    assert_eq!(r.status, 405);
    // A malformed blocking request names its problem.
    let r = http::get(&format!("{url}?_HLS_part=2")).unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("_HLS_part without _HLS_msn"),
        "{}",
        r.text()
    );
    let r = http::get(&format!("{url}?_HLS_msn=abc")).unwrap();
    assert_eq!(r.status, 400);
    // A path whose rule forbids reading.
    let r = http::get(&format!("{b}/noread/x/ts.m3u8")).unwrap();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("not allowed"), "{}", r.text());
    // A read of a path with credentials needs them.
    let r = http::get(&format!("{b}/private/x/ts.m3u8")).unwrap();
    assert_eq!(r.status, 401);
    assert!(header(&r, "www-authenticate").starts_with("Basic"));
    // Wrong ones are refused too; the right ones get through to the path
    // (not published: 404).
    let wrong = [("Authorization", "Basic Ym9iOndyb25n")]; // bob:wrong
    let r = http::request("GET", &format!("{b}/private/x/ts.m3u8"), &wrong).unwrap();
    assert_eq!(r.status, 401);
    let right = [("Authorization", "Basic Ym9iOmh1bnRlcjIy")]; // bob:hunter22
    let r = http::request("GET", &format!("{b}/private/x/ts.m3u8"), &right).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    for l in loris {
        let rep = l.join().expect("slow-loris thread");
        let closed = rep.closed_after.unwrap_or_else(|| {
            gw.fail(&format!(
                "a slow-loris connection was still open after 10 s: {rep:?}"
            ))
        });
        assert!(
            closed >= Duration::from_millis(1500) && closed < Duration::from_secs(5),
            "slow-loris closed after {closed:?} (header_timeout 2s)"
        );
    }
    let rep = viewer.join().expect("viewer");
    assert!(rep.is_clean(), "the viewer noticed: {}", rep.summary());
    assert!(rep.segments.len() >= 9, "{}", rep.summary());
    gw.assert_alive("after hostile requests");
}

#[test]
fn a_published_path_without_segments_waits_instead_of_failing() {
    require_tools(&["ffmpeg"]);
    let _cpu = light();
    let dir = TestDir::new("hls_wait");
    let (mut gw, hp) = start_gateway(&dir, "", "");
    let src = Source::default().gop(25).seconds(20.0);
    let _pub = publish(&mut gw, &dir, "pub", "live/w", &src);
    // Right after `publishing`, no segment is complete yet.
    let t0 = Instant::now();
    let r = http::get(&format!("{}/live/w/ts.m3u8", base(hp))).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let pl = hlsc::parse_media(&r.text()).unwrap();
    assert!(!pl.segments.is_empty());
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The player page and the index are there.
    let r = http::get(&format!("{}/live/w/", base(hp))).unwrap();
    assert_eq!(r.status, 200);
    assert!(header(&r, "content-type").starts_with("text/html"));
    let r = http::get(&format!("{}/live/w", base(hp))).unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(header(&r, "location"), "/live/w/");
}
