//! SIP for the voice channel (RFC 3261), sans-IO building blocks: messages (rsip is imported only
//! under this module), digest authentication, SDP offer/answer and client transactions.

pub mod digest;
pub mod message;
pub mod sdp;
pub mod transaction;
