//! mqgate bridge: forwards chosen topics between broker-lite and an upstream broker,
//! with a durable store-and-forward queue. (Not built yet: see issue 7.)
