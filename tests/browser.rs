//! The player page in a real browser: headless Chromium (Debian's
//! `chromium`, driven by playwright-core through `tests/browser/play.mjs`)
//! opens `/<path>/` while ffmpeg publishes over SRT, once with hls.js on the
//! LL-HLS variant and once with Chromium's native HLS on the TS variant. It
//! checks what a viewer sees: the video's currentTime advances, it does not
//! stall for long, and the picture is not black.

mod common;

use std::process::Command;
use std::time::Duration;

use common::media::*;
use common::*;

/// The number (or boolean, as 0/1) after `"key":` in a one-line JSON object.
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[at..].trim_start();
    if rest.starts_with("true") {
        return Some(1.0);
    }
    if rest.starts_with("false") {
        return Some(0.0);
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `"key":[...]` is an empty list.
fn json_empty_list(json: &str, key: &str) -> bool {
    json.contains(&format!("\"{key}\":[]"))
}

fn play(gw: &Gateway, url: &str, seconds: u32) -> String {
    let out = Command::new("node")
        .arg("tests/browser/play.mjs")
        .args(["--url", url, "--seconds", &seconds.to_string()])
        .output()
        .unwrap_or_else(|e| gw.fail(&format!("cannot run node: {e}")));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        gw.fail(&format!(
            "play.mjs {url} failed ({}):\n{stdout}\n{}",
            out.status,
            last_lines(&String::from_utf8_lossy(&out.stderr), 20)
        ));
    }
    stdout
}

