// The "App keys" tab: keys of the deployment's own HTTP API (HTTP Basic app_id:secret,
// as EMQX's), listed without secrets, created with the secret shown once, deleted.

import { canWrite, repeat, roleNote, v1 } from "./api.js";
import { applyBadge, changed, confirmButton, copyButton, errorBox, field, form, h, loading, table, time } from "./ui.js";

export async function appKeys(dep, body) {
  const disabled = !canWrite();
  const list = h("div", { "aria-live": "polite" }, loading("app keys"));
  const errors = h("div", { "aria-live": "polite" });
  const secret = h("div", { "aria-live": "polite" });
  const memo = {};
  const refresh = async () => {
    try {
      const page = await v1.listAppKeys(dep.id, { limit: 100 });
      if (!changed(memo, page.items)) return;
      list.replaceChildren(page.items.length ? table(["Name", "App id", ["Created", { class: "hide-narrow" }], "", ""],
        page.items.map((k) => h("tr", { "data-app-key": k.name },
          h("td", {}, k.name, k.session_bound ? h("div", { class: "muted" }, "a console sign-in's; deleted when it ends") : null,
            k.read_only ? h("div", { class: "muted", "data-read-only": "" }, "read only (GET requests)") : null),
          h("td", {}, h("code", {}, k.app_id)),
          h("td", { class: "hide-narrow" }, time(k.created_at)), h("td", {}, applyBadge(k)),
          h("td", {}, confirmButton("Delete", `Delete the app key ${k.name}? Programs using it get 401 at once.`, async () => {
            await v1.deleteAppKey(dep.id, k.app_id, { wait: false });
            await refresh();
          }, { disabled, errors })))))
        : h("p", { class: "muted" }, "No app keys yet."));
    } catch (err) { memo.last = null; list.replaceChildren(errorBox(err)); }
  };
  const add = form({ "aria-label": "Create an app key", disabled }, [
    ...field("Name", h("input", { name: "name", id: "app-key-name", required: true, maxlength: 64, placeholder: "e.g. backend" })),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Create app key")),
  ], async (data, el) => {
    const key = await v1.createAppKey(dep.id, { name: data.get("name") }, { wait: false });
    el.reset();
    secret.replaceChildren(h("div", { class: "secret", role: "status" },
      h("p", {}, h("strong", {}, "Copy the secret now: it is shown only once.")),
      h("p", {}, "App id ", h("code", { id: "new-app-id" }, key.app_id), " ", copyButton(key.app_id)),
      h("p", {}, "Secret ", h("code", { id: "new-app-secret" }, key.app_secret), " ", copyButton(key.app_secret)),
      h("p", { class: "muted" }, "Example: ", h("code", {}, `curl -u ${key.app_id}:SECRET ${dep.endpoints?.api || "API"}/api/v4/clients`))));
    await refresh();
  });
  body.append(
    h("p", { class: "muted" }, "App keys authenticate programs to the deployment's own HTTP API (", h("code", {}, `${dep.endpoints?.api || "…"}/api/v4`),
      ") with HTTP Basic. The console makes one named \"web console\" for itself (read-only for viewers); it is deleted when you sign out or your session ends."),
    h("div", { class: "card" }, secret, list, errors,
      disabled ? h("p", { class: "notice" }, roleNote("developer")) : [h("h3", {}, "New app key"), add]));
  await refresh();
  repeat(refresh, 5000);
}
