// Small DOM helpers shared by the pages: elements, labelled fields, tables, pages of a listing,
// the messages a page's controls announce.
import { ApiError } from "./api.js";
import { timeElement } from "./format.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** A labelled input (every input has a label). */
export function field(label, name, value = "", attrs = {}) {
  const id = `f-${name}`;
  const input = h("input", { id, name, value: value ?? "", ...attrs });
  if (attrs.type === "checkbox") {
    input.checked = value === "true";
    return h("div", { class: "field check" }, input, h("label", { for: id }, label));
  }
  return h("div", { class: "field" }, h("label", { for: id }, label), input);
}

export function textarea(label, name, attrs = {}) {
  const id = `f-${name}`;
  return h("div", { class: "field" }, h("label", { for: id }, label), h("textarea", { id, name, ...attrs }));
}

export function select(label, name, value, options) {
  const id = `f-${name}`;
  const el = h("select", { id, name }, options.map(([v, text]) => h("option", { value: v, selected: v === (value || "") }, text)));
  return h("div", { class: "field" }, h("label", { for: id }, label), el);
}

/** A filter form whose submission becomes the page's URL (so filters survive a reload). */
export function filterForm(page, fields, toParams) {
  const form = h("form", { class: "filters", "aria-label": "Filters" }, fields, h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    go(page, toParams(new FormData(form)));
  });
  return form;
}

export function go(page, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  location.hash = `#/${page}${query.toString() ? "?" + query : ""}`;
}

export function table(caption, columns, rows) {
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows),
  );
}

export function when(text) {
  return timeElement(text);
}

/** A listing page: its title, filters, one page of rows (or why there are none), its pager. */
export function listing(main, { title, form, page, name, query, caption, columns, rows, empty }) {
  main.replaceChildren(
    h("h1", {}, title),
    form,
    page.items.length ? table(caption, columns, rows) : h("p", { class: "empty" }, empty),
    pager(name, query, page.next, page.items.length),
  );
}

/** Links to the first and next page of a listing (the previous one is the browser's Back). */
export function pager(page, params, next, shown) {
  const first = { ...params };
  delete first.cursor;
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages of results" },
    h("span", {}, `${shown} shown`),
    params.cursor ? h("a", { href: hashOf(page, first) }, "First page") : null,
    next ? h("a", { href: hashOf(page, { ...params, cursor: next }), rel: "next" }, "Next page") : h("span", {}, "Last page"),
  );
}

function hashOf(page, params) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  return `#/${page}${query.toString() ? "?" + query : ""}`;
}

export function json(text) {
  if (!text) return "—";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** Where a page's controls announce what they did (status) and what the API refused (alert):
 * both in the page from the start, as screen readers only announce changes to regions they know. */
export function messages() {
  const status = h("p", { role: "status", class: "said" });
  const alert = h("p", { role: "alert", class: "error" });
  return {
    status,
    alert,
    /** Run a control's calls, once at a time: the API's refusal (one line) is the alert, and
     * `done` says what the answer was. A lost sign-in goes on to the app (see app.js). */
    async run(control, work, done) {
      if (control.getAttribute("aria-busy")) return;
      control.setAttribute("aria-busy", "true");
      status.replaceChildren();
      alert.replaceChildren();
      try {
        status.replaceChildren(...[done(await work())].flat());
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        alert.textContent = e.message;
      } finally {
        control.removeAttribute("aria-busy");
      }
    },
  };
}
