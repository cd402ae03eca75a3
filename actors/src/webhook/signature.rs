//! Webhook signatures (placeholder, being written).
