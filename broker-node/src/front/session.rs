//! What metering needs from a CONNECT: the client id and how long its session outlives
//! the connection (product §4: v3 persistent sessions 2 h by default, v5 the client's
//! expiry, capped; both set per deployment in `security.json`'s `sessions`).

use std::time::Duration;

use super::packet::{body_start, varint};
use crate::metering::SessionEnd;

/// The default for how long a persistent session outlives its connection.
#[cfg(test)]
const SESSION_EXPIRY: Duration = Duration::from_secs(2 * 3600);

fn u16_at(buf: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([
        *buf.get(at)?,
        *buf.get(at + 1)?,
    ])))
}

/// The session expiry property (0x11) among v5 CONNECT properties, if present.
fn session_expiry(props: &[u8]) -> Option<u32> {
    let mut i = 0;
    while i < props.len() {
        let id = props[i];
        i += 1;
        let skip = match id {
            0x11 => {
                let bytes = props.get(i..i + 4)?;
                return Some(u32::from_be_bytes(bytes.try_into().ok()?));
            }
            0x17 | 0x19 => 1,
            0x21 | 0x22 => 2,
            0x27 => 4,
            0x15 | 0x16 => 2 + u16_at(props, i)?,
            0x26 => {
                let first = 2 + u16_at(props, i)?;
                first + 2 + u16_at(props, i + first)?
            }
            _ => return None,
        };
        i += skip;
    }
    None
}

/// Client id and session end of a CONNECT packet (as the client sent it), under the
/// deployment's session settings.
pub fn from_connect(
    packet: &[u8],
    settings: &crate::security::settings::SessionSettings,
) -> Option<(String, SessionEnd)> {
    let v3_expiry = Duration::from_secs(settings.session_expiry_secs);
    let max_expiry = Duration::from_secs(settings.max_session_expiry_secs);
    let start = body_start(packet)?;
    let body = &packet[start..];
    let name_len = u16_at(body, 0)?;
    let level = *body.get(2 + name_len)?;
    let flags = *body.get(3 + name_len)?;
    let clean = flags & 0b10 != 0;
    let mut at = 6 + name_len;
    let mut expiry = None;
    if level == 5 {
        let (len, used) = varint(body.get(at..)?)?;
        expiry = session_expiry(body.get(at + used..at + used + len)?);
        at += used + len;
    }
    let id_len = u16_at(body, at)?;
    let client_id = String::from_utf8_lossy(body.get(at + 2..at + 2 + id_len)?).into_owned();
    let end = match (level, clean, expiry) {
        (5, _, None | Some(0)) => SessionEnd::AtDisconnect,
        (5, _, Some(secs)) => {
            SessionEnd::After(Duration::from_secs(u64::from(secs)).min(max_expiry))
        }
        (_, true, _) => SessionEnd::AtDisconnect,
        (_, false, _) if v3_expiry.is_zero() => SessionEnd::AtDisconnect,
        (_, false, _) => SessionEnd::After(v3_expiry),
    };
    Some((client_id, end))
}

/// Whether a CONNACK accepts the connection (return/reason code 0).
pub fn connack_accepts(packet: &[u8]) -> bool {
    body_start(packet)
        .and_then(|s| packet.get(s + 1))
        .is_some_and(|rc| *rc == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(level: u8, flags: u8, props: &[u8], id: &str) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, flags, 0, 60];
        if level == 5 {
            body.push(props.len() as u8);
            body.extend_from_slice(props);
        }
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
        let mut p = vec![0x10, body.len() as u8];
        p.extend(body);
        p
    }

    #[test]
    fn v3_sessions_follow_clean_session() {
        assert_eq!(
            from_connect(&connect(4, 0b10, &[], "a"), &Default::default()),
            Some(("a".into(), SessionEnd::AtDisconnect))
        );
        assert_eq!(
            from_connect(&connect(4, 0, &[], "b"), &Default::default()),
            Some(("b".into(), SessionEnd::After(SESSION_EXPIRY)))
        );
    }

    #[test]
    fn v5_sessions_follow_the_expiry_property_capped() {
        let user = [0x26, 0, 1, b'k', 0, 1, b'v'];
        let mut props = user.to_vec();
        props.extend([0x11, 0, 0, 0, 30]);
        assert_eq!(
            from_connect(&connect(5, 0, &props, "c"), &Default::default()),
            Some(("c".into(), SessionEnd::After(Duration::from_secs(30))))
        );
        assert_eq!(
            from_connect(&connect(5, 0, &[], "d"), &Default::default())
                .unwrap()
                .1,
            SessionEnd::AtDisconnect
        );
        let long = [0x11, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            from_connect(&connect(5, 0, &long, "e"), &Default::default())
                .unwrap()
                .1,
            SessionEnd::After(SESSION_EXPIRY)
        );
    }

    #[test]
    fn connack_codes() {
        assert!(connack_accepts(&[0x20, 2, 0, 0]));
        assert!(!connack_accepts(&[0x20, 2, 0, 5]));
    }
}
