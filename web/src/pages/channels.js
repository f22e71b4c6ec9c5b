// Channels (/v1/channels): where the tenant's notifications and findings are delivered besides
// this app (a signed webhook, a Slack incoming webhook, an email address), how the last delivery
// went, add and remove. The API never lists a secret, nor the part of a URL that works as one; a
// webhook's secret that kopter made is in the answer that added it, and shown that once.
import { call } from "../api.js";
import { field, h, messages, select, table, when } from "../ui.js";

const KINDS = { webhook: "Webhook", slack: "Slack", email: "Email" };
const TARGETS = {
  webhook: ["Webhook URL", "url"],
  slack: ["Slack incoming webhook URL", "url"],
  email: ["Email address", "email"],
};
const LEVELS = [["info", "info and above"], ["warning", "warning and above"], ["high", "high and above"], ["critical", "critical only"]];

export async function channelsPage(main) {
  main.replaceChildren(h("h1", {}, "Channels"), h("p", { class: "loading" }, "Loading…"));
  const { items } = await call("/v1/channels");
  const said = messages();
  const title = h("h2", { id: "channels-title", tabindex: "-1" }, "Your channels");
  const listed = h("div", { class: "channels" });
  const list = (channels) =>
    listed.replaceChildren(
      channels.length
        ? table(
            "Each notification of the channel's level or above is delivered to it",
            ["Kind", "Target", "Level", "Added", "Last delivered", "Last failure", "Remove"],
            channels.map((c) => row(c, said, list, title)),
          )
        : h("p", { class: "empty" }, "No channel: notifications are shown in this app only."),
    );
  list(items);
  main.replaceChildren(
    h("h1", {}, "Channels"),
    h("section", { "aria-labelledby": "channels-title" }, title, said.status, said.alert, listed),
    addSection(list),
  );
}

function levelText(level) {
  return (LEVELS.find(([v]) => v === level) || [level, level])[1];
}

function row(c, said, list, title) {
  const name = `${KINDS[c.kind] || c.kind} ${c.target}`;
  const remove = h("button", { type: "button", "aria-label": `Remove ${name}` }, "Remove");
  remove.addEventListener("click", () => {
    if (!confirm(`Remove ${name}? Nothing more is delivered to it, not even a retry under way.`)) return;
    said.run(
      remove,
      async () => {
        await call(`/v1/channels/${encodeURIComponent(c.id)}`, {}, "DELETE");
        list((await call("/v1/channels")).items);
      },
      () => {
        title.focus(); // the button is gone with its row: the keyboard stays in the list
        return `Removed ${name}.`;
      },
    );
  });
  return h(
    "tr",
    {},
    h("td", {}, KINDS[c.kind] || c.kind),
    h("td", { class: "arn" }, c.target),
    h("td", {}, levelText(c.min_level)),
    h("td", {}, when(c.created_at)),
    h("td", {}, when(c.last_delivered_at)),
    h("td", {}, c.last_failed_at ? [when(c.last_failed_at), h("div", {}, c.last_failure || "")] : "—"),
    h("td", {}, remove),
  );
}

function addSection(list) {
  const said = messages();
  const kind = select("Kind", "kind", "webhook", Object.entries(KINDS));
  const target = field(TARGETS.webhook[0], "target", "", { type: "url", size: 48, required: true, autocomplete: "off" });
  const secret = field("Signing secret (16 to 256 characters; empty: kopter makes one)", "secret", "", { type: "password", size: 32, autocomplete: "new-password" });
  const form = h(
    "form",
    { class: "add", "aria-labelledby": "add-channel-title" },
    kind,
    target,
    secret,
    select("Deliver", "min_level", "info", LEVELS),
    h("button", { type: "submit" }, "Add channel"),
  );
  const fitKind = () => {
    const [label, type] = TARGETS[form.elements.kind.value];
    target.querySelector("label").textContent = label;
    form.elements.target.type = type;
    secret.hidden = form.elements.kind.value !== "webhook";
    form.elements.secret.disabled = secret.hidden;
  };
  form.elements.kind.addEventListener("change", fitKind);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const body = {
      kind: form.elements.kind.value,
      target: form.elements.target.value.trim(),
      min_level: form.elements.min_level.value,
    };
    if (body.kind === "webhook" && form.elements.secret.value) body.secret = form.elements.secret.value;
    said.run(
      form,
      async () => {
        const added = await call("/v1/channels", {}, "POST", body);
        list((await call("/v1/channels")).items);
        return added;
      },
      ({ channel, secret: made }) => {
        form.reset();
        fitKind();
        const added = `Added ${KINDS[channel.kind]} ${channel.target}, ${levelText(channel.min_level)}.`;
        if (!made || body.secret) return added;
        return [`${added} Its signing secret, shown this once (each delivery's X-Kopter-Signature is the HMAC-SHA256 of its body under it): `, h("code", { class: "secret" }, made)];
      },
    );
  });
  return h(
    "section",
    { "aria-labelledby": "add-channel-title" },
    h("h2", { id: "add-channel-title" }, "Add a channel"),
    h(
      "p",
      {},
      "A webhook gets each notification as a signed JSON POST; Slack, through an incoming webhook; email, from kopter's sender. ",
      "A URL to a private, loopback or link-local address is refused.",
    ),
    form,
    said.status,
    said.alert,
  );
}
