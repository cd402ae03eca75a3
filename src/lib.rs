//! otp-gateway: the library behind the `otp-gateway` binary. `main.rs` only parses the command line
//! and calls [`app::run`]; integration tests start the same gateway through [`app::start`].

pub mod app;
pub mod config;
pub mod db;
pub mod error;
pub mod fraud;
pub mod healthcheck;
pub mod http;
pub mod keys;
pub mod logging;
pub mod sandbox;
pub mod voice;
