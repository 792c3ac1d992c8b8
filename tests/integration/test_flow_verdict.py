"""The twin (flow_verdict) against namespaces standing in for real hosts, whose true verdicts are measured.

Each stand-in is a namespace with an ``eth0`` (IPv4 and IPv6) joined by a veth to a client
namespace, its rules loaded with the real tools in a known order: a Docker host
(iptables-legacy and Debian's empty nftables tables), a Kubernetes node (kube-proxy's rules in
iptables-nft, stale ones in legacy) and a firewalld host (a native inet table beside
iptables-legacy, tied at input priority 0), the last one loaded both ways round. Every flow the
twin can replay is also sent into the stand-in itself, from the client (or, going out, from the
stand-in), by a socket made here; the twin's outcome for the stand-in's own order must equal it,
and its verdict the one the rules' author expects. Flows the twin cannot replay must say why.
The stand-ins must be byte-identical after the reading.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import jsonschema
import pytest
import yaml

from conftest import ROOT, host_state, ns_state, run_module

from ansible_collections.pflab.netfilter.plugins.module_utils import witness

PREFIX = 'pfl-itest-vd-'
V4, V6 = '192.0.2.10', '2001:db8::10'

DEBIAN_NFT = '''
table inet filter {
  chain input { type filter hook input priority filter; }
  chain forward { type filter hook forward priority filter; }
  chain output { type filter hook output priority filter; }
}
'''
DOCKER_LEGACY = '''*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 198.19.17.0/24 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 198.19.17.2:80
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A INPUT -i eth0 -p tcp -m tcp --dport 2375 -j DROP
-A INPUT -i eth0 -p udp -m udp --dport 161 -j REJECT --reject-with icmp-port-unreachable
-A INPUT -s 203.0.113.0/24 -p tcp -m tcp --dport 5432 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 5432 -j REJECT --reject-with tcp-reset
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 198.19.17.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
'''
KUBE_NFT = '''*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" \
-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-SERVICES -d 198.19.96.10/32 -p tcp -m comment --comment "default/quiet has no endpoints" -m tcp --dport 80 \
-j REJECT --reject-with icmp-port-unreachable
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-WEB1 - [0:0]
:KUBE-SEP-WEB2 - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-WEB - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j KUBE-SVC-WEB
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
-A KUBE-SEP-WEB1 -p tcp -j DNAT --to-destination 198.19.5.11:8080
-A KUBE-SEP-WEB2 -p tcp -j DNAT --to-destination 198.19.5.12:8080
-A KUBE-SERVICES -d 198.19.96.1/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-WEB
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-WEB -m statistic --mode random --probability 0.5 -j KUBE-SEP-WEB1
-A KUBE-SVC-WEB -j KUBE-SEP-WEB2
COMMIT
'''
KUBE_STALE_LEGACY = '''*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-MARK-DROP - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m tcp --dport 10255 -j DROP
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 \
-j DROP
-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
COMMIT
'''
FIREWALLD_NFT = '''
table inet firewalld {
  chain filter_INPUT {
    type filter hook input priority filter; policy accept;
    ct state { established, related } accept
    ct status dnat accept
    iifname "lo" accept
    jump filter_INPUT_ZONES
    ct state invalid drop
    reject with icmpx admin-prohibited
  }
  chain filter_OUTPUT {
    type filter hook output priority filter; policy accept;
    ct state { established, related } accept
    oifname "lo" accept
  }
  chain filter_INPUT_ZONES {
    iifname "eth0" goto filter_IN_public
    goto filter_IN_public
  }
  chain filter_IN_public {
    jump filter_IN_public_allow
    meta l4proto { icmp, ipv6-icmp } accept
  }
  chain filter_IN_public_allow {
    tcp dport 22 ct state { new, untracked } accept
    tcp dport 9090 ct state { new, untracked } accept
    ip saddr 198.51.100.0/24 tcp dport 3306 accept
    tcp dport 8443 meta mark set 0x10 accept
  }
}
'''
FIREWALLD_LEGACY = '''*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 9090 -j DROP
-A INPUT -p tcp -m tcp --dport 8080 -j ACCEPT
-A INPUT -s 198.51.100.0/24 -p tcp -m tcp --dport 3306 -j DROP
-A INPUT -p tcp -m tcp --dport 5900 -j DROP
-A INPUT -p tcp -m tcp --dport 8443 -m mark --mark 0x10 -j ACCEPT
-A INPUT -p tcp -m tcp --dport 8443 -j DROP
COMMIT
'''
FIREWALLD_LEGACY6 = '''*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 9090 -j DROP
COMMIT
'''

# Each load step: (restore command or 'nft', text); the order is the stand-in's registration order.
LOADS = {
    'docker': [('nft', DEBIAN_NFT), ('iptables-legacy-restore', DOCKER_LEGACY),
               ('ip6tables-legacy-restore', '*filter\n-A INPUT -p tcp -m tcp --dport 2375 -j DROP\nCOMMIT\n')],
    'kube': [('iptables-legacy-restore', KUBE_STALE_LEGACY), ('iptables-nft-restore', KUBE_NFT)],
    'firewalld': [('nft', FIREWALLD_NFT), ('iptables-legacy-restore', FIREWALLD_LEGACY),
                  ('ip6tables-legacy-restore', FIREWALLD_LEGACY6)],
    'firewalld-reloaded': [('iptables-legacy-restore', FIREWALLD_LEGACY), ('ip6tables-legacy-restore', FIREWALLD_LEGACY6),
                           ('nft', FIREWALLD_NFT)],
}
NR = 'not replayable'


def _port(flow):
    return flow.split()[3].rsplit(':', maxsplit=1)[-1]


# (flow, verdict in the stand-in's own order, or why the twin cannot replay it)
FLOWS = {
    'docker': [
        ('tcp 203.0.113.9 > 192.0.2.10:22 in eth0', 'accepted'),
        ('tcp 203.0.113.9 > 192.0.2.10:2375 in eth0', 'dropped'),
        ('tcp 198.51.100.7 > 192.0.2.10:5432 in eth0', 'rejected'),
        ('tcp 203.0.113.9 > 192.0.2.10:5432 in eth0', 'accepted'),
        ('udp 203.0.113.9 > 192.0.2.10:161 in eth0', 'rejected'),
        ('udp 203.0.113.9 > 192.0.2.10:53 in eth0', 'accepted'),
        ('tcp 192.0.2.10 > 203.0.113.9:443 out eth0', 'accepted'),
        ('udp 192.0.2.10 > 198.51.100.53:53 out eth0', 'accepted'),
        ('tcp [2001:db8:1::9] > [2001:db8::10]:2375 in eth0', 'dropped'),
        ('tcp [2001:db8:1::9] > [2001:db8::10]:22 in eth0', 'accepted'),
        ('tcp 203.0.113.9 > 192.0.2.10:8080 in eth0', (NR, '-j DNAT')),
        ('tcp 203.0.113.9 > 198.19.17.2:80 in eth0', (NR, 'forwarded')),
        ('tcp 198.19.17.2 > 198.19.17.1:22 in docker0', (NR, 'is a bridge')),
    ],
    'kube': [
        ('tcp 203.0.113.9 > 192.0.2.10:10250 in eth0', 'accepted'),
        ('tcp 203.0.113.9 > 192.0.2.10:10255 in eth0', 'dropped'),
        ('tcp 198.51.100.7 > 192.0.2.10:10255 in eth0', 'dropped'),
        ('tcp 203.0.113.9 > 192.0.2.10:22 in eth0', 'accepted'),
        ('udp 203.0.113.9 > 192.0.2.10:8472 in eth0', 'accepted'),
        ('tcp 192.0.2.10 > 198.19.96.10:80 out eth0', 'rejected'),
        ('tcp 192.0.2.10 > 198.51.100.20:6443 out eth0', 'accepted'),
        ('udp 192.0.2.10 > 198.51.100.53:53 out eth0', 'accepted'),
        ('tcp [2001:db8:1::9] > [2001:db8::10]:10250 in eth0', 'accepted'),
        ('tcp 203.0.113.9 > 192.0.2.10:30080 in eth0', (NR, '-m statistic')),
        ('tcp 203.0.113.9 > 198.19.96.1:443 in eth0', (NR, 'forwarded')),
    ],
    'firewalld': [
        ('tcp 203.0.113.9 > 192.0.2.10:22 in eth0', 'accepted'),
        ('tcp 203.0.113.9 > 192.0.2.10:9090 in eth0', 'dropped'),
        ('tcp 203.0.113.9 > 192.0.2.10:8080 in eth0', 'rejected'),
        ('tcp 203.0.113.9 > 192.0.2.10:443 in eth0', 'rejected'),
        ('tcp 198.51.100.7 > 192.0.2.10:3306 in eth0', 'dropped'),
        ('tcp 203.0.113.9 > 192.0.2.10:3306 in eth0', 'rejected'),
        ('tcp 203.0.113.9 > 192.0.2.10:5900 in eth0', 'dropped'),
        ('tcp 203.0.113.9 > 192.0.2.10:8443 in eth0', 'dropped'),
        ('udp 203.0.113.9 > 192.0.2.10:53 in eth0', 'rejected'),
        ('tcp 192.0.2.10 > 203.0.113.9:443 out eth0', 'accepted'),
        ('tcp [2001:db8:1::9] > [2001:db8::10]:22 in eth0', 'accepted'),
        ('tcp [2001:db8:1::9] > [2001:db8::10]:9090 in eth0', 'dropped'),
        # firewalld's icmpx admin-prohibited reject: over IPv6 no answer reaches the client on this kernel, in the
        # stand-in as in the twin, so the sender sees a drop
        ('tcp [2001:db8:1::9] > [2001:db8::10]:8080 in eth0', 'dropped'),
        ('tcp 203.0.113.9 > 192.0.2.10:22 in eth1', (NR, 'does not exist')),
    ],
}
# Loaded the other way round, nftables registers last and runs first: its reject answers 5900, and its
# mark lets legacy accept 8443.
FLOWS['firewalld-reloaded'] = [(flow, {'5900': 'rejected', '8443': 'accepted'}.get(_port(flow), expected))
                               for flow, expected in FLOWS['firewalld']]
# Flows whose verdict depends on the order (and the one of the other order)
ORDER_DEPENDENT = {'firewalld': {'5900': 'rejected', '8443': 'accepted'},
                   'firewalld-reloaded': {'5900': 'dropped', '8443': 'dropped'}}

# The truth: one connect (or datagram) from a socket made here, in the client or the stand-in.
_TRUTH = r'''
import errno, json, socket, sys
proto, src, sport, dst, dport = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
family = socket.AF_INET6 if ':' in dst else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
s.settimeout(0.5)
s.bind((src, sport))
try:
    if proto == 'tcp':
        s.connect((dst, dport))
        out = 'connected'
    else:
        s.connect((dst, dport))
        s.send(b'truth')
        s.recv(100)
        out = 'answered'
except socket.timeout:
    out = 'no answer'
except OSError as e:
    out = {errno.ECONNREFUSED: 'refused', errno.EHOSTUNREACH: 'unreachable', errno.ENETUNREACH: 'unreachable',
           errno.EACCES: 'unreachable', errno.EPERM: 'no answer'}.get(e.errno, 'error %s' % e.errno)
print(json.dumps(out))
'''


def _run(argv, data=None):
    return subprocess.run(argv, input=data, capture_output=True, text=True, check=True).stdout


def make_standin(kind):
    """The stand-in ``PREFIX + kind`` and its client ``... + c``, with every far end the flows use."""
    host, client = PREFIX + kind, PREFIX + kind + 'c'
    for name in (host, client):
        _run(['ip', 'netns', 'add', name])
    far = sorted(set(end for flow, dummy in FLOWS[kind] for end in _ends(flow)
                     if end not in (V4, V6) and not end.startswith('198.19.17.')))
    lines = ['link add eth0 netns %s type veth peer name up0 netns %s' % (host, client)]
    _run(['ip', '-batch', '-'], '\n'.join(lines) + '\n')
    inside = ['link set lo up', 'addr add %s/24 dev eth0' % V4, 'addr add %s/64 dev eth0 nodad' % V6,
              'link set eth0 up', 'link add docker0 type bridge', 'addr add 198.19.17.1/24 dev docker0']
    inside += ['route add %s/%d dev eth0' % (a, 128 if ':' in a else 32) for a in far]
    _run(['ip', '-n', host, '-batch', '-'], '\n'.join(inside) + '\n')
    outside = ['link set lo up', 'link set up0 up'] + \
        ['addr add %s/%d dev up0%s' % (a, 128 if ':' in a else 32, ' nodad' if ':' in a else '') for a in far] + \
        ['route add %s/%d dev up0' % (a, 128 if ':' in a else 32) for a in (V4, V6)]
    _run(['ip', '-n', client, '-batch', '-'], '\n'.join(outside) + '\n')
    for name in (host, client):  # every answer the stack owes, for the truth as for the twin
        _run(['ip', 'netns', 'exec', name, 'sysctl', '-qw', 'net.ipv4.icmp_ratelimit=0', 'net.ipv6.icmp.ratelimit=0'])
    for command, text in LOADS[kind]:
        _run(['ip', 'netns', 'exec', host] + (['nft', '-f', '-'] if command == 'nft' else [command]), text)
    return host, client


def _ends(flow):
    words = flow.split()
    return [re.fullmatch(r'\[(.+)\](?::\d+)?|([\d.]+)(?::\d+)?', w).group(1) or
            re.fullmatch(r'([\d.]+)(?::\d+)?', w).group(1) for w in (words[1], words[3])]


def truth(flow, index, host, client):
    words = flow.split()
    proto, direction = words[0], words[4]
    src, dst = _ends(flow)
    dport = int(words[3].rsplit(':', 1)[1])
    where = client if direction == 'in' else host
    out = _run(['ip', 'netns', 'exec', where, sys.executable, '-c', _TRUTH, proto, src, str(41000 + index), dst,
                str(dport)])
    return json.loads(out)


def _outcome(result):
    return {'dropped': 'no answer', 'timeout': 'no answer'}.get(result['outcome'], result['outcome'])


def _own_order(result, kind):
    """The twin's order that is the stand-in's own: the units in the order LOADS loaded them."""
    loaded = []
    for command, text in LOADS[kind]:
        unit = 'iptables-nft' if 'nft-restore' in command else 'iptables-legacy' if 'legacy' in command else \
            'nftables inet ' + text.split('table inet ')[1].split()[0]
        if unit in result['host']['units'] and unit not in loaded:
            loaded.append(unit)
    return next(o['index'] for o in result['orders'] if o['units'] == loaded)


@pytest.mark.parametrize('kind', sorted(LOADS))
def test_the_twin_answers_as_the_standin_itself_does(kind):
    host, client = make_standin(kind)
    before = ns_state(host)
    flows = [dict(name=flow, **_flow(flow, index)) for index, (flow, dummy) in enumerate(FLOWS[kind])]
    result, failed = run_module('flow_verdict', dict(flows=flows, netns=host))
    assert not failed, result.get('msg')
    assert ns_state(host) == before, 'the reading changed the stand-in'
    own = _own_order(result, kind)
    compared = 0
    for index, ((flow, expected), found) in enumerate(zip(FLOWS[kind], result['flows'])):
        assert found['name'] == flow
        if isinstance(expected, tuple):
            assert found['verdict'] == NR and not found['replayable'], (flow, found['verdict'])
            assert expected[1] in found['reason'], (flow, found['reason'])
            continue
        assert found['replayable'], (flow, found['reason'])
        mine = next(o for o in found['orders'] if o['order'] == own)
        real = truth(flow, index, host, client)
        assert _outcome(mine) == real, (flow, mine['outcome'], real, mine['path'])
        assert mine['verdict'] == expected, (flow, mine['verdict'], mine['why'], mine['path'])
        if mine['verdict'] in ('dropped', 'rejected'):
            assert mine['decided_by'] is not None and mine['decided_by']['packets'] >= 1, (flow, mine)
        compared += 1
        other = ORDER_DEPENDENT.get(kind, {}).get(_port(flow))
        if other:
            assert found['depends_on_order'] and found['verdict'] == 'depends on order'
            assert sorted(o['verdict'] for o in found['orders']) == sorted([expected, other])
            assert found['headline'] == '; '.join(
                '%s if %s registered last (it runs first at ipv4/input, ipv4/output)' % (
                    o['verdict'], result['orders'][o['order']]['units'][-1]) for o in found['orders'])
        elif len(found['orders']) > 1:
            assert not found['depends_on_order'], (flow, [o['verdict'] for o in found['orders']])
    assert compared == sum(1 for dummy, e in FLOWS[kind] if not isinstance(e, tuple))


def _flow(text, index):
    """The flow as a mapping, with the source port the truth uses."""
    words = text.split()
    src, dst = _ends(text)
    return dict(protocol=words[0], source=src, source_port=41000 + index, destination=dst,
                destination_port=int(words[3].rsplit(':', 1)[1]), direction=words[4], interface=words[5])


def test_the_orders_are_measured_in_the_twin_and_the_live_one_is_unknown_here():
    host, dummy = make_standin('firewalld')
    result, failed = run_module('flow_verdict', dict(flows=['tcp 203.0.113.9 > 192.0.2.10:5900 in eth0'], netns=host))
    assert not failed, result.get('msg')
    assert result['groups'] == [dict(point='%s/%s' % (ipver, hook), priority=0, known=False,
                                     units=['iptables-legacy', 'nftables inet firewalld'])
                                for ipver in ('ipv4', 'ipv6') for hook in ('input', 'output')]
    assert len(result['orders']) == 2
    for order in result['orders']:
        assert order['loaded'] and order['live'] is None  # this kernel has no nft list hooks
        inputs = [e for e in order['registered'] if e['hook'] == 'input' and e['family'] in ('ip', 'inet')]
        # what the twin measured: the unit loaded last registered its input hook last
        assert (inputs[-1]['filter'] == 'nftables') == (order['units'][-1] == 'nftables inet firewalld')
        assert order['runs_first'][0]['unit'] == order['units'][-1]
    assert result['timing']['packets'] == 2


@pytest.mark.parametrize('flows, message', [
    (['tcp 203.0.113.9 > 192.0.2.10:22 in eth0\n'], 'write "<tcp|udp>'),
    (['tcp 203.0.113.9 > 192.0.2.10 in eth0'], 'needs a port'),
    (['icmp 203.0.113.9 > 192.0.2.10:1 in eth0'], 'write "<tcp|udp>'),
    ([dict(source='203.0.113.9', destination='2001:db8::10', destination_port=22, interface='eth0')],
     'not of one IP version'),
    ([dict(source='203.0.113.9', destination='192.0.2.10', destination_port=70000, interface='eth0')], 'not a port'),
    ([dict(source='203.0.113.9', destination='192.0.2.10', destination_port=22, interface='eth0;reboot')],
     'interface'),
    ([dict(source='127.0.0.1', destination='192.0.2.10', destination_port=22, interface='eth0')], 'loopback'),
    ([dict(source='203.0.113.9', destination='192.0.2.10', destination_port=22, interface='eth0', name='a\nb')],
     'printable'),
    ([dict(source='203.0.113.9', destination='192.0.2.10', destination_port=22, interface='eth0', extra=1)],
     'extra'),
    (['tcp 203.0.113.9 > 192.0.2.10:22 in eth0'] * 2, 'is flow 1'),
    ([], 'give 1 to 256'),
])
def test_bad_flows_are_refused_before_anything_is_read(flows, message):
    result, failed = run_module('flow_verdict', dict(flows=flows, netns='pfl-itest-vd-absent'))
    assert failed and message in result['msg'], result['msg']


def test_checking_the_host_itself_only_reads_it():
    """Without netns the host's own namespace is read; a flow on an interface it has not is not replayed."""
    before = host_state()
    result, failed = run_module('flow_verdict', dict(flows=['tcp 203.0.113.9 > 192.0.2.10:22 in pflnone0']))
    assert not failed, result.get('msg')
    assert host_state() == before
    assert result['host']['netns'] is None and result['orders'] == []
    assert result['flows'][0]['verdict'] == 'not replayable' and 'does not exist' in result['flows'][0]['reason']


