//! The control API with real peers: ffmpeg publishes and reads over SRT
//! while the tests use every endpoint, check each answer against
//! `html/openapi.yaml`, kick sessions, reload the configuration 50 times
//! under a live stream, change path rules and listen addresses, and call
//! HTTP hooks that allow, refuse, are down, or hang.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::http::{Client, Response};
use common::media::*;
use common::openapi::Spec;
use common::*;
use serde_json::Value;

const TOKEN: &str = "test-token-0123456789";

/// A gateway with the API on 127.0.0.1 and [::1] (token set) and HTTP on.
/// `extra` is YAML inserted at the top level (e.g. a `hooks:` section).
fn start(dir: &TestDir, extra: &str) -> (Gateway, u16, u16) {
    let api = free_tcp_port();
    let http = free_tcp_port();
    let gw = Gateway::start_with(dir, |port| {
        config_with(port, "", "  - name: \"locked/*\"\n    read: { allow: false }\n").replace(
            "http:\n  enabled: false\napi:\n  enabled: false\n",
            &format!(
                "http:\n  listen: [\"127.0.0.1:{http}\"]\napi:\n  listen: [\"127.0.0.1:{api}\", \"[::1]:{api}\"]\n  token: \"{TOKEN}\"\n{extra}"
            ),
        )
    });
    (gw, api, http)
}

/// Calls the API and checks every answer against the OpenAPI document.
struct Api {
    base: String,
    spec: Spec,
    client: Client,
    /// Operations (method, template) exercised.
    seen: BTreeSet<(String, String)>,
}

const AUTH: (&str, &str) = ("authorization", "Bearer test-token-0123456789");

impl Api {
    fn new(port: u16) -> Api {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            spec: Spec::load("html/openapi.yaml"),
            client: Client::with_timeout(Duration::from_secs(15)),
            seen: BTreeSet::new(),
        }
    }

    /// `template` is the OpenAPI path the request matches.
    #[track_caller]
    fn call(
        &mut self,
        gw: &Gateway,
        method: &str,
        path: &str,
        template: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let url = format!("{}{path}", self.base);
        let res = match body {
            Some(b) => self.client.request_body(method, &url, headers, b),
            None => self.client.request(method, &url, headers),
        }
        .unwrap_or_else(|e| gw.fail(&format!("{method} {path}: {e}")));
        if let Err(e) = self.spec.check(
            method,
            template,
            res.status,
            res.header("content-type"),
            &res.body,
        ) {
            gw.fail(&format!(
                "{method} {path} answered {} which html/openapi.yaml does not allow: {e}\n{}",
                res.status,
                res.text()
            ));
        }
        self.seen.insert((method.to_owned(), template.to_owned()));
        res
    }

    #[track_caller]
    fn get(&mut self, gw: &Gateway, path: &str, template: &str) -> Value {
        let res = self.call(gw, "GET", path, template, &[AUTH], None);
        if res.status != 200 {
            gw.fail(&format!("GET {path}: {}", res.describe()));
        }
        json(gw, &res)
    }

    #[track_caller]
    fn patch(&mut self, gw: &Gateway, patch: &str) -> Response {
        self.call(
            gw,
            "PATCH",
            "/v1/config",
            "/v1/config",
            &[AUTH, ("content-type", "application/merge-patch+json")],
            Some(patch.as_bytes()),
        )
    }
}

#[track_caller]
fn json(gw: &Gateway, res: &Response) -> Value {
    serde_json::from_slice(&res.body)
        .unwrap_or_else(|e| gw.fail(&format!("not JSON ({e}): {}", res.text())))
}

/// The session of `role` on `path` in `GET /v1/sessions`.
fn session_id(sessions: &Value, path: &str, role: &str) -> Option<String> {
    sessions["sessions"].as_array()?.iter().find_map(|s| {
        (s["path"] == path && s["role"] == role).then(|| s["id"].as_str().unwrap_or("").to_owned())
    })
}

fn publish(gw: &mut Gateway, dir: &TestDir, name: &str, path: &str, seconds: f64) -> Peer {
    let mark = gw.mark();
    let url = srt_url(gw.port, &format!("publish:{path}"), PUBLISH_OPTS);
    let src = Source::default().gop(25).seconds(seconds);
    let mut p = publish_ffmpeg(dir, name, &url, &src);
    wait_publishing(gw, mark, path, &mut p, Duration::from_secs(10));
    p
}

