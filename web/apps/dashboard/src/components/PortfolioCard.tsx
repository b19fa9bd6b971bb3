import { usePortfolio } from "@tickmesh/react";
import { money, priceDigits, signed, tone } from "@tickmesh/react-ui";

/** Live portfolio value, day change, cash and positions. */
export function PortfolioCard() {
  const { data, stale, status, error } = usePortfolio();
  return (
    <section className={`panel portfolio ${stale ? "stale" : ""}`} data-testid="portfolio">
      <header className="panel-head">
        <h2>Portfolio</h2>
        <span className="muted small">{status === "error" ? error?.codeName : data ? "live valuation" : "waiting for valuation…"}</span>
      </header>
      <div className="kpis">
        <div className="kpi">
          <div className="kpi-label">Total value</div>
          <div className="kpi-value big" data-testid="portfolio-total">{money(data?.total_value)}</div>
        </div>
        <div className="kpi">
          <div className="kpi-label">Day change</div>
          <div className={`kpi-value ${tone(data?.day_change)}`}>
            {signed(data?.day_change)} <span className="small">({signed(data?.day_change_pct)}%)</span>
          </div>
        </div>
        <div className="kpi">
          <div className="kpi-label">Cash</div>
          <div className="kpi-value" data-testid="portfolio-cash">{money(data?.cash)}</div>
        </div>
        <div className="kpi">
          <div className="kpi-label">Positions</div>
          <div className="kpi-value">{money(data?.positions_value)}</div>
        </div>
      </div>
      <table className="grid compact">
        <thead>
          <tr>
            <th>Symbol</th>
            <th className="num">Qty</th>
            <th className="num">Avg cost</th>
            <th className="num">Price</th>
            <th className="num">Value</th>
            <th className="num">Unrl. P&amp;L</th>
            <th className="num">Day</th>
          </tr>
        </thead>
        <tbody data-testid="positions">
          {(data?.positions ?? []).map((p) => (
            <tr key={p.symbol} data-testid={`position-${p.symbol}`}>
              <td className="sym">{p.symbol}</td>
              <td className="num">{p.quantity}</td>
              <td className="num">{money(p.avg_cost, priceDigits(p.price))}</td>
              <td className="num">{money(p.price, priceDigits(p.price))}</td>
              <td className="num">{money(p.value)}</td>
              <td className={`num ${tone(p.unrealized_pnl)}`}>{signed(p.unrealized_pnl)}</td>
              <td className={`num ${tone(p.day_change)}`}>{signed(p.day_change)}</td>
            </tr>
          ))}
          {data && data.positions.length === 0 && (
            <tr>
              <td colSpan={7} className="empty">No positions yet: place an order.</td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}
