import { TickmeshClient, type Codec, type TransportName } from "@tickmesh/client";
import { TickmeshProvider, useConnectionStatus } from "@tickmesh/react";
import { useEffect, useMemo, useState } from "react";
import { savedUser, saveUser, tokenSource } from "./auth";
import { AnnouncementBanner } from "./components/AnnouncementBanner";
import { ConnectionIndicator } from "./components/ConnectionIndicator";
import { Login } from "./components/Login";
import { NotificationCentre, NotificationFeed } from "./components/NotificationCentre";
import { OrdersBlotter } from "./components/OrdersBlotter";
import { OrderTicket } from "./components/OrderTicket";
import { PortfolioCard } from "./components/PortfolioCard";
import { WatchList } from "./components/WatchList";
import { useWatchList } from "./watchlist";

/**
 * `?transports=sse,polling` restricts the transports (for trying the fallbacks by hand);
 * `?upgrade_ms=2000` probes the WebSocket more often while on a fallback (default 30 s).
 */
function transportsFromUrl(): TransportName[] | undefined {
  const raw = new URLSearchParams(location.search).get("transports");
  return raw ? (raw.split(",").filter((t) => ["websocket", "sse", "polling"].includes(t)) as TransportName[]) : undefined;
}

/** `?codec=msgpack` uses the MessagePack subprotocol (loaded on demand: JSON users never download it). */
async function codecFromUrl(): Promise<Codec | undefined> {
  if (new URLSearchParams(location.search).get("codec") !== "msgpack") return undefined;
  return (await import("@tickmesh/client/msgpack")).msgpackCodec;
}

const codecReady = codecFromUrl();

export function App() {
  const [user, setUser] = useState<string | null>(savedUser);
  if (!user) {
    return (
      <Login
        onLogin={(u) => {
          saveUser(u);
          setUser(u);
        }}
      />
    );
  }
  return (
    <Session
      key={user}
      user={user}
      onLogout={() => {
        saveUser(null);
        setUser(null);
      }}
    />
  );
}

function Session(props: { user: string; onLogout(): void }) {
  const [codec, setCodec] = useState<Codec | undefined | null>(null);
  useEffect(() => {
    void codecReady.then((c) => setCodec(c));
  }, []);
  const client = useMemo(() => {
    if (codec === null) return null;
    const upgradeMs = Number(new URLSearchParams(location.search).get("upgrade_ms")) || undefined;
    const c = new TickmeshClient({ getToken: tokenSource(props.user), transports: transportsFromUrl(), codec, upgradeIntervalMs: upgradeMs });
    (window as unknown as { tickmesh?: TickmeshClient }).tickmesh = c; // for the console and tests
    return c;
  }, [props.user, codec]);
  if (!client) return null;
  return (
    <TickmeshProvider client={client}>
      <Trading user={props.user} onLogout={() => (client.disconnect(), props.onLogout())} />
    </TickmeshProvider>
  );
}

function Trading(props: { user: string; onLogout(): void }) {
  const watch = useWatchList(props.user);
  const [symbol, setSymbol] = useState(watch.symbols[0] ?? "AAPL");
  const conn = useConnectionStatus();
  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <svg viewBox="0 0 16 16" width="16" height="16" aria-hidden="true">
            <path d="M1 12 L5 7 L8 9 L15 2" stroke="#22c55e" strokeWidth="2" fill="none" />
          </svg>
          tickmesh <span className="muted">Trader</span>
        </div>
        <div className="topbar-right">
          <ConnectionIndicator />
          <NotificationCentre />
          <div className="user" data-testid="user">
            <span className="avatar small">{props.user.slice(0, 1).toUpperCase()}</span>
            {conn.user ?? props.user}
            <button className="btn-ghost" onClick={props.onLogout}>Sign out</button>
          </div>
        </div>
      </header>
      <AnnouncementBanner />
      <main className="layout">
        <div className="col-main">
          <WatchList symbols={watch.symbols} add={watch.add} remove={watch.remove} selected={symbol} onPick={setSymbol} />
          <PortfolioCard />
        </div>
        <div className="col-side">
          <OrderTicket symbol={symbol} setSymbol={setSymbol} />
          <OrdersBlotter />
          <NotificationFeed />
        </div>
      </main>
      {conn.state === "disconnected" && conn.error && (
        <div className="fatal" data-testid="fatal">
          Disconnected: {conn.error.codeName} ({conn.error.code}). {conn.error.reason}
          <button className="btn-ghost" onClick={props.onLogout}>Sign in again</button>
        </div>
      )}
    </div>
  );
}
