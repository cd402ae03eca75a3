//! Shadow ban (SPEC §8): a request the fraud engine bans gets the same response, the same event
//! sequence with realistic timing and the same webhooks as a real delivery, while nothing reaches
//! the carrier. [`DeliveryTimings`] learns how long the steps of real deliveries take;
//! [`ShadowRequest`] is the per-request twin that replays a successful delivery with those timings.

pub mod request;
pub mod timings;

pub use request::ShadowRequest;
pub use timings::{DeliveryTimings, Step};
