//! API handlers, one file per resource.

pub mod dispatch;
pub mod dlr;
pub mod feedback;
pub mod health;
pub mod requests;
pub mod sandbox_voice;
pub mod validate;
