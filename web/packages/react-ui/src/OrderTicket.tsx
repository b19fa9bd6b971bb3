import { usePrice, useSubmitOrder } from "@tickmesh/react";
import { useId, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { money, priceDigits } from "./format.js";

const DECIMAL = /^(0|[1-9][0-9]{0,19})(\.[0-9]{1,18})?$/;

export interface OrderTicketProps {
  /** The instrument the ticket trades. */
  symbol: string;
  /** Called when the user types another symbol (upper-cased). */
  onSymbolChange(symbol: string): void;
}

/**
 * Order entry, usable from the keyboard alone: every control is reachable with Tab and
 * labelled; the side is a radio group (arrow keys move between Buy and Sell; `B` and `S` choose
 * them when the focus is not in a text field); Enter submits; Escape clears the quantity and limit. The
 * order appears in the blotter at once (optimistic) and reconciles there; a rejection is
 * announced (`role="alert"`) with its reason and code.
 */
export function OrderTicket({ symbol, onSymbolChange }: OrderTicketProps) {
  const { submit, rejections } = useSubmitOrder();
  const price = usePrice(symbol);
  const [side, setSide] = useState<"buy" | "sell">("buy");
  const [type, setType] = useState<"market" | "limit">("market");
  const [quantity, setQuantity] = useState("10");
  const [limit, setLimit] = useState("");
  const [formError, setFormError] = useState<string | null>(null);
  const id = useId();
  const buyRef = useRef<HTMLButtonElement>(null);
  const sellRef = useRef<HTMLButtonElement>(null);
  const lastRejection = rejections[0];

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (!DECIMAL.test(quantity) || /^0*(\.0*)?$/.test(quantity)) return setFormError("Quantity must be a positive number");
    if (type === "limit" && !DECIMAL.test(limit)) return setFormError("Limit price must be a positive number");
    setFormError(null);
    // Fire and forget: the blotter shows pending, then the fill, or the rollback and the reason.
    submit({ symbol, side, type, quantity, ...(type === "limit" ? { limit_price: limit } : {}) }).catch(() => {});
  };

  const choose = (next: "buy" | "sell", focus = false) => {
    setSide(next);
    if (focus) (next === "buy" ? buyRef : sellRef).current?.focus();
  };
  const onSideKey = (e: KeyboardEvent) => {
    if (["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(e.key)) {
      e.preventDefault();
      choose(side === "buy" ? "sell" : "buy", true);
    }
  };
  const onFormKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      setQuantity("");
      setLimit("");
      setFormError(null);
      return;
    }
    const inField = e.target instanceof HTMLInputElement; // letters typed into a field are the field's
    if (inField || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.toLowerCase();
    if (key === "b" || key === "s") {
      e.preventDefault();
      choose(key === "b" ? "buy" : "sell", true);
    }
  };

  const digits = priceDigits(price.data?.last);
  const errorId = `${id}-error`;
  return (
    <section className="panel ticket" data-testid="order-ticket" aria-labelledby={`${id}-title`}>
      <header className="panel-head">
        <h2 id={`${id}-title`}>Order ticket</h2>
        <span className="muted small" aria-hidden="true">B / S · Enter · Esc</span>
      </header>
      <form onSubmit={onSubmit} className="ticket-form" onKeyDown={onFormKey} aria-describedby={formError ? errorId : undefined}>
        <div className="side-toggle" role="radiogroup" aria-label="Side" onKeyDown={onSideKey}>
          <button ref={buyRef} type="button" role="radio" aria-checked={side === "buy"} tabIndex={side === "buy" ? 0 : -1}
            className={`side buy ${side === "buy" ? "on" : ""}`} onClick={() => choose("buy")} data-testid="side-buy">Buy</button>
          <button ref={sellRef} type="button" role="radio" aria-checked={side === "sell"} tabIndex={side === "sell" ? 0 : -1}
            className={`side sell ${side === "sell" ? "on" : ""}`} onClick={() => choose("sell")} data-testid="side-sell">Sell</button>
        </div>
        <label>
          <span>Symbol</span>
          <input name="symbol" value={symbol} onChange={(e) => onSymbolChange(e.target.value.toUpperCase())} data-testid="ticket-symbol" spellCheck={false} autoComplete="off" />
        </label>
        <div className="quote-line" aria-label={`Quote for ${symbol}`}>
          <span className="muted">Bid</span> <span className="num bid">{money(price.data?.bid, digits)}</span>
          <span className="muted">Ask</span> <span className="num ask">{money(price.data?.ask, digits)}</span>
          <span className="muted">Last</span> <span className="num">{money(price.data?.last, digits)}</span>
        </div>
        <label>
          <span>Type</span>
          <select name="type" value={type} onChange={(e) => setType(e.target.value as "market" | "limit")} data-testid="ticket-type">
            <option value="market">Market</option>
            <option value="limit">Limit</option>
          </select>
        </label>
        <label>
          <span>Quantity</span>
          <input name="quantity" value={quantity} onChange={(e) => setQuantity(e.target.value)} inputMode="decimal" data-testid="ticket-qty"
            aria-invalid={formError?.startsWith("Quantity") ? true : undefined} />
        </label>
        {type === "limit" && (
          <label>
            <span>Limit price</span>
            <input name="limit" value={limit} onChange={(e) => setLimit(e.target.value)} inputMode="decimal" data-testid="ticket-limit"
              aria-invalid={formError?.startsWith("Limit") ? true : undefined} />
          </label>
        )}
        <button type="submit" className={`submit ${side}`} data-testid="ticket-submit">
          {side === "buy" ? "Buy" : "Sell"} {quantity || "0"} {symbol}
        </button>
        {formError && <div className="form-error" id={errorId} role="alert">{formError}</div>}
        {lastRejection && (
          <div className="rejection" data-testid="rejection" role="alert">
            <strong>Rejected</strong> {lastRejection.order.side} {lastRejection.order.quantity} {lastRejection.order.symbol}: {lastRejection.reason}
            <span className="code">{lastRejection.codeName} · {lastRejection.code}</span>
          </div>
        )}
      </form>
    </section>
  );
}
