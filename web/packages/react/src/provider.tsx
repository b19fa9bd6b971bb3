import { TickmeshClient, type ClientOptions } from "@tickmesh/client";
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { TickmeshStore } from "./store.js";

const StoreContext = createContext<TickmeshStore | null>(null);

export type TickmeshProviderProps =
  | { client: TickmeshClient; options?: never; children?: ReactNode }
  | { options: ClientOptions; client?: never; children?: ReactNode };

/**
 * Gives its subtree one tickmesh connection and one shared store. Pass either `options` (the
 * provider creates the client, connects on mount and disconnects on unmount) or an existing
 * `client` (the provider connects it but leaves its lifetime to you).
 */
export function TickmeshProvider(props: TickmeshProviderProps) {
  const [owned] = useState(() => (props.client ? undefined : new TickmeshClient(props.options!)));
  const client = props.client ?? owned!;
  const [store] = useState(() => new TickmeshStore(client));
  useEffect(() => {
    client.connect();
    return () => {
      if (owned) owned.disconnect();
    };
  }, [client, owned]);
  useEffect(() => store.attach(), [store]);
  return <StoreContext.Provider value={store}>{props.children}</StoreContext.Provider>;
}

/** The store of the nearest provider; throws outside one (a bug worth hearing about early). */
export function useTickmeshStore(): TickmeshStore {
  const store = useContext(StoreContext);
  if (!store) throw new Error("tickmesh hooks must be used inside <TickmeshProvider>");
  return store;
}

/** The provider's client, for what the hooks do not cover. */
export function useTickmeshClient(): TickmeshClient {
  return useTickmeshStore().client;
}
