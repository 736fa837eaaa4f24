//! The static files the HTTP server offers (player pages, scripts, styles),
//! read once at start from `http.root` into memory, so serving them never
//! touches the disk from a shard.
//!
//! Only regular files are taken, at most [`MAX_FILES`] of at most
//! [`MAX_FILE`] bytes each, never dot-files; `node_modules` is skipped except
//! for hls.js's browser build, which is offered as `vendor/hls.min.js`. A
//! request can only name a key of the table, so it cannot reach anything
//! else on the disk whatever its path says.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;

use crate::media::fnv1a;

pub const MAX_FILES: usize = 512;
pub const MAX_FILE: u64 = 8 << 20;
const MAX_DEPTH: usize = 6;
/// hls.js's browser build, as npm installs it under the root.
const HLS_JS: &str = "node_modules/hls.js/dist/hls.min.js";

/// One file, ready to serve.
#[derive(Debug, Clone)]
pub struct StaticFile {
    pub body: Bytes,
    pub content_type: &'static str,
    /// A strong validator: length and FNV-1a of the contents.
    pub etag: String,
}

/// The table of files, keyed by their path under the root (`player.html`,
/// `vendor/hls.min.js`).
#[derive(Debug, Default)]
pub struct StaticFiles {
    files: HashMap<String, StaticFile>,
}

impl StaticFiles {
    /// Read `root`; problems (a missing root, unreadable or oversized files)
    /// are returned as warnings, and the rest is still served.
    pub fn load(root: &Path) -> (Self, Vec<String>) {
        let mut files = Self::default();
        let mut warnings = Vec::new();
        if !root.is_dir() {
            warnings.push(format!(
                "http.root {}: not a directory; the player pages are not served",
                root.display()
            ));
            return (files, warnings);
        }
        files.walk(root, "", 0, &mut warnings);
        let hls = root.join(HLS_JS);
        if hls.is_file() {
            files.add(&hls, "vendor/hls.min.js", &mut warnings);
        } else {
            warnings.push(format!(
                "{}: missing (run `make` to install hls.js); browsers without native HLS cannot play",
                hls.display()
            ));
        }
        (files, warnings)
    }

    fn walk(&mut self, dir: &Path, prefix: &str, depth: usize, warnings: &mut Vec<String>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                warnings.push(format!("{}: {e}", dir.display()));
                return;
            }
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') || name == "node_modules" {
                continue;
            }
            let key = format!("{prefix}{name}");
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth < MAX_DEPTH {
                self.walk(&entry.path(), &format!("{key}/"), depth + 1, warnings);
            } else if kind.is_file() {
                self.add(&entry.path(), &key, warnings);
            }
        }
    }

    fn add(&mut self, path: &Path, key: &str, warnings: &mut Vec<String>) {
        if self.files.len() >= MAX_FILES {
            warnings.push(format!(
                "{}: more than {MAX_FILES} files; skipped",
                path.display()
            ));
            return;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.len() > MAX_FILE => {
                warnings.push(format!(
                    "{}: larger than {MAX_FILE} bytes; skipped",
                    path.display()
                ));
                return;
            }
            Err(e) => {
                warnings.push(format!("{}: {e}", path.display()));
                return;
            }
            Ok(_) => {}
        }
        match std::fs::read(path) {
            Ok(data) => {
                let etag = format!("\"{:x}-{:016x}\"", data.len(), fnv1a(&data));
                self.files.insert(
                    key.to_owned(),
                    StaticFile {
                        body: Bytes::from(data),
                        content_type: content_type(key),
                        etag,
                    },
                );
            }
            Err(e) => warnings.push(format!("{}: {e}", path.display())),
        }
    }

    pub fn get(&self, key: &str) -> Option<&StaticFile> {
        self.files.get(key)
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The media type for a file name.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("yaml" | "yml") => "application/yaml",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_a_tree_without_dotfiles_and_with_hls_js() {
        let dir = std::env::temp_dir().join(format!("srtgate-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(dir.join("node_modules/hls.js/dist")).unwrap();
        std::fs::create_dir_all(dir.join("node_modules/other")).unwrap();
        std::fs::write(dir.join("player.html"), "<p>hi</p>").unwrap();
        std::fs::write(dir.join("sub/app.js"), "1").unwrap();
        std::fs::write(dir.join(".secret"), "no").unwrap();
        std::fs::write(dir.join("node_modules/other/x.js"), "no").unwrap();
        std::fs::write(dir.join(HLS_JS), "hls").unwrap();
        let (files, warnings) = StaticFiles::load(&dir);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(files.len(), 3);
        let page = files.get("player.html").unwrap();
        assert_eq!(&page.body[..], b"<p>hi</p>");
        assert_eq!(page.content_type, "text/html; charset=utf-8");
        assert!(files.get("sub/app.js").is_some());
        assert_eq!(&files.get("vendor/hls.min.js").unwrap().body[..], b"hls");
        assert!(files.get(".secret").is_none());
        assert!(files.get("node_modules/other/x.js").is_none());
        std::fs::remove_dir_all(&dir).unwrap();

        let (files, warnings) = StaticFiles::load(&dir);
        assert!(files.is_empty());
        assert!(warnings[0].contains("not a directory"), "{warnings:?}");
    }
}
