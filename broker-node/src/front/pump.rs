//! Packet-aware relaying: bytes flow through unchanged, but split into whole MQTT packets
//! so the front sees every packet (to meter it now, to authorise it later) without
//! decoding more than the fixed header.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::MAX_PACKET_SIZE;

/// MQTT control packet types (the fixed header's high nibble).
pub mod packet_type {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const PUBLISH: u8 = 3;
    pub const DISCONNECT: u8 = 14;
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client to the engine.
    Inbound,
    /// From the engine to the client.
    Outbound,
}

/// Sees every packet that passes.
pub trait Observer {
    /// `packet` is one whole MQTT packet, fixed header included.
    fn packet(&self, direction: Direction, packet: &[u8]);
}

/// The length of the packet at the start of `buf`, if it is complete.
pub fn frame_len(buf: &[u8]) -> std::io::Result<Option<usize>> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if remaining > MAX_PACKET_SIZE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("packet of {remaining} bytes exceeds the size limit"),
                ));
            }
            let total = 2 + i + remaining;
            return Ok((buf.len() >= total).then_some(total));
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "remaining length longer than 4 bytes",
    ))
}

/// Copies `src` to `dst` packet by packet until `src` ends, then shuts `dst` down.
/// Packets that arrive together are written together, so batching is preserved.
pub async fn pump<R, W, O>(
    src: &mut R,
    dst: &mut W,
    direction: Direction,
    observer: &O,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    O: Observer + ?Sized,
{
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        if src.read_buf(&mut buf).await? == 0 {
            dst.shutdown().await?;
            return Ok(());
        }
        let mut complete = 0;
        while let Some(len) = frame_len(&buf[complete..])? {
            observer.packet(direction, &buf[complete..complete + len]);
            complete += len;
        }
        if complete > 0 {
            dst.write_all(&buf[..complete]).await?;
            // TLS and WebSocket streams hold written bytes until flushed.
            dst.flush().await?;
            buf.advance(complete);
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<Vec<Vec<u8>>>);

    impl Observer for Seen {
        fn packet(&self, _: Direction, packet: &[u8]) {
            self.0.lock().unwrap().push(packet.to_vec());
        }
    }

    #[test]
    fn frames_need_whole_packets() {
        assert_eq!(frame_len(&[0x30]).unwrap(), None);
        assert_eq!(frame_len(&[0x30, 2, 0]).unwrap(), None);
        assert_eq!(frame_len(&[0x30, 2, 0, 0]).unwrap(), Some(4));
        assert_eq!(frame_len(&[0xc0, 0]).unwrap(), Some(2));
        assert!(frame_len(&[0x30, 0xff, 0xff, 0xff, 0xff, 1]).is_err());
    }

    #[tokio::test]
    async fn relays_bytes_unchanged_and_sees_each_packet() {
        let mut input = vec![0xc0, 0x00]; // PINGREQ
        let mut publish = vec![0x31, 200];
        publish.extend(std::iter::repeat_n(7u8, 200 - 1 + 1));
        publish[1] = 0xc8;
        publish.insert(2, 0x01); // remaining length 200 as two bytes: 0xc8 0x01
        publish.truncate(3 + 200);
        input.extend(&publish);
        input.extend([0xe0, 0x00]); // DISCONNECT
        let seen = Seen::default();
        let mut src = &input[..];
        let mut out = Vec::new();
        pump(&mut src, &mut out, Direction::Inbound, &seen)
            .await
            .unwrap();
        assert_eq!(out, input);
        let seen = seen.0.into_inner().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1].len(), 203);
        assert_eq!(seen[1][0] >> 4, packet_type::PUBLISH);
    }
}
