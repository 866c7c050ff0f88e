//! MQTT 3.1, 3.1.1 and 5.0 wire codec: packet types, decoding, encoding and
//! topic helpers.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod decode;
pub mod encode;
pub mod topic;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use bytes::Bytes;
pub use bytestring::ByteString;

/// Protocol version negotiated by CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

/// Quality of service level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: fire and forget.
    AtMostOnce = 0,
    /// QoS 1: acknowledged delivery.
    AtLeastOnce = 1,
    /// QoS 2: assured, exactly-once delivery.
    ExactlyOnce = 2,
}

impl QoS {
    /// Converts 0, 1 or 2 to a QoS; `None` for any other value.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// MQTT 5 properties of a PUBLISH (also used for will properties).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    /// Payload Format Indicator (0x01): 0 unspecified bytes, 1 UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval (0x02) in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias (0x23); never 0.
    pub topic_alias: Option<u16>,
    /// Response Topic (0x08).
    pub response_topic: Option<String>,
    /// Correlation Data (0x09).
    pub correlation_data: Option<Bytes>,
    /// User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
    /// Subscription Identifiers (0x0B); only in server-to-client PUBLISH.
    pub subscription_identifiers: Vec<u32>,
    /// Content Type (0x03).
    pub content_type: Option<String>,
}

/// Will message carried in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will topic name.
    pub topic: String,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will Delay Interval (0x18) in seconds (MQTT 5).
    pub delay_interval: Option<u32>,
    /// Will properties other than the delay interval (MQTT 5).
    pub properties: PublishProperties,
}

/// MQTT 5 properties of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// Session Expiry Interval (0x11) in seconds.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (0x21); never 0.
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size (0x27) the client accepts; never 0.
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum (0x22) the client accepts.
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information (0x19): 0 or 1.
    pub request_response_information: Option<u8>,
    /// Request Problem Information (0x17): 0 or 1.
    pub request_problem_information: Option<u8>,
    /// User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
    /// Authentication Method (0x15).
    pub authentication_method: Option<String>,
    /// Authentication Data (0x16); only with a method.
    pub authentication_data: Option<Bytes>,
}

/// CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version given by the protocol name and level.
    pub version: Version,
    /// Clean Start (v5) / Clean Session (v3) flag.
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client identifier; may be empty.
    pub client_id: String,
    /// User name, if the user name flag is set.
    pub username: Option<String>,
    /// Password, if the password flag is set.
    pub password: Option<Bytes>,
    /// Will message, if the will flag is set.
    pub will: Option<Will>,
    /// MQTT 5 properties (default for v3).
    pub properties: ConnectProperties,
}

/// MQTT 5 properties of a CONNACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    /// Session Expiry Interval (0x11) in seconds.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (0x21).
    pub receive_maximum: Option<u16>,
    /// Maximum QoS (0x24): 0 or 1.
    pub maximum_qos: Option<u8>,
    /// Retain Available (0x25): 0 or 1.
    pub retain_available: Option<u8>,
    /// Maximum Packet Size (0x27) the server accepts.
    pub maximum_packet_size: Option<u32>,
    /// Assigned Client Identifier (0x12).
    pub assigned_client_identifier: Option<String>,
    /// Topic Alias Maximum (0x22) the server accepts.
    pub topic_alias_maximum: Option<u16>,
    /// Reason String (0x1F).
    pub reason_string: Option<String>,
    /// User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
    /// Wildcard Subscription Available (0x28): 0 or 1.
    pub wildcard_subscription_available: Option<u8>,
    /// Subscription Identifiers Available (0x29): 0 or 1.
    pub subscription_identifiers_available: Option<u8>,
    /// Shared Subscription Available (0x2A): 0 or 1.
    pub shared_subscription_available: Option<u8>,
    /// Server Keep Alive (0x13) in seconds.
    pub server_keep_alive: Option<u16>,
    /// Response Information (0x1A).
    pub response_information: Option<String>,
    /// Server Reference (0x1C).
    pub server_reference: Option<String>,
    /// Authentication Method (0x15).
    pub authentication_method: Option<String>,
    /// Authentication Data (0x16).
    pub authentication_data: Option<Bytes>,
}

/// CONNACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// MQTT 5 reason code or v3 return code, written as given.
    pub code: u8,
    /// MQTT 5 properties (dropped for v3).
    pub properties: ConnAckProperties,
}

/// PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP flag; only with QoS > 0.
    pub dup: bool,
    /// Delivery QoS.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name (may be empty in v5 when a topic alias is set); it shares the
    /// received packet's buffer, and clones of it share it too.
    pub topic: ByteString,
    /// Packet identifier; 0 when QoS 0 (not on the wire then).
    pub pkid: u16,
    /// MQTT 5 properties (dropped for v3).
    pub properties: PublishProperties,
    /// Application payload.
    pub payload: Bytes,
}

