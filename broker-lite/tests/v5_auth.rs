//! MQTT 5 enhanced authentication through the `Authorizer::enhanced_auth` hook: the AUTH
//! exchange at CONNECT, re-authentication, and the refusals.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use mqgate_broker_lite::{
    AllowAll, AuthExchange, AuthFuture, AuthStep, Authorizer, ClientInfo, ConnectRequest,
    EnhancedAuthFuture, Identity,
};
use mqgate_protocol::{Auth, Packet, QoS, ReasonCode};
use support::*;

/// Method "TOKEN": "hello" (or nothing) gets the challenge, "answer" succeeds.
struct Token;

impl Authorizer for Token {
    fn authenticate<'a>(&'a self, i: &'a Identity, r: ConnectRequest<'a>) -> AuthFuture<'a> {
        AllowAll.authenticate(i, r)
    }
    fn authorize_publish(&self, _: &ClientInfo, _: &str, _: QoS, _: bool) -> bool {
        true
    }
    fn authorize_subscribe(&self, _: &ClientInfo, _: &str, _: QoS) -> bool {
        true
    }
    fn authorize_delivery(&self, _: &ClientInfo, _: &str) -> bool {
        true
    }
    fn enhanced_auth<'a>(&'a self, _: &'a Identity, x: AuthExchange<'a>) -> EnhancedAuthFuture<'a> {
        let step = if x.method != "TOKEN" {
            Err(ReasonCode::BadAuthenticationMethod)
        } else {
            match x.data.map(|d| d.as_ref()) {
                None | Some(b"hello") => {
                    Ok(AuthStep::Continue(Some(Bytes::from_static(b"challenge"))))
                }
                Some(b"answer") => Ok(AuthStep::Success {
                    user: Some("token-user".into()),
                    data: Some(Bytes::from_static(b"ok")),
                }),
                Some(_) => Err(ReasonCode::NotAuthorized),
            }
        };
        Box::pin(std::future::ready(step))
    }
}

fn auth(reason: ReasonCode, method: &str, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth {
        reason,
        properties: mqgate_protocol::PropertyValues {
            authentication_method: Some(method.into()),
            authentication_data: Some(Bytes::from_static(data)),
            ..mqgate_protocol::PropertyValues::default()
        }
        .into(),
    })
}

async fn start_auth(b: &TestBroker, method: &str) -> Raw {
    let mut c = connect_v5("tok", true, 0);
    c.properties.authentication_method = Some(method.into());
    c.properties.authentication_data = Some(Bytes::from_static(b"hello"));
    let mut raw = Raw::open(b.addr).await;
    raw.version = c.protocol;
    raw.send(&Packet::Connect(c)).await;
    raw
}

#[tokio::test]
async fn auth_exchange_at_connect_then_reauthentication() {
    let b = TestBroker::start_with(settings(), Arc::new(Token)).await;
    let mut raw = start_auth(&b, "TOKEN").await;
    match raw.recv().await {
        Some(Packet::Auth(a)) => {
            assert_eq!(a.reason, ReasonCode::ContinueAuthentication);
            assert_eq!(
                a.properties.authentication_data.as_deref(),
                Some(&b"challenge"[..])
            );
        }
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
    raw.send(&auth(
        ReasonCode::ContinueAuthentication,
        "TOKEN",
        b"answer",
    ))
    .await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => {
            assert_eq!(a.reason, ReasonCode::Success);
            assert_eq!(a.properties.authentication_method.as_deref(), Some("TOKEN"));
            assert_eq!(
                a.properties.authentication_data.as_deref(),
                Some(&b"ok"[..])
            );
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // Re-authentication: two steps, then success.
    raw.send(&auth(ReasonCode::ReAuthenticate, "TOKEN", b"hello"))
        .await;
    match raw.recv().await {
        Some(Packet::Auth(a)) => assert_eq!(a.reason, ReasonCode::ContinueAuthentication),
        other => panic!("expected AUTH 0x18, got {other:?}"),
    }
    raw.send(&auth(
        ReasonCode::ContinueAuthentication,
        "TOKEN",
        b"answer",
    ))
    .await;
    match raw.recv().await {
        Some(Packet::Auth(a)) => assert_eq!(a.reason, ReasonCode::Success),
        other => panic!("expected AUTH 0x00, got {other:?}"),
    }
    // A failed re-authentication disconnects.
    raw.send(&auth(ReasonCode::ReAuthenticate, "TOKEN", b"wrong"))
        .await;
    assert_eq!(raw.expect_disconnect().await, ReasonCode::NotAuthorized);
    b.shutdown().await;
}

#[tokio::test]
async fn failed_or_unknown_enhanced_authentication_is_refused() {
    let b = TestBroker::start_with(settings(), Arc::new(Token)).await;
    let mut raw = start_auth(&b, "SCRAM-SHA-1").await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::BadAuthenticationMethod),
        other => panic!("expected CONNACK 0x8C, got {other:?}"),
    }
    raw.expect_closed().await;
    let mut raw = start_auth(&b, "TOKEN").await;
    assert!(matches!(raw.recv().await, Some(Packet::Auth(_))));
    raw.send(&auth(ReasonCode::ContinueAuthentication, "TOKEN", b"wrong"))
        .await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::NotAuthorized),
        other => panic!("expected CONNACK 0x87, got {other:?}"),
    }
    raw.expect_closed().await;
    // Another method in the AUTH reply is a protocol error.
    let mut raw = start_auth(&b, "TOKEN").await;
    assert!(matches!(raw.recv().await, Some(Packet::Auth(_))));
    raw.send(&auth(
        ReasonCode::ContinueAuthentication,
        "OTHER",
        b"answer",
    ))
    .await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::ProtocolError),
        other => panic!("expected CONNACK 0x82, got {other:?}"),
    }
    b.shutdown().await;
}
