#!/usr/bin/env bash
# The floor for playbooks/layers.yml: the same nine scenarios by hand in plain shell, each in
# fresh namespaces, with the eBPF objects bench/layers.py compiled with clang ($1: their folder).
# Prints each scenario's connection and LOG trace.
set -euo pipefail
OBJ=$1
C=pfl-bench-client
W=pfl-bench-switch
S=pfl-bench-server
OVS=$(mktemp -d)  # the switch's directory: not under /run/pflab, whose reaper would take it
ORIG=$(sysctl -n net.netfilter.nf_log_all_netns)

teardown() {
  for ns in $C $W $S; do
    if ip netns list | grep -qw "$ns"; then
      ip netns pids "$ns" | xargs -r kill -9
      ip netns del "$ns"
    fi
  done
  rm -rf "$OVS"
  mkdir "$OVS"
}
trap 'teardown; rm -rf "$OVS"; sysctl -qw net.netfilter.nf_log_all_netns="$ORIG"' EXIT
sysctl -qw net.netfilter.nf_log_all_netns=1

pair() {  # client and server on one veth; the server's end is to-client
  ip netns add $C
  ip netns add $S
  ip link add to-server netns $C type veth peer name to-client netns $S
  ip -n $C addr add 198.18.0.1/30 dev to-server
  ip -n $S addr add 198.18.0.2/30 dev to-client
  for ns in $C $S; do ip -n "$ns" link set lo up; done
  ip -n $C link set to-server up
  ip -n $S link set to-client up
}

bridged() {  # client and server joined by an OVS switch (userspace datapath) in its own namespace
  ip netns add $C
  ip netns add $W
  ip netns add $S
  ip link add to-switch netns $C type veth peer name to-client netns $W
  ip link add to-switch netns $S type veth peer name to-server netns $W
  ip -n $C addr add 198.18.0.1/30 dev to-switch
  ip -n $S addr add 198.18.0.2/30 dev to-switch
  for ns in $C $W $S; do ip -n "$ns" link set lo up; done
  ip -n $C link set to-switch up
  ip -n $S link set to-switch up
  ip -n $W link set to-client up
  ip -n $W link set to-server up
  export OVS_RUNDIR="$OVS" OVS_DBDIR="$OVS" OVS_LOGDIR="$OVS"
  ovsdb-tool create "$OVS/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ip netns exec $W ovsdb-server "$OVS/conf.db" --remote="punix:$OVS/db.sock" --pidfile --detach --log-file 2>/dev/null
  ovs-vsctl --db="unix:$OVS/db.sock" --no-wait init
  ip netns exec $W ovs-vswitchd "unix:$OVS/db.sock" --pidfile --detach --log-file 2>/dev/null
  ovs-vsctl --db="unix:$OVS/db.sock" add-br br0 -- set bridge br0 datapath_type=netdev \
    -- add-port br0 to-client -- add-port br0 to-server
  ip netns exec $C ethtool -K to-switch tx off >/dev/null
  ip netns exec $S ethtool -K to-switch tx off >/dev/null
  ip netns exec $W ethtool -K to-client tx off >/dev/null
  ip netns exec $W ethtool -K to-server tx off >/dev/null
}

nft_in() {  # verdict at input, and at output when given
  ip netns exec $S nft add table inet filter
  ip netns exec $S nft "add chain inet filter input { type filter hook input priority ${3:-0}; }"
  ip netns exec $S nft add rule inet filter input tcp dport 12345 log level warn prefix '"nft-input"' "$1"
  if [ -n "${2:-}" ]; then
    ip netns exec $S nft "add chain inet filter output { type filter hook output priority 0; }"
    ip netns exec $S nft add rule inet filter output tcp sport 12345 log level warn prefix '"nft-output"' "$2"
  fi
}

netdev() {  # ingress chain, and egress chain when asked
  ip netns exec $S nft add table netdev edge
  ip netns exec $S nft "add chain netdev edge ingress { type filter hook ingress device to-client priority ${1:-0}; }"
  ip netns exec $S nft add rule netdev edge ingress tcp dport 12345 log level warn prefix '"netdev-in"' accept
  if [ -n "${2:-}" ]; then
    ip netns exec $S nft "add chain netdev edge egress { type filter hook egress device to-client priority 0; }"
    ip netns exec $S nft add rule netdev edge egress tcp sport 12345 log level warn prefix '"netdev-out"' accept
  fi
}

xdp() { ip -n $S link set dev to-client "$1" obj "$OBJ/$2.o" sec prog; }
tcf() {
  ip -n $S link show to-client >/dev/null
  tc -n $S qdisc show dev to-client | grep -q clsact || tc -n $S qdisc add dev to-client clsact
  tc -n $S filter add dev to-client "$1" bpf da obj "$OBJ/$2.o" sec prog
}

run() {  # name: listener, probe, trace, teardown
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
    grep -oE '(ipt|nft|netdev)-(input|output|in|out)' | paste -sd' ' || true)"
  teardown
}

pair; nft_in accept; xdp xdp xdp-drop; run xdp-drop-native
pair; nft_in accept; xdp xdpgeneric xdp-drop; run xdp-drop-generic
pair; xdp xdp xdp-pass; nft_in drop; run xdp-pass-nft-drop
pair; nft_in accept; tcf ingress tc-drop-in; run tc-ingress-drop
pair; tcf egress tc-drop-out; nft_in accept accept; run tc-egress-vs-nft-output
pair; nft_in drop "" -500; netdev 500; run netdev-ingress-vs-inet-input
bridged; nft_in accept; ovs-ofctl add-flow br0 'priority=100,tcp,tp_dst=12345,actions=drop'; run ovs-drop
bridged; ovs-ofctl add-flow br0 'priority=100,tcp,tp_dst=12345,actions=normal'; nft_in drop; run ovs-pass-nft-drop
pair
ip netns exec $S iptables-legacy -w -A INPUT -p tcp --dport 12345 -j LOG --log-level 4 --log-prefix ipt-input
nft_in accept accept
netdev 0 egress
tcf egress tc-pass-out
tcf ingress tc-pass-in
xdp xdp xdp-pass
run every-layer
