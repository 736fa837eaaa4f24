//! The process-wide directory of paths: who publishes where, and which shards
//! have readers waiting for a path.
//!
//! Touched only when sessions start and end (never per packet or per frame), so a
//! plain mutex is fine here. Media itself never passes through this module: the
//! owning shard forwards it to the interested shards (see [`crate::media::hub`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::Codec;

/// Shards are identified by their index; interest is a bit set (at most 64 shards).
pub const MAX_SHARDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publisher {
    pub shard: usize,
    pub session: u64,
    /// Increases with every new publisher of any path; stale messages carry old ones.
    pub gen: u64,
}

#[derive(Default)]
struct PathState {
    publisher: Option<Publisher>,
    interest: u64,
    /// The current publisher's tracks, once known.
    tracks: Vec<Codec>,
}

/// A successful claim of a path by a publisher.
#[derive(Debug)]
pub struct Claim {
    pub gen: u64,
    /// Shards with readers of this path.
    pub interest: u64,
    /// The publisher that was taken over, if any: it must be told to stop.
    pub replaced: Option<Publisher>,
}

#[derive(Default)]
pub struct Registry {
    paths: Mutex<HashMap<String, PathState>>,
    next_gen: AtomicU64,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PathState>> {
        // A panic while holding this lock cannot leave the map half-updated in a way
        // that matters more than refusing all service; keep going.
        self.paths.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn publisher(&self, path: &str) -> Option<Publisher> {
        self.lock().get(path).and_then(|p| p.publisher)
    }

    /// Claim `path` for a publisher; with `takeover` an existing one is replaced.
    pub fn claim(
        &self,
        path: &str,
        shard: usize,
        session: u64,
        takeover: bool,
    ) -> Result<Claim, Publisher> {
        let mut paths = self.lock();
        let state = paths.entry(path.to_owned()).or_default();
        if let Some(existing) = state.publisher {
            if !takeover {
                return Err(existing);
            }
        }
        let gen = self.next_gen.fetch_add(1, Ordering::Relaxed) + 1;
        state.tracks.clear();
        let replaced = state.publisher.replace(Publisher {
            shard,
            session,
            gen,
        });
        Ok(Claim {
            gen,
            interest: state.interest,
            replaced,
        })
    }

    /// Release a claim; returns the shards to tell, or `None` if `gen` was already replaced.
    pub fn release(&self, path: &str, gen: u64) -> Option<u64> {
        let mut paths = self.lock();
        let state = paths.get_mut(path)?;
        if state.publisher.map(|p| p.gen) != Some(gen) {
            return None;
        }
        state.publisher = None;
        let interest = state.interest;
        if interest == 0 {
            paths.remove(path);
        }
        Some(interest)
    }

    /// A shard now has readers of `path`; returns the current publisher.
    pub fn add_interest(&self, path: &str, shard: usize) -> Option<Publisher> {
        let mut paths = self.lock();
        let state = paths.entry(path.to_owned()).or_default();
        state.interest |= 1 << shard;
        state.publisher
    }

    /// A shard has no readers of `path` any more; returns the current publisher.
    pub fn remove_interest(&self, path: &str, shard: usize) -> Option<Publisher> {
        let mut paths = self.lock();
        let state = paths.get_mut(path)?;
        state.interest &= !(1 << shard);
        let publisher = state.publisher;
        if publisher.is_none() && state.interest == 0 {
            paths.remove(path);
        }
        publisher
    }

    /// Record the tracks of publisher generation `gen`.
    pub fn set_tracks(&self, path: &str, gen: u64, tracks: Vec<Codec>) {
        if let Some(state) = self.lock().get_mut(path) {
            if state.publisher.map(|p| p.gen) == Some(gen) {
                state.tracks = tracks;
            }
        }
    }

    /// Paths with a publisher and their tracks, sorted by path.
    pub fn live(&self) -> Vec<(String, Publisher, Vec<Codec>)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(k, v)| v.publisher.map(|p| (k.clone(), p, v.tracks.clone())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Paths with a publisher (for logs and the API).
    pub fn published(&self) -> Vec<(String, Publisher)> {
        self.lock()
            .iter()
            .filter_map(|(k, v)| v.publisher.map(|p| (k.clone(), p)))
            .collect()
    }
}

/// Iterate the shard indexes in a bit set.
pub fn shards_in(mut set: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if set == 0 {
            return None;
        }
        let i = set.trailing_zeros() as usize;
        set &= set - 1;
        Some(i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_conflict_and_takeover() {
        let r = Registry::default();
        let a = r.claim("live/x", 0, 1, false).unwrap();
        assert!(a.replaced.is_none());
        assert_eq!(r.claim("live/x", 1, 2, false).unwrap_err().session, 1);
        let b = r.claim("live/x", 1, 2, true).unwrap();
        assert_eq!(b.replaced.unwrap().session, 1);
        // The replaced publisher's release is stale and changes nothing.
        assert_eq!(r.release("live/x", a.gen), None);
        assert_eq!(r.publisher("live/x").unwrap().session, 2);
        assert_eq!(r.release("live/x", b.gen), Some(0));
        assert!(r.publisher("live/x").is_none());
    }

    #[test]
    fn interest_is_seen_by_either_order() {
        let r = Registry::default();
        assert!(r.add_interest("live/y", 3).is_none());
        let c = r.claim("live/y", 0, 7, false).unwrap();
        assert_eq!(shards_in(c.interest).collect::<Vec<_>>(), vec![3]);
        assert_eq!(r.add_interest("live/y", 1).unwrap().shard, 0);
        assert_eq!(r.remove_interest("live/y", 3).unwrap().session, 7);
        assert_eq!(r.release("live/y", c.gen), Some(1 << 1));
        assert!(r.remove_interest("live/y", 1).is_none());
        assert!(r.published().is_empty());
    }
}
