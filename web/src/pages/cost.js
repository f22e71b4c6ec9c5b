// The cost graph (/v1/price-graph): cost per hour over a range, in total or by account, region
// or instance type; the exact total; hours with instances kopter has no price for; cost jumps
// (from the cost-jump notifications) marked on the graph with who caused them.
import { call } from "../api.js";
import { addDecimals, usd } from "../decimal.js";
import { fromLocalInput, localText, parseTime, toLocalInput, utcText } from "../format.js";
import { filterForm, go, h, select, field, table, when } from "../ui.js";

const HOUR = 3600 * 1000;
const RANGES = [["24 hours", 1], ["7 days", 7], ["31 days", 31]];
const COLOURS = ["#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2", "#65a30d", "#db2777"];
const JUMP = "#b45309";
const UNPRICED = "#b91c1c";
const JUMP_PAGES = 3; // notifications read looking for cost jumps (1,000 a page, newest first)

export async function costPage(main, params) {
  const until = params.until ? parseTime(params.until) : new Date(Math.ceil(Date.now() / HOUR) * HOUR);
  const since = params.since ? parseTime(params.since) : new Date(until - 24 * HOUR);
  const by = params.by || "";
  const query = { since: utcText(since), until: utcText(until), by };
  const form = filterForm(
    "cost",
    [
      field("From", "since", toLocalInput(since), { type: "datetime-local" }),
      field("Until", "until", toLocalInput(until), { type: "datetime-local" }),
      select("Split by", "by", by, [["", "Total"], ["account", "Account"], ["region", "Region"], ["instance-type", "Instance type"]]),
    ],
    (data) => ({ since: fromLocalInput(data.get("since")), until: fromLocalInput(data.get("until")), by: data.get("by") }),
  );
  const quick = h(
    "div",
    { class: "quick", role: "group", "aria-label": "Ranges" },
    RANGES.map(([label, days]) =>
      h("button", { type: "button", onclick: () => go("cost", { since: utcText(new Date(until - days * 24 * HOUR)), until: utcText(until), by }) }, `Last ${label}`),
    ),
  );
  main.replaceChildren(h("h1", {}, "Cost"), form, quick, h("p", { class: "loading" }, "Loading…"));
  const [graph, jumps] = await Promise.all([call("/v1/price-graph", query), costJumps(since, until)]);
  const key = by.replace("-", "_");
  const hours = [...new Set(graph.items.map((p) => p.hour))].sort();
  const names = by ? [...new Set(graph.items.map((p) => p[key]))].sort() : ["Total"];
  const exact = new Map(graph.items.map((p) => [`${p.hour}|${by ? p[key] : "Total"}`, p.cost_usd]));
  const total = addDecimals(graph.items.map((p) => p.cost_usd));
  const missing = missingHours(graph.items);

  const figure = h("figure", { class: "graph" });
  const readout = h("p", { class: "readout", "aria-live": "polite" }, "Point at the graph for an hour's cost.");
  main.replaceChildren(...[
    h("h1", {}, "Cost"),
    form,
    quick,
    h("p", { class: "total" }, "Total ", h("strong", { id: "total" }, usd(total)), " from ", when(utcText(since)), " to ", when(utcText(until)), ` (${hours.length} hours with costs)`),
    figure,
    readout,
    missing.length ? missingList(missing) : null,
    jumps.length ? jumpList(jumps) : null,
    names.length && hours.length ? breakdown(by, names, graph.items, key) : h("p", { class: "empty" }, "No cost in this range yet."),
  ].filter(Boolean));
  if (hours.length) draw(figure, readout, { since, until, hours, names, exact, missing, jumps, by });
}

function missingHours(items) {
  const byHour = new Map();
  for (const p of items) if (p.missing_prices) byHour.set(p.hour, (byHour.get(p.hour) || 0) + p.missing_prices);
  return [...byHour].sort();
}

async function costJumps(since, until) {
  const found = [];
  let cursor = null;
  for (let page = 0; page < JUMP_PAGES; page++) {
    const reply = await call("/v1/notifications", { limit: 1000, cursor });
    for (const n of reply.items) {
      const at = n.kind === "cost-jump" && n.links && n.links.hour ? parseTime(n.links.hour) : null;
      if (at && at >= since && at < until) found.push({ at, title: n.title, body: n.body });
    }
    const oldest = reply.items.length ? parseTime(reply.items[reply.items.length - 1].created_at) : since;
    if (!reply.next || oldest < since) break;
    cursor = reply.next;
  }
  return found.sort((a, b) => a.at - b.at);
}

function missingList(missing) {
  return h(
    "section",
    { class: "warning", "aria-labelledby": "missing-h" },
    h("h2", { id: "missing-h" }, "Hours with instances kopter has no price for"),
    h("p", {}, "These instances are not in the graph: it is short by their cost (see the price-missing notifications)."),
    h(
      "details",
      { open: missing.length <= 6 },
      h("summary", {}, `${missing.length} hour${missing.length === 1 ? "" : "s"}`),
      h("ul", {}, missing.map(([hour, n]) => h("li", {}, when(hour), `: ${n} instance${n === 1 ? "" : "s"} without a price`))),
    ),
  );
}

