//! SIP for the voice channel (RFC 3261): sans-IO building blocks (messages, digest
//! authentication, SDP offer/answer, client transactions) and the [`transport::SipTransport`]
//! actor owning the UDP socket. Messages are parsed by our own [`message`] module, not rsip:
//! `rsip_gaps` pins the RFC 3261 messages rsip 0.4 rejects or misreads.

pub mod digest;
pub mod message;
mod rsip_gaps;
pub mod sdp;
pub mod timers;
pub mod transaction;
pub mod transport;