/// MQTT 5 properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    /// Reason String (0x1F).
    pub reason_string: Option<String>,
    /// User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier acknowledged.
    pub pkid: u16,
    /// MQTT 5 reason code (0 for v3).
    pub reason: u8,
    /// MQTT 5 properties (dropped for v3).
    pub properties: AckProperties,
}

/// Per-filter options of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Maximum QoS requested.
    pub qos: QoS,
    /// MQTT 5 No Local: do not send the client its own messages.
    pub no_local: bool,
    /// MQTT 5 Retain As Published.
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling: 0, 1 or 2.
    pub retain_handling: u8,
}

/// SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier; never 0.
    pub pkid: u16,
    /// Topic filters with their options, in wire order; at least one.
    pub filters: Vec<(String, SubscriptionOptions)>,
    /// MQTT 5 Subscription Identifier (0x0B): 1..=268,435,455.
    pub subscription_identifier: Option<u32>,
    /// MQTT 5 User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
}

/// SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub pkid: u16,
    /// One reason/return code per filter, written as given.
    pub reason_codes: Vec<u8>,
    /// MQTT 5 properties (dropped for v3).
    pub properties: AckProperties,
}

/// UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier; never 0.
    pub pkid: u16,
    /// Topic filters, in wire order; at least one.
    pub filters: Vec<String>,
    /// MQTT 5 User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
}

/// UNSUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub pkid: u16,
    /// MQTT 5 reason codes, one per filter; not written for v3.
    pub reason_codes: Vec<u8>,
    /// MQTT 5 properties (dropped for v3).
    pub properties: AckProperties,
}

/// MQTT 5 properties of a DISCONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    /// Session Expiry Interval (0x11) in seconds.
    pub session_expiry_interval: Option<u32>,
    /// Reason String (0x1F).
    pub reason_string: Option<String>,
    /// User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
    /// Server Reference (0x1C).
    pub server_reference: Option<String>,
}

/// DISCONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// MQTT 5 reason code (0 for v3).
    pub reason: u8,
    /// MQTT 5 properties (dropped for v3).
    pub properties: DisconnectProperties,
}

/// MQTT 5 properties of an AUTH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    /// Authentication Method (0x15).
    pub authentication_method: Option<String>,
    /// Authentication Data (0x16).
    pub authentication_data: Option<Bytes>,
    /// Reason String (0x1F).
    pub reason_string: Option<String>,
    /// User Properties (0x26), in wire order.
    pub user_properties: Vec<(String, String)>,
}

/// AUTH packet (MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Reason code: 0x00 success, 0x18 continue, 0x19 re-authenticate.
    pub reason: u8,
    /// Properties.
    pub properties: AuthProperties,
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT (boxed: it is much larger than the others).
    Connect(Box<Connect>),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(Ack),
    /// PUBREC.
    PubRec(Ack),
    /// PUBREL.
    PubRel(Ack),
    /// PUBCOMP.
    PubComp(Ack),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// UNSUBSCRIBE.
    Unsubscribe(Unsubscribe),
    /// UNSUBACK.
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// AUTH (MQTT 5 only).
    Auth(Auth),
}

