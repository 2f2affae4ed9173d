//! mqgate configuration (being written).
