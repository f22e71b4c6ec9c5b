// Times in the browser's zone, with the UTC instant on hover (the title attribute).

const local = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  second: "2-digit", timeZoneName: "short",
});

export function parseTime(text) {
  // The API's hours are "2026-03-01T13:00Z"; Date parses both that and full ISO times.
  return new Date(text);
}

export function utcText(date) {
  return date.toISOString().replace(".000Z", "Z");
}

/** A <time> element: local text, UTC on hover. */
export function timeElement(text) {
  const el = document.createElement("time");
  if (!text) {
    el.textContent = "—";
    return el;
  }
  const date = parseTime(text);
  el.dateTime = utcText(date);
  el.title = `${utcText(date)} (UTC)`;
  el.textContent = local.format(date);
  return el;
}

export function localText(date) {
  return local.format(date);
}

/** A value for <input type="datetime-local"> in the browser's zone. */
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** An <input type="datetime-local"> value (browser's zone) as the API's UTC ISO time. */
export function fromLocalInput(value) {
  return value ? utcText(new Date(value)) : "";
}
