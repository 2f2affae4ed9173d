//! mqgate proxy: TLS termination, password authentication, per-topic ACLs and SSH
//! tunnels. (Not built yet: see issues 5 and 6.)
