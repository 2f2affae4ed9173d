//! The mqgate command line (being written).
fn main() {}
