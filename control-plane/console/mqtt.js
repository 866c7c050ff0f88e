// A small MQTT 3.1.1 client over WebSocket (subprotocol "mqtt"), enough for the
// console's online test: connect with a user, subscribe, publish at QoS 0 or 1, receive.
// Written here rather than pulled from a package to keep the console dependency-free.

const enc = new TextEncoder();
const dec = new TextDecoder();

function utf8(s) {
  const b = enc.encode(s);
  return [b.length >> 8, b.length & 255, ...b];
}

function remainingLength(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 128;
    out.push(byte);
  } while (n > 0);
  return out;
}

function packet(first, body) {
  return new Uint8Array([first, ...remainingLength(body.length), ...body]);
}

const CONNACK_REASONS = {
  1: "unacceptable protocol version",
  2: "client identifier rejected",
  3: "server unavailable",
  4: "bad user name or password",
  5: "not authorized",
};

export class MqttClient {
  /** Callbacks: onMessage(topic, payloadText), onClose(reason). */
  constructor({ onMessage, onClose }) {
    this.onMessage = onMessage;
    this.onClose = onClose;
    this.nextId = 1;
    this.pending = new Map();
    this.buffer = new Uint8Array(0);
  }

  /** Connects; resolves on CONNACK 0, rejects with the broker's reason otherwise. */
  connect(url, { clientId, username, password, keepalive = 30 }) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new WebSocket(url, ["mqtt"]);
      } catch (e) {
        reject(new Error(`cannot open ${url}: ${e.message}`));
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      this.connected = false;
      this.connectWaiter = { resolve, reject };
      ws.onopen = () => {
        let flags = 0x02; // clean session
        const payload = [...utf8(clientId)];
        if (username) { flags |= 0x80; payload.push(...utf8(username)); }
        if (password) { flags |= 0x40; payload.push(...utf8(password)); }
        const body = [...utf8("MQTT"), 4, flags, keepalive >> 8, keepalive & 255, ...payload];
        ws.send(packet(0x10, body));
        this.ping = setInterval(() => this.send(new Uint8Array([0xc0, 0])), keepalive * 500);
      };
      ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
      ws.onerror = () => {
        if (!this.connected) reject(new Error(`cannot reach ${url}`));
      };
      ws.onclose = (ev) => {
        clearInterval(this.ping);
        const reason = ev.reason || `connection closed (code ${ev.code})`;
        if (!this.connected) reject(new Error(reason));
        for (const { reject: fail } of this.pending.values()) fail(new Error(reason));
        this.pending.clear();
        if (this.connected && this.onClose) this.onClose(reason);
        this.connected = false;
      };
    });
  }

  send(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  packetId() {
    const id = this.nextId;
    this.nextId = (this.nextId % 65535) + 1;
    return id;
  }

  waitFor(id) {
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** Subscribes; resolves with the granted QoS, rejects when the broker refuses. */
  async subscribe(filter, qos = 0) {
    const id = this.packetId();
    this.send(packet(0x82, [id >> 8, id & 255, ...utf8(filter), qos]));
    const granted = await this.waitFor(id);
    if (granted === 0x80) throw new Error(`the broker refused the subscription to ${filter}`);
    return granted;
  }

  /** Publishes; at QoS 1 resolves when the broker acknowledges. */
  async publish(topic, text, qos = 0) {
    const payload = enc.encode(text);
    if (qos === 0) {
      this.send(packet(0x30, [...utf8(topic), ...payload]));
      return;
    }
    const id = this.packetId();
    this.send(packet(0x32, [...utf8(topic), id >> 8, id & 255, ...payload]));
    await this.waitFor(id);
  }

  disconnect() {
    this.send(new Uint8Array([0xe0, 0]));
    this.connected = false;
    if (this.ws) this.ws.close();
  }

  receive(chunk) {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    this.buffer = joined;
    for (;;) {
      let len = 0, mult = 1, i = 1;
      for (;;) {
        if (i >= this.buffer.length) return;
        const b = this.buffer[i++];
        len += (b & 127) * mult;
        mult *= 128;
        if (!(b & 128)) break;
      }
      if (this.buffer.length < i + len) return;
      const first = this.buffer[0];
      const body = this.buffer.slice(i, i + len);
      this.buffer = this.buffer.slice(i + len);
      this.handle(first, body);
    }
  }

  handle(first, body) {
    const type = first >> 4;
    if (type === 2) { // CONNACK
      const code = body[1];
      if (code === 0) {
        this.connected = true;
        this.connectWaiter.resolve();
      } else {
        this.connectWaiter.reject(new Error(`the broker refused the connection: ${CONNACK_REASONS[code] || `code ${code}`}`));
        this.ws.close();
      }
    } else if (type === 3) { // PUBLISH
      const qos = (first >> 1) & 3;
      const tlen = (body[0] << 8) | body[1];
      const topic = dec.decode(body.slice(2, 2 + tlen));
      let at = 2 + tlen;
      if (qos > 0) {
        const id = [body[at], body[at + 1]];
        at += 2;
        if (qos === 1) this.send(new Uint8Array([0x40, 2, ...id]));
        else this.send(new Uint8Array([0x50, 2, ...id]));
      }
      if (this.onMessage) this.onMessage(topic, dec.decode(body.slice(at)));
    } else if (type === 4 || type === 9) { // PUBACK, SUBACK
      const id = (body[0] << 8) | body[1];
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      if (waiter) waiter.resolve(type === 9 ? body[2] : undefined);
    } else if (type === 6) { // PUBREL (of a QoS 2 message we received)
      this.send(new Uint8Array([0x70, 2, body[0], body[1]]));
    }
  }
}
