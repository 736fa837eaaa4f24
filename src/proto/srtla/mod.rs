//! SRTLA, the link-aggregation protocol of BELABOX (used by Moblin and IRL
//! Pro), sans-IO: [`packet`] is the wire format; [`groups`] the receiver's
//! groups and links (registration, keep-alives, SRTLA ACKs, routing back to
//! the sender); [`reseq`] puts data that arrived out of order across links
//! back in order before SRT sees it; [`sender`] is the sending side (used by
//! `srtgate bond`). The shells are `io::srtla` and `io::bond`.

pub mod groups;
pub mod packet;
pub mod reseq;
pub mod sender;
