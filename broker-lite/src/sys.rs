//! `$SYS/broker/...` statistics, published as retained QoS 0 messages every `sys_interval`
//! (mosquitto's topic names).

use std::sync::Arc;

use bytes::Bytes;
use mqgate_protocol::QoS;
use tokio_util::sync::CancellationToken;

use crate::core::{Core, RouteOutcome};
use crate::message::Message;
use crate::stats::Stats;

/// Publishes the statistics every `sys_interval` until `shutdown`.
pub(crate) async fn run(core: Arc<Core>, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(core.settings.sys_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => publish_all(&core),
        }
    }
}

fn publish_all(core: &Core) {
    let s = &core.stats;
    let values: [(&str, String); 16] = [
        (
            "version",
            format!("mqgate version {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "uptime",
            format!("{} seconds", core.started.elapsed().as_secs()),
        ),
        (
            "clients/connected",
            Stats::get(&s.clients_connected).to_string(),
        ),
        ("clients/total", core.session_count().to_string()),
        (
            "messages/received",
            Stats::get(&s.messages_received).to_string(),
        ),
        ("messages/sent", Stats::get(&s.messages_sent).to_string()),
        (
            "publish/messages/dropped",
            Stats::get(&s.messages_dropped).to_string(),
        ),
        ("bytes/received", Stats::get(&s.bytes_received).to_string()),
        ("bytes/sent", Stats::get(&s.bytes_sent).to_string()),
        ("retained messages/count", core.retained_count().to_string()),
        // mqgate's own: the limits `max_retained_bytes`, `max_retained_messages` and
        // `max_subscriptions_per_client`, what they weigh and what they refused.
        ("retained messages/bytes", core.retained_bytes().to_string()),
        (
            "retained messages/refused",
            Stats::get(&s.retained_refused).to_string(),
        ),
        ("subscriptions/count", core.subscription_count().to_string()),
        (
            "subscriptions/refused",
            Stats::get(&s.subscriptions_refused).to_string(),
        ),
        (
            "clients/refused/session_owner",
            Stats::get(&s.connects_refused_session_owner).to_string(),
        ),
        (
            "publish/messages/revoked",
            Stats::get(&s.deliveries_revoked).to_string(),
        ),
    ];
    for (name, value) in values {
        let msg = Arc::new(Message {
            id: core.message_id(),
            topic: Arc::from(format!("$SYS/broker/{name}")),
            payload: Bytes::from(value),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            origin: 0,
            expires_at: None,
        });
        core.publish(msg, &mut RouteOutcome::default());
    }
}
