-- wrk script for bench/http.py: POST a body that is new on every request.
-- Arguments (after --): the body, where {n} becomes a number no request of this run has used;
-- its content type; and a run id that keeps the numbers new across runs.

local counter = 1

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  template, run, sent = args[1], args[3], 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = args[2]
end

function request()
  sent = sent + 1
  local body = template:gsub("{n}", run .. "-" .. id .. "-" .. sent)
  return wrk.format(nil, nil, nil, body)
end
