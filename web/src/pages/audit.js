// The audit log (/v1/audit/aws): its filters, cursor paging, each call's request and response.
import { call } from "../api.js";
import { fromLocalInput, toLocalInput } from "../format.js";
import { field, filterForm, h, json, listing, select, when } from "../ui.js";

const FILTERS = ["since", "until", "account", "event_name", "event_source", "user", "errors", "limit", "cursor"];

export async function auditPage(main, params) {
  const query = Object.fromEntries(FILTERS.filter((k) => params[k]).map((k) => [k, params[k]]));
  const form = filterForm(
    "audit",
    [
      field("From", "since", query.since ? toLocalInput(new Date(query.since)) : "", { type: "datetime-local" }),
      field("Until", "until", query.until ? toLocalInput(new Date(query.until)) : "", { type: "datetime-local" }),
      field("Account", "account", query.account, { inputmode: "numeric", pattern: "\\d{12}", size: 14 }),
      field("Event name", "event_name", query.event_name, { placeholder: "RunInstances", size: 16 }),
      field("Event source", "event_source", query.event_source, { placeholder: "ec2.amazonaws.com", size: 18 }),
      field("Principal ARN", "user", query.user, { size: 30 }),
      field("Only failed or denied", "errors", query.errors, { type: "checkbox", value: "true" }),
      select("Per page", "limit", query.limit || "100", [["25", "25"], ["100", "100"], ["500", "500"], ["1000", "1000"]]),
    ],
    (data) => ({
      since: fromLocalInput(data.get("since")),
      until: fromLocalInput(data.get("until")),
      account: data.get("account").trim(),
      event_name: data.get("event_name").trim(),
      event_source: data.get("event_source").trim(),
      user: data.get("user").trim(),
      errors: data.get("errors") ? "true" : "",
      limit: data.get("limit") === "100" ? "" : data.get("limit"),
    }),
  );
  main.replaceChildren(h("h1", {}, "Audit log"), form, h("p", { class: "loading" }, "Loading…"));
  const page = await call("/v1/audit/aws", query);
  const rows = page.items.map((e) =>
    h(
      "tr",
      { class: e.error_code ? "failed" : null },
      h("td", {}, when(e.event_time)),
      h("td", {}, h("details", {}, h("summary", {}, e.event_name), record(e))),
      h("td", {}, e.event_source),
      h("td", {}, e.account_id),
      h("td", {}, e.region),
      h("td", { class: "arn" }, e.principal_arn || e.invoked_by || "—"),
      h("td", {}, e.source_ip || "—"),
      h("td", {}, e.error_code || ""),
    ),
  );
  listing(main, {
    title: "Audit log",
    form,
    page,
    name: "audit",
    query,
    caption: "CloudTrail calls, newest first (open a call for its request and response)",
    columns: ["Time", "Call", "Service", "Account", "Region", "Principal", "Source IP", "Error"],
    rows,
    empty: "No call matches these filters on this page.",
  });
}

function record(e) {
  return h(
    "div",
    { class: "record" },
    h("dl", {},
      h("dt", {}, "Event id"), h("dd", {}, e.event_id),
      h("dt", {}, "User agent"), h("dd", {}, e.user_agent || "—"),
      h("dt", {}, "Read only"), h("dd", {}, e.read_only == null ? "—" : e.read_only ? "yes" : "no"),
      e.error_message ? [h("dt", {}, "Error message"), h("dd", {}, e.error_message)] : null,
      e.session_issuer ? [h("dt", {}, "Session issuer"), h("dd", {}, e.session_issuer)] : null,
    ),
    h("h2", {}, "Request"), h("pre", { tabindex: "0" }, json(e.request)),
    h("h2", {}, "Response"), h("pre", { tabindex: "0" }, json(e.response)),
    e.truncated ? h("p", { class: "note" }, "Cut to fit: CloudTrail's record was larger.") : null,
  );
}
