//! SRTLA, the link-aggregation protocol of BELABOX (used by Moblin and IRL
//! Pro), receiver side: [`packet`] is the wire format, [`groups`] the state of
//! registered groups and their links. Sans-IO; the shell that binds the SRTLA
//! port and hands each group to an SRT session is still to be written (issue 3).

pub mod groups;
pub mod packet;
pub mod reseq;
pub mod sender;
