//! otp-gateway: the library behind the `otp-gateway` binary. `main.rs` only parses the command line
//! and calls [`app::run`]; integration tests start the same gateway through [`app::start`].

pub mod config;
pub mod sandbox;
