//! The running configuration, process-wide: which file it came from, its
//! generation, and how far each shard has applied it.
//!
//! A change (API `PUT`/`PATCH`, `POST /v1/config/reload`, SIGHUP) is
//! validated, written (API writes only), then published here as a new
//! generation. Each shard notices within [`POLL`] and applies the difference
//! itself ([`crate::io::reload`]); whoever made the change may wait until
//! every shard has ([`Control::wait_applied`]). One change at a time:
//! [`Control::begin`] refuses a second while one is in progress.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::config::diff::Changes;
use crate::config::Config;

/// How often shards look for a new generation.
pub const POLL: Duration = Duration::from_millis(50);

pub struct Control {
    file: PathBuf,
    pub started: Instant,
    pub started_at: SystemTime,
    pub shards: usize,
    current: Mutex<(u64, Arc<Config>)>,
    generation: AtomicU64,
    applied: Vec<AtomicU64>,
    /// Sessions closed by reloads, all shards.
    closed: AtomicU64,
    busy: AtomicBool,
}

/// The right to make one configuration change; released on drop.
pub struct Change<'a>(&'a Control);

impl Drop for Change<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

impl Control {
    pub fn new(file: PathBuf, config: Arc<Config>, shards: usize) -> Self {
        Self {
            file,
            started: Instant::now(),
            started_at: SystemTime::now(),
            shards,
            current: Mutex::new((1, config)),
            generation: AtomicU64::new(1),
            applied: (0..shards).map(|_| AtomicU64::new(1)).collect(),
            closed: AtomicU64::new(0),
            busy: AtomicBool::new(false),
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Arc<Config>)> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running configuration and its generation.
    pub fn current(&self) -> (u64, Arc<Config>) {
        let c = self.lock();
        (c.0, c.1.clone())
    }

    /// The newest generation (cheap; shards poll it).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Start a change; `None` while another is in progress.
    pub fn begin(&self) -> Option<Change<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Change(self))
    }

    /// Publish `config` as the new generation; returns it and what changed.
    pub fn publish(&self, _change: &Change<'_>, config: Config) -> (u64, Changes) {
        let mut c = self.lock();
        let changes = Changes::between(&c.1, &config);
        let gen = c.0 + 1;
        *c = (gen, Arc::new(config));
        self.generation.store(gen, Ordering::Release);
        (gen, changes)
    }

    /// Shard `shard` has applied generation `gen`, closing `closed` sessions.
    pub fn applied(&self, shard: usize, gen: u64, closed: usize) {
        self.closed.fetch_add(closed as u64, Ordering::Relaxed);
        if let Some(a) = self.applied.get(shard) {
            a.store(gen, Ordering::Release);
        }
    }

    pub fn closed_sessions(&self) -> u64 {
        self.closed.load(Ordering::Relaxed)
    }

    /// Whether every shard has applied generation `gen`.
    pub fn all_applied(&self, gen: u64) -> bool {
        self.applied
            .iter()
            .all(|a| a.load(Ordering::Acquire) >= gen)
    }

    /// Wait (on a shard, without blocking it) until every shard has applied
    /// `gen`; false after `timeout`.
    pub async fn wait_applied(&self, gen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.all_applied(gen) {
            if Instant::now() >= deadline {
                return false;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// Write `text` to `path` atomically: a temporary file beside it, fsync,
/// rename over, fsync of the directory. Blocking: run it off the shards.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "srtgate.yaml".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            let _ = f.set_permissions(meta.permissions());
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_change_at_a_time_and_generations_grow() {
        let c = Control::new("x.yaml".into(), Arc::new(Config::default()), 2);
        let change = c.begin().expect("free");
        assert!(c.begin().is_none());
        let mut next = Config::default();
        next.srt.reader_queue = 64;
        let (gen, changes) = c.publish(&change, next);
        drop(change);
        assert_eq!(gen, 2);
        assert!(changes.srt_settings);
        assert!(!c.all_applied(2));
        c.applied(0, 2, 1);
        c.applied(1, 2, 0);
        assert!(c.all_applied(2));
        assert_eq!(c.closed_sessions(), 1);
        assert!(c.begin().is_some());
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = std::env::temp_dir().join(format!("srtgate-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.yaml");
        std::fs::write(&f, "old").unwrap();
        write_atomically(&f, "new: 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new: 1\n");
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
