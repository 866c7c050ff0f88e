// The "Networking" tab: custom domains (the DNS record to create, a verify button, live
// status), the NAT gateway and the internal endpoint. None is offered on serverless.

import { canWrite, repeat, roleNote, v1 } from "./api.js";
import { applyBadge, changed, confirmButton, copyButton, errorBox, field, form, h, loading, statusBadge, table, time } from "./ui.js";

export async function networking(dep, body) {
  if (dep.plan === "serverless") {
    body.append(h("p", { class: "notice" },
      "Custom domains, the NAT gateway and the internal endpoint need the dedicated or premium plan; change the plan on the Overview tab."));
    return;
  }
  const disabled = !canWrite();
  body.append(h("div", {},
    disabled ? h("p", { class: "notice" }, roleNote("developer")) : null,
    h("h2", {}, "Custom domains"), domains(dep, disabled),
    h("h2", {}, "NAT gateway"), natGateway(dep, disabled),
    h("h2", {}, "Internal endpoint"), internalEndpoint(dep, disabled)));
}

/** What DNS answered at the last check, in words. */
function observed(d) {
  const o = d.observed;
  if (!o) return d.checks ? "nothing yet" : "not checked yet";
  if (o.error) return `lookup failed: ${o.error}`;
  const cname = [].concat(o.cname || []);
  if (cname.length) return `CNAME ${cname.join(", ")}`;
  if (o.addresses?.length) return `addresses ${o.addresses.join(", ")}`;
  return "no record";
}

function domains(dep, disabled) {
  const list = h("div", { "aria-live": "polite" }, loading("domains"));
  const errors = h("div", { "aria-live": "polite" });
  const memo = {};
  const refresh = async () => {
    try {
      const page = await v1.listDomains(dep.id);
      if (!changed(memo, page.items)) return;
      list.replaceChildren(page.items.length ? table(["Domain", "Status", "DNS record to create", "Last check", ""],
        page.items.map((d) => h("tr", { "data-domain": d.domain },
          h("td", {}, h("strong", {}, d.domain), h("div", { class: "muted" },
            `certificate ${d.certificate.source === "custom" ? "uploaded" : "issued by Skyport's CA"}, expires `, time(d.certificate.expires_at))),
          h("td", {}, statusBadge(d.status), " ", d.status === "active" ? applyBadge(d) : null),
          h("td", {}, d.dns_record
            ? [h("code", { "data-record": d.domain }, `${d.dns_record.name} ${d.dns_record.type} ${d.dns_record.value}`), " ",
              copyButton(d.dns_record.value, "Copy value")]
            : "—"),
          h("td", {}, d.last_checked_at ? time(d.last_checked_at) : "never",
            h("div", { class: "muted" }, d.status === "active" ? ["verified ", time(d.verified_at)] : observed(d)),
            d.status !== "active" && d.next_check_at ? h("div", { class: "muted" }, "next automatic check ", time(d.next_check_at)) : null),
          h("td", {}, h("div", { class: "row" },
            d.status === "active" ? null : confirmButton("Verify", null, async () => {
              await v1.verifyDomain(dep.id, d.domain, { wait: false });
              await refresh();
            }, { cls: "", disabled, errors, title: `Look up ${d.domain} now` }),
            confirmButton("Remove", `Remove ${d.domain}? The broker stops serving its certificate.`, async () => {
              await v1.deleteDomain(dep.id, d.domain, { wait: false });
              await refresh();
            }, { disabled, errors }))))), { "data-list": "domains" })
        : h("p", { class: "muted" }, "No custom domains: clients use the default host."));
    } catch (err) { memo.last = null; list.replaceChildren(errorBox(err)); }
  };
  const add = form({ "aria-label": "Add a custom domain", disabled }, [
    ...field("Domain", h("input", { name: "domain", id: "domain-name", required: true, placeholder: "mqtt.example.com", autocomplete: "off" })),
    h("details", {}, h("summary", {}, "Use my own certificate (otherwise Skyport's CA issues one)"),
      ...field("Certificate chain (PEM, must cover the domain)", h("textarea", { name: "certificate", id: "domain-cert" })),
      ...field("Private key (PEM; stored encrypted, never shown again)", h("textarea", { name: "private_key", id: "domain-key" }))),
    h("p", { class: "muted" }, "After adding, create the DNS record shown in the list at your DNS provider, then press Verify (Skyport also re-checks by itself)."),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Add domain")),
  ], async (data, el) => {
    const req = { domain: data.get("domain") };
    if (data.get("certificate")) req.certificate = data.get("certificate");
    if (data.get("private_key")) req.private_key = data.get("private_key");
    await v1.addDomain(dep.id, req);
    el.reset();
    await refresh();
  });
  refresh();
  // Live status: the background check and the broker's delivery change it.
  repeat(refresh, 3000);
  return h("div", { class: "card" }, list, errors, h("h3", {}, "Add a domain"), add);
}

