// Detection rules (/v1/rules) and what they found (/v1/findings): each rule with its source and
// author (SigmaHQ's rules are under the Detection Rule License, which asks that the author is
// shown wherever a rule is), a switch for each, the tenant's own Sigma rule added from a form,
// and the newest findings, a page at a time.
import { call } from "../api.js";
import { filterForm, h, messages, pager, select, table, textarea, when } from "../ui.js";

const SOURCES = { kopter: "kopter", sigma: "SigmaHQ", tenant: "Yours" };
const FINDINGS_PER_PAGE = 25;
const EXAMPLE = `title: Windows password data requested and denied
id: 0b7d4a4e-5d5e-4b8e-9f1a-2c3d4e5f6a7b
author: Acme SOC
level: high
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: GetPasswordData
        errorCode|startswith: Client.Unauthorized
    condition: selection`;

export async function rulesPage(main, params) {
  const query = Object.fromEntries(["source", "cursor"].filter((k) => params[k]).map((k) => [k, params[k]]));
  main.replaceChildren(h("h1", {}, "Rules"), h("p", { class: "loading" }, "Loading…"));
  const [found, { items }] = await Promise.all([
    call("/v1/findings", { limit: FINDINGS_PER_PAGE, cursor: query.cursor }),
    call("/v1/rules"),
  ]);
  const said = messages();
  const listed = h("div", { class: "rules" });
  const list = (rules) => {
    const shown = rules.filter((r) => !query.source || r.source === query.source);
    listed.replaceChildren(
      shown.length
        ? table(
            "Rules run on each record as it is ingested (open one for what it looks for)",
            ["Rule", "Source", "Author", "Level", "On"],
            shown.map((r) => ruleRow(r, said)),
          )
        : h("p", { class: "empty" }, "No rule of this source."),
    );
  };
  list(items);
  const form = filterForm(
    "rules",
    [select("Source", "source", query.source, [["", "All"], ...Object.entries(SOURCES)])],
    (data) => ({ source: data.get("source") }),
  );
  main.replaceChildren(
    h("h1", {}, "Rules"),
    findingsSection(found, query),
    h("section", { "aria-labelledby": "rules-title" }, h("h2", { id: "rules-title" }, "Rules"), form, said.status, said.alert, listed),
    addSection(list),
  );
}

function findingsSection(page, query) {
  const rows = page.items.map((f) =>
    h(
      "tr",
      {},
      h("td", {}, when(f.event_time)),
      h("td", { class: `level ${f.level}` }, f.level),
      h("td", {}, f.event_name, h("br"), h("span", { class: "muted" }, f.event_source)),
      h("td", {}, f.account_id, h("br"), h("span", { class: "muted" }, f.region)),
      h("td", { class: "arn" }, f.principal),
      h("td", {}, f.error_code || ""),
      h("td", {}, h("ul", { class: "found-by" }, f.rules.map((r) => h("li", {}, r.title, h("span", { class: "muted" }, ` ${SOURCES[r.source] || r.source}, by ${r.author || "—"}`))))),
    ),
  );
  return h(
    "section",
    { "aria-labelledby": "findings-title" },
    h("h2", { id: "findings-title" }, "Recent findings"),
    page.items.length
      ? table("Records the rules matched as they were ingested, newest first", ["Time", "Level", "Call", "Account", "Principal", "Error", "Found by"], rows)
      : h("p", { class: "empty" }, "Nothing found yet: a rule that is on judges each record as it is ingested."),
    pager("rules", query, page.next, page.items.length),
  );
}

function ruleRow(rule, said) {
  const toggle = h("button", { type: "button", role: "switch", class: "switch", "aria-label": `Run ${rule.title}` });
  const show = (on) => {
    toggle.setAttribute("aria-checked", String(on));
    toggle.textContent = on ? "On" : "Off";
  };
  show(rule.enabled);
  toggle.addEventListener("click", () => {
    const turn = toggle.getAttribute("aria-checked") === "true" ? "disable" : "enable";
    said.run(
      toggle,
      () => call(`/v1/rules/${encodeURIComponent(rule.id)}/${turn}`, {}, "POST"),
      (row) => {
        show(row.enabled);
        toggle.closest("tr").classList.toggle("off", !row.enabled);
        return `${row.title}: ${row.enabled ? "on" : "off"}.`;
      },
    );
  });
  return h(
    "tr",
    { class: rule.enabled ? null : "off" },
    h("td", {}, h("details", {}, h("summary", {}, rule.title), about(rule))),
    h("td", {}, SOURCES[rule.source] || rule.source),
    h("td", {}, rule.author || "—"),
    h("td", { class: `level ${rule.level}` }, rule.level),
    h("td", {}, toggle),
  );
}

function about(rule) {
  // A tenant's rule is its own text: only http(s) references become links (never javascript:).
  const reference = (r) => (/^https?:\/\//i.test(r) ? h("a", { href: r, target: "_blank", rel: "noopener noreferrer" }, r) : r);
  return h(
    "div",
    { class: "record" },
    rule.description ? h("p", {}, rule.description) : null,
    h("dl", {},
      h("dt", {}, "Id"), h("dd", {}, h("code", {}, rule.id)),
      rule.tags.length ? [h("dt", {}, "Tags"), h("dd", {}, rule.tags.join(", "))] : null,
      rule.references.length ? [h("dt", {}, "References"), h("dd", {}, h("ul", {}, rule.references.map((r) => h("li", {}, reference(r)))))] : null,
      rule.fixed ? [h("dt", {}, "Changed by kopter"), h("dd", {}, rule.fixed)] : null,
    ),
  );
}

function addSection(list) {
  const said = messages();
  const form = h(
    "form",
    { class: "add", "aria-labelledby": "add-rule-title" },
    textarea("Sigma rule (YAML)", "yaml", { rows: 14, cols: 72, required: true, spellcheck: "false", autocomplete: "off", "aria-describedby": "add-rule-help" }),
    h("button", { type: "submit" }, "Add rule"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    said.run(
      form,
      async () => {
        const added = await call("/v1/rules", {}, "POST", { yaml: form.elements.yaml.value });
        list((await call("/v1/rules")).items);
        return added;
      },
      (rule) => {
        form.reset();
        return `Added ${rule.title} (${rule.id}, level ${rule.level}): on.`;
      },
    );
  });
  return h(
    "section",
    { "aria-labelledby": "add-rule-title" },
    h("h2", { id: "add-rule-title" }, "Add a Sigma rule"),
    h(
      "p",
      { id: "add-rule-help" },
      "One Sigma rule for CloudTrail (logsource product aws, service cloudtrail), with an id of its own (a new UUID) and a level. ",
      "It runs on your accounts' records alone, as they are ingested; a rule of the same id is replaced. ",
      "A rule kopter cannot run is refused with the reason, and nothing is stored.",
    ),
    h("details", {}, h("summary", {}, "An example"), h("pre", { tabindex: "0" }, EXAMPLE)),
    form,
    said.status,
    said.alert,
  );
}
