//! SSRF guard (placeholder, being written).
