import { usePrice } from "@tickmesh/react";
import { clock, money, PriceCell, priceDigits, Sparkline } from "@tickmesh/react-ui";
import { memo, type KeyboardEvent } from "react";

/**
 * One watch-list row: the live price with its direction (arrow, word, flash), bid/ask, a
 * sparkline of the recent ticks, and the time. Only this row re-renders on its symbol's tick; a
 * stale quote is greyed out. The row is a button for the keyboard: Enter or Space selects it.
 */
export const PriceRow = memo(function PriceRow(props: { symbol: string; onPick(symbol: string): void; onRemove(symbol: string): void; selected: boolean }) {
  const { symbol } = props;
  const p = usePrice(symbol);
  const tick = p.data;
  const digits = priceDigits(tick?.last);
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      props.onPick(symbol);
    }
  };
  return (
    <tr
      className={`price-row ${p.stale ? "stale" : ""} ${props.selected ? "selected" : ""}`}
      data-testid={`price-${symbol}`}
      data-stale={p.stale ? "true" : "false"}
      onClick={() => props.onPick(symbol)}
      onKeyDown={onKey}
      tabIndex={0}
      aria-selected={props.selected}
    >
      <td className="sym">{symbol}</td>
      <td className="num last" data-testid={`last-${symbol}`}>
        <PriceCell symbol={symbol} />
      </td>
      <td className="num bid">{money(tick?.bid, digits)}</td>
      <td className="num ask">{money(tick?.ask, digits)}</td>
      <td className="spark"><Sparkline symbol={symbol} /></td>
      <td className="num muted time">{clock(tick?.ts, true)}</td>
      <td className="muted src">{tick?.provider ?? ""}</td>
      <td className="num">
        <button className="icon-btn" title={`Remove ${symbol}`} aria-label={`Remove ${symbol}`} onClick={(e) => (e.stopPropagation(), props.onRemove(symbol))}>
          ×
        </button>
      </td>
    </tr>
  );
});
