import type { Execution } from "@tickmesh/client";
import { useSubmitOrder, useTickmeshClient, useTrades, type OptimisticOrder } from "@tickmesh/react";
import { useEffect, useRef, useState } from "react";
import { clock, money } from "./format.js";

type Row = { key: string; symbol: string; side: string; quantity: string; price?: string; status: string; time: string; cid: string; reason?: string; orderId?: string };

const fromOrder = (o: OptimisticOrder): Row => ({
  key: o.client_order_id, cid: o.client_order_id, symbol: o.symbol, side: o.side, quantity: o.quantity,
  price: o.price ?? o.limit_price, status: o.status, time: new Date(o.updatedAt).toLocaleTimeString("en-GB", { hour12: false }),
  orderId: o.order_id,
});

const fromExec = (e: Execution): Row => ({
  key: e.exec_id, cid: e.client_order_id, symbol: e.symbol, side: e.side, quantity: e.quantity,
  price: e.price ?? e.limit_price, status: e.status, time: clock(e.ts), reason: e.reason, orderId: e.order_id,
});

export interface BlotterProps {
  /** Rows shown at most (default 100). */
  limit?: number;
}

/**
 * This session's orders (optimistic: pending at once, then filled) above earlier executions
 * from the `trades` channel, each order once; a resting limit order has a cancel button. Fills,
 * rejections and cancellations of this session's orders are announced to screen readers through
 * a polite live region ("Filled: buy 10 AAPL at 187.20"); statuses are words, not colours.
 */
export function Blotter({ limit = 100 }: BlotterProps) {
  const { orders } = useSubmitOrder();
  const trades = useTrades();
  const client = useTickmeshClient();
  const [cancelError, setCancelError] = useState<string | null>(null);
  // A resting limit order can be cancelled; the `cancelled` execution then updates the row.
  const cancel = (orderId: string) =>
    client.command("order.cancel", { order_id: orderId }).then(
      () => setCancelError(null),
      (e: { codeName?: string; reason?: string }) => setCancelError(`Cancel failed: ${e.codeName ?? "error"}: ${e.reason ?? ""}`),
    );
  const mine = new Set(orders.map((o) => o.client_order_id));
  const seen = new Set<string>();
  const history = trades.items.filter((e) => {
    // The latest event per order only; orders of this session are shown from the book.
    if (mine.has(e.client_order_id) || seen.has(e.client_order_id)) return false;
    seen.add(e.client_order_id);
    return true;
  });
  const rows = [...orders.map(fromOrder), ...history.map(fromExec)].slice(0, limit);
  // Announce each settled order of this session once.
  const [announcement, setAnnouncement] = useState("");
  const announced = useRef(new Map<string, string>());
  useEffect(() => {
    for (const o of orders) {
      if (o.status === "pending" || announced.current.get(o.client_order_id) === o.status) continue;
      announced.current.set(o.client_order_id, o.status);
      const what = `${o.side} ${o.quantity} ${o.symbol}`;
      setAnnouncement(o.status === "filled" ? `Filled: ${what} at ${o.price ?? "market"}` :
        o.status === "accepted" ? `Accepted: ${what}, resting at ${o.limit_price ?? ""}` : `${o.status[0]!.toUpperCase()}${o.status.slice(1)}: ${what}`);
    }
  }, [orders]);
  return (
    <section className="panel blotter" data-testid="blotter">
      <header className="panel-head">
        <h2>Orders &amp; executions</h2>
        <span className="muted small">{orders.filter((o) => o.status === "pending").length} pending</span>
      </header>
      <div className="sr-only" aria-live="polite" role="status" data-testid="fill-announcer">{announcement}</div>
      {cancelError && <div className="form-error" role="alert">{cancelError}</div>}
      <div className="scroll">
        <table className="grid compact">
          <thead>
            <tr>
              <th>Time</th>
              <th>Symbol</th>
              <th>Side</th>
              <th className="num">Qty</th>
              <th className="num">Price</th>
              <th>Status</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.key} data-testid={`order-${r.cid}`} data-status={r.status} className={`order ${r.status}`}>
                <td className="num muted">{r.time}</td>
                <td className="sym">{r.symbol}</td>
                <td className={r.side === "buy" ? "pos" : "neg"}>{r.side.toUpperCase()}</td>
                <td className="num">{r.quantity}</td>
                <td className="num">{r.price ? money(r.price, Math.max(2, (r.price.split(".")[1] ?? "").length)) : "—"}</td>
                <td>
                  <span className={`pill ${r.status}`} title={r.reason}>{r.status}</span>
                  {r.status === "accepted" && r.orderId && (
                    <button className="icon-btn cancel" title="Cancel order" aria-label={`Cancel ${r.side} ${r.quantity} ${r.symbol}`} onClick={() => void cancel(r.orderId!)}>×</button>
                  )}
                </td>
              </tr>
            ))}
            {rows.length === 0 && (
              <tr>
                <td colSpan={6} className="empty">No orders yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
