//! The layering `lib.rs` promises: `media` and `proto` are sans-IO. Neither
//! imports glommio, sockets or the `io` layer; only `io` (and `main`) may.

use std::path::Path;

/// Source files under `dir`, recursively.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn media_and_proto_import_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let forbidden = [
        "glommio",
        "crate::io",
        "super::super::io",
        "std::net::UdpSocket",
        "std::net::TcpStream",
        "std::net::TcpListener",
        "socket2",
        "libc::",
        "std::thread",
    ];
    let mut offences = Vec::new();
    for layer in ["media", "proto"] {
        let mut files = Vec::new();
        sources(&root.join(layer), &mut files);
        assert!(!files.is_empty(), "no sources under src/{layer}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            // Tests may use real executors; the layer itself may not.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let l = line.trim_start();
                if l.starts_with("//") {
                    continue;
                }
                for bad in forbidden {
                    if l.contains(bad) {
                        offences.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "media/ and proto/ must stay sans-IO:\n{}",
        offences.join("\n")
    );
}
