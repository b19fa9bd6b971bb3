import { TickmeshError, type Execution, type Order, type TickmeshClient } from "@tickmesh/client";

export type OrderStatus = "pending" | "accepted" | "filled" | "rejected" | "cancelled";

/** An order as the UI shows it: optimistic until the edge or the execution says otherwise. */
export interface OptimisticOrder extends Order {
  status: OrderStatus;
  order_id?: string;
  /** Fill price once filled. */
  price?: string;
  submittedAt: number;
  updatedAt: number;
}

export interface Rejection {
  order: OptimisticOrder;
  code: number;
  codeName: string;
  reason: string;
  at: number;
}

export interface OrdersSnapshot {
  /** This session's orders, newest first; rejected ones are rolled back (removed). */
  orders: readonly OptimisticOrder[];
  /** Rolled-back orders with the reason, newest first. */
  rejections: readonly Rejection[];
}

const RANK: Record<OrderStatus, number> = { pending: 0, accepted: 1, filled: 2, cancelled: 2, rejected: 2 };

export type OrderInput = Omit<Order, "client_order_id"> & { client_order_id?: string };

/**
 * Optimistic orders of one provider. `submit` shows the order at once as `pending`, then
 * reconciles with whichever comes first of the command's reply and the execution on `trades`
 * (matched by client_order_id), and never moves an order backwards (an `accepted` reply that
 * arrives after the `filled` execution changes nothing). A rejection rolls the order back.
 */
export class OrderBook {
  private readonly byId = new Map<string, OptimisticOrder>();
  private readonly listeners = new Set<() => void>();
  snapshot: OrdersSnapshot = { orders: [], rejections: [] };

  constructor(private readonly client: TickmeshClient) {}

  readonly subscribe = (onChange: () => void) => {
    this.listeners.add(onChange);
    return () => void this.listeners.delete(onChange);
  };

  readonly getSnapshot = () => this.snapshot;

  submit(input: OrderInput): Promise<OptimisticOrder> {
    const client_order_id = input.client_order_id ?? newOrderId();
    const data: Order = { ...input, client_order_id } as Order;
    const now = Date.now();
    this.byId.set(client_order_id, { ...data, status: "pending", submittedAt: now, updatedAt: now });
    this.emit();
    // The client order id doubles as the idempotency key: a retried submit fills once.
    return this.client.command("order.submit", data, { key: client_order_id }).then(
      (reply) => {
        this.advance(client_order_id, {
          status: reply.status === "filled" ? "filled" : "accepted",
          order_id: typeof reply.order_id === "string" ? reply.order_id : undefined,
          price: typeof reply.price === "string" ? reply.price : undefined,
        });
        return this.byId.get(client_order_id) ?? { ...data, status: "filled", submittedAt: now, updatedAt: Date.now() };
      },
      (err: unknown) => {
        const e = err instanceof TickmeshError ? err : new TickmeshError(500, String(err));
        this.rollback(client_order_id, e.code, e.codeName, e.reason);
        throw e;
      },
    );
  }

  /** An execution from the `trades` channel. */
  onExecution(exec: Execution): void {
    if (!this.byId.has(exec.client_order_id)) return;
    if (exec.status === "rejected") {
      this.rollback(exec.client_order_id, exec.code ?? 0, "rejected", exec.reason ?? "rejected");
      return;
    }
    this.advance(exec.client_order_id, { status: exec.status, order_id: exec.order_id, price: exec.price });
  }

  private advance(id: string, patch: Partial<OptimisticOrder> & { status: OrderStatus }): void {
    const order = this.byId.get(id);
    if (!order || RANK[patch.status] < RANK[order.status]) return;
    if (RANK[patch.status] === RANK[order.status] && order.status !== "pending") {
      // Same rank: only fill in what we did not know yet (e.g. the price).
      patch = { ...patch, status: order.status };
    }
    const clean = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    this.byId.set(id, { ...order, ...clean, updatedAt: Date.now() });
    this.emit();
  }

  private rollback(id: string, code: number, codeName: string, reason: string): void {
    const order = this.byId.get(id);
    if (!order) return;
    this.byId.delete(id);
    const rejection: Rejection = { order: { ...order, status: "rejected" }, code, codeName, reason, at: Date.now() };
    this.snapshot = { ...this.snapshot, rejections: [rejection, ...this.snapshot.rejections].slice(0, 20) };
    this.emit();
  }

  private emit(): void {
    this.snapshot = { ...this.snapshot, orders: [...this.byId.values()].reverse() };
    for (const listener of [...this.listeners]) listener();
  }
}

function newOrderId(): string {
  const c = globalThis.crypto as Crypto | undefined;
  return "web-" + (c?.randomUUID ? c.randomUUID().slice(0, 18) : Math.random().toString(36).slice(2, 14));
}
