//! mqgate certs: a small CA that issues, signs and revokes certificates. (See issue 8.)
