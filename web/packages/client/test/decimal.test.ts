import { describe, expect, it } from "vitest";
import { compareDecimal, formatDecimal } from "../src/decimal.js";

describe("decimal strings", () => {
  it("compares exactly", () => {
    expect(compareDecimal("186.77", "186.770")).toBe(0);
    expect(compareDecimal("186.77", "186.79")).toBe(-1);
    expect(compareDecimal("1000", "999.99")).toBe(1);
    expect(compareDecimal("-1.5", "-1.25")).toBe(-1);
    expect(compareDecimal("0.0000000000000000001", "0")).toBe(1);
    expect(compareDecimal("-0", "0.00")).toBe(0);
  });
  it("rounds and groups without floats", () => {
    expect(formatDecimal("12345.675")).toBe("12,345.68");
    expect(formatDecimal("999.995")).toBe("1,000.00");
    expect(formatDecimal("-0.001")).toBe("0.00");
    expect(formatDecimal("-1234.5", 1)).toBe("-1,234.5");
    expect(formatDecimal("0.30000000000000004", 4)).toBe("0.3000");
  });
});
