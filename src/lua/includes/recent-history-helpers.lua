--[[
  Helpers of the recent-history scripts (included by them).

  before(a, b): whether string a sorts before b bytewise, as Redis orders members (Lua's `<` follows the locale).
  in_slices(list, fn): calls fn with the list in slices of 1000 (unpack has a limit of a few thousand values) and
  sums its results.
]]
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function in_slices(list, fn)
  local total = 0
  for i = 1, #list, 1000 do total = total + fn(unpack(list, i, math.min(i + 999, #list))) end
  return total
end
