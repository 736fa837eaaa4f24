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
