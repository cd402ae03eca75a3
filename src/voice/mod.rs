//! The voice channel's gateway side: the prompt clips (built-in or `VOICE_PROMPTS_DIR`) and the
//! start-up of the SIP transport, port pool and media thread.

pub mod channel;
pub mod prompts;
