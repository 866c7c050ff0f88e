// The "online test" tab: an MQTT client in the page (mqtt.js, over WebSocket) connecting
// to the deployment's ws/wss endpoint, so messages can be seen flowing without installing
// anything.

import { state } from "./api.js";
import { MqttClient } from "./mqtt.js";
import { field, form, h } from "./ui.js";

export async function onlineTest(dep, body) {
  const e = dep.endpoints || {};
  const urls = ["wss", "ws"].filter((k) => e[k]);
  if (!urls.length) {
    body.append(h("p", { class: "notice" }, "The deployment has no WebSocket endpoint yet: wait until it is running."));
    return;
  }
  const log = h("ul", { class: "log", "aria-live": "polite", id: "mqtt-log" });
  const status = h("p", { class: "muted", id: "mqtt-status", "aria-live": "polite" }, "Not connected.");
  const note = (text, cls) => log.prepend(h("li", { class: cls }, `${new Date().toLocaleTimeString()} `, text));
  const connectForm = form({ "aria-label": "Connect" }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Endpoint", h("select", { name: "url" }, ...urls.map((k) => h("option", { value: e[k] }, `${k} — ${e[k]}`))))),
      h("div", {}, ...field("Client id", h("input", { name: "client_id", value: `console-${Math.random().toString(16).slice(2, 8)}` }))),
      h("div", {}, ...field("Username", h("input", { name: "username", autocomplete: "off" }))),
      h("div", {}, ...field("Password", h("input", { name: "password", type: "password", autocomplete: "off" })))),
    h("p", { class: "muted" }, "wss needs your browser to trust the deployment's certificate (Skyport's CA, or your own); ws works without."),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Connect"),
      h("button", { type: "button", class: "secondary", onclick: () => state.mqtt?.disconnect() }, "Disconnect")),
  ], async (data) => {
    state.mqtt?.disconnect();
    const client = new MqttClient({
      onMessage: (topic, text) => note(h("span", {}, "received ", h("code", {}, topic), ": ", h("code", { class: "payload" }, text))),
      onClose: (reason) => { status.textContent = `Disconnected: ${reason}`; },
    });
    status.textContent = "Connecting…";
    try {
      await client.connect(data.get("url"), {
        clientId: data.get("client_id"), username: data.get("username"), password: data.get("password"),
      });
    } catch (err) {
      status.textContent = "Not connected.";
      throw err;
    }
    state.mqtt = client;
    status.textContent = `Connected as ${data.get("client_id")}.`;
    note("connected");
  });
  const subForm = form({ "aria-label": "Subscribe" }, [
    ...field("Topic filter", h("input", { name: "filter", value: "test/#" })),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Subscribe")),
  ], async (data) => {
    if (!state.mqtt?.connected) throw new Error("connect first");
    await state.mqtt.subscribe(data.get("filter"), 0);
    note(`subscribed to ${data.get("filter")}`);
  });
  const pubForm = form({ "aria-label": "Publish" }, [
    h("div", { class: "grid" },
      h("div", {}, ...field("Topic", h("input", { name: "topic", value: "test/hello" }))),
      h("div", {}, ...field("QoS", h("select", { name: "qos" }, h("option", { value: "0" }, "0"), h("option", { value: "1" }, "1"))))),
    ...field("Payload", h("textarea", { name: "payload" }, "hello from the Skyport console")),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Publish")),
  ], async (data) => {
    if (!state.mqtt?.connected) throw new Error("connect first");
    await state.mqtt.publish(data.get("topic"), data.get("payload"), Number(data.get("qos")));
    note(`published to ${data.get("topic")}`);
  });
  body.append(h("div", { class: "card" }, connectForm, status),
    h("div", { class: "grid" }, h("div", { class: "card" }, subForm), h("div", { class: "card" }, pubForm)),
    h("h2", {}, "Messages"), h("div", { class: "card" }, log));
}