/// Poll `f` every 100 ms until it is true or `timeout` passes.
fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A metric sample's value: the line that starts with `series ` exactly.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn every_endpoint_answers_as_documented_with_live_sessions() {
    require_tools(&["ffmpeg"]);
    let _cpu = heavy();
    let dir = TestDir::new("api_endpoints");
    let (mut gw, api_port, http_port) = start(&dir, "");
    let mut api = Api::new(api_port);
    assert!(
        api.spec.lint().is_empty(),
        "openapi.yaml: {:?}",
        api.spec.lint()
    );

    let mut publisher = publish(&mut gw, &dir, "pub", "live/api", 60.0);
    let read_url = srt_url(gw.port, "read:live/api", READ_OPTS);
    let mut reader = start_decode(&dir, "reader", &read_url, 50.0);
    // An HLS viewer: a playlist and a segment over the HTTP port.
    let mut hls = Client::with_timeout(Duration::from_secs(15));
    let playlist = format!("http://127.0.0.1:{http_port}/live/api/ts.m3u8");
    let ok = eventually(Duration::from_secs(10), || {
        hls.get(&playlist).is_ok_and(|r| r.status == 200)
    });
    assert!(ok, "the HLS playlist did not appear");

    // Health, over IPv4 and IPv6.
    let health = api.get(&gw, "/v1/health", "/v1/health");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ports"]["srt"][0], gw.port);
    assert_eq!(health["ports"]["api"][0], api_port);
    let mut v6 = Client::new();
    let r = v6
        .get(&format!("http://[::1]:{api_port}/v1/health"))
        .unwrap_or_else(|e| gw.fail(&format!("IPv6 health: {e}")));
    assert_eq!(r.status, 200, "IPv6: {}", r.describe());

    // Streams: tracks, publisher, readers by kind.
    let ok = eventually(Duration::from_secs(10), || {
        let s = api.get(&gw, "/v1/streams/live/api", "/v1/streams/{path}");
        s["readers"]["srt"] == 1
            && s["readers"]["hls"] == 1
            && s["tracks"].as_array().is_some_and(|t| t.len() == 2)
    });
    let stream = api.get(&gw, "/v1/streams/live/api", "/v1/streams/{path}");
    assert!(
        ok,
        "stream view never showed 1 SRT reader, 1 HLS viewer and 2 tracks: {stream}"
    );
    assert_eq!(
        stream["tracks"],
        serde_json::json!(["H264", "AAC"]),
        "{stream}"
    );
    assert_eq!(stream["publisher"]["role"], "publish");
    assert_eq!(
        stream["sessions"].as_array().map(Vec::len),
        Some(2),
        "{stream}"
    );
    // The stream description: what ffmpeg encoded (320x240, 25 fps, x264's
    // SPS and PPS; AAC 48 kHz mono), as the outputs see it.
    let ok = eventually(Duration::from_secs(10), || {
        let s = api.get(&gw, "/v1/streams/live/api", "/v1/streams/{path}");
        s["description"][0]["frame_rate"].is_number()
    });
    let stream = api.get(&gw, "/v1/streams/live/api", "/v1/streams/{path}");
    assert!(ok, "no frame rate in the description: {stream}");
    let video = &stream["description"][0];
    assert_eq!(video["codec"], "H264", "{stream}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240)),
        "{stream}"
    );
    assert_eq!(video["frame_rate"].as_f64(), Some(25.0), "{stream}");
    assert!(
        video["codec_string"]
            .as_str()
            .is_some_and(|c| c.starts_with("avc1.")),
        "{stream}"
    );
    let sets = video["parameter_sets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        sets.len() >= 2 && sets[0].as_str().is_some_and(|h| h.starts_with("67")),
        "SPS (NAL type 7) then PPS expected: {stream}"
    );
    let audio = &stream["description"][1];
    assert_eq!(audio["codec"], "AAC", "{stream}");
    assert_eq!(audio["sample_rate"].as_u64(), Some(48_000), "{stream}");
    assert_eq!(audio["channels"].as_u64(), Some(1), "{stream}");
    assert!(
        audio["config"].as_str().is_some_and(|c| c.len() == 4),
        "AudioSpecificConfig: {stream}"
    );
    assert_eq!(stream["ts_output"], "passthrough", "{stream}");
    assert_eq!(stream["ts_errors"], 0, "{stream}");
    assert!(health["relay"]["dropped"].is_u64(), "{health}");
    let list = api.get(&gw, "/v1/streams", "/v1/streams");
    assert_eq!(list["streams"][0]["path"], "live/api", "{list}");
    let r = api.call(
        &gw,
        "GET",
        "/v1/streams/live/nothing",
        "/v1/streams/{path}",
        &[AUTH],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.describe());

    // Sessions, one by id, and the HLS viewer.
    let sessions = api.get(&gw, "/v1/sessions", "/v1/sessions");
    let pub_id = session_id(&sessions, "live/api", "publish").expect("publisher listed");
    let reader_id = session_id(&sessions, "live/api", "read").expect("reader listed");
    let one = api.get(&gw, &format!("/v1/sessions/{pub_id}"), "/v1/sessions/{id}");
    assert_eq!(one["path"], "live/api");
    assert!(one["stats"]["bytes_in"].as_u64().unwrap_or(0) > 0, "{one}");
    let viewer = sessions["hls_viewers"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(viewer.starts_with("hls-"), "{sessions}");
    let v = api.get(&gw, &format!("/v1/sessions/{viewer}"), "/v1/sessions/{id}");
    assert_eq!(v["path"], "live/api");
    let r = api.call(
        &gw,
        "GET",
        "/v1/sessions/00000000000000ff",
        "/v1/sessions/{id}",
        &[AUTH],
        None,
    );
    assert_eq!(r.status, 404);

    // Prometheus.
    let r = api.call(&gw, "GET", "/metrics", "/metrics", &[], None);
    let m = r.text();
    assert_eq!(
        metric(&m, "srt_connections_current{mode=\"publish\"}"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "srt_connections_current{mode=\"read\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(metric(&m, "srt_connections_total").unwrap_or(0.0) >= 2.0);
    assert_eq!(
        metric(&m, "hls_viewers{path=\"live/api\"}"),
        Some(1.0),
        "{m}"
    );
    let rtt = format!("srt_session_rtt_seconds{{id=\"{pub_id}\",path=\"live/api\",mode=\"publish\",protocol=\"srt\"}}");
    assert!(metric(&m, &rtt).is_some(), "no {rtt} in\n{m}");
    let ok = eventually(Duration::from_secs(5), || {
        let m = api
            .call(&gw, "GET", "/metrics", "/metrics", &[], None)
            .text();
        metric(&m, "srtgate_path_bytes_received_total{path=\"live/api\"}").unwrap_or(0.0) > 0.0
            && metric(&m, "srtgate_path_bytes_sent_total{path=\"live/api\"}").unwrap_or(0.0) > 0.0
    });
    assert!(ok, "per-path bytes never counted");
    assert!(metric(&m, "process_resident_memory_bytes").unwrap_or(0.0) > 1e6);

    // The configuration, which needs the token.
    let r = api.call(&gw, "GET", "/v1/config", "/v1/config", &[], None);
    assert_eq!(r.status, 401, "{}", r.describe());
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Bearer")));
    let config = api.get(&gw, "/v1/config", "/v1/config");
    assert_eq!(config["srt"]["latency"], "120ms", "{config}");

    // Refusals, each with a JSON error naming the problem.
    let wrong = ("authorization", "Bearer not-the-token-at-all");
    let sid = format!("/v1/sessions/{reader_id}");
    let r = api.call(&gw, "DELETE", &sid, "/v1/sessions/{id}", &[], None);
    assert_eq!(r.status, 401, "{}", r.describe());
    let r = api.call(&gw, "DELETE", &sid, "/v1/sessions/{id}", &[wrong], None);
    assert_eq!(r.status, 401, "{}", r.describe());
    assert!(r.text().contains("wrong API token"), "{}", r.text());
    let bad_json = api.patch(&gw, "{\"srt\": {\"latency\": ");
    assert_eq!(bad_json.status, 400, "{}", bad_json.describe());
    assert!(
        bad_json.text().contains("malformed JSON"),
        "{}",
        bad_json.text()
    );
    let unknown = api.patch(&gw, "{\"srt\": {\"latncy\": \"200ms\"}}");
    assert_eq!(unknown.status, 400);
    let e = json(&gw, &unknown);
    assert!(
        e["error"]
            .as_str()
            .unwrap_or("")
            .contains("unknown key `latncy`"),
        "{e}"
    );
    assert!(e["hint"].as_str().unwrap_or("").contains("latency"), "{e}");
    let r = api.call(
        &gw,
        "PATCH",
        "/v1/config",
        "/v1/config",
        &[AUTH, ("content-type", "text/plain")],
        Some(b"{}"),
    );
    assert_eq!(r.status, 415, "{}", r.describe());
    let huge = vec![b'#'; 2 << 20];
    let r = api.call(&gw, "PUT", "/v1/config", "/v1/config", &[AUTH], Some(&huge));
    assert_eq!(r.status, 413, "{}", r.describe());
    let r = api.call(&gw, "POST", "/v1/streams", "/v1/streams", &[AUTH], None);
    assert_eq!(r.status, 405, "{}", r.describe());
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = api.client.get(&format!("{}/v1/nothing", api.base)).unwrap();
    assert_eq!(r.status, 404);
    assert!(r.text().contains("no such endpoint"), "{}", r.text());
    let r = api.call(
        &gw,
        "DELETE",
        &format!("/v1/sessions/{viewer}"),
        "/v1/sessions/{id}",
        &[AUTH],
        None,
    );
    assert_eq!(r.status, 409, "{}", r.describe());
    let config_after = api.get(&gw, "/v1/health", "/v1/health");
    assert_eq!(
        config_after["config_generation"], health["config_generation"],
        "a refused change changed the configuration"
    );

    // A dry run reports and changes nothing; the file is untouched.
    let file_before = std::fs::read(&gw.config_path).unwrap();
    let dry = api.call(
        &gw,
        "PUT",
        "/v1/config?dry_run=true",
        "/v1/config",
        &[AUTH],
        Some(&[file_before.as_slice(), b"\n"].concat()),
    );
    assert_eq!(dry.status, 200, "{}", dry.describe());
    assert_eq!(json(&gw, &dry)["applied"], false);
    assert_eq!(std::fs::read(&gw.config_path).unwrap(), file_before);

    // Kick the reader: it goes, its ffmpeg ends, the publisher stays.
    let mark = gw.mark();
    let r = api.call(&gw, "DELETE", &sid, "/v1/sessions/{id}", &[AUTH], None);
    assert_eq!(r.status, 202, "{}", r.describe());
    gw.wait_log(mark, &["kicked through the API"], Duration::from_secs(5));
    let res = reader.wait(Duration::from_secs(15));
    assert!(
        res.is_ok(),
        "the kicked reader's ffmpeg did not end: {}",
        reader.describe(None)
    );
    let gone = eventually(Duration::from_secs(5), || {
        let s = api.get(&gw, "/v1/sessions", "/v1/sessions");
        session_id(&s, "live/api", "read").is_none()
            && session_id(&s, "live/api", "publish").is_some()
    });
    assert!(
        gone,
        "the reader was not removed, or the publisher went too"
    );

    // Reload from the file (unchanged: nothing to do) and the description.
    let r = api.call(
        &gw,
        "POST",
        "/v1/config/reload",
        "/v1/config/reload",
        &[AUTH],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = api.call(
        &gw,
        "GET",
        "/v1/openapi.yaml",
        "/v1/openapi.yaml",
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("openapi:"));
    let r = api.call(&gw, "GET", "/", "/", &[], None);
    assert!(
        r.text().contains("<html"),
        "dashboard page: {}",
        r.describe()
    );

    // Every documented operation was exercised.
    let missing: Vec<_> = api
        .spec
        .operations()
        .into_iter()
        .filter(|(m, t)| !api.seen.contains(&(m.clone(), t.clone())) && t != "/static/{file}")
        .collect();
    assert!(missing.is_empty(), "operations not exercised: {missing:?}");
    publisher.kill();
    gw.assert_alive("end of test");
}

/// 50 reloads (PUT, PATCH, POST reload, SIGHUP) under a live publisher and
/// reader: both sessions live through all of them and the reader decodes
/// without an error.
#[test]
fn fifty_reloads_do_not_disturb_a_live_stream() {
    require_tools(&["ffmpeg"]);
    let _cpu = heavy();
    let dir = TestDir::new("api_reloads");
    let (mut gw, api_port, _) = start(&dir, "");
    let mut api = Api::new(api_port);
    let mut publisher = publish(&mut gw, &dir, "pub", "live/steady", 60.0);
    let read_url = srt_url(gw.port, "read:live/steady", READ_OPTS);
    let mut reader = start_decode(&dir, "reader", &read_url, 16.0);
    std::thread::sleep(Duration::from_millis(1500));
    let before = api.get(&gw, "/v1/sessions", "/v1/sessions");
    let ids = (
        session_id(&before, "live/steady", "publish"),
        session_id(&before, "live/steady", "read"),
    );
    assert!(ids.0.is_some() && ids.1.is_some(), "{before}");
    let original = std::fs::read_to_string(&gw.config_path).unwrap();
    let mut last_gen = 0;
    for i in 0..50 {
        let res = match i % 5 {
            // A new rule for another path, and a changed one.
            0 => api.call(&gw, "PUT", "/v1/config", "/v1/config", &[AUTH], Some(
                original.replace("  - name: \"live/*\"\n", &format!("  - name: \"other{i}/*\"\n    max_readers: {}\n  - name: \"live/*\"\n", i + 1)).as_bytes(),
            )),
            1 => api.patch(&gw, &format!("{{\"srt\": {{\"reader_queue\": {}}}}}", 400 + i)),
            2 => api.patch(&gw, &format!("{{\"hls\": {{\"window\": {}}}, \"srtla\": {{\"max_groups\": {}}}}}", 3 + i % 4, 10 + i)),
            3 => {
                std::fs::write(&gw.config_path, original.replace("latency: 120ms", &format!("latency: {}ms", 120 + i))).unwrap();
                api.call(&gw, "POST", "/v1/config/reload", "/v1/config/reload", &[AUTH], None)
            }
            _ => {
                std::fs::write(&gw.config_path, &original).unwrap();
                // SIGHUP, then a reload through the API that finds it applied.
                let mark = gw.mark();
                unsafe { libc::kill(gw.pid() as i32, libc::SIGHUP) };
                gw.wait_log(mark, &["SIGHUP: configuration reloaded"], Duration::from_secs(5));
                api.call(&gw, "POST", "/v1/config/reload", "/v1/config/reload", &[AUTH], None)
            }
        };
        if res.status != 200 {
            gw.fail(&format!("reload {i}: {}", res.describe()));
        }
        let v = json(&gw, &res);
        let gen = v["generation"].as_u64().unwrap_or(0);
        assert!(
            gen > last_gen,
            "reload {i}: generation {gen} after {last_gen}"
        );
        last_gen = gen;
        assert_eq!(v["closed_sessions"], 0, "reload {i} closed a session: {v}");
    }
    let after = api.get(&gw, "/v1/sessions", "/v1/sessions");
    assert_eq!(
        (
            session_id(&after, "live/steady", "publish"),
            session_id(&after, "live/steady", "read")
        ),
        ids,
        "the publisher or the reader was replaced during the reloads"
    );
    let res = reader.wait(Duration::from_secs(40));
    assert_clean_decode(&gw, &reader, &res, "reader through 50 reloads");
    let stream = api.get(&gw, "/v1/streams/live/steady", "/v1/streams/{path}");
    assert_eq!(stream["publisher"]["stats"]["ts_errors"], 0, "{stream}");
    publisher.kill();
    gw.assert_alive("after 50 reloads");
}

/// Changed rules close the sessions they refuse (and only those), an invalid
/// configuration changes nothing, a taken port is refused, and a new SRT
/// listen address rebinds.
#[test]
fn rule_and_listener_changes_apply_to_running_sessions() {
    require_tools(&["ffmpeg"]);
    let _cpu = heavy();
    let dir = TestDir::new("api_rules");
    let (mut gw, api_port, _) = start(&dir, "");
    let mut api = Api::new(api_port);
    let mut publisher = publish(&mut gw, &dir, "pub", "live/ruled", 60.0);
    let mut reader = start_decode(
        &dir,
        "reader",
        &srt_url(gw.port, "read:live/ruled", READ_OPTS),
        40.0,
    );
    assert!(eventually(Duration::from_secs(10), || {
        session_id(
            &api.get(&gw, "/v1/sessions", "/v1/sessions"),
            "live/ruled",
            "read",
        )
        .is_some()
    }));

    // An invalid configuration: 400 with its place; file and config unchanged.
    let file_before = std::fs::read(&gw.config_path).unwrap();
    let gen_before = api.get(&gw, "/v1/health", "/v1/health")["config_generation"].clone();
    let bad = String::from_utf8(file_before.clone())
        .unwrap()
        .replace("latency: 120ms", "latency: 1ms");
    let line = bad
        .lines()
        .position(|l| l.contains("latency: 1ms"))
        .unwrap()
        + 1;
    let r = api.call(
        &gw,
        "PUT",
        "/v1/config",
        "/v1/config",
        &[AUTH],
        Some(bad.as_bytes()),
    );
    assert_eq!(r.status, 400, "{}", r.describe());
    let e = json(&gw, &r);
    assert_eq!(
        (e["line"].as_u64(), e["key"].as_str()),
        (Some(line as u64), Some("srt.latency")),
        "{e}"
    );
    assert_eq!(e["file"], "request body");
    assert_eq!(
        std::fs::read(&gw.config_path).unwrap(),
        file_before,
        "a refused PUT wrote the file"
    );
    assert_eq!(
        api.get(&gw, "/v1/health", "/v1/health")["config_generation"],
        gen_before
    );

    // Reading live/* now needs credentials: the reader is closed, the
    // publisher stays.
    let mark = gw.mark();
    let r = api.patch(
        &gw,
        r#"{"paths": [{"name": "live/*", "read": {"credentials": [{"user": "viewer", "pass": "letmein1"}]}}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(json(&gw, &r)["closed_sessions"], 1, "{}", r.text());
    gw.wait_log(
        mark,
        &[
            "closing session after a configuration reload",
            "its credentials are no longer accepted",
        ],
        Duration::from_secs(5),
    );
    assert!(
        reader.wait(Duration::from_secs(15)).is_ok(),
        "the refused reader did not end"
    );
    let s = api.get(&gw, "/v1/sessions", "/v1/sessions");
    assert!(
        session_id(&s, "live/ruled", "publish").is_some(),
        "the publisher was closed too: {s}"
    );
    let written = std::fs::read_to_string(&gw.config_path).unwrap();
    assert!(
        written.contains("letmein1"),
        "the PATCH was not written to the file"
    );

    // A port held by another program: 409 naming it, nothing applied.
    let squatter = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let r = api.patch(
        &gw,
        &format!("{{\"srt\": {{\"listen\": [\"127.0.0.1:{taken}\"]}}}}"),
    );
    assert_eq!(r.status, 409, "{}", r.describe());
    assert!(
        r.text().contains(&taken.to_string()) && r.text().contains("in use"),
        "{}",
        r.text()
    );
    drop(squatter);

    // Move SRT to a new port: the old listener's sessions are closed, a new
    // publisher gets in on the new port.
    let new_port = free_udp_port();
    let mark = gw.mark();
    let r = api.patch(
        &gw,
        &format!("{{\"srt\": {{\"listen\": [\"127.0.0.1:{new_port}\"]}}}}"),
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    gw.wait_log(
        mark,
        &["its listen address was removed"],
        Duration::from_secs(5),
    );
    assert!(
        publisher.wait(Duration::from_secs(15)).is_ok(),
        "the publisher on the old port did not end"
    );
    gw.port = new_port;
    let mut second = publish(&mut gw, &dir, "pub2", "live/moved", 30.0);
    let s = api.get(&gw, "/v1/health", "/v1/health");
    assert_eq!(s["ports"]["srt"][0], new_port);
    second.kill();
    gw.assert_alive("after the rule and listener changes");
}

/// A hook service of the test's own: answers by the request's path
/// (`/allow` 204, `/deny` 403, `/hang` never), records what it got.
struct HookServer {
    port: u16,
    got: Arc<Mutex<Vec<(String, Value)>>>,
}

impl HookServer {
    fn start() -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let record = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || serve_hook(stream, &record));
            }
        });
        HookServer { port, got }
    }

    fn url(&self, what: &str) -> String {
        format!("http://127.0.0.1:{}/{what}", self.port)
    }

    fn calls(&self, action: &str, path: &str) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, v)| v["action"] == action && v["path"] == path)
            .count()
    }
}

