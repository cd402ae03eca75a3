//! RTP media for the voice channel: G.711 encoding, 20 ms packetisation, the port pool and the
//! prompt sequence that reads a code aloud.

pub mod g711;
pub mod packetizer;
pub mod port_pool;
pub mod prompt;
pub mod stream;
