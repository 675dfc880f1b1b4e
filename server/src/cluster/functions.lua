#!lua name=rtm
-- The Redis engine's room operations: one FCALL each, all keys in one
-- partition slot. Each call reads the clock from Redis, checks its rules,
-- changes the state, bumps the partition sequence, appends the change to
-- the partition log and publishes it on the partition's shard channel.
--
-- KEYS[1] is the partition prefix key `rtm:{tag}` (it routes the call);
-- every other key is built from it, so all share the slot.
--
-- Ids (pid, rid, uid) stay decimal strings: Lua numbers are doubles and
-- would round ids above 2^53.
--
-- A change is an array of strings (see server/src/cluster/events.rs); the
-- published and logged message is msgpack [epoch, seq, at_ms, changes].
-- LIBRARY_VERSION is read by the node to replace an older library.

local LIBRARY_VERSION = '17'
local LOG_MAXLEN = 100000

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ms_string(ms)
  return string.format('%.0f', ms)
end

-- Appends `changes` to the partition: sequence, log, channel. Each body
-- carries the digest of the one before (`link`), and `meta.last` holds the
-- newest body's digest: after a failover that lost the log's tail, the
-- same sequence numbers come back with other bodies, and the followers see
-- the chain break instead of taking them for duplicates.
local function emit(prefix, at, changes)
  local meta = prefix .. ':meta'
  local state = redis.call('HMGET', meta, 'epoch', 'last')
  local epoch = state[1]
  if not epoch then
    -- Lost or new partition state: a new epoch tells nodes to reload.
    local t = redis.call('TIME')
    epoch = t[1] .. t[2]
    redis.call('HSET', meta, 'epoch', epoch)
  end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  local body = cmsgpack.pack({epoch, seq, ms_string(at), changes, state[2] or ''})
  redis.call('HSET', meta, 'last', string.sub(redis.sha1hex(body), 1, 16))
  redis.call('XADD', prefix .. ':log', 'MAXLEN', '~', LOG_MAXLEN, seq .. '-1', 'e', body)
  redis.call('SPUBLISH', prefix .. ':ch', body)
  -- The body too: the calling node applies it at once, without waiting
  -- for its own copy from the channel.
  return {epoch, seq, ms_string(at), body}
end

local function room_key(prefix, pid, rid)
  return prefix .. ':r:' .. pid .. ':' .. rid
end

local function ban_key(prefix, pid, scope)
  return prefix .. ':b:' .. pid .. ':' .. scope
end