/** An add-on, or null when the deployment's `network` section says it has none (asked
 *  first, so the browser never logs the add-on's 404). */
async function optional(dep, get, present) {
  const now = await v1.getDeployment(dep.id);
  if (!present(now.network || {})) return null;
  try {
    return await get(dep.id);
  } catch (err) {
    if (err.status === 404) return null;
    throw err;
  }
}

function natGateway(dep, disabled) {
  const view = h("div", { "aria-live": "polite" }, loading("the NAT gateway"));
  const errors = h("div", { "aria-live": "polite" });
  const memo = {};
  const refresh = async () => {
    try {
      const nat = await optional(dep, v1.getNatGateway, (n) => n.egress_addresses?.length);
      if (!changed(memo, nat)) return;
      view.replaceChildren(nat
        ? h("div", { "data-nat": nat.status },
          h("p", {}, statusBadge(nat.status), " since ", time(nat.created_at)),
          h("p", {}, "Outbound traffic (external HTTP authentication and authorization) leaves from ",
            ...nat.egress_addresses.flatMap((a, i) => [i ? ", " : "", h("code", {}, a)]),
            ": allow these addresses in your firewalls."),
          confirmButton("Delete NAT gateway", "Delete the NAT gateway? Outbound traffic leaves from any address again.", async () => {
            await v1.deleteNatGateway(dep.id, { wait: false });
            await refresh();
          }, { disabled, errors }))
        : h("div", {}, h("p", { class: "muted" }, "No NAT gateway: outbound traffic leaves from any of the platform's addresses."),
          confirmButton("Create NAT gateway", null, async () => {
            await v1.putNatGateway(dep.id, { wait: false });
            await refresh();
          }, { cls: "", disabled, errors })));
    } catch (err) { memo.last = null; view.replaceChildren(errorBox(err)); }
  };
  refresh();
  repeat(refresh, 5000);
  return h("div", { class: "card" }, view, errors);
}

function internalEndpoint(dep, disabled) {
  const view = h("div", { "aria-live": "polite" }, loading("the internal endpoint"));
  const errors = h("div", { "aria-live": "polite" });
  const cidrs = h("textarea", { name: "allowed_cidrs", id: "internal-cidrs", rows: 3, placeholder: "10.0.0.0/16\n192.168.10.0/24" });
  const memo = {};
  const refresh = async () => {
    try {
      const ie = await optional(dep, v1.getInternalEndpoint, (n) => n.internal_endpoint);
      if (!changed(memo, ie)) return;
      if (ie && document.activeElement !== cidrs && !cidrs.dataset.edited) cidrs.value = ie.allowed_cidrs.join("\n");
      const urls = ie ? Object.entries(ie.endpoints).filter(([, v]) => v) : [];
      view.replaceChildren(ie
        ? h("div", { "data-internal": ie.status },
          h("p", {}, statusBadge(ie.status), ie.address ? [" at ", h("code", {}, ie.address)] : null, ", updated ", time(ie.updated_at)),
          urls.length ? table(["", "Endpoint"], urls.map(([k, v]) => [k, h("code", {}, v)])) : null,
          confirmButton("Delete internal endpoint", "Delete the internal endpoint? Its listeners close.", async () => {
            await v1.deleteInternalEndpoint(dep.id, { wait: false });
            cidrs.value = "";
            await refresh();
          }, { disabled, errors }))
        : h("p", { class: "muted" }, "No internal endpoint: clients connect through the public endpoints only."));
    } catch (err) { memo.last = null; view.replaceChildren(errorBox(err)); }
  };
  cidrs.addEventListener("input", () => { cidrs.dataset.edited = "1"; });
  const put = form({ "aria-label": "Internal endpoint ranges", disabled }, [
    ...field("Allowed source ranges (CIDR, one per line; a bare address is one host)", cidrs),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Save internal endpoint")),
  ], async (data) => {
    const allowed = String(data.get("allowed_cidrs")).split(/[\s,]+/).filter(Boolean);
    await v1.putInternalEndpoint(dep.id, { allowed_cidrs: allowed }, { wait: false });
    delete cidrs.dataset.edited;
    await refresh();
  });
  refresh();
  repeat(refresh, 5000);
  return h("div", { class: "card" }, view, errors,
    h("p", { class: "muted" }, "A second, private entry point on the same MQTT ports for peered networks; only the ranges below may connect."), put);
}
