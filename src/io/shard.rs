//! One shard: a glommio executor pinned to a core, with its hub of streams,
//! the HLS outputs it is home to, its sessions' mailboxes (to stop them), and
//! its ends of the cross-shard mesh.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::{Config, Mode};
use crate::io::hls::HlsHome;
use crate::io::hub::Hub;
use crate::io::mesh::{ControlMsg, Mesh, MeshReceivers};
use crate::io::srt::{Mailbox, StopReason};
use crate::io::srtla::SrtlaShard;
use crate::media::registry::Registry;
use crate::metrics::{Metrics, ViewerTable};

/// What a shard knows of one of its sessions: how to stop it, and what it
/// was let in with (to check it again when the path rules change).
pub struct SessionEntry {
    pub mailbox: Rc<Mailbox>,
    pub path: String,
    pub mode: Mode,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub encrypted: bool,
}

pub struct Shard {
    pub id: usize,
    pub count: usize,
    config: RefCell<Arc<Config>>,
    pub mesh: Rc<Mesh>,
    pub hub: Rc<Hub>,
    /// The HLS outputs whose home is this shard.
    pub hls: Rc<HlsHome>,
    pub metrics: Arc<Metrics>,
    sessions: RefCell<HashMap<u64, SessionEntry>>,
    /// HLS viewers seen on this shard (published to `metrics` now and then).
    viewers: RefCell<ViewerTable>,
    stopping: Cell<bool>,
    srtla: OnceCell<Rc<SrtlaShard>>,
}

impl Shard {
    pub fn new(
        id: usize,
        count: usize,
        config: Arc<Config>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        mesh: Mesh,
    ) -> Rc<Self> {
        let mesh = Rc::new(mesh);
        let hub = Hub::new(
            id,
            count,
            registry.clone(),
            mesh.clone(),
            config.srt.reader_queue,
        );
        let hls = HlsHome::new(hub.clone(), config.hls.clone());
        Rc::new(Self {
            id,
            count,
            config: RefCell::new(config),
            mesh,
            hub,
            hls,
            metrics,
            sessions: RefCell::new(HashMap::new()),
            viewers: RefCell::new(ViewerTable::default()),
            stopping: Cell::new(false),
            srtla: OnceCell::new(),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Read the configuration without taking a reference count (per-packet paths).
    pub fn with_config<R>(&self, f: impl FnOnce(&Config) -> R) -> R {
        f(&self.config.borrow())
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    pub fn add_session(&self, id: u64, entry: SessionEntry) {
        self.sessions.borrow_mut().insert(id, entry);
    }

    /// Take a new configuration (a reload); the caller applies the rest.
    pub fn set_config(&self, config: Arc<Config>) {
        *self.config.borrow_mut() = config;
    }

    /// Close the sessions the configuration no longer lets in; returns how many.
    pub fn recheck_sessions(&self, config: &Config) -> usize {
        let mut closed = 0;
        for (id, s) in self.sessions.borrow().iter() {
            let why = match config.rule_for(&s.path) {
                None => Some("no path rule matches any more"),
                Some(rule) => match rule.check(s.mode, s.user.as_deref(), s.pass.as_deref()) {
                    Err(crate::config::Denied::Forbidden) => {
                        Some("forbidden by the new path rules")
                    }
                    Err(crate::config::Denied::Unauthorized) => {
                        Some("its credentials are no longer accepted")
                    }
                    Ok(()) if rule.passphrase.is_some() != s.encrypted => {
                        Some("the path's encryption changed")
                    }
                    Ok(()) => None,
                },
            };
            if let Some(why) = why {
                if s.mailbox.stop_reason().is_none() {
                    tracing::info!(id = %crate::metrics::short_id(*id), path = %s.path,
                        reason = why, "closing session after a configuration reload");
                    s.mailbox.stop(StopReason::Reload(why));
                    closed += 1;
                }
            }
        }
        closed
    }

    pub fn remove_session(&self, id: u64) {
        self.sessions.borrow_mut().remove(&id);
    }

    pub fn session_count(&self) -> usize {
        self.sessions.borrow().len()
    }

    /// Stop one session of this shard, or ask the shard that has it.
    pub fn kick(&self, shard: usize, session: u64, reason: StopReason) {
        if shard == self.id {
            if let Some(s) = self.sessions.borrow().get(&session) {
                s.mailbox.stop(reason);
            }
        } else if !self
            .mesh
            .try_send(shard, ControlMsg::Kick { session, reason })
        {
            tracing::warn!(session = %crate::metrics::short_id(session), shard,
                "kick not delivered: that shard's queue is full");
        }
    }

    /// An HLS request of `path` by `peer` with `user_agent` was answered with
    /// `bytes` of body: no lock, O(1) (see [`crate::metrics::viewers`]).
    pub fn hls_seen(&self, path: &str, peer: std::net::SocketAddr, user_agent: &str, bytes: u64) {
        let now = std::time::Instant::now();
        let mut table = self.viewers.borrow_mut();
        if table.seen(path, peer, user_agent, bytes, now) {
            self.metrics.publish_viewers(self.id, &mut table, now);
        }
    }

    /// Once a second: this shard's figures for the API and `/metrics`.
    pub fn publish_figures(&self) {
        let now = std::time::Instant::now();
        let mut table = self.viewers.borrow_mut();
        if table.is_dirty() {
            self.metrics.publish_viewers(self.id, &mut table, now);
        }
        self.metrics.set_relay_stats(self.id, self.hub.stats());
    }

    /// This shard's SRTLA shell, when SRTLA is enabled.
    pub fn set_srtla(&self, srtla: Rc<SrtlaShard>) {
        let _ = self.srtla.set(srtla);
    }

    /// Serve the messages other shards send here, one task per (concern, sender).
    pub fn serve_mesh(self: &Rc<Self>, mut rx: MeshReceivers) {
        for (_, r) in rx.relay.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = r.recv().await {
                    shard.hub.handle(msg);
                }
            })
            .detach();
        }
        for (_, r) in rx.control.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(ControlMsg::Kick { session, reason }) = r.recv().await {
                    shard.kick(shard.id, session, reason);
                }
            })
            .detach();
        }
        for (_, r) in rx.srtla.streams() {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = r.recv().await {
                    if let Some(srtla) = shard.srtla.get() {
                        srtla.handle_msg(msg).await;
                    }
                }
            })
            .detach();
        }
        for (_, r) in rx.hls.streams() {
            let hls = self.hls.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = r.recv().await {
                    hls.handle(msg);
                }
            })
            .detach();
        }
    }

    /// Tell every session to close (they send SRT shutdown) and end every feed.
    pub fn begin_stop(&self) {
        self.stopping.set(true);
        for s in self.sessions.borrow().values() {
            s.mailbox.stop(StopReason::Shutdown);
        }
        self.hub.close_all();
    }
}
