// Who the user is: a bearer token, from the identity provider (OIDC authorization code with
// PKCE, e.g. Cognito's hosted UI) or, locally, from the URL `kopter dev` prints (#token=…, a
// fragment: never sent to a server, and taken out of the address bar at once).

const TOKEN = "kopter.token";
const PENDING = "kopter.oidc";

export class SignInNeeded extends Error {}

export function token() {
  const t = sessionStorage.getItem(TOKEN);
  if (!t) return null;
  const exp = claims(t).exp;
  if (typeof exp === "number" && exp * 1000 <= Date.now()) {
    signOut();
    throw new SignInNeeded("Your session has expired: sign in again.");
  }
  return t;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

function claims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

/** Take a token handed over in the URL's fragment (also when only the fragment changed). */
export function takeFragmentToken() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (!fragment.get("token")) return false;
  sessionStorage.setItem(TOKEN, fragment.get("token"));
  history.replaceState(null, "", location.pathname + "#/cost");
  return true;
}

/** Take a token handed over in the URL, or finish an OIDC sign-in; true when one was found. */
export async function receive(config) {
  if (takeFragmentToken()) return true;
  const query = new URLSearchParams(location.search);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  if (!query.get("code") || !pending || !config.oidc) return false;
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", location.pathname + (pending.hash || "#/cost"));
  if (query.get("state") !== pending.state) throw new SignInNeeded("Sign-in failed: its state did not match.");
  const provider = await discover(config.oidc);
  const reply = await fetch(provider.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: config.oidc.client_id,
      code: query.get("code"),
      redirect_uri: redirectUri(config),
      code_verifier: pending.verifier,
    }),
  });
  const tokens = await reply.json().catch(() => ({}));
  // The ID token: its `sub` is the identity and its `aud` the client, which the API checks.
  if (!reply.ok || !tokens.id_token) throw new SignInNeeded("Sign-in failed: the identity provider refused the code.");
  sessionStorage.setItem(TOKEN, tokens.id_token);
  return true;
}

/** Go to the identity provider's sign-in page. */
export async function startSignIn(config) {
  const provider = await discover(config.oidc);
  const verifier = random(48);
  const state = random(24);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, hash: location.hash }));
  const url = new URL(provider.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.oidc.client_id,
    redirect_uri: redirectUri(config),
    scope: config.oidc.scopes,
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

function redirectUri(config) {
  return config.oidc.redirect_uri || location.origin + location.pathname;
}

async function discover(oidc) {
  const reply = await fetch(oidc.issuer.replace(/\/$/, "") + "/.well-known/openid-configuration");
  if (!reply.ok) throw new SignInNeeded("The identity provider cannot be reached: try again later.");
  return reply.json();
}

function random(bytes) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
