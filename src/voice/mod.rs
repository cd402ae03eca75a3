//! Voice prompts: the built-in clips and `VOICE_PROMPTS_DIR` recordings.

pub mod prompts;
