import { useSubmitOrder, usePrice } from "@tickmesh/react";
import { useState, type FormEvent } from "react";
import { money, priceDigits } from "../format";

const DECIMAL = /^(0|[1-9][0-9]{0,19})(\.[0-9]{1,18})?$/;

/** Order entry. The order appears in the blotter at once (optimistic) and reconciles there. */
export function OrderTicket(props: { symbol: string; setSymbol(symbol: string): void }) {
  const { submit, rejections } = useSubmitOrder();
  const price = usePrice(props.symbol);
  const [side, setSide] = useState<"buy" | "sell">("buy");
  const [type, setType] = useState<"market" | "limit">("market");
  const [quantity, setQuantity] = useState("10");
  const [limit, setLimit] = useState("");
  const [formError, setFormError] = useState<string | null>(null);
  const lastRejection = rejections[0];

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (!DECIMAL.test(quantity) || /^0*(\.0*)?$/.test(quantity)) return setFormError("Quantity must be a positive number");
    if (type === "limit" && !DECIMAL.test(limit)) return setFormError("Limit price must be a positive number");
    setFormError(null);
    // Fire and forget: the blotter shows pending, then the fill, or the rollback and the reason.
    submit({ symbol: props.symbol, side, type, quantity, ...(type === "limit" ? { limit_price: limit } : {}) }).catch(() => {});
  };

  const digits = priceDigits(price.data?.last);
  return (
    <section className="panel ticket" data-testid="order-ticket">
      <header className="panel-head">
        <h2>Order ticket</h2>
      </header>
      <form onSubmit={onSubmit} className="ticket-form">
        <div className="side-toggle" role="radiogroup" aria-label="Side">
          <button type="button" className={`side buy ${side === "buy" ? "on" : ""}`} onClick={() => setSide("buy")} data-testid="side-buy">Buy</button>
          <button type="button" className={`side sell ${side === "sell" ? "on" : ""}`} onClick={() => setSide("sell")} data-testid="side-sell">Sell</button>
        </div>
        <label>
          <span>Symbol</span>
          <input value={props.symbol} onChange={(e) => props.setSymbol(e.target.value.toUpperCase())} data-testid="ticket-symbol" spellCheck={false} />
        </label>
        <div className="quote-line">
          <span className="muted">Bid</span> <span className="num bid">{money(price.data?.bid, digits)}</span>
          <span className="muted">Ask</span> <span className="num ask">{money(price.data?.ask, digits)}</span>
          <span className="muted">Last</span> <span className="num">{money(price.data?.last, digits)}</span>
        </div>
        <label>
          <span>Type</span>
          <select value={type} onChange={(e) => setType(e.target.value as "market" | "limit")} data-testid="ticket-type">
            <option value="market">Market</option>
            <option value="limit">Limit</option>
          </select>
        </label>
        <label>
          <span>Quantity</span>
          <input value={quantity} onChange={(e) => setQuantity(e.target.value)} inputMode="decimal" data-testid="ticket-qty" />
        </label>
        {type === "limit" && (
          <label>
            <span>Limit price</span>
            <input value={limit} onChange={(e) => setLimit(e.target.value)} inputMode="decimal" data-testid="ticket-limit" />
          </label>
        )}
        <button type="submit" className={`submit ${side}`} data-testid="ticket-submit">
          {side === "buy" ? "Buy" : "Sell"} {quantity || "0"} {props.symbol}
        </button>
        {formError && <div className="form-error">{formError}</div>}
        {lastRejection && (
          <div className="rejection" data-testid="rejection">
            <strong>Rejected</strong> {lastRejection.order.side} {lastRejection.order.quantity} {lastRejection.order.symbol}: {lastRejection.reason}
            <span className="code">{lastRejection.codeName} · {lastRejection.code}</span>
          </div>
        )}
      </form>
    </section>
  );
}