def test_a_stand_in_that_is_not_a_namespace_is_refused():
    result, failed = run_module('flow_verdict', dict(flows=['tcp 203.0.113.9 > 192.0.2.10:22 in eth0'],
                                                     netns='../../proc/1/ns/net'))
    assert failed and 'netns' in result['msg']


def test_the_playbook_checks_a_fleet_and_gates_on_differences(ansible, tmp_path):
    """Two Docker stand-ins and one firewalld stand-in: one report of hosts x flows, the flows whose verdict differs
    between hosts or orders marked, and verdict_fail_on: differs failing the run."""
    for kind in ('docker', 'firewalld'):
        make_standin(kind)
    hosts = dict((name, dict(verdict_netns=PREFIX + kind))
                 for name, kind in (('docker-a', 'docker'), ('docker-b', 'docker'), ('fw-a', 'firewalld')))
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text(yaml.safe_dump({'all': {'vars': {'ansible_connection': 'local',
                                                          'ansible_python_interpreter': sys.executable},
                                                 'hosts': hosts}}))
    flows = ['tcp 203.0.113.9 > 192.0.2.10:22 in eth0', 'tcp 203.0.113.9 > 192.0.2.10:9090 in eth0',
             'tcp 203.0.113.9 > 192.0.2.10:5900 in eth0']
    passing = ansible.playbook('verdict.yml', inventory=str(inventory), verdict_flows=flows[:1],
                               verdict_dir=str(tmp_path / 'ok'), verdict_fail_on='differs')
    assert passing.rc == 0
    failing = ansible.playbook('verdict.yml', check=False, inventory=str(inventory), verdict_flows=flows,
                               verdict_dir=str(tmp_path / 'out'), verdict_fail_on='differs')
    assert failing.rc != 0
    report = json.loads((tmp_path / 'out' / 'latest' / 'verdict.json').read_text())
    with open(os.path.join(ROOT, 'schemas', 'verdict.schema.json')) as f:
        jsonschema.validate(report, json.load(f))
    assert [h['host'] for h in report['hosts']] == ['docker-a', 'docker-b', 'fw-a']
    rows = dict((row['flow'], row) for row in report['flows'])
    assert rows[flows[0]]['differs'] is False and set(rows[flows[0]]['verdicts'].values()) == {'accepted'}
    assert rows[flows[1]]['differs'] is True  # accepted on the Docker hosts, dropped by firewalld's neighbour
    assert rows[flows[2]]['depends_on_order'] == ['fw-a']
    assert report['summary']['failing'] == [flows[1], flows[2]]
    html = (tmp_path / 'out' / 'latest' / 'verdict.html').read_text()
    assert 'depends on order' in html and '<svg' in html


