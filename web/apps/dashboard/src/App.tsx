import { TickmeshClient, type Codec, type TransportName } from "@tickmesh/client";
import { OpenFeature, OpenFeatureProvider, useBooleanFlagValue } from "@openfeature/react-sdk";
import { followCodecFlag, rememberedMsgpack, TickmeshFlagProvider } from "@tickmesh/openfeature";
import { TickmeshProvider, useConnectionStatus, useTickmeshClient } from "@tickmesh/react";
import { AnnouncementBanner, Blotter, ConnectionIndicator, NotificationCentre, NotificationFeed, OrderTicket } from "@tickmesh/react-ui";
import { lazy, Suspense, useEffect, useMemo, useState } from "react";
import { demoUsers, savedUser, saveUser, tokenSource, type DemoUser } from "./auth";
import { PresenceAvatars } from "./components/collab/Avatars";
import { SharedWatchlists } from "./components/collab/SharedWatchlists";
import { SupportOnline } from "./components/collab/SupportOnline";
import { Login } from "./components/Login";
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

/** MessagePack, loaded on demand: users who do not get it never download it. */
const loadMsgpack = async (): Promise<Codec> => (await import("@tickmesh/client/msgpack")).msgpackCodec;

/**
 * `?codec=msgpack` (or `json`) pins the codec for trying it by hand. Otherwise the `ws.msgpack`
 * feature flag decides: the page starts with what the flag said last time (remembered), and
 * switches once if the flag says otherwise now (see followCodecFlag).
 */
const pinnedCodec = new URLSearchParams(location.search).get("codec");
async function initialCodec(): Promise<Codec | undefined> {
  if (pinnedCodec === "msgpack" || (pinnedCodec === null && rememberedMsgpack())) return loadMsgpack();
  return undefined;
}

const codecReady = initialCodec();
// The charting library loads after the trading screen is up (its own chunk).
const PriceChart = lazy(() => import("@tickmesh/react-ui/charts").then((m) => ({ default: m.PriceChart })));
const PortfolioChart = lazy(() => import("@tickmesh/react-ui/charts").then((m) => ({ default: m.PortfolioChart })));

/** Ticks each price channel starts with: the chart and the sparklines draw them. */
const PRICE_HISTORY = 300;

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
    const c = new TickmeshClient({ getToken: tokenSource(props.user), transports: transportsFromUrl(), codec, upgradeIntervalMs: upgradeMs, priceHistory: PRICE_HISTORY });
    (window as unknown as { tickmesh?: TickmeshClient }).tickmesh = c; // for the console and tests
    return c;
  }, [props.user, codec]);
  useEffect(() => {
    if (!client) return;
    // The user's flags, evaluated by the edge, through the standard OpenFeature API.
    void OpenFeature.setProvider(new TickmeshFlagProvider(client));
    const stopCodec = pinnedCodec ? undefined : followCodecFlag(client, loadMsgpack);
    return () => {
      stopCodec?.();
      void OpenFeature.clearProviders();
    };
  }, [client]);
  if (!client) return null;
  return (
    <TickmeshProvider client={client}>
      <OpenFeatureProvider>
        <Trading user={props.user} onLogout={() => (client.disconnect(), props.onLogout())} />
      </OpenFeatureProvider>
    </TickmeshProvider>
  );
}

/** Which codec the `ws.msgpack` flag gives this user (the edge evaluated it; no rule is here). */
function CodecBadge() {
  const msgpack = useBooleanFlagValue("ws.msgpack", false);
  return (
    <span className="codec-badge muted small" data-testid="codec-flag" data-on={msgpack ? "true" : "false"} title="feature flag ws.msgpack">
      {msgpack ? "MessagePack" : "JSON"}
    </span>
  );
}

/** The demo users a list can be shared with (the dev stack's /dev/users). */
function usePeople(): DemoUser[] {
  const [people, setPeople] = useState<DemoUser[]>([]);
  useEffect(() => {
    demoUsers().then(setPeople, () => setPeople([]));
  }, []);
  return people;
}

function Trading(props: { user: string; onLogout(): void }) {
  const watch = useWatchList(props.user);
  const [symbol, setSymbol] = useState(watch.symbols[0] ?? "AAPL");
  const conn = useConnectionStatus();
  // The edge refuses gated features; the page hides them too (absent flags leave them on).
  const presence = useBooleanFlagValue("realtime.presence", true);
  const watchlists = useBooleanFlagValue("realtime.watchlists", true);
  const people = usePeople();
  const client = useTickmeshClient();
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
          {presence && <SupportOnline staff={client.session?.roles?.includes("support") ?? false} />}
          <ConnectionIndicator />
          <CodecBadge />
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
          {presence && (
            <div className="panel detail-bar">
              <span className="sym">{symbol}</span>
              <PresenceAvatars key={symbol} topic={`symbol.${symbol}`} data={{ viewing: "detail" }} label="Watching now" testId="watchers" />
            </div>
          )}
          <Suspense fallback={<section className="panel chart-placeholder" aria-busy="true" />}>
            <PriceChart symbol={symbol} />
          </Suspense>
          {watchlists && <SharedWatchlists people={people} onPick={setSymbol} />}
          <PortfolioCard />
          <Suspense fallback={null}>
            <PortfolioChart />
          </Suspense>
        </div>
        <div className="col-side">
          <OrderTicket symbol={symbol} onSymbolChange={setSymbol} />
          <Blotter />
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