fn serve_hook(stream: TcpStream, record: &Mutex<Vec<(String, Value)>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line.split(' ').nth(1).unwrap_or("").to_owned();
    let mut len = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    record.lock().unwrap().push((target.clone(), value));
    let mut stream = stream;
    match target.as_str() {
        "/hang" => std::thread::sleep(Duration::from_secs(5)),
        "/deny" => {
            let _ = stream.write_all(
                b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
        _ => {
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    }
}

#[test]
fn hooks_allow_refuse_fail_and_time_out() {
    require_tools(&["ffmpeg"]);
    let _cpu = heavy();
    let dir = TestDir::new("api_hooks");
    let hooks = HookServer::start();
    let down = format!("http://127.0.0.1:{}/down", free_tcp_port());
    let extra = format!(
        "hooks:\n  on_publish: \"{}\"\n  on_unpublish: \"{}\"\n  on_read: \"{down}\"\n  on_read_end: \"{}\"\n  timeout: 500ms\n",
        hooks.url("allow"),
        hooks.url("allow"),
        hooks.url("allow"),
    );
    let (mut gw, api_port, _) = start(&dir, &extra);
    let mut api = Api::new(api_port);

    // Allowed publisher: the hook got who and what.
    let mut publisher = publish(&mut gw, &dir, "pub", "live/hooked", 60.0);
    assert_eq!(hooks.calls("on_publish", "live/hooked"), 1);
    let body = hooks.got.lock().unwrap()[0].1.clone();
    assert_eq!(
        (body["protocol"].as_str(), body["role"].as_str()),
        (Some("srt"), Some("publish")),
        "{body}"
    );
    assert!(
        body["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{body}"
    );

    // on_read is down and hooks.on_failure is deny: the reader is refused.
    let mark = gw.mark();
    let url = srt_url(gw.port, "read:live/hooked", READ_OPTS);
    let mut refused = start_decode(&dir, "refused", &url, 3.0);
    gw.wait_log(
        mark,
        &[
            "refused by a hook",
            "cannot connect",
            "hooks.on_failure is deny",
        ],
        Duration::from_secs(5),
    );
    let res = refused.wait(Duration::from_secs(15));
    assert!(
        res.is_ok_and(|f| !f.stderr.trim().is_empty() || !f.status.success()),
        "the refused reader decoded as if let in"
    );

    // on_failure: allow lets the same reader in; on_read_end follows its end.
    let r = api.patch(&gw, r#"{"hooks": {"on_failure": "allow"}}"#);
    assert_eq!(r.status, 200, "{}", r.describe());
    decode_clean(&gw, &dir, "allowed", &url, 3.0);
    assert!(eventually(Duration::from_secs(5), || hooks
        .calls("on_read_end", "live/hooked")
        >= 1));

    // A hook that answers 403 refuses a publisher.
    let r = api.patch(
        &gw,
        &format!(
            "{{\"hooks\": {{\"on_publish\": \"{}\"}}}}",
            hooks.url("deny")
        ),
    );
    assert_eq!(r.status, 200);
    let mark = gw.mark();
    let src = Source::default().gop(25).seconds(5.0);
    let mut denied = publish_ffmpeg(
        &dir,
        "denied",
        &srt_url(gw.port, "publish:live/denied", PUBLISH_OPTS),
        &src,
    );
    gw.wait_log(
        mark,
        &["refused by a hook", "answered 403"],
        Duration::from_secs(5),
    );
    let _ = denied.wait(Duration::from_secs(15));
    let streams = api.get(&gw, "/v1/streams", "/v1/streams");
    assert!(!streams.to_string().contains("live/denied"), "{streams}");

    // A hook that never answers: refused after hooks.timeout (deny again).
    let r = api.patch(
        &gw,
        &format!(
            "{{\"hooks\": {{\"on_publish\": \"{}\", \"on_failure\": \"deny\"}}}}",
            hooks.url("hang")
        ),
    );
    assert_eq!(r.status, 200);
    let mark = gw.mark();
    let mut hung = publish_ffmpeg(
        &dir,
        "hung",
        &srt_url(gw.port, "publish:live/hung", PUBLISH_OPTS),
        &src,
    );
    gw.wait_log(
        mark,
        &["refused by a hook", "no answer within 500 ms"],
        Duration::from_secs(5),
    );
    let _ = hung.wait(Duration::from_secs(15));
    let m = api
        .call(&gw, "GET", "/metrics", "/metrics", &[], None)
        .text();
    assert!(
        metric(
            &m,
            "srtgate_refusals_total{protocol=\"srt\",reason=\"hook\"}"
        )
        .unwrap_or(0.0)
            >= 3.0,
        "{m}"
    );

    // The allowed publisher's end is told to on_unpublish.
    publisher.kill();
    assert!(eventually(Duration::from_secs(10), || hooks
        .calls("on_unpublish", "live/hooked")
        == 1));
    gw.assert_alive("after the hooks");
}
