// Notifications (/v1/notifications): unread first filter, paging, mark read.
import { call } from "../api.js";
import { field, filterForm, h, pager, when } from "../ui.js";

const MAX_COUNTED_PAGES = 5;

/** How many are unread (at most MAX_COUNTED_PAGES pages of 1,000 are counted: "5000+"). */
export async function unreadCount() {
  let count = 0;
  let cursor = null;
  for (let pages = 0; pages < MAX_COUNTED_PAGES; pages++) {
    const page = await call("/v1/notifications", { unread: true, limit: 1000, cursor });
    count += page.items.length;
    if (!page.next) return String(count);
    cursor = page.next;
  }
  return `${count}+`;
}

export async function notificationsPage(main, params, onRead) {
  const query = Object.fromEntries(["unread", "cursor"].filter((k) => params[k]).map((k) => [k, params[k]]));
  const form = filterForm(
    "notifications",
    [field("Only unread", "unread", query.unread, { type: "checkbox", value: "true" })],
    (data) => ({ unread: data.get("unread") ? "true" : "" }),
  );
  main.replaceChildren(h("h1", {}, "Notifications"), form, h("p", { class: "loading" }, "Loading…"));
  const page = await call("/v1/notifications", { ...query, limit: 50 });
  const list = h("ul", { class: "notifications" }, page.items.map((n) => item(n, onRead)));
  main.replaceChildren(
    h("h1", {}, "Notifications"),
    form,
    page.items.length ? list : h("p", { class: "empty" }, query.unread ? "Nothing unread." : "No notifications."),
    pager("notifications", query, page.next, page.items.length),
  );
}

function item(n, onRead) {
  const status = h("div", { class: "status" });
  const showRead = (at) => status.replaceChildren(h("span", {}, "Read "), when(at));
  if (n.read) showRead(n.read_at);
  else {
    const button = h("button", { type: "button", "aria-label": `Mark read: ${n.title}` }, "Mark read");
    button.addEventListener("click", async () => {
      button.disabled = true;
      const updated = await call(`/v1/notifications/${encodeURIComponent(n.id)}/read`, {}, "POST");
      li.classList.remove("unread");
      showRead(updated.read_at);
      onRead();
    });
    status.replaceChildren(button);
  }
  const links = Object.entries(n.links || {}).map(([k, v]) => h("li", {}, `${k}: ${v}`));
  const li = h(
    "li",
    { class: `${n.severity} ${n.read ? "" : "unread"}`.trim() },
    h("div", { class: "head" }, h("span", { class: "severity" }, n.severity), h("strong", {}, n.title), when(n.created_at)),
    h("p", {}, n.body),
    links.length ? h("ul", { class: "links" }, links) : null,
    status,
  );
  return li;
}
