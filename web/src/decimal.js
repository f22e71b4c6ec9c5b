// Exact money: the API sends decimal strings ("12.34"); sums are BigInt integers scaled by a
// power of ten, never floats, so a total is exactly the sum of what the API said.

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

function parse(text) {
  const m = DECIMAL.exec(String(text).trim());
  if (!m) throw new Error(`not a decimal: ${text}`);
  const [, sign, whole, fraction = ""] = m;
  const units = BigInt(whole + fraction);
  return { units: sign ? -units : units, scale: fraction.length };
}

function rescale(units, from, to) {
  return units * 10n ** BigInt(to - from);
}

/** The exact sum of decimal strings, as a decimal string with the largest scale among them. */
export function addDecimals(values) {
  const parsed = values.map(parse);
  const scale = Math.max(2, ...parsed.map((p) => p.scale));
  const total = parsed.reduce((sum, p) => sum + rescale(p.units, p.scale, scale), 0n);
  return format(total, scale);
}

function format(units, scale) {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale);
  return `${negative ? "-" : ""}${whole}${scale ? "." + fraction : ""}`;
}

/** "1234.5" as "$1,234.50": grouping added to the string, the digits untouched. */
export function usd(text) {
  const { units, scale } = parse(text);
  const exact = format(units, Math.max(2, scale));
  const [whole, fraction] = exact.replace("-", "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${units < 0n ? "-" : ""}$${grouped}.${fraction}`;
}
