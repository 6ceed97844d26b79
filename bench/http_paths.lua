-- wrk script for bench/http.py: POST to each path of a file once, in turn (tokens signed before the run).
-- Arguments (after --): the file (one path a line), the body, and the number of wrk threads; thread i
-- takes lines i, i + threads, i + 2 * threads, ... so no two requests use the same path.

local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  paths = {}
  local threads, line = tonumber(args[3]), 0
  for path in io.lines(args[1]) do
    if line % threads == id - 1 then table.insert(paths, path) end
    line = line + 1
  end
  body, next_path = args[2], 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end

function request()
  next_path = next_path % #paths + 1
  return wrk.format(nil, paths[next_path], nil, body)
end
