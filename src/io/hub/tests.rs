//! The relay across two real glommio shards: an output subscribing to frames
//! on the shard that is not the publisher's gets the stream's description and
//! frames from a keyframe on; an SRT-style TS reader there gets the
//! publisher's chunks from a keyframe, with the PAT/PMT prelude.

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use rand::SeedableRng;

use super::*;
use crate::io::mesh::MeshBuilders;
use crate::proto::ts::tests::{av_frames, av_tracks, mux_all};
use crate::proto::ts::{DemuxEvent, TsDemuxer};

struct Seen {
    description: Option<Arc<Description>>,
    frames: Vec<Frame>,
    chunks: Vec<TsChunk>,
}

#[test]
fn frames_and_description_reach_the_other_shard_from_a_keyframe() {
    let registry = Arc::new(Registry::default());
    let mesh = MeshBuilders::new(2).unwrap();
    // Both shards subscribe/publish only once both joined and the reader subscribed.
    let subscribed = Arc::new(Barrier::new(2));
    let published = Arc::new(Barrier::new(2));
    let (tx, rx) = mpsc::channel::<Seen>();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let ts = Arc::new(mux_all(&av_tracks(), &av_frames(&mut rng, 0, 75)));

    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (registry, mesh, subscribed, published, tx, ts) = (
                registry.clone(),
                mesh.clone(),
                subscribed.clone(),
                published.clone(),
                tx.clone(),
                ts.clone(),
            );
            LocalExecutorBuilder::new(Placement::Unbound)
                .spawn(move || async move {
                    let (mesh, mut rx) = mesh.join().await.unwrap();
                    let id = mesh.shard();
                    let hub = Hub::new(id, 2, registry, Rc::new(mesh), 4096);
                    {
                        let hub = hub.clone();
                        for (_, r) in rx.relay.streams() {
                            let hub = hub.clone();
                            glommio::spawn_local(async move {
                                while let Some(m) = r.recv().await {
                                    hub.handle(m);
                                }
                            })
                            .detach();
                        }
                    }
                    if id == 1 {
                        let frames = hub.subscribe_frames("live/x");
                        let tsr = hub.subscribe_ts("live/x");
                        subscribed.wait();
                        published.wait();
                        let mut seen = Seen {
                            description: None,
                            frames: Vec::new(),
                            chunks: Vec::new(),
                        };
                        let deadline = std::time::Instant::now() + Duration::from_secs(10);
                        while seen.frames.len() < 40 && std::time::Instant::now() < deadline {
                            while let Ok(Some(f)) = frames.reader.try_recv() {
                                seen.description = frames.stream.description();
                                seen.frames.push(f);
                            }
                            while let Ok(Some(c)) = tsr.reader.try_recv() {
                                seen.chunks.push(c);
                            }
                            glommio::timer::sleep(Duration::from_millis(5)).await;
                        }
                        tx.send(seen).unwrap();
                    } else {
                        subscribed.wait();
                        let (mut publication, _) = hub
                            .publish("live/x", 1, false, Duration::ZERO, false)
                            .unwrap();
                        let mut demux = TsDemuxer::new();
                        let mut events = Vec::new();
                        let data = Bytes::copy_from_slice(&ts);
                        for at in (0..data.len()).step_by(1316) {
                            let payload = data.slice(at..(at + 1316).min(data.len()));
                            demux.push(&payload, &mut events);
                            for ev in events.drain(..) {
                                match ev {
                                    DemuxEvent::Tracks(t) => {
                                        publication.set_tracks(&t, demux.pmt_pid())
                                    }
                                    DemuxEvent::Frame(f) => publication.push_frame(f),
                                }
                            }
                            publication.push_ts(payload);
                            // Let the relay run.
                            glommio::yield_if_needed().await;
                        }
                        published.wait();
                        glommio::timer::sleep(Duration::from_millis(500)).await;
                        drop(publication);
                    }
                })
                .unwrap()
        })
        .collect();
    let seen = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    for h in handles {
        h.join().unwrap();
    }
    let d = seen
        .description
        .expect("the description reached the other shard");
    assert_eq!(d.tracks.len(), 2);
    assert!(d.track(0).unwrap().config.is_some(), "video config: {d:?}");
    assert!(seen.frames.len() >= 40, "{} frames", seen.frames.len());
    let first_video = seen.frames.iter().find(|f| f.codec.is_video()).unwrap();
    assert!(first_video.key, "frames start at a keyframe");
    assert!(seen.frames[0].codec.is_video() && seen.frames[0].key);
    let first = seen
        .chunks
        .first()
        .expect("TS chunks reached the other shard");
    assert!(
        first.key && first.start.is_some(),
        "TS starts at a keyframe with PAT/PMT"
    );
    // What arrived is the publisher's bytes from that keyframe on.
    let got: Vec<u8> = seen
        .chunks
        .iter()
        .flat_map(|c| c.data.iter().copied())
        .collect();
    let at = ts
        .windows(188)
        .step_by(188)
        .position(|p| p == &got[..188])
        .unwrap()
        * 188;
    assert_eq!(&ts[at..at + got.len()], &got[..]);
}
