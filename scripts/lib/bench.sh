# Helpers shared by the benchmark scripts (sourced, not run).

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

ticks=$(getconf CLK_TCK)

# measure PID SECONDS -> "cpu_percent rss_mb": CPU over the interval, RSS the
# mean of one reading a second.
measure() {
  local pid=$1 seconds=$2 t0 t1 rss_sum=0 i
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  for i in $(seq 1 "$seconds"); do
    sleep 1
    rss_sum=$((rss_sum + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")))
  done
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  awk -v a="$t0" -v b="$t1" -v s="$seconds" -v hz="$ticks" -v rss="$rss_sum" \
    'BEGIN { printf "%.2f %.2f", (b-a)/hz/s*100, rss/s/1024 }'
}

# ratio A B -> A/B with two decimals
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'
}
