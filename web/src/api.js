// The read API: every call carries the bearer token; a 401 means sign in again. A payload, when
// given, is sent as JSON.
import { SignInNeeded, signOut, token } from "./auth.js";

let base = "";

export function setBase(url) {
  base = (url || "").replace(/\/$/, "");
}

export class ApiError extends Error {}

export async function call(path, params = {}, method = "GET", payload = undefined) {
  const bearer = token();
  if (!bearer) throw new SignInNeeded("Sign in to see your costs, audit log and fleet.");
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null && v !== false));
  const text = query.toString();
  const url = `${base}${path}${text ? "?" + text : ""}`;
  const headers = { Authorization: `Bearer ${bearer}` };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  let reply;
  try {
    reply = await fetch(url, { method, headers, body: JSON.stringify(payload) }); // of undefined: none
  } catch {
    throw new ApiError("kopter cannot be reached: check your connection and try again.");
  }
  const body = await reply.json().catch(() => ({}));
  if (reply.status === 401) {
    signOut();
    throw new SignInNeeded(`You were signed out: ${body.message || "the sign-in was refused"}.`);
  }
  if (!reply.ok) throw new ApiError(body.message || `kopter answered ${reply.status}`);
  return body;
}
