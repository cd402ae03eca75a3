//! SIP for the voice channel (RFC 3261): sans-IO building blocks (messages, digest
//! authentication, SDP offer/answer, client transactions) and the [`transport::SipTransport`]
//! actor owning the UDP socket. Datagrams are read by [`parse`], the one module that uses rsip, and
//! written by [`message`].

pub mod digest;
pub mod message;
pub mod parse;
pub mod sdp;
pub mod timers;
pub mod transaction;
pub mod transport;
