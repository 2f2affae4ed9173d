//! Network address fields: listen addresses (`ip:port`) and remote addresses (`host:port`).

use std::net::SocketAddr;

use serde::{de, Deserialize, Deserializer};

/// Deserializes a listen address, saying what form is expected when it is wrong.
pub(crate) fn deserialize_socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "invalid listen address `{text}`, expected ip:port such as \"127.0.0.1:1883\" \
             or \"[::]:8883\" (host names are not allowed here)"
        ))
    })
}

/// Like [`deserialize_socket_addr`], for an optional field.
pub(crate) fn deserialize_opt_socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    deserialize_socket_addr(deserializer).map(Some)
}

/// Checks a remote `host:port` address (host name, IPv4, or `[IPv6]`, and a non-zero port).
///
/// Returns what is wrong with it, for a validation message.
pub(crate) fn check_host_port(text: &str) -> Result<(), String> {
    let expected = || {
        format!(
            "invalid address `{text}`, expected host:port such as \"broker.example.com:8883\", \
             \"10.0.0.5:1883\" or \"[2001:db8::1]:1883\""
        )
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(expected)?;
    let port: u16 = port.parse().map_err(|_| expected())?;
    if port == 0 {
        return Err(format!(
            "invalid address `{text}`: port 0 cannot be dialled"
        ));
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    if host_ok {
        Ok(())
    } else {
        Err(expected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        for good in [
            "broker.example.com:8883",
            "10.0.0.5:1883",
            "[::1]:1883",
            "localhost:22",
        ] {
            assert_eq!(check_host_port(good), Ok(()), "{good}");
        }
        for bad in [
            "broker",
            "broker:",
            ":1883",
            "::1:1883",
            "a b:1",
            "host:70000",
            "host:0",
        ] {
            assert!(check_host_port(bad).is_err(), "{bad}");
        }
    }
}
