#!/usr/bin/env bash
# The floor for playbooks/article.yml: the same six scenarios (control and the
# article's five experiments) by hand in plain shell, as the article did them,
# each in a fresh pair of namespaces. Prints each scenario's connection and trace.
set -euo pipefail
C=pfl-bench-client
S=pfl-bench-server
ORIG=$(sysctl -n net.netfilter.nf_log_all_netns)

teardown() {
  for ns in $C $S; do
    if ip netns list | grep -qw "$ns"; then
      ip netns pids "$ns" | xargs -r kill -9
      ip netns del "$ns"
    fi
  done
}
trap 'teardown; sysctl -qw net.netfilter.nf_log_all_netns="$ORIG"' EXIT
sysctl -qw net.netfilter.nf_log_all_netns=1

ipt() { ip netns exec $S iptables-legacy -w "$@"; }

nft_load() {  # verdict at input, verdict at output
  ip netns exec $S nft -f - <<NFT
flush ruleset
table inet filter {
  chain input { type filter hook input priority 0; tcp dport 12345 log level warn prefix "nft-input" $1; }
  chain forward { type filter hook forward priority 0; }
  chain output { type filter hook output priority 0; tcp sport 12345 log level warn prefix "nft-output" $2; }
}
NFT
}

scenario() {  # name, iptables INPUT verdict, iptables OUTPUT verdict, nft input, nft output (empty: none)
  ip netns add $C
  ip netns add $S
  ip link add to-server netns $C type veth peer name to-client netns $S
  ip -n $C addr add 198.18.0.1/30 dev to-server
  ip -n $S addr add 198.18.0.2/30 dev to-client
  for ns in $C $S; do ip -n "$ns" link set lo up; done
  ip -n $C link set to-server up
  ip -n $S link set to-client up
  if [ -n "$2" ]; then
    ipt -A INPUT -p tcp --dport 12345 -j LOG --log-level 4 --log-prefix ipt-input
    ipt -A INPUT -p tcp --dport 12345 -j "$2"
    ipt -A OUTPUT -p tcp --sport 12345 -j LOG --log-level 4 --log-prefix ipt-output
    [ -z "$3" ] || ipt -A OUTPUT -p tcp --sport 12345 -j "$3"
  fi
  [ -z "$4" ] || nft_load "$4" "$5"
  ip netns exec $S nc -l -k 12345 </dev/null >/dev/null 2>&1 &
  disown
  until ip netns exec $S ss -Hltn 'sport = :12345' | grep -q .; do sleep 0.005; done
  local last outcome
  last=$(dmesg | tail -n 1)  # the ring may be full: count from the last line, not by line numbers
  if ip netns exec $C timeout 0.2 bash -c 'exec 3<>/dev/tcp/198.18.0.2/12345' 2>/dev/null; then
    outcome=connected
  else
    outcome=failed
  fi
  echo "$1: $outcome; trace: $(dmesg | awk -v last="$last" 'seen; $0 == last { seen = 1 }' |
    grep -oE '(ipt|nft)-(input|output)' | paste -sd' ' || true)"
  teardown
}

scenario control "" "" "" ""
scenario experiment-1 DROP "" "" ""
scenario experiment-2 DROP "" accept accept
scenario experiment-3 DROP "" drop accept
scenario experiment-4 ACCEPT DROP accept accept
scenario experiment-5 ACCEPT ACCEPT accept drop
