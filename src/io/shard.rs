//! One shard: a glommio executor pinned to a core, with its hub of feeds, its
//! sessions' mailboxes (to stop them), and its links to the other shards.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::{Config, Mode};
use crate::io::hls::HlsMsg;
use crate::io::srt::{Mailbox, StopReason};
use crate::io::srtla::SrtlaShard;
use crate::media::hub::{Hub, ShardMsg};
use crate::media::registry::Registry;
use crate::metrics::Metrics;

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
    pub hub: Rc<Hub>,
    pub metrics: Arc<Metrics>,
    sessions: RefCell<HashMap<u64, SessionEntry>>,
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
        peers: Option<glommio::channels::channel_mesh::Senders<ShardMsg>>,
    ) -> Rc<Self> {
        let hub = Hub::new(id, count, registry, peers, &config);
        Rc::new(Self {
            id,
            count,
            config: RefCell::new(config),
            hub,
            metrics,
            sessions: RefCell::new(HashMap::new()),
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
        } else {
            self.hub.send_to(shard, ShardMsg::Kick { session, reason });
        }
    }

    /// This shard's SRTLA shell, when SRTLA is enabled.
    pub fn set_srtla(&self, srtla: Rc<SrtlaShard>) {
        let _ = self.srtla.set(srtla);
    }

    /// A message from another shard.
    pub async fn handle(&self, msg: ShardMsg) {
        match self.hub.handle(msg) {
            Some(ShardMsg::Hls(HlsMsg::Get { from, id, req })) => {
                // Answered in a task of its own: it may wait (blocking reload).
                let hub = self.hub.clone();
                glommio::spawn_local(async move {
                    let res = hub.hls.answer(req).await;
                    hub.hls_reply(from, id, res).await;
                })
                .detach();
            }
            Some(ShardMsg::Kick { session, reason }) => self.kick(self.id, session, reason),
            Some(ShardMsg::Srtla(m)) => {
                if let Some(srtla) = self.srtla.get() {
                    srtla.handle_msg(m).await;
                }
            }
            _ => {}
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