function jumpList(jumps) {
  return h(
    "section",
    { class: "jumps", "aria-labelledby": "jumps-h" },
    h("h2", { id: "jumps-h" }, "Cost jumps"),
    h("ul", {}, jumps.map((j) => h("li", {}, when(utcText(j.at)), " ", h("strong", {}, j.title), h("p", {}, j.body)))),
  );
}

function breakdown(by, names, items, key) {
  const rows = names.map((name) => {
    const costs = items.filter((p) => (by ? p[key] : "Total") === name).map((p) => p.cost_usd);
    return h("tr", {}, h("th", { scope: "row" }, name), h("td", { class: "money" }, usd(addDecimals(costs))));
  });
  return table(by ? `Cost by ${by.replace("-", " ")} over the range` : "Cost over the range", [by ? by.replace("-", " ") : "Series", "USD"], rows);
}

function draw(figure, readout, g) {
  const xs = [];
  for (let t = Math.floor(g.since / HOUR) * HOUR; t < g.until; t += HOUR) xs.push(t / 1000);
  const hourText = (x) => utcText(new Date(x * 1000)).replace(":00:00Z", ":00Z");
  // Plotted as numbers (pixels need no exactness); every figure shown in words is the API's string.
  const data = [xs, ...g.names.map((name) => xs.map((x) => {
    const v = g.exact.get(`${hourText(x)}|${name}`);
    return v == null ? null : Number(v);
  }))];
  const jumps = g.jumps.map((j) => j.at / 1000);
  const unpriced = g.missing.map(([hour]) => parseTime(hour) / 1000);
  const bars = !g.by;
  const opts = {
    width: Math.max(320, figure.clientWidth || 900),
    height: 320,
    legend: { show: false },
    scales: { x: { time: true, range: () => [xs[0] - 1800, xs[xs.length - 1] + 1800] }, y: { range: (u, min, max) => [0, Math.max(max || 0, 0.01) * 1.1] } },
    axes: [{}, { values: (u, ticks) => ticks.map((t) => `$${t.toFixed(2)}`), size: 70 }],
    series: [
      {},
      ...g.names.map((name, i) => ({
        label: name,
        stroke: COLOURS[i % COLOURS.length],
        fill: bars ? "rgba(37,99,235,0.35)" : null,
        width: 2,
        spanGaps: false,
        points: { show: !bars && xs.length <= 96 },
        paths: bars ? uPlot.paths.bars({ size: [0.8, 60] }) : undefined,
      })),
    ],
    hooks: {
      draw: [(u) => markJumps(u, jumps), (u) => markUnpriced(u, unpriced)],
      setCursor: [(u) => {
        const i = u.cursor.idx;
        if (i == null) return;
        const x = xs[i];
        const parts = g.names.map((name) => {
          const v = g.exact.get(`${hourText(x)}|${name}`);
          return `${name}: ${v == null ? "no cost" : usd(v)}`;
        });
        readout.textContent = `${localText(new Date(x * 1000))} — ${parts.join(", ")}`;
        readout.title = `${hourText(x)} (UTC)`;
      }],
    },
  };
  figure.replaceChildren();
  const chart = new uPlot(opts, data, figure);
  chart.root.setAttribute("role", "img");
  chart.root.setAttribute("aria-label", `Cost per hour${g.by ? " by " + g.by : ""}; the table below has the figures`);
  if (!bars) figure.append(legend(g.names));
  const key = [];
  if (jumps.length) key.push(h("li", {}, h("span", { class: "swatch", style: `background:${JUMP}` }), "dashed line: a cost jump (below)"));
  if (unpriced.length) key.push(h("li", {}, h("span", { class: "swatch", style: `background:${UNPRICED}` }), "red triangle: an hour with instances kopter has no price for (below)"));
  if (key.length) figure.append(h("ul", { class: "legend" }, key));
}

function markJumps(u, xs) {
  const { ctx } = u;
  const px = devicePixelRatio;
  ctx.save();
  ctx.strokeStyle = ctx.fillStyle = JUMP;
  ctx.lineWidth = 2 * px;
  ctx.setLineDash([6 * px, 4 * px]);
  ctx.font = `bold ${12 * px}px sans-serif`;
  for (const value of xs) {
    const x = Math.round(u.valToPos(value, "x", true));
    ctx.beginPath();
    ctx.moveTo(x, u.bbox.top);
    ctx.lineTo(x, u.bbox.top + u.bbox.height);
    ctx.stroke();
    ctx.fillText("cost jump", x + 5 * px, u.bbox.top + 12 * px);
  }
  ctx.restore();
}

function markUnpriced(u, xs) {
  // A small red triangle under the hour's bar: its cost lacks what has no price.
  const { ctx } = u;
  const px = devicePixelRatio;
  const y = u.bbox.top + u.bbox.height - 1 * px;
  ctx.save();
  ctx.fillStyle = UNPRICED;
  for (const value of xs) {
    const x = u.valToPos(value, "x", true);
    ctx.beginPath();
    ctx.moveTo(x - 5 * px, y);
    ctx.lineTo(x + 5 * px, y);
    ctx.lineTo(x, y - 8 * px);
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}

function legend(names) {
  return h("ul", { class: "legend" }, names.map((n, i) => h("li", {}, h("span", { class: "swatch", style: `background:${COLOURS[i % COLOURS.length]}` }), n)));
}
