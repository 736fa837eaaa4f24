//! The process-wide directory of paths: who publishes where, and which shards
//! have readers waiting for a path.
//!
//! Touched only when sessions start and end (never per packet or per frame), so a
//! plain mutex is fine here. Media itself never passes through this module: the
//! owning shard forwards it to the interested shards (see [`crate::media::hub`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::describe::Description;
use std::sync::Arc;

/// Shards are identified by their index; interest is a bit set (at most 64 shards).
pub const MAX_SHARDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publisher {
    pub shard: usize,
    pub session: u64,
    /// Increases with every new publisher of any path; stale messages carry old ones.
    pub gen: u64,
}

/// What a shard's consumers of a path need: TS chunks (SRT readers), frames
/// (every other output), or both.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wants {
    pub ts: bool,
    pub frames: bool,
}

impl Wants {
    pub fn any(self) -> bool {
        self.ts || self.frames
    }
}

#[derive(Default)]
struct PathState {
    publisher: Option<Publisher>,
    /// Shards that want TS, and shards that want frames (bit sets).
    ts: u64,
    frames: u64,
    /// The current publisher's description, once known.
    description: Option<Arc<Description>>,
    /// A publisher has fed the path's current consumers before.
    fed: bool,
}

impl PathState {
    fn interest(&self) -> u64 {
        self.ts | self.frames
    }
}

/// A successful claim of a path by a publisher.
#[derive(Debug)]
pub struct Claim {
    pub gen: u64,
    /// Shards with consumers of this path, and what each wants.
    pub interest: Vec<(usize, Wants)>,
    /// Consumers of an earlier publisher are still there: the new one's media
    /// follows another's without a break.
    pub follows: bool,
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
        state.description = None;
        let replaced = state.publisher.replace(Publisher {
            shard,
            session,
            gen,
        });
        let follows = std::mem::replace(&mut state.fed, true) && state.interest() != 0;
        let interest = shards_in(state.interest())
            .map(|s| {
                let bit = 1u64 << s;
                let wants = Wants {
                    ts: state.ts & bit != 0,
                    frames: state.frames & bit != 0,
                };
                (s, wants)
            })
            .collect();
        Ok(Claim {
            gen,
            interest,
            follows,
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
        state.description = None;
        let interest = state.interest();
        if interest == 0 {
            paths.remove(path);
        }
        Some(interest)
    }

    /// What `shard`'s consumers of `path` want now (nothing: none left);
    /// returns the current publisher.
    pub fn set_interest(&self, path: &str, shard: usize, wants: Wants) -> Option<Publisher> {
        let mut paths = self.lock();
        let bit = 1u64 << shard;
        if !wants.any() {
            let state = paths.get_mut(path)?;
            state.ts &= !bit;
            state.frames &= !bit;
            let publisher = state.publisher;
            if state.interest() == 0 {
                state.fed = false;
                if publisher.is_none() {
                    paths.remove(path);
                }
            }
            return publisher;
        }
        let state = paths.entry(path.to_owned()).or_default();
        if state.publisher.is_some() {
            state.fed = true;
        }
        state.ts = if wants.ts {
            state.ts | bit
        } else {
            state.ts & !bit
        };
        state.frames = if wants.frames {
            state.frames | bit
        } else {
            state.frames & !bit
        };
        state.publisher
    }

    /// Record the description of publisher generation `gen`.
    pub fn set_description(&self, path: &str, gen: u64, d: Arc<Description>) {
        if let Some(state) = self.lock().get_mut(path) {
            if state.publisher.map(|p| p.gen) == Some(gen) {
                state.description = Some(d);
            }
        }
    }

    /// Paths with a publisher and their descriptions, sorted by path.
    pub fn live(&self) -> Vec<(String, Publisher, Option<Arc<Description>>)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(k, v)| v.publisher.map(|p| (k.clone(), p, v.description.clone())))
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

    const TS: Wants = Wants {
        ts: true,
        frames: false,
    };
    const FRAMES: Wants = Wants {
        ts: false,
        frames: true,
    };

    #[test]
    fn interest_is_seen_by_either_order() {
        let r = Registry::default();
        assert!(r.set_interest("live/y", 3, TS).is_none());
        let c = r.claim("live/y", 0, 7, false).unwrap();
        assert_eq!(c.interest, vec![(3, TS)]);
        assert!(!c.follows, "the first publisher follows nobody");
        assert_eq!(r.set_interest("live/y", 1, FRAMES).unwrap().shard, 0);
        assert_eq!(
            r.set_interest("live/y", 3, Wants::default())
                .unwrap()
                .session,
            7
        );
        assert_eq!(r.release("live/y", c.gen), Some(1 << 1));
        // A publisher after the first, while shard 1's consumers stay.
        let d = r.claim("live/y", 1, 8, false).unwrap();
        assert!(d.follows);
        assert_eq!(d.interest, vec![(1, FRAMES)]);
        assert_eq!(r.release("live/y", d.gen), Some(1 << 1));
        assert!(r.set_interest("live/y", 1, Wants::default()).is_none());
        assert!(r.published().is_empty());
    }
}
