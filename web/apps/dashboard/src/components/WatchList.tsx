import { useState, type FormEvent } from "react";
import { PriceRow } from "./PriceRow";

/** Live prices for an editable list of symbols. */
export function WatchList(props: { symbols: string[]; add(symbol: string): string | null; remove(symbol: string): void; selected: string; onPick(symbol: string): void }) {
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<string | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const err = props.add(draft);
    setError(err);
    if (!err) setDraft("");
  };
  return (
    <section className="panel watchlist" data-testid="watchlist">
      <header className="panel-head">
        <h2>Watch-list</h2>
        <form className="add-symbol" onSubmit={submit}>
          <input value={draft} onChange={(e) => setDraft(e.target.value)} placeholder="Add symbol…" aria-label="Add symbol" data-testid="add-symbol" spellCheck={false} />
          <button type="submit" className="btn-ghost">Add</button>
        </form>
      </header>
      {error && <div className="form-error">{error}</div>}
      <table className="grid" aria-label="Watch-list prices">
        <thead>
          <tr>
            <th>Symbol</th>
            <th className="num">Last</th>
            <th className="num">Bid</th>
            <th className="num">Ask</th>
            <th>Trend</th>
            <th className="num">Time</th>
            <th>Source</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {props.symbols.map((s) => (
            <PriceRow key={s} symbol={s} selected={s === props.selected} onPick={props.onPick} onRemove={props.remove} />
          ))}
        </tbody>
      </table>
    </section>
  );
}
