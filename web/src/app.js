// kopter's web app: a client of the read API. Pages are addressed by the URL's fragment
// (#/audit?event_name=…), so filters and pages survive a reload and the Back button.
import { ApiError, setBase } from "./api.js";
import { SignInNeeded, receive, signOut, startSignIn, takeFragmentToken, token } from "./auth.js";
import { accountsPage } from "./pages/accounts.js";
import { auditPage } from "./pages/audit.js";
import { channelsPage } from "./pages/channels.js";
import { costPage } from "./pages/cost.js";
import { eventsPage } from "./pages/events.js";
import { notificationsPage, unreadCount } from "./pages/notifications.js";
import { rulesPage } from "./pages/rules.js";
import { h } from "./ui.js";

const PAGES = {
  cost: ["Cost", costPage],
  audit: ["Audit log", auditPage],
  events: ["EC2 events", eventsPage],
  notifications: ["Notifications", (main, params) => notificationsPage(main, params, refreshUnread)],
  rules: ["Rules", rulesPage],
  channels: ["Channels", channelsPage],
  accounts: ["Accounts", accountsPage],
};

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let config = { api: "", oidc: null };

async function start() {
  try {
    const reply = await fetch("config.json");
    if (reply.ok) config = await reply.json();
    setBase(config.api);
    await receive(config);
  } catch (e) {
    return signInPage(e instanceof SignInNeeded ? e.message : "kopter cannot be reached: try again later.");
  }
  document.getElementById("sign-out").addEventListener("click", () => {
    signOut();
    signInPage("You signed out.");
  });
  window.addEventListener("hashchange", show);
  // A control's call (a switch, a form) that finds the sign-in gone: the same page as a page's.
  window.addEventListener("unhandledrejection", (e) => {
    if (!(e.reason instanceof SignInNeeded)) return;
    e.preventDefault(); // not an error in the console: the sign-in page says it
    signInPage(e.reason.message);
  });
  await show();
}

async function show() {
  takeFragmentToken();
  const [path, search = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const name = PAGES[path] ? path : "cost";
  const [title, render] = PAGES[name];
  document.title = `${title} · kopter`;
  try {
    if (!token()) throw new SignInNeeded("Sign in to see your costs, audit log and fleet.");
    nav.hidden = false;
    for (const a of nav.querySelectorAll("a")) {
      if (a.dataset.page === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    refreshUnread();
    main.dataset.page = name;
    main.dataset.state = "loading";
    await render(main, Object.fromEntries(new URLSearchParams(search)));
    main.dataset.state = "ready";
    performance.mark(`kopter:${name}:ready`); // what `make bench` reads
  } catch (e) {
    if (e instanceof SignInNeeded) return signInPage(e.message);
    main.dataset.state = "error";
    main.append(h("p", { role: "alert", class: "error" }, e instanceof ApiError ? e.message : `Something went wrong: ${e.message}`));
  }
}

async function refreshUnread() {
  const badge = document.getElementById("unread");
  try {
    const count = await unreadCount();
    badge.textContent = count === "0" ? "" : count;
    badge.title = `${count} unread`;
  } catch (e) {
    if (e instanceof SignInNeeded) signInPage(e.message);
  }
}

function signInPage(message) {
  nav.hidden = true;
  document.title = "Sign in · kopter";
  main.dataset.page = "sign-in";
  main.dataset.state = "ready";
  const action = config.oidc
    ? h("button", { type: "button", id: "sign-in", onclick: () => startSignIn(config).catch((e) => signInPage(e.message)) }, "Sign in")
    : h("p", {}, "No identity provider is configured here. On a developer's machine, open the URL that ", h("code", {}, "kopter dev"), " prints.");
  main.replaceChildren(h("h1", {}, "Sign in"), h("p", { role: "status", id: "sign-in-reason" }, message), action);
}

start();
