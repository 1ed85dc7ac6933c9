-- now is Redis's clock (ARGV[1] is empty but in tests), so no worker's own clock enters a shared decision
local function clock()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local now, cfg_rate, initial, cap_cfg = clock(), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
-- the token ends with when the gate let the request through: observe dates the answer by it
local lease, token, burst, sub = tonumber(ARGV[5]), ARGV[6] .. '@' .. string.format('%.6f', now), tonumber(ARGV[7]), ARGV[8]
local send_burst = tonumber(ARGV[9])
local p = KEYS[1]
-- a provider key held after a configuration error (revoked key, IP not allow-listed): nothing goes but one
-- probe per hold period, whatever the integration
local hold = KEYS[2]
local held_until = tonumber(redis.call('HGET', hold, 'until') or '0')
local hold_probe = false
if held_until > now then return {'held', tostring(held_until - now), token} end
if held_until > 0 then
  if not redis.call('SET', hold .. ':probe', token, 'NX', 'PX', math.floor(lease * 1000)) then
    return {'held', '1', token}
  end
  hold_probe = true
end
local res_key = p .. 'res:' .. sub
-- a cooldown of the whole API key (KEYS[3], after a key-wide 429) holds every limit key of it
local cool = math.max(tonumber(redis.call('GET', p .. 'cool') or '0'), tonumber(redis.call('GET', KEYS[3]) or '0'))
if cool > now then
  if hold_probe then redis.call('DEL', hold .. ':probe') end
  -- the waiters get their turns after the cooldown now, so that they come back spread at the rate
  -- instead of all at once (a reservation kept from before is still good if the generation is)
  local gen = redis.call('GET', p .. 'gen') or '0'
  local res = redis.call('HMGET', res_key, 'gen', 'slot')
  if res[1] == gen and res[2] then return {'cooldown', tostring(math.max(cool, tonumber(res[2])) - now), token} end
  local rate = cfg_rate
  if rate <= 0 then rate = tonumber(redis.call('GET', p .. 'rate') or initial) end
  local slot = math.max(cool, tonumber(redis.call('GET', p .. 'tat') or '0'))
  redis.call('SET', p .. 'tat', tostring(slot + 1 / rate), 'EX', 86400)
  redis.call('HSET', res_key, 'gen', gen, 'slot', tostring(slot))
  redis.call('EXPIRE', res_key, math.ceil(slot - now) + 300)
  return {'cooldown', tostring(slot - now), token}
end
local open_until = tonumber(redis.call('HGET', p .. 'brk', 'open_until') or '0')
local probe = false
if open_until > now then
  if hold_probe then redis.call('DEL', hold .. ':probe') end
  return {'breaker', tostring(open_until - now), token}
end
if open_until > 0 then
  if not redis.call('SET', p .. 'probe', token, 'NX', 'PX', math.floor(lease * 1000)) then
    if hold_probe then redis.call('DEL', hold .. ':probe') end
    return {'breaker', '1', token}
  end
  probe = true
end
local cap = cap_cfg
local learned = tonumber(redis.call('GET', p .. 'cap') or '0')
if learned > 0 and (cap <= 0 or learned < cap) then cap = learned end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', p .. 'inflight', '-inf', now)
  if redis.call('ZCARD', p .. 'inflight') >= cap then
    if probe then redis.call('DEL', p .. 'probe') end
    if hold_probe then redis.call('DEL', hold .. ':probe') end
    return {'concurrency', '0.2', token}
  end
end
local gen = redis.call('GET', p .. 'gen') or '0'
local rate = cfg_rate
if rate <= 0 then rate = tonumber(redis.call('GET', p .. 'rate') or initial) end
local function hold(slot, wait)
  redis.call('HSET', res_key, 'gen', gen, 'slot', tostring(slot))
  redis.call('EXPIRE', res_key, math.ceil(wait) + 300)
  if probe then redis.call('DEL', p .. 'probe') end
  if hold_probe then redis.call('DEL', hold .. ':probe') end
  return {'reserved', tostring(wait), token}
end
-- 1. the schedule: a reservation whose slot has come, or a slot taken now (reserved if not within burst)
local res = redis.call('HMGET', res_key, 'gen', 'slot')
local has_res = false
if res[1] == gen and res[2] then
  local slot = tonumber(res[2])
  if slot > now + 0.01 then
    if hold_probe then redis.call('DEL', hold .. ':probe') end
    return {'reserved', tostring(slot - now), token}
  end
  has_res = slot > now - 2
end
if not has_res then
  local tat = tonumber(redis.call('GET', p .. 'tat') or '0')
  if tat < now then tat = now end
  if tat - now > burst and cfg_rate <= 0 and redis.call('EXISTS', p .. 'learned') == 0 then
    -- slow start: the rate is a guess that grows with what gets through, so nothing is reserved at it;
    -- the turn waits in the worker and asks again. That it waits is a backlog pressing on the rate.
    redis.call('SET', p .. 'paced', tostring(now), 'EX', 60)
    if probe then redis.call('DEL', p .. 'probe') end
    if hold_probe then redis.call('DEL', hold .. ':probe') end
    return {'pacing', tostring(tat - now), token}
  end
  redis.call('SET', p .. 'tat', tostring(tat + 1 / rate), 'EX', 86400)
  if tat - now > burst then return hold(tat, tat - now) end
end
-- 2. the pace of actual sends: late reservations arriving together must not burst past the rate
local cap_s = math.max(1, rate * send_burst)
local sb = redis.call('HMGET', p .. 'send', 'tokens', 'ts')
local tokens = tonumber(sb[1] or cap_s)
tokens = math.min(cap_s, tokens + (now - tonumber(sb[2] or now)) * rate)
if tokens < 1 then return hold(now, (1 - tokens) / rate) end
redis.call('HSET', p .. 'send', 'tokens', tostring(tokens - 1), 'ts', tostring(now))
redis.call('EXPIRE', p .. 'send', 3600)
redis.call('DEL', res_key)
if cap > 0 then
  redis.call('ZADD', p .. 'inflight', now + lease, token)
  redis.call('EXPIRE', p .. 'inflight', math.ceil(lease) + 60)
end
if cfg_rate <= 0 then
  -- the adaptive rate learns from the sends of the last minute; a backlog pressing on the rate opens a
  -- measure of the provider's pace (see _OBSERVE) if none is running
  redis.call('ZADD', p .. 'sent', now, token)
  redis.call('ZREMRANGEBYSCORE', p .. 'sent', '-inf', now - 60)
  redis.call('EXPIRE', p .. 'sent', 120)
  if tonumber(redis.call('GET', p .. 'tat') or '0') > now and redis.call('EXISTS', p .. 'ep') == 0 then
    redis.call('HSET', p .. 'ep', 's', tostring(now), 'full', tostring(now), 'g', tostring(now))
    redis.call('EXPIRE', p .. 'ep', 86400)
  end
end
if probe or hold_probe then return {'probe', '0', token} end
return {'go', '0', token}
