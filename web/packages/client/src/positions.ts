import type { Position } from "./frames.js";

/**
 * Where each channel is, so a resubscription asks for exactly what was missed (`since`) and a
 * message seen twice (replay overlapping live delivery, a transport switch) is delivered once.
 *
 * Event channels: positions are `(epoch, seq)`, seq strictly increasing within an epoch.
 * State channels: seq is a version; an older or equal version is never delivered after a newer.
 */
export class Positions {
  private readonly seqs = new Map<string, number>();
  private readonly epochs = new Map<string, string>();

  /** Whether a message should be delivered; records its seq if so. */
  accept(ch: string, seq: number): boolean {
    const last = this.seqs.get(ch);
    if (last !== undefined && seq <= last) return false;
    this.seqs.set(ch, seq);
    return true;
  }

  /** Record the epoch from a `sub` reply. A different epoch invalidates the old position. */
  setEpoch(ch: string, epoch: string): void {
    if (this.epochs.get(ch) !== epoch) this.seqs.delete(ch);
    this.epochs.set(ch, epoch);
  }

  /** Move the position forward to `seq` (never back): the edge's "continues from" position. */
  advance(ch: string, seq: number): void {
    const last = this.seqs.get(ch);
    if (last === undefined || seq > last) this.seqs.set(ch, seq);
  }

  /** The `since` to send when resubscribing an event channel, if we have a position. */
  since(ch: string): Position | undefined {
    const epoch = this.epochs.get(ch);
    const seq = this.seqs.get(ch);
    return epoch !== undefined && seq !== undefined ? { epoch, seq } : undefined;
  }

  /** Epoch and seq as far as known (either may be missing). */
  get(ch: string): { epoch?: string; seq?: number } {
    return { epoch: this.epochs.get(ch), seq: this.seqs.get(ch) };
  }

  /** Put the position at `since`, also backwards (a shared hub resuming for its oldest tab). */
  set(ch: string, since: Position): void {
    this.epochs.set(ch, since.epoch);
    this.seqs.set(ch, since.seq);
  }

  lastSeq(ch: string): number | undefined {
    return this.seqs.get(ch);
  }

  /**
   * The edge's SSE/polling cursor for `channels` (PROTOCOL.md, "Cursors"): base64url of
   * `{"v":1,"p":{channel:[epoch|null, seq]}}`. Built from the positions the client holds, so a
   * switch from one transport to another resumes exactly where the last one stopped.
   */
  cursor(channels: Iterable<string>): string | undefined {
    const p: Record<string, [string | null, number]> = {};
    for (const ch of channels) {
      const seq = this.seqs.get(ch);
      if (seq !== undefined) p[ch] = [this.epochs.get(ch) ?? null, seq];
    }
    if (Object.keys(p).length === 0) return undefined;
    const json = JSON.stringify({ v: 1, p });
    const bytes = new TextEncoder().encode(json);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  forget(ch: string): void {
    this.seqs.delete(ch);
    this.epochs.delete(ch);
  }
}
