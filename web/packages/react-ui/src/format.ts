import { compareDecimal, formatDecimal } from "@tickmesh/client";

export const money = (v: string | undefined, digits = 2) => (v === undefined ? "—" : formatDecimal(v, digits));

/** "+1,234.50" / "-12.00" with the sign a trader expects. */
export const signed = (v: string | undefined, digits = 2) => {
  if (v === undefined) return "—";
  const s = formatDecimal(v, digits);
  return compareDecimal(v, "0") > 0 ? `+${s}` : s;
};

export const tone = (v: string | undefined) => (v === undefined ? "" : compareDecimal(v, "0") > 0 ? "pos" : compareDecimal(v, "0") < 0 ? "neg" : "");

/** HH:MM:SS.mmm of a microsecond timestamp, local time. */
export const clock = (us: number | undefined, ms = false) => {
  if (!us) return "—";
  const d = new Date(Math.floor(us / 1000));
  const t = d.toLocaleTimeString("en-GB", { hour12: false });
  return ms ? `${t}.${String(d.getMilliseconds()).padStart(3, "0")}` : t;
};

/** How many price decimals to show: as many as the feed gives, at least two. */
export const priceDigits = (v: string | undefined) => Math.max(2, Math.min(8, (v?.split(".")[1] ?? "").length));