/// MQTT 5 reason codes and MQTT 3 CONNACK/SUBACK return codes.
pub mod reason {
    /// Success / normal disconnection / granted QoS 0.
    pub const SUCCESS: u8 = 0x00;
    /// Granted QoS 1.
    pub const GRANTED_QOS_1: u8 = 0x01;
    /// Granted QoS 2.
    pub const GRANTED_QOS_2: u8 = 0x02;
    /// Disconnect with Will Message.
    pub const DISCONNECT_WITH_WILL: u8 = 0x04;
    /// No matching subscribers.
    pub const NO_MATCHING_SUBSCRIBERS: u8 = 0x10;
    /// No subscription existed.
    pub const NO_SUBSCRIPTION_EXISTED: u8 = 0x11;
    /// Unspecified error.
    pub const UNSPECIFIED: u8 = 0x80;
    /// Malformed Packet.
    pub const MALFORMED_PACKET: u8 = 0x81;
    /// Protocol Error.
    pub const PROTOCOL_ERROR: u8 = 0x82;
    /// Implementation specific error.
    pub const IMPLEMENTATION_SPECIFIC: u8 = 0x83;
    /// Unsupported Protocol Version.
    pub const UNSUPPORTED_PROTOCOL_VERSION: u8 = 0x84;
    /// Client Identifier not valid.
    pub const CLIENT_ID_NOT_VALID: u8 = 0x85;
    /// Bad User Name or Password.
    pub const BAD_USERNAME_OR_PASSWORD: u8 = 0x86;
    /// Not authorized.
    pub const NOT_AUTHORIZED: u8 = 0x87;
    /// Server unavailable.
    pub const SERVER_UNAVAILABLE: u8 = 0x88;
    /// Server busy.
    pub const SERVER_BUSY: u8 = 0x89;
    /// Banned.
    pub const BANNED: u8 = 0x8A;
    /// Server shutting down.
    pub const SERVER_SHUTTING_DOWN: u8 = 0x8B;
    /// Bad authentication method.
    pub const BAD_AUTHENTICATION_METHOD: u8 = 0x8C;
    /// Keep Alive timeout.
    pub const KEEP_ALIVE_TIMEOUT: u8 = 0x8D;
    /// Session taken over.
    pub const SESSION_TAKEN_OVER: u8 = 0x8E;
    /// Topic Filter invalid.
    pub const TOPIC_FILTER_INVALID: u8 = 0x8F;
    /// Topic Name invalid.
    pub const TOPIC_NAME_INVALID: u8 = 0x90;
    /// Packet Identifier in use.
    pub const PACKET_ID_IN_USE: u8 = 0x91;
    /// Packet Identifier not found.
    pub const PACKET_ID_NOT_FOUND: u8 = 0x92;
    /// Receive Maximum exceeded.
    pub const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
    /// Topic Alias invalid.
    pub const TOPIC_ALIAS_INVALID: u8 = 0x94;
    /// Packet too large.
    pub const PACKET_TOO_LARGE: u8 = 0x95;
    /// Message rate too high.
    pub const MESSAGE_RATE_TOO_HIGH: u8 = 0x96;
    /// Quota exceeded.
    pub const QUOTA_EXCEEDED: u8 = 0x97;
    /// Administrative action.
    pub const ADMINISTRATIVE_ACTION: u8 = 0x98;
    /// Payload format invalid.
    pub const PAYLOAD_FORMAT_INVALID: u8 = 0x99;
    /// Retain not supported.
    pub const RETAIN_NOT_SUPPORTED: u8 = 0x9A;
    /// QoS not supported.
    pub const QOS_NOT_SUPPORTED: u8 = 0x9B;
    /// Shared Subscriptions not supported.
    pub const SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0x9E;
    /// Connection rate exceeded.
    pub const CONNECTION_RATE_EXCEEDED: u8 = 0x9F;
    /// Maximum connect time.
    pub const MAXIMUM_CONNECT_TIME: u8 = 0xA0;
    /// Subscription Identifiers not supported.
    pub const SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: u8 = 0xA1;
    /// Wildcard Subscriptions not supported.
    pub const WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: u8 = 0xA2;
    /// v3 CONNACK: unacceptable protocol version.
    pub const V3_UNACCEPTABLE_PROTOCOL: u8 = 1;
    /// v3 CONNACK: identifier rejected.
    pub const V3_IDENTIFIER_REJECTED: u8 = 2;
    /// v3 CONNACK: server unavailable.
    pub const V3_SERVER_UNAVAILABLE: u8 = 3;
    /// v3 CONNACK: bad user name or password.
    pub const V3_BAD_CREDENTIALS: u8 = 4;
    /// v3 CONNACK: not authorized.
    pub const V3_NOT_AUTHORIZED: u8 = 5;
    /// v3 SUBACK: failure.
    pub const V3_SUBACK_FAILURE: u8 = 0x80;
}

/// MQTT 5 property identifiers (shared by the decoder and the encoder).
mod prop {
    pub(super) const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub(super) const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub(super) const CONTENT_TYPE: u8 = 0x03;
    pub(super) const RESPONSE_TOPIC: u8 = 0x08;
    pub(super) const CORRELATION_DATA: u8 = 0x09;
    pub(super) const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub(super) const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub(super) const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub(super) const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub(super) const AUTHENTICATION_METHOD: u8 = 0x15;
    pub(super) const AUTHENTICATION_DATA: u8 = 0x16;
    pub(super) const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub(super) const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub(super) const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub(super) const RESPONSE_INFORMATION: u8 = 0x1A;
    pub(super) const SERVER_REFERENCE: u8 = 0x1C;
    pub(super) const REASON_STRING: u8 = 0x1F;
    pub(super) const RECEIVE_MAXIMUM: u8 = 0x21;
    pub(super) const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub(super) const TOPIC_ALIAS: u8 = 0x23;
    pub(super) const MAXIMUM_QOS: u8 = 0x24;
    pub(super) const RETAIN_AVAILABLE: u8 = 0x25;
    pub(super) const USER_PROPERTY: u8 = 0x26;
    pub(super) const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub(super) const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub(super) const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub(super) const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}
