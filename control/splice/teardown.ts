/**
 * The end of a connection: removing what baton holds of it (the sweeper's
 * reclaim), or aborting it with a RST to each end. Both run as tasks on the
 * connection's queue, so they never overlap a handoff or the background
 * step of its first splice.
 */
import { abortResets } from '../datapath/connection-plan.js';
import { BatonError } from '../errors.js';
import type { SpliceContext } from './context.js';
import { currentLeg, type SpliceRecord } from './records.js';

/** Deletes the connection's entries and releases the sockets baton holds for it. */
export function removeConnection(ctx: SpliceContext, rec: SpliceRecord): void {
  ctx.table.remove(rec.clientKey);
  for (const h of rec.legs) {
    if (!h.retired) ctx.table.remove(h.backendKey);
    if (h.heldFd !== undefined) {
      try {
        ctx.ops.releaseSilently(h.heldFd);
      } catch {
        /* already closed */
      }
      delete h.heldFd;
    }
  }
  if (ctx.records.get(rec.id) === rec) ctx.records.delete(rec.id);
}

/**
 * Removes the connection, then resets both ends at the sequence numbers the
 * datapath last saw (see abortResets for why an inexact number still ends
 * in an exact RST). The tracks are read before the entries go.
 */
export function abortConnection(ctx: SpliceContext, rec: SpliceRecord): void {
  const leg = currentLeg(rec);
  const resets = abortResets(rec, leg, ctx.table.track(rec.clientKey), ctx.table.track(leg.backendKey));
  removeConnection(ctx, rec);
  const errors: unknown[] = [];
  for (const s of [resets.toClient, resets.toBackend]) {
    try {
      ctx.ops.reset({ family: rec.family, ...s }, rec.netns);
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length) {
    throw new BatonError(
      'DATAPATH',
      `connection ${rec.id} was removed, but a RST could not be sent: ${(errors[0] as Error).message}`,
      'reset_failed',
      { cause: errors[0] },
    );
  }
}
