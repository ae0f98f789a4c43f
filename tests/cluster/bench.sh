#!/usr/bin/env bash
# Quick same-run comparison of the verify path with the embedded and the Redis store (PERF.md method,
# reduced): one nginx worker pinned to CPU 0, wrk on CPU 1, a static file behind auth_request to an
# authd with a real login; warm-up, then 3 interleaved 10s runs of each. Prints req/s, latency and the
# CPU time authd and redis-server spent per request (steadier than req/s on a shared machine).
# Needs nginx, wrk, redis-server, curl on PATH.   Usage: bash tests/cluster/bench.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=$(mktemp -d /tmp/authd-redis-bench.XXXXXX)
cleanup() {
  nginx -p $D/ngx -c $D/ngx/nginx.conf -s stop 2>/dev/null || true
  for f in $D/authd1.pid $D/authd2.pid $D/redis.pid; do [ -f $f ] && kill "$(cat $f)" 2>/dev/null || true; done
  sleep 0.5; rm -rf "$D"
}
trap cleanup EXIT
cd $D
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); P1=$(free_port); P2=$(free_port); N1=$(free_port); N2=$(free_port)
chmod 755 "$D"  # nginx workers may run as nobody
(cd "$ROOT" && go build -o $D/authd ./authd)
mkdir -p redis data1 data2 www ngx/tmp logs
echo ok > www/index.html
redis-server --port $RP --bind 127.0.0.1 --dir $D/redis --save "" --appendonly yes --appendfsync everysec --daemonize yes --logfile $D/logs/redis.log --pidfile $D/redis.pid
sleep 0.5
for i in 1 2; do
  P=$(eval echo \$P$i)
  N=$(eval echo \$N$i)
  cat > $D/authd$i.toml <<EOC
listen = "127.0.0.1:$P"
public_url = "http://localhost:$N"
data_dir = "$D/data$i"
users_file = "$D/data$i/users.toml"
$([ $i != 1 ] && echo 'store = "redis"')
[cookie]
insecure = true
[log]
level = "warn"
[redis]
addrs = ["127.0.0.1:$RP"]
key_prefix = "bench$i:"
EOC
  chmod 600 $D/authd$i.toml
  printf 'correct horse battery staple\n' | $D/authd user add -config $D/authd$i.toml bob >/dev/null
  (exec $D/authd serve -config $D/authd$i.toml > $D/logs/authd$i.log 2>&1) &
  echo $! > $D/authd$i.pid
done
cat > ngx/nginx.conf <<EOC
worker_processes 1;
pid $D/ngx/nginx.pid;
error_log $D/logs/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $D/ngx/tmp/body; proxy_temp_path $D/ngx/tmp/proxy; fastcgi_temp_path $D/ngx/tmp/f; uwsgi_temp_path $D/ngx/tmp/u; scgi_temp_path $D/ngx/tmp/s;
  upstream a1 { server 127.0.0.1:$P1; keepalive 32; }
  upstream a2 { server 127.0.0.1:$P2; keepalive 32; }
  server { listen 127.0.0.1:$N1; root $D/www;
    location / { auth_request /_v; }
    location /authd/ { proxy_pass http://a1; proxy_set_header Host \$host; }
    location = /_v { internal; proxy_pass http://a1/verify; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_set_header X-Original-URI \$request_uri; proxy_set_header X-Original-Method \$request_method; proxy_set_header X-Forwarded-Host \$host; }
  }
  server { listen 127.0.0.1:$N2; root $D/www;
    location / { auth_request /_v; }
    location /authd/ { proxy_pass http://a2; proxy_set_header Host \$host; }
    location = /_v { internal; proxy_pass http://a2/verify; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_set_header X-Original-URI \$request_uri; proxy_set_header X-Original-Method \$request_method; proxy_set_header X-Forwarded-Host \$host; }
  }
}
EOC
nginx -p $D/ngx -c $D/ngx/nginx.conf -e $D/logs/nginx-error.log
sleep 1
login() { # port
  local N=$1 jar=$D/jar$1
  rm -f $jar
  local csrf=$(curl -s -c $jar http://localhost:$N/authd/login | grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//;s/"$//')
  curl -s -b $jar -c $jar -o /dev/null -H "Origin: http://localhost:$N" --data-urlencode "username=bob" --data-urlencode "password=correct horse battery staple" --data-urlencode "csrf=$csrf" --data-urlencode "rd=/" http://localhost:$N/authd/login
  grep -o 'authd_session	[^	]*$' $jar | cut -f2
}
C1=$(login $N1); C2=$(login $N2)
echo "cookie lens ${#C1} ${#C2}"
curl -s -o /dev/null -w "emb %{http_code}\n" -b "authd_session=$C1" http://localhost:$N1/index.html
curl -s -o /dev/null -w "redis %{http_code}\n" -b "authd_session=$C2" http://localhost:$N2/index.html
NGW=$(pgrep -f "nginx: worker process" -n)
taskset -pc 0 $NGW >/dev/null || true
wrk -t2 -c64 -d2s -H "Cookie: authd_session=$C1" http://127.0.0.1:$N1/index.html >/dev/null
wrk -t2 -c64 -d2s -H "Cookie: authd_session=$C2" http://127.0.0.1:$N2/index.html >/dev/null
for r in 1 2 3; do
  for m in emb redis; do
    case $m in emb) C=$C1; N=$N1; AP=$(cat $D/authd1.pid);; redis) C=$C2; N=$N2; AP=$(cat $D/authd2.pid);; esac
    RPID=$(cat $D/redis.pid)
    a0=$(awk '{print $14+$15}' /proc/$AP/stat); r0=$(awk '{print $14+$15}' /proc/$RPID/stat)
    out=$(taskset -c 1 wrk -t2 -c64 -d10s --latency -H "Cookie: authd_session=$C" http://127.0.0.1:$N/index.html)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    a1=$(awk '{print $14+$15}' /proc/$AP/stat); r1=$(awk '{print $14+$15}' /proc/$RPID/stat)
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "   authd cpu/req=$(python3 -c "print(round(($a1-$a0)*10000/$reqs,1))")us redis cpu/req=$(python3 -c "print(round(($r1-$r0)*10000/$reqs,1))")us"
    echo "run $r $m rps=$rps p50=$p50 p99=$p99 non2xx=${non:-0}"
  done
done
echo "RSS authd emb: $(grep VmRSS /proc/$(cat $D/authd1.pid)/status)  redis: $(grep VmRSS /proc/$(cat $D/authd2.pid)/status)"
