//! Client webhooks (SPEC §6): SSRF guard, HMAC signatures.

pub mod signature;
pub mod ssrf;