def _twins():
    return [n for n in os.listdir('/run/netns') if n.startswith('pfl-tw-')]


def _module_process(args, tmp_path):
    """flow_verdict in a process of its own, as Ansible runs it on a target."""
    path = tmp_path / 'args.json'
    path.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, '.collections'),
                                                       '/usr/lib/python3/dist-packages']))
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'plugins', 'modules', 'flow_verdict.py'), str(path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _slow_check(tmp_path):
    """A check that builds twins for a while: 40 flows that time out, on the firewalld stand-in."""
    host, dummy = make_standin('firewalld')
    flows = ['tcp 203.0.113.%d > 192.0.2.10:5900 in eth0' % n for n in range(1, 41)]
    run = _module_process(dict(netns=host, flows=flows, timeout_ms=50), tmp_path)
    deadline = time.monotonic() + 30
    while not _twins() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _twins(), 'no twin was made'
    time.sleep(0.2)
    return run


def test_sigterm_mid_replay_removes_the_twin_and_its_witness(tmp_path):
    run = _slow_check(tmp_path)
    run.send_signal(signal.SIGTERM)
    out = run.communicate(timeout=60)[0].decode()
    result = json.loads(out)
    assert result['failed'] and 'stopped by signal 15' in result['msg'], out
    assert _twins() == [] and not glob.glob('/run/pflab/lab-tw-*.json')
    assert not [i for m in witness.tracefs_mounts() if os.path.isdir(os.path.join(m, 'instances'))
                for i in os.listdir(os.path.join(m, 'instances')) if i.startswith(witness.PREFIX)]


def test_a_twin_whose_check_was_killed_is_removed_by_the_next(tmp_path):
    run = _slow_check(tmp_path)
    run.kill()
    run.communicate(timeout=60)
    assert _twins(), 'SIGKILL leaves the twin'
    result, failed = run_module('flow_verdict', dict(flows=['tcp 203.0.113.9 > 192.0.2.10:22 in eth0'],
                                                     netns=PREFIX + 'firewalld'))
    assert not failed, result.get('msg')
    assert _twins() == [] and not glob.glob('/run/pflab/lab-tw-*.json')
