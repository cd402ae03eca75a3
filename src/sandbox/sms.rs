//! Simulated DIDWW SMS OUT API (placeholder, being written).
