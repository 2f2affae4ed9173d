//! broker-lite (being written).
