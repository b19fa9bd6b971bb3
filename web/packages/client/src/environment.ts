/**
 * What the client needs from its host (browser or test): network and visibility signals and
 * a little storage to remember which transport worked. Injected so tests need no DOM.
 */
export interface Environment {
  online(): boolean;
  visible(): boolean;
  /** Subscribe to `online`, `offline` and "tab became visible"; returns a disposer. */
  watch(handlers: { online(): void; offline(): void; visible(): void }): () => void;
  load(key: string): string | null;
  save(key: string, value: string): void;
}

export function browserEnvironment(): Environment {
  const g = globalThis as typeof globalThis & Partial<Window>;
  const doc = typeof document === "undefined" ? undefined : document;
  return {
    online: () => (typeof navigator === "undefined" ? true : navigator.onLine !== false),
    visible: () => doc?.visibilityState !== "hidden",
    watch(handlers) {
      if (!g.addEventListener) return () => {};
      const onVisibility = () => {
        if (doc?.visibilityState === "visible") handlers.visible();
      };
      g.addEventListener("online", handlers.online);
      g.addEventListener("offline", handlers.offline);
      doc?.addEventListener("visibilitychange", onVisibility);
      return () => {
        g.removeEventListener?.("online", handlers.online);
        g.removeEventListener?.("offline", handlers.offline);
        doc?.removeEventListener("visibilitychange", onVisibility);
      };
    },
    load(key) {
      try {
        return g.localStorage?.getItem(key) ?? null;
      } catch {
        return null; // storage disabled (privacy mode): remembering is an optimisation only
      }
    },
    save(key, value) {
      try {
        g.localStorage?.setItem(key, value);
      } catch {
        /* see load */
      }
    },
  };
}
