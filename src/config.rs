//! Configuration from the environment (placeholder, being written).
