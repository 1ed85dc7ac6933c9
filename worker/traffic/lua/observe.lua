-- now is Redis's clock (ARGV[1] is empty but in tests), the same the gate stamped the token with
local function clock()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local now, signal, token, probe = clock(), ARGV[2], ARGV[3], ARGV[4] == '1'
local adaptive, initial, min_rate, max_rate = ARGV[5] == '1', tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local retry_after, exhausted_until, cap_hint = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local threshold, open_base, open_max = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local sent, margin, growth, growth_s = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
-- when the gate let it through (its token's time), never later than now; a token without one: now
if sent < 0 or sent > now then sent = now end
local p = KEYS[1]
local hold, hold_s = KEYS[2], tonumber(ARGV[19])
local cap_cfg = tonumber(ARGV[20])
local sporadic_share, sporadic_s = tonumber(ARGV[21]), tonumber(ARGV[22])
if signal == 'key_rate_limited' then
  -- the whole API key is over its rate: cool every limit key of it (the gate reads KEYS[3]), then learn
  -- from the answer here as from any 429
  -- only the first 429 after the key's cooldown ran out starts one: the 429s of requests already in flight
  -- belong to the same episode and must not push it on (each integration's own cooldown handles them)
  local untill = now + (retry_after > 0 and retry_after or 1)
  if tonumber(redis.call('GET', KEYS[3]) or '0') <= now then
    redis.call('SET', KEYS[3], tostring(untill), 'EX', math.ceil(untill - now) + 60)
  end
  signal = 'rate_limited'
end
if signal == 'misconfigured' then
  -- the key itself was refused: every request of it would be, so hold them all and let one probe go later
  redis.call('HSET', hold, 'until', tostring(now + hold_s))
  redis.call('EXPIRE', hold, 86400)
  redis.call('DEL', hold .. ':probe')
elseif signal ~= 'not_sent' then
  -- any other answer proves the provider accepts the key: whatever was held goes again
  redis.call('DEL', hold, hold .. ':probe')
elseif probe then
  redis.call('DEL', hold .. ':probe')
end
local ep = p .. 'ep'
redis.call('ZREM', p .. 'inflight', token)
if probe then redis.call('DEL', p .. 'probe') end
-- the log of sends keeps those the provider let through (or may have): not what went unsent or got a 429
if signal == 'not_sent' or signal == 'rate_limited' then redis.call('ZREM', p .. 'sent', token) end
if signal == 'not_sent' then return 1 end
-- demand presses on the rate when reservations reach into the future (a backlog is waiting)
-- (in slow start, turns wait in the worker instead, asking again and again for up to a few seconds: one
-- paced within the last five is a backlog too)
local pressing = tonumber(redis.call('GET', p .. 'tat') or '0') > now
  or tonumber(redis.call('GET', p .. 'paced') or '0') > now - 5
if cap_hint > 0 then redis.call('SET', p .. 'cap', cap_hint, 'EX', 3600) end
local function cooldown(untill)
  local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
  if untill > cool then
    redis.call('SET', p .. 'cool', tostring(untill), 'EX', math.ceil(untill - now) + 60)
    redis.call('INCR', p .. 'gen')
    redis.call('SET', p .. 'tat', tostring(untill), 'EX', 86400)
  end
end
if exhausted_until > now then cooldown(exhausted_until) end
local rate = tonumber(redis.call('GET', p .. 'rate') or initial)
if signal == 'success' or signal == 'other' then
  -- a closed breaker with no failure is no hash at all: a key per integration ever seen, kept forever, was
  -- a leak (and a scrape reading every one of them)
  redis.call('HDEL', p .. 'brk', 'fails', 'open_until', 'open_s')
  -- what the provider let through counts towards the running measure of its pace; idle time is not its
  -- pace, so the measure ends with the backlog
  if adaptive then redis.call('ZADD', p .. 'sent', 'NX', sent, token) end
  if adaptive and not pressing then
    redis.call('DEL', ep)
  elseif adaptive and sent >= tonumber(redis.call('HGET', ep, 's') or '1e300') then
    redis.call('HINCRBY', ep, 'n', 1)
  end
end
if signal == 'success' and adaptive and pressing then
  -- grow only while a backlog presses on the current rate (no inflation while idle)
  if redis.call('GET', p .. 'learned') then
    -- a 429 has taught the limit: probe above it slowly at first, faster the longer no 429 comes
    local since = now - tonumber(redis.call('HGET', ep, 'g') or now)
    rate = rate + growth * 2 ^ math.min(5, math.max(0, since) / growth_s)
  else
    -- slow start, but never far ahead of what was actually sent in the last second
    local got = redis.call('ZCOUNT', p .. 'sent', sent - 1, sent)
    rate = math.max(rate, math.min(rate * 1.05, 2 * got))
  end
  redis.call('SET', p .. 'rate', tostring(math.min(max_rate, rate)), 'EX', 86400)
elseif signal == 'rate_limited' then
  local wait = retry_after
  if wait <= 0 then wait = 1 end
  local e = redis.call('HMGET', ep, 's', 'o', 'full', 'w', 'n')
  local cool = tonumber(redis.call('GET', p .. 'cool') or '0')
  -- the adaptive key's 429s of the last second (answer times): isolated 429s are told from a limit by them
  local n429, sparse = 0, false
  if adaptive then
    redis.call('ZADD', p .. 'r429', now, token)
    redis.call('ZREMRANGEBYSCORE', p .. 'r429', '-inf', now - 1)
    redis.call('EXPIRE', p .. 'r429', 60)
    n429 = redis.call('ZCARD', p .. 'r429')
    -- sparse: under a third of the last second's answers were 429s. The provider kept taking most requests,
    -- so it is not refusing the integration: no cooldown holds the others back (each 429 still costs its own
    -- request the Retry-After, the router's floor on its retry), unless it cuts a rate already learnt (below)
    sparse = n429 * 3 < redis.call('ZCOUNT', p .. 'sent', now - 1, '+inf') + n429
    -- the 429s of requests sent after the last cut of the rate (the causal test below)
    local cut_at = tonumber(redis.call('HGET', p .. 'cut', 'at') or '1e300')
    if sent >= cut_at then redis.call('HINCRBY', p .. 'cut', 'n', 1) end
  end
  if e[2] and sent < tonumber(e[2]) then
    -- sent before the last 429 was answered: the same episode, no news about the rate. Its Retry-After
    -- holds, but while that cooldown lasts, the turns already handed out for after it stand.
    if sparse then return 1 end
    if cool <= now then
      cooldown(now + wait)
    elseif now + wait > cool then
      redis.call('SET', p .. 'cool', tostring(now + wait), 'EX', math.ceil(wait) + 60)
    end
    return 1
  end
  -- The provider was being pressed when at least half the rate was tried within the second before the 429
  -- (accepted or answered 429), or every slot in flight was taken, counting no time the last cooldown held
  -- the sends back: a backlog waiting out a cooldown is not pressure.
  local since = math.max(sent - 1, cool)
  local tried = redis.call('ZCOUNT', p .. 'sent', since, '(' .. sent) + redis.call('ZCOUNT', p .. 'r429', since, '+inf')
  local cap = tonumber(redis.call('GET', p .. 'cap') or '0')
  if cap_cfg > 0 and (cap <= 0 or cap_cfg < cap) then cap = cap_cfg end
  local full = cap > 0 and redis.call('ZCOUNT', p .. 'inflight', math.max(now, cool + 1), '+inf') >= cap - 1
  local pressed = tried >= 0.5 * rate or full
  if sparse then
    -- An isolated 429 (the provider not pressed: a relayed ATS limit, a neighbour on the integration) costs
    -- its own request the Retry-After and nothing more: the rate is not re-measured. Nor while the last
    -- causal test found the 429s sporadic.
    if not pressed or redis.call('EXISTS', p .. 'sporadic') == 1 then return 1 end
    -- The causal test: a cut brought the rate down to the pace the provider was accepting; a provider that
    -- accepted that pace does not refuse it. If 429s still come at a real share of the requests sent since
    -- the cut (a second for the new rate to act), they do not follow the pace (a relayed ATS limit, a
    -- neighbour): the rate goes back to what it was before the cut, and 429s this sparse leave it alone for
    -- a while. A token bucket that the rate still overshoots answers a share near the margin, and is learnt.
    local c = redis.call('HMGET', p .. 'cut', 'at', 'before', 'n')
    if c[1] then
      if sent < tonumber(c[1]) + 1 then return 1 end
      local n = tonumber(c[3] or '0')
      if n >= 2 and n >= sporadic_share * (redis.call('ZCOUNT', p .. 'sent', c[1], '+inf') + n) then
        redis.call('SET', p .. 'rate', c[2], 'EX', 86400)
        redis.call('SET', p .. 'sporadic', '1', 'EX', math.ceil(sporadic_s))
        redis.call('DEL', p .. 'cut')
        return 1
      end
    end
  else
    -- 429s this dense: the provider is refusing the integration, which waits out the Retry-After (and any
    -- earlier finding that its 429s were sporadic is over)
    redis.call('DEL', p .. 'sporadic')
  end
  -- a rate learnt from an earlier 429 is at the provider's limit: a 429 there says its bucket is empty, and
  -- the cooldown lets it refill; in slow start the rate is a guess the provider mostly accepted
  if not sparse or redis.call('EXISTS', p .. 'learned') == 1 then cooldown(now + wait) end
  -- A 429 says something about the rate only when the provider was being pressed: a 429 soon after a
  -- cooldown costs the cooldown it asks for, not a rate re-measured from the cooldown's lull.
  if adaptive and pressed then
    local before = rate
    -- The provider is taken for a token bucket holding about a Retry-After's worth. It is empty now; it
    -- was empty at the last 429 (and full again a Retry-After later) or full when the backlog began to
    -- press. So what it let through since then (the sends before this one) is its rate times the time
    -- since it was last full plus a Retry-After, less the time it spent full, overflowing, because our
    -- sends lagged behind its refill (after a cooldown, or when the workers could not keep up).
    local estimate = nil
    if e[3] then
      local full = tonumber(e[3])
      local span = sent - full + tonumber(e[4] or wait)
      -- (the answers so far miss those still on their way; the sends before this one miss those sent
      -- a little later that overtook it: take the larger)
      local n = math.max(tonumber(e[5] or '0'), redis.call('ZCOUNT', p .. 'sent', e[1], '(' .. sent))
      local times = redis.call('ZRANGEBYSCORE', p .. 'sent', full, '(' .. sent, 'WITHSCORES', 'LIMIT', 0, 5000)
      if n > 0 then
        estimate = n / span
        for _ = 1, 3 do
          local lag = 0
          for i = 2, #times, 2 do lag = math.max(lag, (tonumber(times[i]) - full) - (i / 2 - 1) / estimate) end
          estimate = n / math.max(0.5, span - lag)
        end
      end
    end
    if estimate then
      rate = math.min(rate, estimate * (1 + margin))
    else
      -- nothing measured: what was sent in the last second is about the limit
      rate = math.min(rate * 0.9, math.max(rate * 0.5, redis.call('ZCOUNT', p .. 'sent', sent - 1, sent)))
    end
    -- ... but never below the pace the provider was accepting: what it let through in the second before
    -- this send (no cooldown in it). 429s that come now and then among many accepted requests (a relayed ATS
    -- limit, a neighbour on the integration) read as a slow bucket in the measure above, at any pace; a rate
    -- the provider kept accepting is not too fast, so it stays (issue 16: the rate had ratcheted down to 1/s)
    local accepted = redis.call('ZCOUNT', p .. 'sent', since, '(' .. sent) / math.max(0.25, sent - since)
    rate = math.min(before, math.max(rate, accepted))
    redis.call('SET', p .. 'rate', tostring(math.max(min_rate, rate)), 'EX', 86400)
    redis.call('SET', p .. 'learned', '1', 'EX', 86400)
    -- what the causal test of a later sparse 429 compares with (forgotten when 429s stop coming)
    redis.call('DEL', p .. 'cut')
    redis.call('HSET', p .. 'cut', 'at', tostring(now), 'before', tostring(before), 'n', 0)
    redis.call('EXPIRE', p .. 'cut', 30)
  end
  -- a new measure from this 429: the provider's bucket is full again a Retry-After from now
  redis.call('DEL', ep)
  redis.call('HSET', ep, 's', tostring(sent), 'o', tostring(now), 'g', tostring(now), 'w', tostring(wait))
  redis.call('HSET', ep, 'full', tostring(sent + wait))
  redis.call('EXPIRE', ep, 86400)
elseif signal == 'unavailable' then
  local fails = redis.call('HINCRBY', p .. 'brk', 'fails', 1)
  redis.call('EXPIRE', p .. 'brk', 86400)
  if probe or fails >= threshold then
    local open_s = tonumber(redis.call('HGET', p .. 'brk', 'open_s') or '0')
    if open_s <= 0 then open_s = open_base elseif probe then open_s = math.min(open_max, open_s * 2) end
    redis.call('HSET', p .. 'brk', 'open_until', tostring(now + open_s), 'open_s', tostring(open_s))
  end
end
return 1
