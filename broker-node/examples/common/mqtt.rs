//! A minimal MQTT 3.1.1 client on raw tokio sockets, for benchmarks that need latency
//! samples: unlike rumqttc 0.24, it sets `TCP_NODELAY`, so Nagle's algorithm on the
//! client side (which, with delayed ACKs, holds small QoS 0 packets for up to 40 ms)
//! does not end up in the brokers' figures. It is also cheaper on the CPU it shares
//! with the brokers.
//!
//! Only what the benchmarks need: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH at QoS 0
//! and 1, PUBACK, DISCONNECT. Keep-alives are long enough that no PINGREQ is due.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const CONNACK: u8 = 0x20;
pub const PUBLISH: u8 = 0x30;
pub const PUBACK: u8 = 0x40;
pub const SUBACK: u8 = 0x90;
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// Appends an MQTT remaining length.
fn remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    remaining_length(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A clean-session CONNECT.
pub fn connect_packet(client_id: &str, keep_alive_s: u16) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0b10];
    body.extend_from_slice(&keep_alive_s.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    packet(0x10, &body)
}

pub fn subscribe_packet(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    body.extend_from_slice(filter.as_bytes());
    body.push(qos);
    packet(0x82, &body)
}

/// Appends a PUBLISH (`packet_id` is used at QoS 1 only).
pub fn push_publish(out: &mut Vec<u8>, topic: &str, qos: u8, packet_id: u16, payload: &[u8]) {
    out.push(PUBLISH | (qos << 1));
    let id_len = if qos > 0 { 2 } else { 0 };
    remaining_length(out, 2 + topic.len() + id_len + payload.len());
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&packet_id.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

pub fn push_puback(out: &mut Vec<u8>, packet_id: u16) {
    out.extend_from_slice(&[PUBACK, 2]);
    out.extend_from_slice(&packet_id.to_be_bytes());
}

/// A received PUBLISH's QoS, packet id (0 at QoS 0) and payload, from its first byte
/// and body.
pub fn parse_publish(first: u8, body: &[u8]) -> Option<(u8, u16, &[u8])> {
    let qos = (first >> 1) & 0b11;
    let topic_len = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
    let mut at = 2 + topic_len;
    let mut packet_id = 0;
    if qos > 0 {
        packet_id = u16::from_be_bytes(body.get(at..at + 2)?.try_into().ok()?);
        at += 2;
    }
    Some((qos, packet_id, body.get(at..)?))
}

/// Opens a connection with `TCP_NODELAY`, sends CONNECT and waits for a successful
/// CONNACK.
pub async fn connect(
    addr: SocketAddr,
    client_id: &str,
    keep_alive_s: u16,
) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream
        .write_all(&connect_packet(client_id, keep_alive_s))
        .await?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).await?;
    if connack[0] != CONNACK || connack[3] != 0 {
        return Err(io::Error::other(format!("CONNACK {connack:02x?}")));
    }
    Ok(stream)
}

/// Reads whole packets off a stream, in the batches they arrive in.
pub struct Packets<R> {
    stream: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> Packets<R> {
    pub fn new(stream: R) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    /// Reads until at least one whole packet is buffered, then hands each buffered one to
    /// `each` (first byte, body after the fixed header); `false` at the end of the stream.
    /// Cancel-safe: bytes read stay buffered.
    pub async fn next_batch(&mut self, mut each: impl FnMut(u8, &[u8])) -> io::Result<bool> {
        loop {
            let mut any = false;
            while let Some((start, end)) = frame(&self.buf)? {
                each(self.buf[0], &self.buf[start..end]);
                self.buf.advance(end);
                any = true;
            }
            if any {
                return Ok(true);
            }
            if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(false);
            }
        }
    }

    /// Reads until a packet whose first byte is `first` arrives, dropping any other.
    pub async fn expect(&mut self, first: u8) -> io::Result<()> {
        let mut seen = false;
        while !seen {
            if !self.next_batch(|f, _| seen |= f == first).await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    }
}

/// Body start and packet end of the whole packet at the head of `buf`, if complete.
fn frame(buf: &[u8]) -> io::Result<Option<(usize, usize)>> {
    let mut remaining = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let start = 2 + i;
            let end = start + remaining;
            return Ok((buf.len() >= end).then_some((start, end)));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "remaining length longer than 4 bytes",
    ))
}
