/**
 * The two captured legs every splice test starts from: leg 1 client <-> VIP,
 * leg 2 LB <-> back end, with numbers chosen so that every delta differs.
 * test/unit/splice-plan.test.ts derives the resulting translation by hand;
 * test/datapath/splice.fixtures.test.ts sends packets through it.
 */
import type { TcpState } from '../../control/tcp/state.js';

export const CLIENT = { ip: '198.18.0.10', port: 40000 };
export const VIP = { ip: '198.18.1.1', port: 80 };
export const LB = { ip: '198.18.2.1', port: 50000 };
export const BACKEND = { ip: '198.18.3.10', port: 8080 };

const window = { sndWl1: 0, sndWnd: 65535, maxWindow: 65535, rcvWnd: 65535, rcvWup: 0 };

export function leg1(over: Partial<TcpState> = {}): TcpState {
  return {
    family: 4,
    local: VIP,
    remote: CLIENT,
    sndNxt: 500_000, // next byte the LB sends the client
    sndUna: 500_000,
    rcvNxt: 10_000, // next byte expected from the client
    mssClamp: 1460,
    advMss: 1460,
    sndWscale: 7, // the client scales its window fields by 2^7
    rcvWscale: 9, // the LB scales the fields it sends the client by 2^9
    timestamps: true,
    sackPermitted: true,
    tsNow: 50_000, // LB clock on leg 1
    tsRecent: 1_000, // client's latest TSval
    sendQueue: Buffer.alloc(0),
    recvQueue: Buffer.alloc(0),
    window,
    ...over,
  };
}

export function leg2(over: Partial<TcpState> = {}): TcpState {
  return {
    family: 4,
    local: LB,
    remote: BACKEND,
    sndNxt: 70_000, // next byte the LB sends the back end
    sndUna: 70_000,
    rcvNxt: 900_000, // next byte expected from the back end
    mssClamp: 1460,
    advMss: 1400,
    sndWscale: 3, // the back end scales by 2^3
    rcvWscale: 2, // the LB scales the fields it sends the back end by 2^2
    timestamps: true,
    sackPermitted: true,
    tsNow: 200_000, // LB clock on leg 2
    tsRecent: 3_000_000, // back end's latest TSval
    sendQueue: Buffer.alloc(0),
    recvQueue: Buffer.alloc(0),
    window,
    ...over,
  };
}
