//! Encryption and access control, as libsrt callers (ffmpeg) meet them.

mod common;

use std::time::Duration;

use common::media::*;
use common::*;

const PASSPHRASE: &str = "0123456789abcdef";

/// Publishes to `publish_sid` with `publish_opts`, then checks that ffprobe
/// reading `read_sid` with `read_opts` sees H.264 + AAC and that a 3 s decode
/// with `decode_opts` is clean.
fn publish_and_play(
    name: &str,
    path: &str,
    publish_sid: &str,
    publish_opts: &str,
    read_sid: &str,
    read_opts: &str,
    decode_opts: &str,
) {
    require_tools(&["ffmpeg", "ffprobe"]);
    let dir = TestDir::new(name);
    let mut gw = Gateway::start(&dir);
    let mark = gw.mark();
    let mut publisher = publish_ffmpeg(
        &dir,
        "publisher",
        &gw.url(publish_sid, &format!("{PUBLISH_OPTS}{publish_opts}")),
        &Source::default().seconds(40.0),
    );
    wait_publishing(&mut gw, mark, path, &mut publisher, Duration::from_secs(15));

    let p = probe(
        &dir,
        "ffprobe",
        &gw.url(read_sid, &format!("{READ_OPTS}{read_opts}")),
        Duration::from_secs(30),
    );
    assert_h264_aac(&gw, &p, &format!("ffprobe of {read_sid} ({read_opts})"));
    decode_clean(
        &gw,
        &dir,
        "decode",
        &gw.url(read_sid, &format!("{READ_OPTS}{decode_opts}")),
        3.0,
    );
    assert!(
        publisher.is_running(),
        "the publisher stopped:\n{}",
        publisher.describe(None)
    );
    gw.assert_alive("after encrypted publish and play");
}

#[test]
fn aes128_caller_publishes_and_plays() {
    let _cpu = light();
    let opts = format!("&passphrase={PASSPHRASE}&pbkeylen=16");
    publish_and_play(
        "aes128",
        "secure/aes128",
        "publish:secure/aes128",
        &opts,
        "read:secure/aes128",
        &opts,
        &opts,
    );
}

/// The path's rule names no key length; an AES-256 caller with the right
/// passphrase is answered with its own key length. The decode reads with
/// AES-128 on the same stream: each session keys itself.
#[test]
fn aes256_caller_accepted_on_aes128_path() {
    let _cpu = light();
    let aes256 = format!("&passphrase={PASSPHRASE}&pbkeylen=32");
    let aes128 = format!("&passphrase={PASSPHRASE}&pbkeylen=16");
    publish_and_play(
        "aes256",
        "secure/aes128",
        "publish:secure/aes128",
        &aes256,
        "read:secure/aes128",
        &aes256,
        &aes128,
    );
}

/// Credentials in both stream-id forms: alice publishes with the `#!::` form,
/// bob reads with the `read:path:user:pass` form.
#[test]
fn credentials_publish_and_read() {
    let _cpu = light();
    publish_and_play(
        "credentials",
        "private/cam",
        "#!::r=private/cam,m=publish,u=alice,s=s3cret",
        "",
        "read:private/cam:bob:hunter22",
        "",
        "",
    );
}

/// An ffmpeg publisher with `streamid` and `opts` must fail (exit non-zero),
/// and the gateway must log a refusal with `reason`.
fn refused(name: &str, streamid: &str, opts: &str, reason: &str) {
    require_tools(&["ffmpeg"]);
    let dir = TestDir::new(name);
    let mut gw = Gateway::start(&dir);
    let mark = gw.mark();
    let url = gw.url(streamid, &format!("{PUBLISH_OPTS}{opts}"));
    let mut caller = publish_ffmpeg(&dir, "caller", &url, &Source::default().seconds(5.0));
    match caller.wait(Duration::from_secs(30)) {
        Ok(f) if !f.status.success() => {}
        Ok(f) => gw.fail(&format!(
            "expected the caller `{streamid}` to be refused (ffmpeg exits non-zero); it exited 0:\n{}",
            caller.describe(Some(&f))
        )),
        Err(e) => gw.fail(&format!(
            "expected the caller `{streamid}` to be refused and exit; {e}"
        )),
    }
    let line = gw.wait_refused(mark, reason, Duration::from_secs(5));
    eprintln!("{name}: refused as expected: {line}");
    if gw.log_since(mark).lines().any(|l| l.contains("publishing")) {
        gw.fail(&format!(
            "the refused caller `{streamid}` was nevertheless logged as publishing"
        ));
    }
    gw.assert_alive("after a refusal");
}

#[test]
fn wrong_passphrase_is_refused() {
    let _cpu = light();
    refused(
        "wrong_passphrase",
        "publish:secure/aes128",
        "&passphrase=not-the-right-one&pbkeylen=16",
        "wrong passphrase",
    );
}

#[test]
fn encrypted_caller_to_unencrypted_path_is_refused() {
    let _cpu = light();
    refused(
        "enc_to_plain",
        "publish:live/enc",
        &format!("&passphrase={PASSPHRASE}&pbkeylen=16"),
        "encryption mismatch",
    );
}

#[test]
fn unencrypted_caller_to_encrypted_path_is_refused() {
    let _cpu = light();
    refused(
        "plain_to_enc",
        "publish:secure/aes128",
        "",
        "encryption mismatch",
    );
}

#[test]
fn publish_to_readonly_path_is_forbidden() {
    let _cpu = light();
    refused("forbidden", "publish:readonly/x", "", "forbidden");
}

#[test]
fn bad_credentials_are_unauthorized() {
    let _cpu = light();
    refused(
        "bad_credentials",
        "publish:private/x:alice:wrong",
        "",
        "unauthorized",
    );
}

#[test]
fn path_without_rule_is_refused() {
    let _cpu = light();
    refused("no_rule", "publish:nowhere/x", "", "no path rule");
}
