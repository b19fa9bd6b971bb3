// The SharedWorker that holds one user's connection for every tab of an origin. Its name is
// the share key (edge URL and user), so tabs of another user get another worker. Loaded by the
// client with `new SharedWorker(new URL("./shared-worker.js", import.meta.url), {type: "module"})`.
import { TickmeshClient } from "./client.js";
import type { Codec } from "./codec.js";
import { Hub } from "./shared-hub.js";
import { subjectOfKey, type EngineSettings, type HubMessage, type TabId, type TabMessage } from "./shared-protocol.js";
import { tabLockName } from "./shared-link.js";

// The few parts of SharedWorkerGlobalScope used here (the DOM and webworker libs cannot both be
// loaded in one compilation).
declare const self: {
  readonly name: string;
  readonly navigator: Navigator;
  onconnect: ((event: MessageEvent) => void) | null;
};

const subject = subjectOfKey(self.name);
const ports = new Map<TabId, MessagePort>();

async function codecFor(settings: EngineSettings): Promise<Codec | undefined> {
  if (!settings.codec || settings.codec === "tickmesh.v1.json") return undefined;
  const { msgpackCodec } = await import("./msgpack.js");
  return settings.codec === msgpackCodec.subprotocol ? msgpackCodec : undefined;
}

async function startHub(settings: EngineSettings): Promise<Hub> {
  const codec = await codecFor(settings);
  return new Hub({
    subject: subject!,
    createEngine: (s, getToken) =>
      new TickmeshClient({ ...s, codec, getToken, share: false }),
    post(msg: HubMessage) {
      // "Everyone" is every tab the hub accepted, never a port whose join it refused.
      const to = msg.to === "*" ? hubInstance?.tabs ?? [] : Array.isArray(msg.to) ? msg.to : [msg.to];
      for (const tab of to) ports.get(tab)?.postMessage(msg);
    },
    watchTab(tab, gone) {
      const locks = self.navigator.locks;
      if (!locks) return;
      void locks.request(tabLockName(self.name, tab), () => {
        ports.delete(tab);
        gone();
      }).catch(() => {});
    },
  });
}

let hubInstance: Hub | undefined;
let queue: Promise<void> = Promise.resolve();

async function handle(msg: TabMessage, port: MessagePort): Promise<void> {
  if (msg.t === "join") ports.set(msg.tab, port);
  if (!hubInstance) {
    if (msg.t !== "join") return;
    hubInstance = await startHub(msg.settings);
  }
  hubInstance.receive(msg);
  if (msg.t === "leave") ports.delete(msg.tab);
}

self.onconnect = (event: MessageEvent) => {
  const port = event.ports[0]!;
  port.onmessage = (e: MessageEvent<TabMessage>) => {
    const msg = e.data;
    const refuse = (reason: string) =>
      msg.t === "join" && port.postMessage({ t: "refused", hub: "", to: msg.tab, reason } satisfies HubMessage);
    // Not opened by the client (no share key as its name): serve nobody.
    if (!subject) return void refuse("unnamed shared worker");
    // One queue: messages reach the hub in the order the tabs sent them.
    queue = queue.then(() => handle(msg, port)).catch((err: unknown) => void refuse(`the shared connection failed: ${String(err)}`));
  };
  port.start();
};