#[test]
fn chromium_plays_the_player_page_with_hlsjs_and_natively() {
    require_tools(&["ffmpeg", "node", "chromium"]);
    assert!(
        std::path::Path::new("tests/browser/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `make test` (it runs npm ci in tests/browser)"
    );
    let _cpu = heavy();
    let dir = TestDir::new("browser_play");
    let http_port = free_tcp_port();
    let mut gw = Gateway::start_with(&dir, |port| {
        config_with(port, "", "").replace(
            "http:\n  enabled: false\n",
            &format!("http:\n  listen: [\"127.0.0.1:{http_port}\"]\n"),
        )
    });
    let mark = gw.mark();
    let url = srt_url(gw.port, "publish:live/web", PUBLISH_OPTS);
    let src = Source::default().gop(25).seconds(90.0).size(640, 360);
    let mut publisher = publish_ffmpeg(&dir, "pub", &url, &src);
    wait_publishing(
        &mut gw,
        mark,
        "live/web",
        &mut publisher,
        Duration::from_secs(10),
    );

    for (engine, variant) in [("hlsjs", "ll"), ("native", "ts"), ("hlsjs", "ts")] {
        let page =
            format!("http://127.0.0.1:{http_port}/live/web/?engine={engine}&variant={variant}");
        let json = play(&gw, &page, 8);
        let what = format!("{engine}/{variant}: {json}");
        assert_eq!(json_number(&json, "ok"), Some(1.0), "{what}");
        assert!(json.contains(&format!("\"engine\":\"{engine}\"")), "{what}");
        let advanced = json_number(&json, "advanced").unwrap_or(0.0);
        assert!(
            advanced >= 5.0,
            "currentTime advanced only {advanced} s: {what}"
        );
        let stall = json_number(&json, "longestStallMs").unwrap_or(f64::MAX);
        assert!(stall <= 1000.0, "stalled {stall} ms: {what}");
        assert_eq!(
            json_number(&json, "nonBlack"),
            Some(1.0),
            "black picture: {what}"
        );
        assert_eq!(json_number(&json, "width"), Some(640.0), "{what}");
        assert!(json_empty_list(&json, "errors"), "player errors: {what}");
    }
    gw.assert_alive("after the browsers");
}

/// The dashboard (`/` on the API port) in headless Chromium
/// (`tests/browser/dashboard.mjs`): it lists a live stream, its kick button
/// closes a reader, and a broken configuration shows its error location
/// while the running configuration stays.
#[test]
fn chromium_dashboard_lists_kicks_and_shows_config_errors() {
    require_tools(&["ffmpeg", "node", "chromium"]);
    assert!(
        std::path::Path::new("tests/browser/node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `make test` (it runs npm ci in tests/browser)"
    );
    let _cpu = heavy();
    let dir = TestDir::new("browser_dashboard");
    let (http_port, api_port) = (free_tcp_port(), free_tcp_port());
    let token = "dashboard-token-0123456789";
    let mut gw = Gateway::start_with(&dir, |port| {
        config_with(port, "", "").replace(
            "http:\n  enabled: false\napi:\n  enabled: false\n",
            &format!(
                "http:\n  listen: [\"127.0.0.1:{http_port}\"]\napi:\n  listen: [\"127.0.0.1:{api_port}\"]\n  token: \"{token}\"\n"
            ),
        )
    });
    let mark = gw.mark();
    let url = srt_url(gw.port, "publish:live/dash", PUBLISH_OPTS);
    let src = Source::default().gop(25).seconds(90.0);
    let mut publisher = publish_ffmpeg(&dir, "pub", &url, &src);
    wait_publishing(
        &mut gw,
        mark,
        "live/dash",
        &mut publisher,
        Duration::from_secs(10),
    );
    let mut reader = start_decode(
        &dir,
        "reader",
        &srt_url(gw.port, "read:live/dash", READ_OPTS),
        80.0,
    );

    // The reader's id, from the API.
    let api = format!("http://127.0.0.1:{api_port}");
    let mut client = common::http::Client::new();
    let mut reader_id = None;
    for _ in 0..100 {
        let r = client
            .get(&format!("{api}/v1/sessions"))
            .expect("GET /v1/sessions");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        reader_id = v["sessions"].as_array().and_then(|l| {
            l.iter()
                .find(|s| s["role"] == "read")
                .and_then(|s| s["id"].as_str().map(str::to_owned))
        });
        if reader_id.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reader_id = reader_id.unwrap_or_else(|| gw.fail("the reader never showed in /v1/sessions"));

    // A configuration with a value out of range on line 4.
    let broken = dir.file("broken.yaml");
    std::fs::write(
        &broken,
        "srt:\n  listen: [\"127.0.0.1:1\"]\n  max_sessions: 10\n  latency: 1ms\n",
    )
    .unwrap();
    let config_before = std::fs::read(&gw.config_path).unwrap();
    let out = Command::new("node")
        .arg("tests/browser/dashboard.mjs")
        .args([
            "--url",
            &format!("{api}/"),
            "--path",
            "live/dash",
            "--token",
            token,
        ])
        .args(["--kick", &reader_id, "--broken-config"])
        .arg(&broken)
        .output()
        .unwrap_or_else(|e| gw.fail(&format!("cannot run node: {e}")));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        gw.fail(&format!(
            "dashboard.mjs failed ({}):\n{stdout}\n{}",
            out.status,
            last_lines(&String::from_utf8_lossy(&out.stderr), 20)
        ));
    }
    let v: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| gw.fail(&format!("dashboard.mjs printed no JSON ({e}): {stdout}")));
    assert_eq!(v["streamListed"], true, "{v}");
    assert!(v["rowText"].as_str().unwrap_or("").contains("H264"), "{v}");
    assert_eq!(v["kicked"], true, "{v}");
    let error = v["configError"].as_str().unwrap_or("");
    assert!(
        error.contains("request body:4:") && error.contains("srt.latency"),
        "the editor did not show the error's place: {v}"
    );
    assert!(
        v["applyError"]
            .as_str()
            .is_some_and(|e| e.contains("srt.latency")),
        "{v}"
    );
    assert_eq!(v["errors"], serde_json::json!([]), "page errors: {v}");
    assert_eq!(
        v["consoleErrors"],
        serde_json::json!([]),
        "console errors: {v}"
    );
    // The kick reached the reader; the broken configuration changed nothing.
    assert!(
        reader.wait(Duration::from_secs(15)).is_ok(),
        "the kicked reader's ffmpeg did not end"
    );
    assert_eq!(std::fs::read(&gw.config_path).unwrap(), config_before);
    gw.assert_alive("after the dashboard");
}
