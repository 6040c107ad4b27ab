//! The Elastic Common Schema layout of events (`--events-format ecs`): the same events and
//! values, under ECS field names, so Elasticsearch or OpenSearch take them without an ingest
//! pipeline. Names only: the event writer writes the fields.
//!
//! Keys are dotted (`"source.ip"`), which Elasticsearch and OpenSearch index as the nested
//! objects they name. Fields with an ECS counterpart take its name; the rest go under
//! `picket.` with their own name (`picket.flow_id`, `picket.app_source`, `picket.evidence`, …).
//! Every event also carries `ecs.version`, `event.kind` (`alert` for alerts, `event` for the
//! rest), `event.category` (`["network"]`) and `event.type`; the event's own type is
//! `event.action`. Durations are nanoseconds (`event.duration`), as ECS has them.
//!
//! | event field | ECS field | ECS type |
//! |---|---|---|
//! | `timestamp` | `@timestamp` | date |
//! | `event` | `event.action` | keyword |
//! | `ts_start`, `ts_end` | `event.start`, `event.end` | date |
//! | `duration` | `event.duration` (ns) | long |
//! | `end_reason` | `event.reason` | keyword |
//! | `sensor` | `observer.name` | keyword |
//! | `transport` | `network.transport` | keyword |
//! | `community_id` | `network.community_id` | keyword |
//! | `vlan` | `network.vlan.id`, `network.inner.vlan.id` (outermost two) | keyword |
//! | `src_ip`, `src_port` | `source.ip`, `source.port` | ip, long |
//! | `dst_ip`, `dst_port` | `destination.ip`, `destination.port` | ip, long |
//! | `packets_to_server`, `bytes_to_server` | `source.packets`, `source.bytes` | long |
//! | `packets_to_client`, `bytes_to_client` | `destination.packets`, `destination.bytes` | long |
//! | (their sums) | `network.packets`, `network.bytes` | long |
//! | `sni` | `tls.client.server_name` | keyword |
//! | `tls_version` | `tls.version` (with `tls.version_protocol` `tls`) | keyword |
//! | `dns_query` | `dns.question.name` | keyword |
//! | `app` | `network.application` | keyword |
//! | `rule` | `rule.name` | keyword |

/// The ECS version whose field definitions the layout follows.
pub const ECS_VERSION: &str = "8.11.0";

/// The prefix of fields without an ECS counterpart.
pub const PREFIX: &str = "picket.";

/// The ECS name of an event field, or `None` for one written under [`PREFIX`].
pub fn name(k: &str) -> Option<&'static str> {
    Some(match k {
        "timestamp" => "@timestamp",
        "event" => "event.action",
        "ts_start" => "event.start",
        "ts_end" => "event.end",
        "duration" => "event.duration",
        "end_reason" => "event.reason",
        "sensor" => "observer.name",
        "transport" => "network.transport",
        "community_id" => "network.community_id",
        "src_ip" => "source.ip",
        "src_port" => "source.port",
        "dst_ip" => "destination.ip",
        "dst_port" => "destination.port",
        "packets_to_server" => "source.packets",
        "bytes_to_server" => "source.bytes",
        "packets_to_client" => "destination.packets",
        "bytes_to_client" => "destination.bytes",
        "sni" => "tls.client.server_name",
        "tls_version" => "tls.version",
        "dns_query" => "dns.question.name",
        "app" => "network.application",
        "rule" => "rule.name",
        // Written by the writer itself in this layout only.
        "ecs.version"
        | "event.kind"
        | "event.category"
        | "event.type"
        | "network.bytes"
        | "network.packets"
        | "network.vlan.id"
        | "network.inner.vlan.id"
        | "tls.version_protocol" => return ecs_own(k),
        _ => return None,
    })
}

fn ecs_own(k: &str) -> Option<&'static str> {
    [
        "ecs.version",
        "event.kind",
        "event.category",
        "event.type",
        "network.bytes",
        "network.packets",
        "network.vlan.id",
        "network.inner.vlan.id",
        "tls.version_protocol",
    ]
    .into_iter()
    .find(|n| *n == k)
}
