//! The cross-shard mesh: one glommio channel mesh per concern, each with its
//! own typed messages, so that a module only sees the messages meant for it.
//!
//! - [`RelayMsg`]: a stream's media and state, from its publisher's shard to
//!   the shards with consumers ([`crate::io::hub`]).
//! - [`ControlMsg`]: stopping a session on the shard that runs it.
//! - [`crate::io::srtla::SrtlaMsg`]: SRTLA datagrams for a group's home shard.
//! - [`crate::io::hls::HlsMsg`]: HLS requests for a path's home shard, and replies.
//!
//! Sending never waits on the media path ([`Mesh::try_send`]: a full channel
//! drops the message, which the sender counts); replies that must arrive use
//! [`Mesh::send`], which waits for room.

use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};

use crate::io::hls::HlsMsg;
use crate::io::srt::StopReason;
use crate::io::srtla::SrtlaMsg;
use crate::media::describe::Description;
use crate::media::registry::Wants;
use crate::media::{Frame, TsChunk};

/// Messages queued per (sender, receiver) pair and concern.
const CAPACITY: usize = 4096;

/// A stream's media and state between shards.
#[derive(Debug)]
pub enum RelayMsg {
    /// `shard`'s consumers of `path` want this now (nothing: they left).
    Interest {
        path: Arc<str>,
        shard: usize,
        wants: Wants,
    },
    /// The description of publisher generation `gen`.
    Describe {
        path: Arc<str>,
        gen: u64,
        description: Arc<Description>,
    },
    /// TS for SRT readers; `gap`: items were lost before this one (a key).
    Ts {
        path: Arc<str>,
        gen: u64,
        chunk: TsChunk,
        gap: bool,
    },
    /// A frame; `key` starts a group; `gap` as for `Ts`.
    Frame {
        path: Arc<str>,
        gen: u64,
        frame: Frame,
        key: bool,
        gap: bool,
    },
    /// The publisher of generation `gen` has gone; TS readers may wait
    /// `grace` for another (zero: they end).
    PublisherGone {
        path: Arc<str>,
        gen: u64,
        grace: Duration,
    },
}

/// Orders for the shard that runs a session.
#[derive(Debug)]
pub enum ControlMsg {
    /// Stop a session (a publisher taken over by a newer one, an API kick).
    Kick { session: u64, reason: StopReason },
}

/// What each shard needs to build its [`Mesh`]; cloned into every shard.
#[derive(Clone)]
pub struct MeshBuilders {
    relay: MeshBuilder<RelayMsg, Full>,
    control: MeshBuilder<ControlMsg, Full>,
    srtla: MeshBuilder<SrtlaMsg, Full>,
    hls: MeshBuilder<HlsMsg, Full>,
}

/// This shard's ends of every concern's channels.
pub struct MeshReceivers {
    pub relay: Receivers<RelayMsg>,
    pub control: Receivers<ControlMsg>,
    pub srtla: Receivers<SrtlaMsg>,
    pub hls: Receivers<HlsMsg>,
}

impl MeshBuilders {
    /// None for a single shard: there is nobody to talk to.
    pub fn new(shards: usize) -> Option<Self> {
        (shards > 1).then(|| Self {
            relay: MeshBuilder::full(shards, CAPACITY),
            control: MeshBuilder::full(shards, CAPACITY),
            srtla: MeshBuilder::full(shards, CAPACITY),
            hls: MeshBuilder::full(shards, CAPACITY),
        })
    }

    /// Join from a shard (every shard must, before any can send).
    pub async fn join(self) -> Result<(Mesh, MeshReceivers), String> {
        let e = |what: &str| format!("cannot join the cross-shard {what} mesh");
        let (relay, relay_rx) = self.relay.join().await.map_err(|_| e("relay"))?;
        let (control, control_rx) = self.control.join().await.map_err(|_| e("control"))?;
        let (srtla, srtla_rx) = self.srtla.join().await.map_err(|_| e("srtla"))?;
        let (hls, hls_rx) = self.hls.join().await.map_err(|_| e("hls"))?;
        let mesh = Mesh {
            shard: relay.peer_id(),
            relay: Some(relay),
            control: Some(control),
            srtla: Some(srtla),
            hls: Some(hls),
        };
        let rx = MeshReceivers {
            relay: relay_rx,
            control: control_rx,
            srtla: srtla_rx,
            hls: hls_rx,
        };
        Ok((mesh, rx))
    }
}

/// Senders to the other shards, one per concern. With a single shard there
/// are none and every send fails.
pub struct Mesh {
    shard: usize,
    relay: Option<Senders<RelayMsg>>,
    control: Option<Senders<ControlMsg>>,
    srtla: Option<Senders<SrtlaMsg>>,
    hls: Option<Senders<HlsMsg>>,
}

/// The messages of one concern.
pub trait Concern: Sized + Send {
    fn senders(mesh: &Mesh) -> Option<&Senders<Self>>;
}

macro_rules! concern {
    ($msg:ty, $field:ident) => {
        impl Concern for $msg {
            fn senders(mesh: &Mesh) -> Option<&Senders<Self>> {
                mesh.$field.as_ref()
            }
        }
    };
}
concern!(RelayMsg, relay);
concern!(ControlMsg, control);
concern!(SrtlaMsg, srtla);
concern!(HlsMsg, hls);

impl Mesh {
    /// No other shards (a single shard, or before joining).
    pub fn single(shard: usize) -> Self {
        Self {
            shard,
            relay: None,
            control: None,
            srtla: None,
            hls: None,
        }
    }

    /// This shard's id.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Send without waiting; false if `to` is this shard or its queue is full.
    pub fn try_send<M: Concern>(&self, to: usize, msg: M) -> bool {
        match M::senders(self) {
            Some(s) if to != self.shard => s.try_send_to(to, msg).is_ok(),
            _ => false,
        }
    }

    /// Send, waiting for room; false if `to` is this shard or gone.
    pub async fn send<M: Concern>(&self, to: usize, msg: M) -> bool {
        match M::senders(self) {
            Some(s) if to != self.shard => s.send_to(to, msg).await.is_ok(),
            _ => false,
        }
    }
}
