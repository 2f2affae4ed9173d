//! SSH tunnels for legacy plaintext devices: an SSH server whose only service is
//! direct-tcpip channels to the local broker ([`server`]), and a kept-alive SSH client that
//! replaces autossh `-L` ([`client`]). Both use russh with the `ring` crypto backend.

pub mod authorized;
pub mod client;
mod error;
pub mod hostkey;
mod hostpin;
mod password;
pub mod server;

pub use authorized::AuthorizedKeys;
pub use client::{run_tunnel, SshConnector, SshTunnel, TunnelStream};
pub use error::SshError;
pub use hostkey::{fingerprint, load_or_generate_host_key, read_public_key};
pub use server::{serve_ssh, SshPasswordVerifier, SshServerSettings};
