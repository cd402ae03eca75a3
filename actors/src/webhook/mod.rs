//! Client webhooks (SPEC §6): the SSRF guard, HMAC signatures and the outbox sender actor.

pub mod sender;
pub mod signature;
pub mod ssrf;
