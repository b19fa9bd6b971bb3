import { jsonCodec, type Codec, type Flags, type TickmeshClient } from "@tickmesh/client";

/** Where the last value of the codec flag is remembered, so the next page load starts with it. */
const STORAGE_KEY = "tickmesh.codec-flag";

export interface CodecFlagOptions {
  /** The boolean flag that selects MessagePack (default `ws.msgpack`). */
  flag?: string;
  /** Remember the value in localStorage for the next page load (default true). */
  remember?: boolean;
}

function storage(): Storage | undefined {
  try {
    return typeof localStorage === "undefined" ? undefined : localStorage;
  } catch {
    return undefined; // storage disabled: start with JSON, switch when the flags arrive
  }
}

/** Whether the last page load's codec flag said MessagePack (start with it: no switch needed). */
export function rememberedMsgpack(): boolean {
  return storage()?.getItem(STORAGE_KEY) === "on";
}

/**
 * Let the `ws.msgpack` flag choose the client's WebSocket codec. `loadMsgpack` is called only
 * when the flag is on (so users left out never download the codec). Users whose value does not
 * change keep their connection; one whose value changes reconnects once with the new codec,
 * resuming every channel. Returns the disposer.
 */
export function followCodecFlag(client: TickmeshClient, loadMsgpack: () => Promise<Codec>, options: CodecFlagOptions = {}): () => void {
  const flag = options.flag ?? "ws.msgpack";
  let wanted: boolean | undefined;
  return client.subscribe("flags", (m) => {
    const on = (m.data as Flags).flags[flag]?.value === true;
    if (on === wanted) return;
    wanted = on;
    if (options.remember !== false) storage()?.setItem(STORAGE_KEY, on ? "on" : "off");
    if (!on) return client.setCodec(jsonCodec);
    void loadMsgpack().then((codec) => wanted === true && client.setCodec(codec));
  });
}
