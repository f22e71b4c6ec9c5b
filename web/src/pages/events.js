// What changed in the EC2 fleets (/v1/ec2/events), newest first, with cursor paging.
import { call } from "../api.js";
import { fromLocalInput, toLocalInput } from "../format.js";
import { field, filterForm, h, listing, when } from "../ui.js";

export async function eventsPage(main, params) {
  const query = Object.fromEntries(["since", "account", "cursor"].filter((k) => params[k]).map((k) => [k, params[k]]));
  const form = filterForm(
    "events",
    [
      field("From", "since", query.since ? toLocalInput(new Date(query.since)) : "", { type: "datetime-local" }),
      field("Account", "account", query.account, { inputmode: "numeric", pattern: "\\d{12}", size: 14 }),
    ],
    (data) => ({ since: fromLocalInput(data.get("since")), account: data.get("account").trim() }),
  );
  main.replaceChildren(h("h1", {}, "EC2 events"), form, h("p", { class: "loading" }, "Loading…"));
  const page = await call("/v1/ec2/events", query);
  const rows = page.items.map((e) =>
    h(
      "tr",
      {},
      h("td", {}, when(e.occurred_at)),
      h("td", {}, h("span", { class: `kind ${e.kind}` }, e.kind)),
      h("td", {}, e.instance_id),
      h("td", {}, e.account_id),
      h("td", {}, e.region),
      h("td", {}, detail(e.detail)),
      h("td", { class: "arn" }, e.principal_arn || "—"),
      h("td", {}, e.sources.join(", ")),
    ),
  );
  listing(main, {
    title: "EC2 events",
    form,
    page,
    name: "events",
    query,
    caption: "Changes to the fleets, newest first",
    columns: ["Time", "Change", "Instance", "Account", "Region", "Detail", "By", "Seen by"],
    rows,
    empty: "No change to the fleets matches.",
  });
}

function detail(d) {
  if (!d || !Object.keys(d).length) return "";
  return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
}
