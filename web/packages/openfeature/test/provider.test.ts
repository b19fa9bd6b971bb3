// The provider held to what OpenFeature's web SDK requires of a provider (the SDK ships no
// provider contract suite in its package), through the SDK's own API and client.
import { OpenFeature, ProviderEvents, ProviderStatus, ErrorCode, StandardResolutionReasons } from "@openfeature/web-sdk";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { TickmeshClient } from "../../client/src/client.js";
import { msgpackCodec } from "../../client/src/msgpack.js";
import { fakeEnvironment, fakeNetwork, flush } from "../../client/test/fakes.js";
import { followCodecFlag, TickmeshFlagProvider } from "../src/index.js";

async function connected() {
  const net = fakeNetwork();
  const client = new TickmeshClient({ url: "http://edge.test", getToken: async () => "tok", environment: fakeEnvironment(),
    transportFactories: net.factories, backoff: { random: () => 0.5 } });
  client.connect();
  await flush();
  net.last().welcome();
  return { client, net };
}

const FLAGS = {
  "ws.msgpack": { value: true, variant: "on", reason: "split" },
  theme: { value: "dark", variant: "rule", reason: "targeting_match" },
  limit: { value: 5, variant: "default", reason: "default" },
  layout: { value: { cols: 3 }, variant: "rollout", reason: "split" },
};

function sendFlags(net: ReturnType<typeof fakeNetwork>, flags: object, seq: number) {
  const t = net.last();
  const sub = t.frames("sub").find((f) => f.ch === "flags");
  if (seq === 1) t.receive({ op: "ok", id: sub!.id });
  t.receive({ op: "msg", ch: "flags", seq, data: { flags, revision: seq, ts: 1 } });
}

beforeEach(() => vi.useFakeTimers());
afterEach(async () => {
  await OpenFeature.clearProviders();
  vi.useRealTimers();
});

describe("TickmeshFlagProvider through the OpenFeature web SDK", () => {
  it("is READY with the first snapshot and resolves every type with variant and reason", async () => {
    const { client, net } = await connected();
    const provider = new TickmeshFlagProvider(client);
    const ready = OpenFeature.setProviderAndWait("t1", provider);
    await flush();
    sendFlags(net, FLAGS, 1);
    await ready;
    const of = OpenFeature.getClient("t1");
    expect(of.providerStatus).toBe(ProviderStatus.READY);
    expect(of.metadata.providerMetadata.name).toBe("tickmesh");
    expect(of.getBooleanDetails("ws.msgpack", false)).toMatchObject({ value: true, variant: "on", reason: StandardResolutionReasons.SPLIT });
    expect(of.getStringValue("theme", "light")).toBe("dark");
    expect(of.getNumberValue("limit", 0)).toBe(5);
    expect(of.getObjectValue("layout", {})).toEqual({ cols: 3 });
    expect(of.getStringDetails("theme", "x").reason).toBe(StandardResolutionReasons.TARGETING_MATCH);
  });

  it("returns the caller's default with FLAG_NOT_FOUND or TYPE_MISMATCH", async () => {
    const { client, net } = await connected();
    const ready = OpenFeature.setProviderAndWait("t2", new TickmeshFlagProvider(client));
    await flush();
    sendFlags(net, FLAGS, 1);
    await ready;
    const of = OpenFeature.getClient("t2");
    expect(of.getBooleanDetails("nope", true)).toMatchObject({ value: true, errorCode: ErrorCode.FLAG_NOT_FOUND });
    expect(of.getBooleanDetails("theme", false)).toMatchObject({ value: false, errorCode: ErrorCode.TYPE_MISMATCH });
    expect(of.getNumberDetails("layout", 1)).toMatchObject({ value: 1, errorCode: ErrorCode.TYPE_MISMATCH });
  });

  it("emits CONFIGURATION_CHANGED naming only the flags whose value changed, and STALE while offline", async () => {
    const { client, net } = await connected();
    const ready = OpenFeature.setProviderAndWait("t3", new TickmeshFlagProvider(client));
    await flush();
    sendFlags(net, FLAGS, 1);
    await ready;
    const of = OpenFeature.getClient("t3");
    const changed: string[][] = [];
    const statuses: string[] = [];
    of.addHandler(ProviderEvents.ConfigurationChanged, (d) => changed.push(d?.flagsChanged ?? []));
    of.addHandler(ProviderEvents.Stale, () => statuses.push("stale"));
    of.addHandler(ProviderEvents.Ready, () => statuses.push("ready"));
    sendFlags(net, { ...FLAGS, theme: { value: "light", variant: "default", reason: "default" } }, 2);
    await flush();
    expect(changed).toEqual([["theme"]]);
    expect(of.getStringValue("theme", "x")).toBe("light");
    net.last().drop();
    await flush();
    expect(of.providerStatus).toBe(ProviderStatus.STALE);
    expect(of.getStringDetails("theme", "x")).toMatchObject({ value: "light", reason: StandardResolutionReasons.STALE });
    await vi.advanceTimersByTimeAsync(60_000);
    net.last().welcome();
    await flush();
    expect(statuses).toEqual(["ready", "stale", "ready"]); // a READY handler also runs at once when added to a ready provider
  });
});

describe("followCodecFlag", () => {
  it("switches to MessagePack when the flag turns on, back to JSON when it turns off, and not otherwise", async () => {
    const { client, net } = await connected();
    const load = vi.fn(async () => msgpackCodec);
    followCodecFlag(client, load, { remember: false });
    sendFlags(net, { "ws.msgpack": { value: false, variant: "off", reason: "default" } }, 1);
    await flush();
    expect(net.created).toHaveLength(1);
    expect(load).not.toHaveBeenCalled();
    sendFlags(net, { "ws.msgpack": { value: true, variant: "on", reason: "split" } }, 2);
    await flush();
    expect(client.codec.subprotocol).toBe("tickmesh.v1.msgpack");
    expect(net.created).toHaveLength(2);
    net.last().welcome();
    const t = net.last();
    t.receive({ op: "ok", id: t.frames("sub").find((f) => f.ch === "flags")!.id });
    t.receive({ op: "msg", ch: "flags", seq: 3, data: { flags: { "ws.msgpack": { value: true, variant: "on", reason: "split" }, x: { value: 1, variant: "default", reason: "default" } }, revision: 3, ts: 1 } });
    await flush();
    expect(net.created).toHaveLength(2); // another flag changed: the connection stays
    t.receive({ op: "msg", ch: "flags", seq: 4, data: { flags: { "ws.msgpack": { value: false, variant: "off", reason: "disabled" } }, revision: 4, ts: 1 } });
    await flush();
    expect(client.codec.subprotocol).toBe("tickmesh.v1.json");
    expect(net.created).toHaveLength(3);
  });
});
