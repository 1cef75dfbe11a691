/**
 * The Lua scripts behind RedisStore (control/store/redis.ts): each change
 * of the directory, the peer set or a record is one atomic script that also
 * appends to its stream; the key layout is drawn in redis.ts.
 */
// ---------------------------------------------------------------------------
// Lua scripts. KEYS are declared so ACL key patterns and (one day) cluster
// slots apply. Numbers come back as integers, values as bulk strings.

// Fragments the peer scripts share, each starting with a newline like the scripts.
/** `now`: the Redis server's clock in ms (expiries are on it: hosts' clocks may differ). */
const NOW_MS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** `now`, then every peer expired by it leaves, each leave logged (KEYS peers, peers:info, peers:seq, peers:log; ARGV[1] history); `gone` holds their ids. */
const REAP_EXPIRED = `${NOW_MS}
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
  local seq = redis.call('INCR', KEYS[3])
  redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[1], seq .. '-0', 'type', 'leave', 'id', id, 'reason', 'expired')
end`;

export const SCRIPTS = {
  // KEYS dir, dir:seq, dir:log, epoch. ARGV owner, history, epoch candidate, ref1, value1, ...
  publish: `
redis.call('SET', KEYS[4], ARGV[3], 'NX')
local seq = redis.call('INCR', KEYS[2])
local x = {'XADD', KEYS[3], 'MAXLEN', '=', ARGV[2], seq .. '-0', 'op', 'publish', 'owner', ARGV[1]}
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[1] .. '\\n' .. ARGV[i + 1])
  x[#x + 1] = ARGV[i]
  x[#x + 1] = ARGV[i + 1]
end
redis.call(unpack(x))
return seq`,
  // KEYS dir, dir:seq, dir:log, epoch. ARGV owner, history, epoch candidate, ref1, ...
  withdraw: `
local x = {}
local mine = ARGV[1] .. '\\n'
for i = 4, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and string.sub(v, 1, #mine) == mine then
    redis.call('HDEL', KEYS[1], ARGV[i])
    x[#x + 1] = ARGV[i]
    x[#x + 1] = ''
  end
end
if #x == 0 then return tonumber(redis.call('GET', KEYS[2]) or '0') end
redis.call('SET', KEYS[4], ARGV[3], 'NX')
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '=', ARGV[2], seq .. '-0', 'op', 'withdraw', 'owner', ARGV[1], unpack(x))
return seq`,
  // KEYS dir, dir:seq, epoch. -> {seq, epoch, {ref, owner\\nvalue, ...}}
  dirSnapshot: `
return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('GET', KEYS[3]) or '', redis.call('HGETALL', KEYS[1])}`,
  // KEYS peers, peers:info, peers:seq, peers:log, epoch. ARGV history -> number reaped
  reap: `${REAP_EXPIRED}
return #gone`,
  // KEYS as reap. ARGV id, info, ttl, history, epoch candidate -> 1 joined, 0 refreshed
  heartbeat: `
redis.call('SET', KEYS[5], ARGV[5], 'NX')${NOW_MS}
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
local info = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if old and tonumber(old) > now and info == ARGV[2] then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[4], seq .. '-0', 'type', 'join', 'id', ARGV[1], 'info', ARGV[2])
return 1`,
  // KEYS as reap. ARGV id, history -> 1 removed, 0 not there
  removePeer: `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local seq = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[2], seq .. '-0', 'type', 'leave', 'id', ARGV[1], 'reason', 'removed')
return 1`,
  // KEYS as reap. ARGV history -> {seq, epoch, now, {id, expiry, ...}, {info, ...}}; reaps first
  peerSnapshot: `${REAP_EXPIRED}
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
local infos = {}
for i = 1, #live, 2 do infos[#infos + 1] = redis.call('HGET', KEYS[2], live[i]) or '' end
return {tonumber(redis.call('GET', KEYS[3]) or '0'), redis.call('GET', KEYS[5]) or '', now, live, infos}`,
  // KEYS rec. ARGV value, ifVersion ('' none) -> {1, version} | {0, v, o, n} | {0}
  put: `
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= n then
  if n == 0 then return {0} end
  return {0, redis.call('HGET', KEYS[1], 'v'), redis.call('HGET', KEYS[1], 'o') or '', n}
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'n', n + 1)
return {1, n + 1}`,
  // KEYS rec. ARGV owner, from ('' nobody) -> {won, v, o, n} | {-1} (absent, from given)
  claim: `
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local holder = redis.call('HGET', KEYS[1], 'o') or ''
if holder == ARGV[1] then return {1, redis.call('HGET', KEYS[1], 'v'), holder, n} end
if holder ~= ARGV[2] then
  if n == 0 then return {-1} end
  return {0, redis.call('HGET', KEYS[1], 'v'), holder, n}
end
local v = redis.call('HGET', KEYS[1], 'v') or ''
redis.call('HSET', KEYS[1], 'v', v, 'o', ARGV[1], 'n', n + 1)
return {1, v, ARGV[1], n + 1}`,
  // KEYS rec. ARGV owner ('' any), ifVersion ('' any) -> 1 | 0
  del: `
local n = redis.call('HGET', KEYS[1], 'n')
if not n then return 0 end
if ARGV[1] ~= '' and (redis.call('HGET', KEYS[1], 'o') or '') ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= tonumber(n) then return 0 end
return redis.call('DEL', KEYS[1])`,
} as const;
export type ScriptName = keyof typeof SCRIPTS;
