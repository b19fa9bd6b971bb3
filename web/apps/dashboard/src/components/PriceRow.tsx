import { usePrice } from "@tickmesh/react";
import { memo } from "react";
import { clock, money, priceDigits } from "../format";

/**
 * One watch-list row. Only this row re-renders on its symbol's tick; the last price flashes
 * green or red on each move (the cell is keyed by arrival time, so the animation restarts),
 * and a stale quote (connection down, or the provider marked it stale) is greyed out.
 */
export const PriceRow = memo(function PriceRow(props: { symbol: string; onPick(symbol: string): void; onRemove(symbol: string): void; selected: boolean }) {
  const { symbol } = props;
  const p = usePrice(symbol);
  const tick = p.data;
  const digits = priceDigits(tick?.last);
  const error = p.status === "error" ? p.error?.codeName : undefined;
  return (
    <tr
      className={`price-row ${p.stale ? "stale" : ""} ${props.selected ? "selected" : ""}`}
      data-testid={`price-${symbol}`}
      data-stale={p.stale ? "true" : "false"}
      onClick={() => props.onPick(symbol)}
    >
      <td className="sym">
        <span className={`arrow ${p.direction}`}>{p.direction === "up" ? "▲" : p.direction === "down" ? "▼" : "•"}</span>
        {symbol}
      </td>
      <td key={p.updatedAt ?? 0} className={`num last flash-${p.direction}`} data-testid={`last-${symbol}`}>
        {error ? <span className="err-tag">{error}</span> : money(tick?.last, digits)}
      </td>
      <td className="num bid">{money(tick?.bid, digits)}</td>
      <td className="num ask">{money(tick?.ask, digits)}</td>
      <td className="num muted">{tick?.size ?? "—"}</td>
      <td className="num muted time">{clock(tick?.ts, true)}</td>
      <td className="muted src">{tick?.provider ?? ""}</td>
      <td className="num">
        <button className="icon-btn" title={`Remove ${symbol}`} onClick={(e) => (e.stopPropagation(), props.onRemove(symbol))}>
          ×
        </button>
      </td>
    </tr>
  );
});
