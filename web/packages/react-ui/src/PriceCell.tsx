import type { Tick } from "@tickmesh/client";
import { usePrice } from "@tickmesh/react";
import { memo } from "react";
import { money, priceDigits } from "./format.js";

export interface PriceCellProps {
  symbol: string;
  /** Which price of the tick (default `last`). */
  field?: "last" | "bid" | "ask";
  /** Decimals shown (default: as many as the feed gives, at least two). */
  digits?: number;
  /** At most this many updates a second for this channel (shared by every cell of the symbol). */
  maxHz?: number;
  className?: string;
  "data-testid"?: string;
}

const ARROWS = { up: "▲", down: "▼", flat: "•" } as const;
const WORDS = { up: "up", down: "down", flat: "unchanged" } as const;

/**
 * A live price with its tick direction: an arrow (▲ ▼ •) and a word for screen readers besides
 * the green/red flash, so up and down never rely on colour alone. Re-renders only on its own
 * symbol's ticks; a stale quote (connection down, or the provider said so) is marked
 * `data-stale` and struck through. A refused channel shows the error's name instead.
 */
export const PriceCell = memo(function PriceCell({ symbol, field = "last", digits, maxHz, className = "", ...rest }: PriceCellProps) {
  const p = usePrice(symbol, maxHz ? { maxHz } : {});
  const tick: Tick | undefined = p.data;
  const d = digits ?? priceDigits(tick?.last);
  if (p.status === "error") return <span className="err-tag" title={p.error?.reason}>{p.error?.codeName}</span>;
  const value = money(tick?.[field], d);
  return (
    <span
      key={p.updatedAt ?? 0}
      className={`tm-price flash-${p.direction} ${p.stale ? "stale" : ""} ${className}`}
      data-direction={p.direction}
      data-stale={p.stale ? "true" : "false"}
      data-testid={rest["data-testid"]}
      aria-label={tick ? `${symbol} ${field} ${value}, ${WORDS[p.direction]}${p.stale ? ", stale" : ""}` : `${symbol}: no price yet`}
    >
      <span className={`arrow ${p.direction}`} aria-hidden="true">{ARROWS[p.direction]}</span>
      <span className="value">{value}</span>
    </span>
  );
});
