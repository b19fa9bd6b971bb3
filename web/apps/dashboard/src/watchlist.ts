import { SYMBOL_PATTERN } from "@tickmesh/client";
import { useCallback, useState } from "react";

const DEFAULT = ["AAPL", "MSFT", "NVDA", "AMZN", "TSLA", "META", "BRK.B", "JPM", "SPY", "BTC-USD", "ETH-USD", "EUR/USD"];

/** The user's watch-list, kept in localStorage per user. */
export function useWatchList(user: string) {
  const key = `tickmesh.watchlist.${user}`;
  const [symbols, setSymbols] = useState<string[]>(() => {
    try {
      const saved = JSON.parse(localStorage.getItem(key) ?? "null") as unknown;
      if (Array.isArray(saved) && saved.every((s) => typeof s === "string")) return saved as string[];
    } catch {
      /* fall back to the default list */
    }
    return DEFAULT;
  });
  const save = useCallback(
    (next: string[]) => {
      setSymbols(next);
      localStorage.setItem(key, JSON.stringify(next));
    },
    [key],
  );
  const add = useCallback(
    (raw: string): string | null => {
      const symbol = raw.trim().toUpperCase();
      if (!SYMBOL_PATTERN.test(symbol)) return "Not a valid symbol";
      if (symbols.includes(symbol)) return `${symbol} is already on the list`;
      save([...symbols, symbol]);
      return null;
    },
    [symbols, save],
  );
  const remove = useCallback((symbol: string) => save(symbols.filter((s) => s !== symbol)), [symbols, save]);
  return { symbols, add, remove };
}
