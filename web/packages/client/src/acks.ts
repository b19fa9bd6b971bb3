/**
 * Acknowledgements of `trades` messages (the `ack` frame, contracts/PROTOCOL.md): the positions
 * received since the last ack, sent together at most every `intervalMs`, so the edge's audit
 * trail can say when this browser received each fill. At most 256 positions per frame.
 */
export const MAX_ACK_SEQS = 256;

export class AckBatch {
  private seqs: number[] = [];

  add(seq: number): void {
    this.seqs.push(seq);
  }

  get size(): number {
    return this.seqs.length;
  }

  /** The `ack` frames to send now (empty when nothing was received). */
  take(ch: string): { op: "ack"; ch: string; seqs: number[] }[] {
    const out = [];
    for (let i = 0; i < this.seqs.length; i += MAX_ACK_SEQS) out.push({ op: "ack" as const, ch, seqs: this.seqs.slice(i, i + MAX_ACK_SEQS) });
    this.seqs = [];
    return out;
  }

  /** The connection changed: positions received on the old one are not acknowledged on the new. */
  clear(): void {
    this.seqs = [];
  }
}
