//! The built-in simulated DIDWW carrier used by `--sandbox`, tests and benchmarks.

pub mod sip;
pub mod sms;