-- Scheduled rooms (`createroom`): `<room>:s` holds the schedule, times in
-- ms: vf, vu (the window), mx (max_seconds), th (release threshold), id
-- (idle_seconds), bg (begin: the second member's join; 0 = not yet), ae
-- ('1': extends itself while members remain), la (last activity), kh
-- ('1': its history outlives its release). `<prefix>:due` is the
-- partition's due-set: `pid:rid` scored by the room's next deadline, swept
-- by rtm_sweep. Bans with an expiry are there too, as `b:pid:scope:uid`
-- at their expiry, so that the sweep deletes them (nodes need no change:
-- each expires its cached copy by the clock and announces it).

local EXTENSION_MS = 15 * 60 * 1000
-- Times are Lua doubles here: kept at or below 2^53 - 1, so that they stay
-- exact and read back as the integers nodes parse (a window "for ever",
-- i64::MAX ms, would come back as 9223372036854775808 and not parse).
local MAX_MS = 9007199254740991

local function clamp(ms)
  return math.min(ms, MAX_MS)
end

local function schedule_of(room)
  local v = redis.call('HMGET', room .. ':s', 'vf', 'vu', 'mx', 'th', 'id', 'bg', 'ae', 'la', 'kh')
  if not v[1] then return nil end
  return {vf = tonumber(v[1]), vu = tonumber(v[2]), mx = tonumber(v[3]), th = tonumber(v[4]),
    id = tonumber(v[5]), bg = tonumber(v[6]), ae = v[7] == '1', la = tonumber(v[8]), kh = v[9] or '1'}
end

-- The earliest moment something may happen to the room.
local function next_deadline(s)
  local at = s.vu
  if s.mx > 0 and s.bg > 0 then at = math.min(at, s.bg + s.mx * 1000) end
  if s.id > 0 then at = math.min(at, s.la + s.id * 1000) end
  return at
end

local function queue(prefix, pid, rid, s)
  redis.call('ZADD', prefix .. ':due', ms_string(next_deadline(s)), pid .. ':' .. rid)
end

local function window_refusal(rid, s, at)
  if s.vf <= at and at < s.vu then return nil end
  return redis.error_reply('WINDOW room ' .. rid .. ' admits members from ' .. ms_string(math.floor(s.vf / 1000))
    .. ' to ' .. ms_string(math.floor(s.vu / 1000)) .. ' (Unix seconds)')
end

-- After members joined a scheduled room: it begins with its second member;
-- its idle clock restarts.
local function after_join(prefix, room, pid, rid, s, at, changes)
  if s.bg == 0 and redis.call('SCARD', room .. ':m') >= 2 then
    s.bg = at
    redis.call('HSET', room .. ':s', 'bg', ms_string(at))
    changes[#changes + 1] = {'began', pid, rid, ms_string(at)}
  end
  s.la = at
  redis.call('HSET', room .. ':s', 'la', ms_string(at))
  queue(prefix, pid, rid, s)
end

-- An operation on a room: a scheduled room's idle clock restarts (its
-- due-set entry stays; the sweep re-queues a room that was active).
local function touch(room, at)
  if redis.call('EXISTS', room .. ':s') == 1 then
    redis.call('HSET', room .. ':s', 'la', ms_string(at))
  end
end

-- Releases a room: members, modes, roles, info and schedule go (bans
-- stay); its history too unless keep_history is '1'.
local function release_room(prefix, pid, rid, reason, keep_history, changes)
  local room = room_key(prefix, pid, rid)
  redis.call('DEL', room .. ':m', room .. ':i', room .. ':mode', room .. ':role', room .. ':s', room .. ':j')
  if keep_history == '0' then
    redis.call('DEL', room .. ':h')
  end
  redis.call('SREM', prefix .. ':rooms', pid .. ':' .. rid)
  redis.call('ZREM', prefix .. ':due', pid .. ':' .. rid)
  changes[#changes + 1] = {'release', pid, rid, reason}
end

-- admit: ARGV pid, rid, uid...
local function admit(keys, args)
  local prefix, pid, rid = keys[1], args[1], args[2]
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  local s = schedule_of(room)
  if s then
    local refused = window_refusal(rid, s, at)
    if refused then return refused end
  end
  local change = {'add', pid, rid, ms_string(at)}
  for i = 3, #args do
    redis.call('SADD', room .. ':m', args[i])
    -- A member's join time (a member already in keeps theirs).
    redis.call('HSETNX', room .. ':j', args[i], ms_string(at))
    change[#change + 1] = args[i]
  end
  redis.call('SADD', prefix .. ':rooms', pid .. ':' .. rid)
  local changes = {change}
  if s then after_join(prefix, room, pid, rid, s, at, changes) end
  return emit(prefix, at, changes)
end

-- remove: ARGV op ('rm' | 'leave': the user leaves by themself), pid, rid, uid...
local function remove(keys, args)
  local prefix, op, pid, rid = keys[1], args[1], args[2], args[3]
  if op ~= 'rm' and op ~= 'leave' then
    return redis.error_reply('ERR unknown removal ' .. tostring(op))
  end
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  local change = {op, pid, rid}
  for i = 4, #args do
    redis.call('SREM', room .. ':m', args[i])
    redis.call('HDEL', room .. ':mode', args[i])
    redis.call('HDEL', room .. ':role', args[i])
    redis.call('HDEL', room .. ':j', args[i])
    change[#change + 1] = args[i]
  end
  local changes = {change}
  local s = schedule_of(room)
  if s then
    s.la = at
    redis.call('HSET', room .. ':s', 'la', ms_string(at))
    if s.bg > 0 and s.th > 0 and redis.call('SCARD', room .. ':m') < s.th then
      -- A begun room fallen below its release threshold.
      release_room(prefix, pid, rid, 'threshold', s.kh, changes)
    end
  elseif redis.call('EXISTS', room .. ':m', room .. ':i') == 0 then
    redis.call('SREM', prefix .. ':rooms', pid .. ':' .. rid)
  end
  return emit(prefix, at, changes)
end

-- set_info: ARGV pid, rid, has_oinfo ('0'|'1'), oinfo, has_pinfo, pinfo
local function set_info(keys, args)
  local prefix, pid, rid = keys[1], args[1], args[2]
  local at = now_ms()
  local info = room_key(prefix, pid, rid) .. ':i'
  if args[3] == '1' then redis.call('HSET', info, 'o', args[4]) end
  if args[5] == '1' then redis.call('HSET', info, 'p', args[6]) end
  touch(room_key(prefix, pid, rid), at)
  redis.call('SADD', prefix .. ':rooms', pid .. ':' .. rid)
  return emit(prefix, at, {{'info', pid, rid, args[3], args[4], args[5], args[6]}})
end

-- ban: ARGV pid, scope ('r<rid>' | 'all' | 'black'), uid, expires_at_ms ('-' = permanent)
local function ban(keys, args)
  local prefix, pid, scope, uid, expires = keys[1], args[1], args[2], args[3], args[4]
  local at = now_ms()
  redis.call('HSET', ban_key(prefix, pid, scope), uid, expires)
  redis.call('SADD', prefix .. ':bans', pid .. ':' .. scope)
  local due = 'b:' .. pid .. ':' .. scope .. ':' .. uid
  if expires == '-' then
    redis.call('ZREM', prefix .. ':due', due)
  else
    redis.call('ZADD', prefix .. ':due', expires, due)
  end
  return emit(prefix, at, {{'ban', pid, scope, uid, expires}})
end

-- unban: ARGV pid, scope, uid
local function unban(keys, args)
  local prefix, pid, scope, uid = keys[1], args[1], args[2], args[3]
  local at = now_ms()
  local key = ban_key(prefix, pid, scope)
  redis.call('HDEL', key, uid)
  if redis.call('EXISTS', key) == 0 then
    redis.call('SREM', prefix .. ':bans', pid .. ':' .. scope)
  end
  redis.call('ZREM', prefix .. ':due', 'b:' .. pid .. ':' .. scope .. ':' .. uid)
  return emit(prefix, at, {{'unban', pid, scope, uid}})
end

-- upsert: ARGV pid, rid, then uid, role, mode for each member: adds
-- members with roles, or changes the role of members already in (a new
-- role sets the role's mode).
local function upsert(keys, args)
  local prefix, pid, rid = keys[1], args[1], args[2]
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  local s = schedule_of(room)
  if s then
    for i = 3, #args, 3 do
      if redis.call('SISMEMBER', room .. ':m', args[i]) == 0 then
        local refused = window_refusal(rid, s, at)
        if refused then return refused end
        break
      end
    end
  end
  local change = {'upsert', pid, rid, ms_string(at)}
  for i = 3, #args, 3 do
    local uid, role, mode = args[i], args[i + 1], args[i + 2]
    local current = redis.call('HGET', room .. ':role', uid) or 'attendee'
    -- A member keeping its role keeps its mode too (as the nodes' caches do).
    if redis.call('SISMEMBER', room .. ':m', uid) == 0 or current ~= role then
      redis.call('SADD', room .. ':m', uid)
      redis.call('HSETNX', room .. ':j', uid, ms_string(at))
      if role == 'attendee' then redis.call('HDEL', room .. ':role', uid) else redis.call('HSET', room .. ':role', uid, role) end
      if mode == '1' then redis.call('HDEL', room .. ':mode', uid) else redis.call('HSET', room .. ':mode', uid, mode) end
      change[#change + 1] = uid
      change[#change + 1] = role
    end
  end
  if #change == 4 then
    if s then touch(room, at) end
    return {'', 0, ms_string(at)}
  end
  redis.call('SADD', prefix .. ':rooms', pid .. ':' .. rid)
  local changes = {change}
  if s then after_join(prefix, room, pid, rid, s, at, changes) end
  return emit(prefix, at, changes)
end

-- release: ARGV pid, rid, reason, keep_history ('1', or '0': the room's
-- history goes too). Members, modes and info go; bans stay.
local function release(keys, args)
  local changes = {}
  release_room(keys[1], args[1], args[2], args[3], args[4], changes)
  return emit(keys[1], now_ms(), changes)
end

-- create: ARGV pid, rid, valid_from_ms, valid_until_ms, max_seconds,
-- release_threshold, idle_seconds, keep_history, has_oinfo, oinfo,
-- has_pinfo, pinfo, then uid, role, mode for each member. Refused if the
-- room exists (scheduled, or with members or info), and, with members,
-- outside the window.
local function create(keys, args)
  local prefix, pid, rid = keys[1], args[1], args[2]
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  if redis.call('EXISTS', room .. ':s', room .. ':m', room .. ':i') > 0 then
    return redis.error_reply('EXISTS room ' .. rid .. ' already exists')
  end
  local s = {vf = clamp(tonumber(args[3])), vu = clamp(tonumber(args[4])), mx = tonumber(args[5]),
    th = tonumber(args[6]), id = tonumber(args[7]), bg = 0, ae = false, la = at, kh = args[8]}
  local vf, vu = ms_string(s.vf), ms_string(s.vu)
  if #args > 12 and not (s.vf <= at and at < s.vu) then
    return redis.error_reply('WINDOW members can join from ' .. ms_string(math.floor(s.vf / 1000))
      .. ' (Unix seconds); add them once the window is open')
  end
  redis.call('HSET', room .. ':s', 'vf', vf, 'vu', vu, 'mx', args[5], 'th', args[6], 'id', args[7],
    'bg', '0', 'ae', '0', 'la', ms_string(at), 'kh', args[8])
  if args[9] == '1' then redis.call('HSET', room .. ':i', 'o', args[10]) end
  if args[11] == '1' then redis.call('HSET', room .. ':i', 'p', args[12]) end
  redis.call('SADD', prefix .. ':rooms', pid .. ':' .. rid)
  local changes = {{'create', pid, rid, vf, vu, args[5], args[6], args[7], args[9], args[10],
    args[11], args[12]}}
  if #args > 12 then
    local change = {'upsert', pid, rid, ms_string(at)}
    for i = 13, #args, 3 do
      local uid, role, mode = args[i], args[i + 1], args[i + 2]
      redis.call('SADD', room .. ':m', uid)
      redis.call('HSET', room .. ':j', uid, ms_string(at))
      if role ~= 'attendee' then redis.call('HSET', room .. ':role', uid, role) end
      if mode ~= '1' then redis.call('HSET', room .. ':mode', uid, mode) end
      change[#change + 1] = uid
      change[#change + 1] = role
    end
    changes[#changes + 1] = change
    after_join(prefix, room, pid, rid, s, at, changes)
  else
    queue(prefix, pid, rid, s)
  end
  return emit(prefix, at, changes)
end

local function not_scheduled(rid)
  return redis.error_reply('NOTSCHEDULED room ' .. rid .. ' is not a scheduled room (create it with createroom)')
end

-- update: ARGV pid, rid, then valid_from, valid_until (Unix seconds),
-- max_seconds, release_threshold, idle_seconds, each '' to keep it.
local function update(keys, args)
  local prefix, pid, rid = keys[1], args[1], args[2]
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  local s = schedule_of(room)
  if not s then
    return not_scheduled(rid)
  end
  local function given(i, current)
    if args[i] == '' then return current end
    return tonumber(args[i])
  end
  local from = given(3, math.floor(s.vf / 1000))
  local till = given(4, math.floor(s.vu / 1000))
  if till <= from then
    return redis.error_reply('INVALID valid_until (' .. ms_string(till) .. ') must be after valid_from ('
      .. ms_string(from) .. ')')
  end
  local now_secs = math.floor(at / 1000)
  if till <= now_secs then
    return redis.error_reply('INVALID the window ends at ' .. ms_string(till) .. ', which is in the past (now '
      .. ms_string(now_secs) .. ')')
  end
  s.vf, s.vu = clamp(from * 1000), clamp(till * 1000)
  s.mx, s.th, s.id = given(5, s.mx), given(6, s.th), given(7, s.id)
  s.la = at
  redis.call('HSET', room .. ':s', 'vf', ms_string(s.vf), 'vu', ms_string(s.vu), 'mx', ms_string(s.mx),
    'th', ms_string(s.th), 'id', ms_string(s.id), 'la', ms_string(at))
  queue(prefix, pid, rid, s)
  return emit(prefix, at, {{'update', pid, rid, ms_string(s.vf), ms_string(s.vu), ms_string(s.mx),
    ms_string(s.th), ms_string(s.id)}})
end

-- extend: ARGV pid, rid, by_ms, auto ('1' | '0' | '' to keep it).
-- Answers like every change, then the new end and auto flag.
local function extend(keys, args)
  local prefix, pid, rid = keys[1], args[1], args[2]
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  local s = schedule_of(room)
  if not s then
    return not_scheduled(rid)
  end
  s.vu = clamp(s.vu + tonumber(args[3]))
  if args[4] ~= '' then s.ae = args[4] == '1' end
  s.la = at
  local auto = s.ae and '1' or '0'
  redis.call('HSET', room .. ':s', 'vu', ms_string(s.vu), 'ae', auto, 'la', ms_string(at))
  queue(prefix, pid, rid, s)
  local result = emit(prefix, at, {{'extend', pid, rid, ms_string(s.vu), auto}})
  result[5] = ms_string(s.vu)
  result[6] = auto
  return result
end

-- keep_alive: ARGV pid, rid. Restarts a room's idle clock; refused if the
-- room does not exist. No change to announce: activity is Redis's alone.
local function keep_alive(keys, args)
  local room = room_key(keys[1], args[1], args[2])
  if redis.call('EXISTS', room .. ':s', room .. ':m', room .. ':i') == 0 then
    return redis.error_reply('NOROOM room ' .. args[2] .. ' does not exist')
  end
  touch(room, now_ms())
  return 1
end

-- sweep: ARGV limit. Settles the partition's rooms whose deadline has
-- come, at most `limit`: an extension, a release, or (active meanwhile,
-- or not yet due) the next deadline queued. Atomic, so a room settles once
-- however many nodes sweep at the same time. Answers like every change,
-- with a fifth field: the earliest deadline left ('' = none).
local function sweep(keys, args)
  local prefix = keys[1]
  local at = now_ms()
  local due = redis.call('ZRANGEBYSCORE', prefix .. ':due', '-inf', ms_string(at), 'LIMIT', 0, tonumber(args[1]))
  local changes = {}
  for _, member in ipairs(due) do
    local pid, rid = string.match(member, '^(-?%d+):(-?%d+)$')
    local room = pid and room_key(prefix, pid, rid)
    local s = room and schedule_of(room)
    local ban_pid, scope, uid = string.match(member, '^b:(-?%d+):([^:]+):(-?%d+)$')
    if ban_pid then
      -- An expired ban: gone from Redis (a later expiry would have moved
      -- this entry; a permanent ban removed it).
      local key = ban_key(prefix, ban_pid, scope)
      local expires = redis.call('HGET', key, uid)
      if expires and expires ~= '-' and tonumber(expires) <= at then
        redis.call('HDEL', key, uid)
        if redis.call('EXISTS', key) == 0 then
          redis.call('SREM', prefix .. ':bans', ban_pid .. ':' .. scope)
        end
      end
      redis.call('ZREM', prefix .. ':due', member)
    elseif not s then
      redis.call('ZREM', prefix .. ':due', member)
    elseif at >= s.vu then
      if s.ae and redis.call('SCARD', room .. ':m') > 0 then
        s.vu = clamp(math.max(s.vu, at) + EXTENSION_MS)
        redis.call('HSET', room .. ':s', 'vu', ms_string(s.vu))
        -- 'auto': decided by the server, not asked for (listeners' start-up hold).
        changes[#changes + 1] = {'extend', pid, rid, ms_string(s.vu), '1', 'auto'}
        queue(prefix, pid, rid, s)
      else
        release_room(prefix, pid, rid, 'expired', s.kh, changes)
      end
    elseif s.mx > 0 and s.bg > 0 and at >= s.bg + s.mx * 1000 then
      release_room(prefix, pid, rid, 'max_duration', s.kh, changes)
    elseif s.id > 0 and at >= s.la + s.id * 1000 then
      release_room(prefix, pid, rid, 'idle', s.kh, changes)
    else
      queue(prefix, pid, rid, s)
    end
  end
  local result = {'', 0, ms_string(at), ''}
  if #changes > 0 then result = emit(prefix, at, changes) end
  local earliest = redis.call('ZRANGE', prefix .. ':due', 0, 0, 'WITHSCORES')
  result[5] = earliest[2] or ''
  return result
end

-- set_mode: ARGV pid, rid, uid, mode ('1'..'4'); the user must be a member.
local function set_mode(keys, args)
  local prefix, pid, rid, uid, mode = keys[1], args[1], args[2], args[3], args[4]
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  if redis.call('SISMEMBER', room .. ':m', uid) == 0 then
    return redis.error_reply('NOTINROOM user ' .. uid .. ' is not a member of room ' .. rid)
  end
  -- Stored even when 1: a consumer's mode without an entry reads as its
  -- role's default (3) when a node loads the partition.
  redis.call('HSET', room .. ':mode', uid, mode)
  touch(room, at)
  return emit(prefix, at, {{'mode', pid, rid, uid, mode}})
end

-- revoke: ARGV pid, uid. The user's login tokens issued until now stop working.
local function revoke(keys, args)
  local prefix, pid, uid = keys[1], args[1], args[2]
  local at = now_ms()
  redis.call('HSET', prefix .. ':rv:' .. pid, uid, ms_string(at))
  redis.call('SADD', prefix .. ':rvp', pid)
  return emit(prefix, at, {{'revoke', pid, uid, ms_string(at)}})
end

-- kick: ARGV pid, uid, except ('node:session' or ''), close ('1' | '0').
-- No state. With close '1' every node closes the user's sessions it holds,
-- but the one excepted (a single-login policy's newest session). Either
-- way, a login elsewhere (except set) ends the other nodes' relogin grace
-- for the user: the user is back, and keeps the rooms.
local function kick(keys, args)
  return emit(keys[1], now_ms(), {{'kick', args[1], args[2], args[3], args[4]}})
end

-- Whether `uid` is muted in the room (a room ban not yet expired).
local function muted(prefix, pid, rid, uid, at)
  local expires = redis.call('HGET', ban_key(prefix, pid, 'r' .. rid), uid)
  return expires and (expires == '-' or tonumber(expires) > at)
end

-- Room history: a stream per room, `<room>:h`, entry ids `<n>-0` where n
-- counts the room's messages (`<room>:hn`, kept when the stream goes, so
-- ids never repeat). Fields in order: f (from), y (mtype), m (mid),
-- k (kind), b (body), a (attrs), t (mtime). The stream is trimmed to about
-- max_per_room entries and expires max_age after its last message; readers
-- see exactly the last max_per_room ids and the messages younger than
-- max_age, whatever trimming has not caught up with.
local function history_append(room, max_per_room, max_age_ms, from, mtype, mid, kind, body, attrs, mtime)
  local n = redis.call('INCR', room .. ':hn')
  local stream = room .. ':h'
  redis.call('XADD', stream, 'MAXLEN', '~', max_per_room, ms_string(n) .. '-0',
    'f', from, 'y', mtype, 'm', mid, 'k', kind, 'b', body, 'a', attrs, 't', mtime)
  redis.call('PEXPIRE', stream, max_age_ms)
end

-- The ids a reader may see: (floor, last].
local function history_bounds(room, max_per_room)
  local last = tonumber(redis.call('GET', room .. ':hn') or '0')
  return math.max(last - max_per_room, 0), last
end

-- Calls visit(id, fields) on the stream's entries with ids in [lo, hi],
-- newest first if desc, until it returns false.
local function history_scan(stream, lo, hi, desc, visit)
  local batch_size = 200
  while lo <= hi do
    local batch
    if desc then
      batch = redis.call('XREVRANGE', stream, ms_string(hi) .. '-0', ms_string(lo) .. '-0', 'COUNT', batch_size)
    else
      batch = redis.call('XRANGE', stream, ms_string(lo) .. '-0', ms_string(hi) .. '-0', 'COUNT', batch_size)
    end
    for _, entry in ipairs(batch) do
      local id = tonumber(string.match(entry[1], '^(%d+)'))
      if not visit(id, entry[2]) then return end
    end
    if #batch < batch_size then return end
    local edge = tonumber(string.match(batch[#batch][1], '^(%d+)'))
    if desc then hi = edge - 1 else lo = edge + 1 end
  end
end

local function wanted(mtypes, mtype)
  return next(mtypes) == nil or mtypes[mtype] ~= nil
end

local function mtype_set(args, from)
  local set = {}
  for i = from, #args do set[args[i]] = true end
  return set
end

-- A row as the node reads it: id, from, mtype, mid, kind, body, attrs, mtime.
local function push_row(rows, id, fields)
  rows[#rows + 1] = ms_string(id)
  for i = 2, 14, 2 do rows[#rows + 1] = fields[i] end
end

-- history_page: ARGV pid, rid, desc ('1'|'0'), num, begin, end (mtime
-- bounds, '0' = none), lastid ('0' = none), max_age_ms, max_per_room,
-- mtypes... Rows, flat (push_row).
local function history_page(keys, args)
  local room = room_key(keys[1], args[1], args[2])
  local desc, num = args[3] == '1', tonumber(args[4])
  local floor, last = history_bounds(room, tonumber(args[9]))
  local oldest = now_ms() - tonumber(args[8])
  local begin, finish, lastid = tonumber(args[5]), tonumber(args[6]), tonumber(args[7])
  if begin > 0 then oldest = math.max(oldest, begin) end
  local newest = finish > 0 and finish or math.huge
  local lo, hi = floor + 1, last
  if lastid > 0 then
    if desc then hi = math.min(hi, lastid - 1) else lo = math.max(lo, lastid + 1) end
  end
  local mtypes = mtype_set(args, 10)
  local rows, found = {}, 0
  if num <= 0 then return rows end
  history_scan(room .. ':h', lo, hi, desc, function(id, fields)
    local mtime = tonumber(fields[14])
    if mtime >= oldest and mtime <= newest and wanted(mtypes, fields[4]) then
      push_row(rows, id, fields)
      found = found + 1
    end
    return found < num
  end)
  return rows
end

-- history_count: ARGV pid, rid, begin, end, max_age_ms, max_per_room,
-- mtypes... {messages, distinct senders}.
local function history_count(keys, args)
  local room = room_key(keys[1], args[1], args[2])
  local floor, last = history_bounds(room, tonumber(args[6]))
  local oldest = now_ms() - tonumber(args[5])
  local begin, finish = tonumber(args[3]), tonumber(args[4])
  if begin > 0 then oldest = math.max(oldest, begin) end
  local newest = finish > 0 and finish or math.huge
  local mtypes = mtype_set(args, 7)
  local messages, senders, count = 0, {}, 0
  history_scan(room .. ':h', floor + 1, last, false, function(_, fields)
    local mtime = tonumber(fields[14])
    if mtime >= oldest and mtime <= newest and wanted(mtypes, fields[4]) then
      messages = messages + 1
      if not senders[fields[2]] then
        senders[fields[2]] = true
        count = count + 1
      end
    end
    return true
  end)
  return {messages, count}
end

-- Calls visit(id, fields) for each visible message from (from, mid), newest first.
local function history_matches(room, from, mid, max_age_ms, max_per_room, visit)
  local floor, last = history_bounds(room, max_per_room)
  local oldest = now_ms() - max_age_ms
  history_scan(room .. ':h', floor + 1, last, true, function(id, fields)
    if fields[2] == from and fields[6] == mid and tonumber(fields[14]) >= oldest then
      return visit(id, fields)
    end
    return true
  end)
end

-- history_find: ARGV pid, rid, from, mid, max_age_ms, max_per_room. The
-- newest such message as a row, or nothing.
local function history_find(keys, args)
  local room = room_key(keys[1], args[1], args[2])
  local rows = {}
  history_matches(room, args[3], args[4], tonumber(args[5]), tonumber(args[6]), function(id, fields)
    push_row(rows, id, fields)
    return false
  end)
  return rows
end

-- history_delete: ARGV pid, rid, from, mid, max_age_ms, max_per_room.
-- Deletes the messages (from, mid) history shows; how many.
local function history_delete(keys, args)
  local room = room_key(keys[1], args[1], args[2])
  local ids = {}
  history_matches(room, args[3], args[4], tonumber(args[5]), tonumber(args[6]), function(id)
    ids[#ids + 1] = ms_string(id) .. '-0'
    return true
  end)
  if #ids == 0 then return 0 end
  return redis.call('XDEL', room .. ':h', unpack(ids))
end

-- send: ARGV pid, rid, from, mid, mtype, kind ('t'|'b'), body, attrs,
-- check ('1': a client, whose membership, mute and mode are checked),
-- fingerprint (of mtype, body, attrs), dedup_ms, origin ('node:session' or ''),
-- muted_everywhere ('1': an all-rooms mute, which lives in another slot; the
-- node checks it from its cache and the function reports it after membership),
-- max_per_room and max_age_ms of history ('0': history is off).
-- A retry of (from, mid) with the same fingerprint within dedup_ms
-- answers the first mtime and is not sent again.
local function send(keys, args)
  local prefix, pid, rid, from, mid = keys[1], args[1], args[2], args[3], args[4]
  local at = now_ms()
  local room = room_key(prefix, pid, rid)
  if args[9] == '1' then
    if redis.call('SISMEMBER', room .. ':m', from) == 0 then
      return redis.error_reply('NOTINROOM you are not in room ' .. rid)
    end
    if args[13] == '1' or muted(prefix, pid, rid, from, at) then
      return redis.error_reply('MUTED you are muted in room ' .. rid)
    end
    local mode = redis.call('HGET', room .. ':mode', from)
    if mode == '3' or mode == '4' then
      return redis.error_reply('MODE your mode in room ' .. rid .. ' does not send (mode ' .. mode .. ')')
    end
  end
  local sent = prefix .. ':sent:' .. pid .. ':' .. rid .. ':' .. from .. ':' .. mid
  local earlier = redis.call('GET', sent)
  if earlier then
    local print, mtime = string.match(earlier, '^([^:]*):(%d+)$')
    if print == args[10] then
      return {'', 0, mtime}
    end
    return redis.error_reply('DUPMID mid ' .. mid .. ' was already used by user ' .. from .. ' in room ' .. rid
      .. ' for another message')
  end
  local mtime = ms_string(at)
  redis.call('SET', sent, args[10] .. ':' .. mtime, 'PX', args[11])
  touch(room, at)
  if tonumber(args[14] or '0') > 0 then
    history_append(room, args[14], args[15], from, args[5], mid, args[6], args[7], args[8], mtime)
  end
  return emit(prefix, at, {{'msg', pid, rid, from, mid, args[5], args[6], args[7], args[8], mtime, args[12]}})
end

-- load: the partition's whole state at one sequence number, as changes
-- that rebuild it: msgpack [epoch, seq, at_ms, changes].
local function load(keys, args)
  local prefix = keys[1]
  local meta = redis.call('HMGET', prefix .. ':meta', 'epoch', 'seq', 'last')
  local changes = {}
  for _, room in ipairs(redis.call('SMEMBERS', prefix .. ':rooms')) do
    local pid, rid = string.match(room, '^(-?%d+):(-?%d+)$')
    local key = room_key(prefix, pid, rid)
    local s = redis.call('HMGET', key .. ':s', 'vf', 'vu', 'mx', 'th', 'id', 'bg', 'ae')
    if s[1] then
      changes[#changes + 1] = {'sched', pid, rid, s[1], s[2], s[3], s[4], s[5], s[6], s[7]}
    end
    local change = {'add', pid, rid, '0'}
    for _, uid in ipairs(redis.call('SMEMBERS', key .. ':m')) do
      change[#change + 1] = uid
    end
    changes[#changes + 1] = change
    local roles = redis.call('HGETALL', key .. ':role')
    if #roles > 0 then
      local upsert = {'upsert', pid, rid, '0'}
      for i = 1, #roles do upsert[#upsert + 1] = roles[i] end
      changes[#changes + 1] = upsert
    end
    local modes = redis.call('HGETALL', key .. ':mode')
    for i = 1, #modes, 2 do
      changes[#changes + 1] = {'mode', pid, rid, modes[i], modes[i + 1]}
    end
    local joined = redis.call('HGETALL', key .. ':j')
    if #joined > 0 then
      local times = {'joined', pid, rid}
      for i = 1, #joined do times[#times + 1] = joined[i] end
      changes[#changes + 1] = times
    end
    local info = redis.call('HMGET', key .. ':i', 'o', 'p')
    if info[1] or info[2] then
      changes[#changes + 1] = {'info', pid, rid, info[1] and '1' or '0', info[1] or '',
        info[2] and '1' or '0', info[2] or ''}
    end
  end
  for _, bans in ipairs(redis.call('SMEMBERS', prefix .. ':bans')) do
    local pid, scope = string.match(bans, '^(-?%d+):(.+)$')
    local list = redis.call('HGETALL', ban_key(prefix, pid, scope))
    local at = now_ms()
    for i = 1, #list, 2 do
      -- Expired bans are left out: a loading node would announce them again.
      if list[i + 1] == '-' or tonumber(list[i + 1]) > at then
        changes[#changes + 1] = {'ban', pid, scope, list[i], list[i + 1]}
      end
    end
  end
  for _, pid in ipairs(redis.call('SMEMBERS', prefix .. ':rvp')) do
    local list = redis.call('HGETALL', prefix .. ':rv:' .. pid)
    for i = 1, #list, 2 do
      changes[#changes + 1] = {'revoke', pid, list[i], list[i + 1]}
    end
  end
  -- The fifth field is the chain's head: the digest of the newest body.
  return cmsgpack.pack({meta[1] or '', tonumber(meta[2] or '0'), ms_string(now_ms()), changes, meta[3] or ''})
end

-- heartbeat: ARGV node, ttl_ms. The node is alive now (Redis's clock);
-- answers the ids of the nodes alive within ttl_ms.
local function heartbeat(keys, args)
  local key = keys[1] .. ':nodes'
  local at = now_ms()
  redis.call('ZADD', key, ms_string(at), args[1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ms_string(at - tonumber(args[2])))
  return redis.call('ZRANGE', key, 0, -1)
end

-- leave: ARGV node. The node stops (its partitions go to the others now).
local function leave(keys, args)
  return redis.call('ZREM', keys[1] .. ':nodes', args[1])
end

local function version()
  return LIBRARY_VERSION
end

redis.register_function('rtm_admit', admit)
redis.register_function('rtm_remove', remove)
redis.register_function('rtm_set_info', set_info)
redis.register_function('rtm_ban', ban)
redis.register_function('rtm_send', send)
redis.register_function('rtm_release', release)
redis.register_function('rtm_upsert', upsert)
redis.register_function('rtm_kick', kick)
redis.register_function('rtm_set_mode', set_mode)
redis.register_function('rtm_revoke', revoke)
redis.register_function('rtm_unban', unban)
redis.register_function('rtm_history_delete', history_delete)
redis.register_function('rtm_create', create)
redis.register_function('rtm_update', update)
redis.register_function('rtm_extend', extend)
redis.register_function('rtm_keep_alive', keep_alive)
redis.register_function('rtm_sweep', sweep)
redis.register_function('rtm_heartbeat', heartbeat)
redis.register_function('rtm_leave', leave)
redis.register_function{function_name = 'rtm_history_page', callback = history_page, flags = {'no-writes'}}
redis.register_function{function_name = 'rtm_history_count', callback = history_count, flags = {'no-writes'}}
redis.register_function{function_name = 'rtm_history_find', callback = history_find, flags = {'no-writes'}}
redis.register_function{function_name = 'rtm_load', callback = load, flags = {'no-writes'}}
redis.register_function{function_name = 'rtm_version', callback = version, flags = {'no-writes', 'allow-stale'}}
