//! One shard: a glommio executor pinned to a core, with its hub of feeds, its
//! sessions' mailboxes (to stop them), and its links to the other shards.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::io::hls::HlsMsg;
use crate::io::srt::{Mailbox, StopReason};
use crate::io::srtla::SrtlaShard;
use crate::media::hub::{Hub, ShardMsg};
use crate::media::registry::Registry;
use crate::metrics::Metrics;

pub struct Shard {
    pub id: usize,
    pub count: usize,
    config: RefCell<Arc<Config>>,
    pub hub: Rc<Hub>,
    pub metrics: Arc<Metrics>,
    sessions: RefCell<HashMap<u64, Rc<Mailbox>>>,
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

    pub fn add_session(&self, id: u64, mailbox: Rc<Mailbox>) {
        self.sessions.borrow_mut().insert(id, mailbox);
    }

    pub fn remove_session(&self, id: u64) {
        self.sessions.borrow_mut().remove(&id);
    }

    pub fn session_count(&self) -> usize {
        self.sessions.borrow().len()
    }

    /// Stop one session of this shard, or ask the shard that has it.
    pub fn kick(&self, shard: usize, session: u64) {
        if shard == self.id {
            if let Some(m) = self.sessions.borrow().get(&session) {
                m.stop(StopReason::TakenOver);
            }
        } else {
            self.hub.send_to(shard, ShardMsg::Kick { session });
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
            Some(ShardMsg::Kick { session }) => self.kick(self.id, session),
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
        for m in self.sessions.borrow().values() {
            m.stop(StopReason::Shutdown);
        }
        self.hub.close_all();
    }
}
