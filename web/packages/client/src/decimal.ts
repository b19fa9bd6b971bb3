/**
 * Prices travel as exact decimal strings; these helpers compare and format them without ever
 * turning them into binary floats (which would show 0.30000000000000004 to a trader).
 */

function parts(s: string): { neg: boolean; int: string; frac: string } {
  const neg = s.startsWith("-");
  const [int = "0", frac = ""] = (neg ? s.slice(1) : s).split(".");
  return { neg, int: int.replace(/^0+(?=\d)/, ""), frac: frac.replace(/0+$/, "") };
}

function compareAbs(a: { int: string; frac: string }, b: { int: string; frac: string }): number {
  if (a.int.length !== b.int.length) return a.int.length < b.int.length ? -1 : 1;
  if (a.int !== b.int) return a.int < b.int ? -1 : 1;
  const n = Math.max(a.frac.length, b.frac.length);
  const fa = a.frac.padEnd(n, "0");
  const fb = b.frac.padEnd(n, "0");
  return fa === fb ? 0 : fa < fb ? -1 : 1;
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`. */
export function compareDecimal(a: string, b: string): -1 | 0 | 1 {
  const pa = parts(a);
  const pb = parts(b);
  const zeroA = /^0*$/.test(pa.int + pa.frac);
  const zeroB = /^0*$/.test(pb.int + pb.frac);
  if (zeroA && zeroB) return 0;
  const signA = zeroA ? 0 : pa.neg ? -1 : 1;
  const signB = zeroB ? 0 : pb.neg ? -1 : 1;
  if (signA !== signB) return signA < signB ? -1 : 1;
  const c = compareAbs(pa, pb);
  return (signA < 0 ? -c : c) as -1 | 0 | 1;
}

/** Round half away from zero to `digits` decimals and group thousands: "12345.678" -> "12,345.68". */
export function formatDecimal(value: string, digits = 2, group = ","): string {
  const { neg, int, frac } = parts(value);
  let digitsStr = int + frac.padEnd(digits + 1, "0").slice(0, digits);
  const roundUp = (frac[digits] ?? "0") >= "5";
  if (roundUp) {
    const arr = digitsStr.split("").map(Number);
    let i = arr.length - 1;
    while (i >= 0) {
      if (arr[i]! < 9) {
        arr[i]! += 1;
        break;
      }
      arr[i] = 0;
      i -= 1;
    }
    digitsStr = (i < 0 ? "1" : "") + arr.join("");
  }
  const intPart = digitsStr.slice(0, digitsStr.length - digits) || "0";
  const fracPart = digits > 0 ? "." + digitsStr.slice(digitsStr.length - digits) : "";
  const grouped = intPart.replace(/\B(?=(\d{3})+(?!\d))/g, group);
  const isZero = /^[0.,]*$/.test(grouped + fracPart);
  return (neg && !isZero ? "-" : "") + grouped + fracPart;
}
