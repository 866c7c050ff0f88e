//! Packet-aware relaying: bytes flow through unchanged, but split into whole MQTT packets
//! so the front sees every packet (to meter and authorise it) without decoding more than
//! it needs.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::MAX_PACKET_SIZE;

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

/// Reads a stream in batches of whole packets: the packets that arrived together stay
/// together, so batching is preserved end to end.
struct Frames<'a, R> {
    src: &'a mut R,
    buf: BytesMut,
    /// End offset of each packet of the current batch.
    ends: Vec<usize>,
}

impl<'a, R: AsyncRead + Unpin> Frames<'a, R> {
    fn new(src: &'a mut R) -> Self {
        Self {
            src,
            buf: BytesMut::with_capacity(16 * 1024),
            ends: Vec::new(),
        }
    }

    /// Reads until at least one whole packet is buffered; `false` at the end of the stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        loop {
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(16 * 1024);
            }
            if self.src.read_buf(&mut self.buf).await? == 0 {
                return Ok(false);
            }
            self.ends.clear();
            let mut complete = 0;
            while let Some(len) = frame_len(&self.buf[complete..])? {
                complete += len;
                self.ends.push(complete);
            }
            if complete > 0 {
                return Ok(true);
            }
        }
    }

    /// The packets of the current batch: their bytes and each one's end offset.
    fn batch(&self) -> (&[u8], &[usize]) {
        let end = self.ends.last().copied().unwrap_or(0);
        (&self.buf[..end], &self.ends)
    }

    /// Drops the current batch from the buffer.
    fn consume(&mut self) {
        let end = self.ends.last().copied().unwrap_or(0);
        self.buf.advance(end);
        self.ends.clear();
    }
}

/// Relays the engine's packets to the client until the engine closes, letting `rewrite`
/// replace any of them.
pub async fn outbound<R, W, O>(
    engine: &mut R,
    client: &ClientWriter<W>,
    observer: &O,
    rewrite: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    O: Observer + ?Sized,
{
    let mut frames = Frames::new(engine);
    while frames.fill().await? {
        let (bytes, ends) = frames.batch();
        let mut out: Option<Vec<u8>> = None;
        let mut start = 0;
        for &end in ends {
            let packet = &bytes[start..end];
            match rewrite(packet) {
                Some(replaced) => {
                    // An empty replacement drops the packet.
                    if !replaced.is_empty() {
                        observer.packet(Direction::Outbound, &replaced);
                    }
                    out.get_or_insert_with(|| bytes[..start].to_vec())
                        .extend(replaced);
                }
                None => {
                    observer.packet(Direction::Outbound, packet);
                    if let Some(out) = &mut out {
                        out.extend_from_slice(packet);
                    }
                }
            }
            start = end;
        }
        let send = out.as_deref().unwrap_or(bytes);
        if !send.is_empty() {
            client.send(send).await?;
        }
        frames.consume();
    }
    client.shutdown().await
}

/// Relays the client's packets to the engine until the client closes (or the gate closes
/// the connection), letting the gate forward, replace or answer each one. Between
/// batches it also sends the engine what the deployment API asks in the client's name
/// (`commands`); those packets are the node's, not the client's traffic.
pub async fn inbound<R, E, W, O>(
    client_rx: &mut R,
    engine: &mut E,
    client: &ClientWriter<W>,
    observer: &O,
    gate: &super::gate::Gate,
    mut commands: Option<&mut tokio::sync::mpsc::Receiver<super::clients::Command>>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    E: AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
    O: Observer + ?Sized,
{
    use super::gate::Inbound;
    let mut frames = Frames::new(client_rx);
    let mut open = true;
    while open {
        let filled = match commands.as_deref_mut() {
            // `fill` keeps what it read in `frames`, so losing the race loses nothing.
            Some(rx) => tokio::select! {
                filled = frames.fill() => filled?,
                command = rx.recv() => {
                    match command {
                        Some(command) => {
                            engine.write_all(&gate.command(command)).await?;
                            engine.flush().await?;
                        }
                        None => commands = None,
                    }
                    continue;
                }
            },
            None => frames.fill().await?,
        };
        if !filled {
            break;
        }
        let (bytes, ends) = frames.batch();
        let mut out: Option<Vec<u8>> = None;
        let mut start = 0;
        for &end in ends {
            let packet = &bytes[start..end];
            observer.packet(Direction::Inbound, packet);
            let answer = match gate.inbound(packet).await {
                Inbound::Forward => {
                    if let Some(out) = &mut out {
                        out.extend_from_slice(packet);
                    }
                    None
                }
                Inbound::Replace(replaced) => {
                    out.get_or_insert_with(|| bytes[..start].to_vec())
                        .extend(replaced);
                    None
                }
                Inbound::Answer(answer) => Some(answer),
                Inbound::Close(answer) => {
                    open = false;
                    Some(answer)
                }
            };
            if let Some(answer) = answer {
                out.get_or_insert_with(|| bytes[..start].to_vec());
                if !answer.is_empty() {
                    // An answer of the front's own is traffic out like the engine's.
                    observer.packet(Direction::Outbound, &answer);
                    client.send(&answer).await?;
                }
            }
            start = end;
            if !open {
                break;
            }
        }
        let forward = out.as_deref().unwrap_or(bytes);
        if !forward.is_empty() {
            engine.write_all(forward).await?;
            engine.flush().await?;
        }
        frames.consume();
    }
    engine.shutdown().await
}

/// The client's side of the connection, written by both pumps: the outbound one relays
/// the engine's packets, the inbound one answers what the gate refused.
pub struct ClientWriter<W>(tokio::sync::Mutex<W>);

impl<W: AsyncWrite + Unpin> ClientWriter<W> {
    pub fn new(writer: W) -> Self {
        Self(tokio::sync::Mutex::new(writer))
    }

    /// Writes and flushes (TLS and WebSocket streams hold written bytes until flushed).
    pub async fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut writer = self.0.lock().await;
        writer.write_all(bytes).await?;
        writer.flush().await
    }

    pub async fn shutdown(&self) -> std::io::Result<()> {
        self.0.lock().await.shutdown().await
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
        let out = ClientWriter::new(Vec::new());
        outbound(&mut src, &out, &seen, |_| None).await.unwrap();
        assert_eq!(out.0.into_inner(), input);
        let seen = seen.0.into_inner().unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1].len(), 203);
        assert_eq!(seen[1][0] >> 4, super::super::packet::kind::PUBLISH);
    }
}
