# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one flow meets in a host's rules, as pure data (the twin engine, twin.py, runs it for real).

* Flows: one packet's protocol, ends, interface and direction, given as a mapping or as
  text (``tcp 203.0.113.9:40000 > 192.0.2.10:443 in eth0``).
* Orders: the registration orders a host's hooks leave open. Filters of equal priority
  at one hook run last-registered first; each unit (iptables-legacy, iptables-nft, one
  native nftables table) registers when it is loaded, so the orders are the
  permutations of the units that share a priority somewhere, one per distinct outcome
  of the groups.
* Limits: what a twin cannot reproduce for a flow (a host-level cause, or a rule the
  flow's packet or its answer may reach that matches on something the twin has not:
  a socket, a cgroup, a mark no copied rule sets, an ipset ...).
* Verdicts: from the twin's rule counters before and after the flow's packet, the
  probe's outcome and the drop witness: accepted, dropped or rejected, and by which
  rule.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import itertools
import re
import unicodedata

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pflab.netfilter.plugins.module_utils import matcher, names, xtables
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip, shown

FLOW_SPEC = dict(
    name=dict(type='str'),
    protocol=dict(type='str', default='tcp', choices=['tcp', 'udp']),
    source=dict(type='str', required=True),
    source_port=dict(type='int'),
    destination=dict(type='str', required=True),
    destination_port=dict(type='int', required=True),
    interface=dict(type='str', required=True),
    direction=dict(type='str', default='in', choices=['in', 'out']),
)
FLOWS_MAX = 256
TIED_MAX = 8  # units whose orders are replayed: 8! permutations are walked at most
SOURCE_PORT_FIRST = 40000  # a flow without a source port takes 40000 + its number
NAME_MAX = 100
# "tcp 203.0.113.9:40000 > 192.0.2.10:443 in eth0"; IPv6 ends in brackets, the source port may be left out
_FLOW_TEXT = re.compile(r'(tcp|udp) +(\S+) +> +(\S+) +(in|out) +(\S+)')
_END = re.compile(r'\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([0-9.]+)(?::(\d{1,5}))?')
RECEIVE_HOOKS = frozenset(['prerouting', 'input', 'ingress'])
SEND_HOOKS = frozenset(['output', 'postrouting', 'egress'])
XT_HOOKS = {'PREROUTING': 'prerouting', 'INPUT': 'input', 'FORWARD': 'forward', 'OUTPUT': 'output',
            'POSTROUTING': 'postrouting'}
# Interfaces whose packets meet netfilter as a veth's do: physical ones (no kind), veths, VLANs, macvlans, dummies;
# others take another way (a bridge, a tunnel's decapsulation, a VRF, a bond's slaves).
_REPLAYED_KINDS = frozenset([None, 'veth', 'vlan', 'macvlan', 'dummy'])
# xtables matches and targets whose outcome rests on something the twin does not have
_XT_MATCHES = {
    'owner': 'the sending socket\'s owner', 'socket': 'the host\'s sockets', 'cgroup': 'cgroups',
    'set': 'ipsets (not copied)', 'physdev': 'bridge ports', 'statistic': 'chance or packet counts',
    'recent': 'earlier packets', 'hashlimit': 'earlier packets (a rate)', 'connlimit': 'other connections',
    'quota': 'a byte budget already spent', 'connbytes': 'earlier traffic', 'time': 'the time of day',
    'rpfilter': 'the host\'s routes', 'policy': 'IPsec policies', 'bpf': 'a BPF program', 'ipvs': 'IPVS',
    'nfacct': 'accounting objects', 'helper': 'a conntrack helper', 'devgroup': 'device groups',
    'cpu': 'the CPU', 'realm': 'routing realms', 'u32': 'raw packet bytes', 'string': 'the payload',
    'mac': 'the sender\'s MAC address', 'osf': 'the sender\'s OS fingerprint', 'connlabel': 'conntrack labels',
}
_XT_MARK_MATCHES = frozenset(['mark', 'connmark'])
_XT_MARKS_SET = frozenset(['MARK', 'CONNMARK'])
_XT_TARGETS = {'NFQUEUE': 'a userspace program (NFQUEUE)', 'QUEUE': 'a userspace program (QUEUE)',
               'TPROXY': 'a transparent proxy socket', 'DNAT': 'an address change (the packet goes on elsewhere)',
               'NETMAP': 'an address change (the packet goes on elsewhere)', 'SYNPROXY': 'a SYN proxy'}
# nft expressions (keys, or meta and ct keys) whose outcome rests on something the twin does not have
_NFT_EXPRS = {'socket': 'the host\'s sockets', 'osf': 'the sender\'s OS fingerprint', 'numgen': 'a number generator',
              'quota': 'a byte budget already spent', 'queue': 'a userspace program (queue)', 'xt': 'an xtables extension',
              'fib': 'the host\'s routes', 'ipsec': 'IPsec state', 'rt': 'the route', 'tproxy': 'a transparent proxy',
              'synproxy': 'a SYN proxy', 'dnat': 'an address change (the packet goes on elsewhere)'}
_NFT_META = {'skuid': 'the sending socket\'s owner', 'skgid': 'the sending socket\'s group', 'cgroup': 'cgroups',
             'secmark': 'security marks', 'rtclassid': 'routing realms', 'cpu': 'the CPU', 'iifgroup': 'device groups',
             'oifgroup': 'device groups', 'time': 'the time of day', 'day': 'the day', 'hour': 'the hour',
             'iifkind': 'the kind of the host\'s device', 'oifkind': 'the kind of the host\'s device',
             'sdif': 'VRF devices', 'sdifname': 'VRF devices', 'ibrname': 'bridges', 'obrname': 'bridges',
             'ibrvproto': 'bridges', 'ibrpvid': 'bridges'}
_NFT_CT = {'helper': 'a conntrack helper', 'label': 'conntrack labels', 'expiration': 'a connection\'s age',
           'bytes': 'earlier traffic', 'packets': 'earlier traffic', 'count': 'other connections',
           'avgpkt': 'earlier traffic'}
VERDICTS = ('accepted', 'dropped', 'rejected')
UNDETERMINED = 'undetermined'  # replayed, but what the twin saw does not say


class FlowError(PflabError):
    pass


def _end(text, what, port_required):
    m = _END.fullmatch(text)
    if not m:
        raise FlowError('%s %s is an address with a port (192.0.2.1:443, [2001:db8::1]:443)' % (what, shown(text)))
    address, port = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    if port is None and port_required:
        raise FlowError('%s %s needs a port' % (what, shown(text)))
    return address, int(port) if port is not None else None


def parse_flow(text):
    """A flow given as text, as a mapping of FLOW_SPEC."""
    m = _FLOW_TEXT.fullmatch(text)
    if not m:
        raise FlowError('flow %s: write "<tcp|udp> <source>[:<port>] > <destination>:<port> <in|out> <interface>"'
                        % shown(text))
    source, source_port = _end(m.group(2), 'source', False)
    destination, destination_port = _end(m.group(3), 'destination', True)
    return dict(protocol=m.group(1), source=source, source_port=source_port, destination=destination,
                destination_port=destination_port, direction=m.group(4), interface=m.group(5))


def flow_text(flow):
    def end(address, port):
        shown_ = '[%s]' % address if ':' in address else address
        return shown_ if port is None else '%s:%d' % (shown_, port)
    return '%s %s > %s %s %s' % (flow['protocol'], end(flow['source'], flow['source_port']),
                                 end(flow['destination'], flow['destination_port']), flow['direction'],
                                 flow['interface'])


def _address(value, what):
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise FlowError('%s %s is not an IP address' % (what, shown(value)))
    if address.is_unspecified or address.is_multicast or address.is_loopback or address.is_link_local or \
            (address.version == 4 and address == ipaddress.IPv4Address('255.255.255.255')):
        raise FlowError('%s %s: a flow is between two unicast addresses, neither the loopback nor link-local'
                        % (what, value))
    return address


def check_flow(index, value):
    """Flow ``index`` (1-based) as a validated mapping with its ``name`` and ``ipver``."""
    where = 'flow %d' % index
    try:
        if isinstance(value, str):
            value = parse_flow(value)
        if not isinstance(value, dict):
            raise FlowError('a flow is a mapping or text, got %s' % shown(value))
        result = ArgumentSpecValidator(FLOW_SPEC).validate(dict(value))
        if result.error_messages:
            raise FlowError('; '.join(result.error_messages))
        flow = result.validated_parameters
        source, destination = _address(flow['source'], 'source'), _address(flow['destination'], 'destination')
        if source.version != destination.version:
            raise FlowError('source %s and destination %s are not of one IP version' % (source, destination))
        if source == destination:
            raise FlowError('source and destination are one address (%s)' % source)
        for key in ('source_port', 'destination_port'):
            if flow[key] is not None and not 1 <= flow[key] <= 65535:
                raise FlowError('%s %s is not a port (1-65535)' % (key, flow[key]))
        names.check('ifname', flow['interface'], 'interface')
        if flow['interface'] == 'lo':
            raise FlowError('interface lo: the loopback\'s packets are the host\'s own, a twin has no peer there')
        flow.update(source=str(source), destination=str(destination), ipver=source.version)
        flow['name'] = flow['name'] if flow['name'] is not None else flow_text(flow)
        if not flow['name'].strip() or len(flow['name']) > NAME_MAX or \
                any(unicodedata.category(c).startswith(('C', 'Z')) and c != ' ' for c in flow['name']):
            raise FlowError('name %s: 1-%d printable characters' % (shown(flow['name']), NAME_MAX))
        return flow
    except (FlowError, names.InvalidName) as e:
        raise FlowError('%s: %s' % (where, e))


def check_flows(values):
    if not isinstance(values, list) or not 1 <= len(values) <= FLOWS_MAX:
        raise FlowError('flows: give 1 to %d flows, got %s' % (FLOWS_MAX, shown(values)))
    flows = [check_flow(index, value) for index, value in enumerate(values, 1)]
    seen, ends = {}, {}
    for index, flow in enumerate(flows, 1):
        if flow['name'] in seen:
            raise FlowError('flow %d: name %s is flow %d\'s too' % (index, shown(flow['name']), seen[flow['name']]))
        seen[flow['name']] = index
        if flow['source_port'] is None:
            flow['source_port'] = SOURCE_PORT_FIRST + index
        # the flows of an order share the twin's conntrack table: one connection's two ways, or one connection
        # twice, would meet a state that is not NEW
        tuple_ = (flow['protocol'], flow['source'], flow['source_port'], flow['destination'], flow['destination_port'])
        reverse = (flow['protocol'], flow['destination'], flow['destination_port'], flow['source'], flow['source_port'])
        other = ends.get(tuple_) or ends.get(reverse)
        if other:
            raise FlowError('flow %d is flow %d\'s connection (the same addresses and ports, either way): give it '
                            'another source port' % (index, other))
        ends[tuple_] = index
    return flows


# Orders


def unit_of(entry):
    """The unit that registers a hook point entry (chains.hook_points): the name it loads by."""
    if entry.get('backend') in ('iptables-legacy', 'iptables-nft'):
        return entry['backend']
    if entry.get('backend') == 'nftables':
        return 'nftables %s %s' % (entry['family'], entry['table'])
    return None  # an XDP program or tc filter: not loaded into a twin


def order_groups(hook_points, loaded):
    """The groups of ``loaded`` units that share a priority at one hook point: [(point, priority, [units in the
    order run], known)], ``known`` when ``nft list hooks`` gave that order."""
    groups = []
    for point in hook_points:
        by_priority = {}
        for entry in point['entries']:
            unit = unit_of(entry)
            if unit in loaded and entry.get('priority') is not None:
                units = by_priority.setdefault(entry['priority'], [])
                if unit not in units:
                    units.append(unit)
        for priority, units in sorted(by_priority.items()):
            if len(units) > 1:
                groups.append((point['point'], priority, units, point.get('order') == 'nft list hooks'))
    return groups


def runs_first(order, units):
    """Of ``units`` loaded in ``order``, the one registered last: it runs first."""
    return max(units, key=order.index)


def orders(units, groups, limit):
    """The load orders to replay: ``units`` (in the host's listing order) with those of ``groups`` permuted, one
    order for each distinct way the groups can run (the order of each group's units). Raises when more than
    ``limit`` orders are needed, or more than TIED_MAX units tie."""
    tied = [u for u in units if any(u in g[2] for g in groups)]
    if len(tied) > TIED_MAX:
        raise FlowError('%d filters share priorities at the host\'s hooks (%s); a twin replays the orders of at most '
                        '%d' % (len(tied), ', '.join(tied), TIED_MAX))
    found, seen = [], set()
    for permutation in itertools.permutations(tied):
        slots = iter(permutation)
        order = tuple(next(slots) if u in tied else u for u in units)
        key = tuple(tuple(sorted(g[2], key=order.index, reverse=True)) for g in groups)
        if key not in seen:
            seen.add(key)
            found.append(order)
            if len(found) > limit:
                raise FlowError('the host\'s hooks leave more than %d registration orders open (%s share priorities);'
                                ' raise max_orders to replay them all' % (limit, ', '.join(tied)))
    return found


def live_order(order, groups):
    """Whether ``order`` is the host's own where ``nft list hooks`` gave it: True, False, or None (not known)."""
    known = [g for g in groups if g[3]]
    if not known or len(known) != len(groups):
        return None
    return all(sorted(g[2], key=order.index, reverse=True) == g[2] for g in known)


# Limits


def host_limits(flow, interfaces, local, ovs_ports, incompatible, programs=()):
    """Why the host (its interfaces, local addresses, OVS ports, incompatible iptables-nft tables, the BPF programs
    ``bpftool net`` lists) keeps the twin from replaying ``flow``, or None."""
    for program in programs or ():
        if program.get('kind') == 'netfilter' or (program.get('kind') == 'tcx' and program.get('dev') == flow['interface']):
            return 'a BPF program (%s, id %s) is attached at %s: a twin replays netfilter rules only' % (
                program.get('name'), program.get('id'), 'a netfilter hook' if program['kind'] == 'netfilter' else
                'tcx on %s' % flow['interface'])
    iface = interfaces.get(flow['interface'])
    if iface is None:
        return 'interface %s does not exist on the host' % flow['interface']
    if iface.get('master_kind') or flow['interface'] in ovs_ports:
        return 'interface %s is a port of a %s: its packets go through it first' % (
            flow['interface'], iface.get('master_kind') or 'Open vSwitch bridge')
    if iface['kind'] not in _REPLAYED_KINDS:
        return 'interface %s is a %s: its packets take a way a twin\'s veth does not' % (flow['interface'], iface['kind'])
    if iface.get('link_type') == 'loopback':
        return 'interface %s is a loopback' % flow['interface']
    for program in iface.get('xdp') or []:
        return 'interface %s has an XDP program (%s, id %s): a twin replays netfilter only' % (
            flow['interface'], program.get('name'), program.get('id'))
    for direction, filters in sorted((iface.get('tc') or {}).items()):
        if filters:
            return 'interface %s has tc %s filters: a twin replays netfilter only' % (flow['interface'], direction)
    own, peer = ('destination', 'source') if flow['direction'] == 'in' else ('source', 'destination')
    if flow[own] not in local:
        return ('%s %s is no address of the host: the flow would be %s, and only flows the host receives or sends '
                'itself are replayed' % (own, flow[own], 'forwarded' if flow['direction'] == 'in' else 'not its own'))
    if flow[peer] in local:
        return '%s %s is an address of the host itself' % (peer, flow[peer])
    if incompatible:
        return 'iptables-nft cannot read table %s (native nft rules in its table): it cannot be copied' % incompatible[0]
    return None


def flow_packets(flow):
    """(the flow's packet, its answer) as matcher packets: the answer is what the host's stack sends back
    (a reset, or an ICMP port unreachable for UDP); conntrack's state is left unknown."""
    ends = (flow['source'], flow['destination'], flow['source_port'] or 1, flow['destination_port'])
    flags = ['SYN'] if flow['protocol'] == 'tcp' else []
    received = flow['direction'] == 'in'
    iif, oif = (flow['interface'], '') if received else ('', flow['interface'])
    packet = matcher.packet(flow['protocol'], ends[0], ends[1], ends[2], ends[3], iif, oif, flags, None)
    if flow['protocol'] == 'tcp':
        answer = matcher.packet('tcp', ends[1], ends[0], ends[3], ends[2], oif, iif, ['RST', 'ACK'], None)
    else:
        answer = matcher.packet('icmp', ends[1], ends[0], 0, 0, oif, iif, [], None)
    return packet, answer


def _xt_target(rule):
    """('-j' or '-g', its target) of an iptables-save rule, read as the shell would (a comment is one word), or
    (None, None)."""
    try:
        words = xtables.split_words(rule)
    except xtables.XtablesError:
        return None, None
    found = [(w, n) for w, n in zip(words, words[1:]) if w in ('-j', '--jump', '-g', '--goto')]
    return found[-1] if found else (None, None)


def _xt_uses(rule, marks_set):
    """What an iptables-save rule uses that a twin has not, or None."""
    try:
        words = xtables.split_words(rule)
    except xtables.XtablesError:
        return 'a rule that cannot be read'
    for index, word in enumerate(words[:-1]):
        value = words[index + 1]
        if word in ('-m', '--match') and value in _XT_MATCHES:
            return '-m %s (%s)' % (value, _XT_MATCHES[value])
        if word in ('-m', '--match') and value in _XT_MARK_MATCHES and not marks_set:
            return '-m %s (a mark no copied rule sets: another program\'s)' % value
        if word in ('-j', '--jump', '-g', '--goto') and value in _XT_TARGETS:
            return '-j %s (%s)' % (value, _XT_TARGETS[value])
    if 'limit' in words and any(w in ('ACCEPT', 'DROP', 'REJECT') for w in words):
        return '-m limit (a rate the host\'s traffic may have spent) with a verdict'
    return None


def _nft_rule_uses(expr, marks_set):
    """What an nft rule's expressions use that a twin has not, or None."""
    keys = set(next(iter(e)) for e in expr if isinstance(e, dict) and len(e) == 1)
    if 'limit' in keys and keys & set(['accept', 'drop', 'reject']):
        return 'limit (a rate the host\'s traffic may have spent) with a verdict'
    return _nft_uses(expr, marks_set)


def _nft_uses(value, marks_set):
    """What an nft JSON expression uses that a twin has not, or None."""
    if isinstance(value, list):
        for item in value:
            found = _nft_uses(item, marks_set)
            if found:
                return found
        return None
    if not isinstance(value, dict):
        return None
    for key, body in value.items():
        if key == 'mangle':
            continue  # a statement that sets a mark; what it sets comes from elsewhere in the rule
        if key in _NFT_EXPRS:
            return '%s (%s)' % (key, _NFT_EXPRS[key])
        if key == 'payload' and isinstance(body, dict) and (body.get('protocol') in ('ether', 'vlan', 'arp') or
                                                            body.get('base') == 'll'):
            return 'a link-layer header (the sender\'s MAC address)'
        if key == 'meta' and isinstance(body, dict):
            if body.get('key') in _NFT_META:
                return 'meta %s (%s)' % (body['key'], _NFT_META[body['key']])
            if body.get('key') == 'mark' and not marks_set:
                return 'meta mark (a mark no copied rule sets: another program\'s)'
        if key == 'ct' and isinstance(body, dict):
            if body.get('key') in _NFT_CT:
                return 'ct %s (%s)' % (body['key'], _NFT_CT[body['key']])
            if body.get('key') == 'mark' and not marks_set:
                return 'ct mark (a mark no copied rule sets: another program\'s)'
        found = _nft_uses(body, marks_set)
        if found:
            return found
    return None


def marks_set(xt_tables, objects):
    """Whether any copied rule sets a packet or connection mark (MARK, CONNMARK, meta/ct mark set)."""
    for table in xt_tables:
        for rules in table.rules.values():
            for rule in rules:
                if _xt_target(rule)[1] in _XT_MARKS_SET:
                    return True
    for rule in (o['rule'] for o in objects if 'rule' in o):
        for expr in rule.get('expr', []):
            key = (expr.get('mangle') or {}).get('key') if isinstance(expr, dict) else None
            if isinstance(key, dict) and (key.get('meta') or key.get('ct') or {}).get('key') == 'mark':
                return True
    return False


class RuleLimits:
    """What a host's rules use that a twin has not, found once per rule; and of it, what a flow's packet or its
    answer may reach. ``xt_tables`` are [(filter, IP version, xtables.Table)], ``objects`` the native tables'
    ``list ruleset`` objects."""

    def __init__(self, xt_tables, objects):
        marks = marks_set([t for dummy, dummy2, t in xt_tables], objects)
        self.xt_tables, self.objects = xt_tables, objects
        self.uses = {}  # (filter, table or (family, table), chain, index) -> what the rule uses
        for filter_name, ipver, table in xt_tables:
            for chain, rules in table.rules.items():
                for index, rule in enumerate(rules):
                    uses = _xt_uses(rule, marks)
                    if uses:
                        self.uses[(filter_name, (ipver, table.name), chain, index)] = uses
        places = {}
        for rule in (o['rule'] for o in objects if 'rule' in o):
            key = (rule['family'], rule['table'], rule['chain'])
            index = places[key] = places.get(key, -1) + 1
            uses = _nft_rule_uses(rule.get('expr', []), marks)
            if uses:
                self.uses[('nftables', key[:2], key[2], index)] = uses
        self.tables = set(k[:2] for k in self.uses)

    def of(self, flow):
        """'rule X uses Y' for the first such rule the flow's packet or its answer may reach, or None."""
        families = ('ip', 'inet') if flow['ipver'] == 4 else ('ip6', 'inet')
        xt_tables = [(f, t) for f, ipver, t in self.xt_tables
                     if ipver == flow['ipver'] and (f, (ipver, t.name)) in self.tables]
        chains = [c for c in (o['chain'] for o in self.objects if 'chain' in o)
                  if ('nftables', (c['family'], c['table'])) in self.tables and c.get('hook') not in (None, 'forward') and
                  (c['family'] in families or (c['family'] == 'netdev' and flow['interface'] in _devices(c)))]
        for pkt in flow_packets(flow):
            for filter_name, table in xt_tables:
                for chain in [c for c in table.policies if c in XT_HOOKS and c != 'FORWARD']:
                    for name, index, rule in matcher.xtables_reachable(table, chain, pkt):
                        uses = self.uses.get((filter_name, (flow['ipver'], table.name), name, index))
                        if uses:
                            return 'rule %d of %s %s %s (%s) uses %s' % (
                                index + 1, filter_name, table.name, name, clip(rule, 120), uses)
            for chain in chains:
                for name, index, rule in matcher.nft_reachable(self.objects, chain['family'], chain['table'],
                                                               chain['name'], pkt):
                    uses = self.uses.get(('nftables', (chain['family'], chain['table']), name, index))
                    if uses:
                        return 'rule %d of nftables %s %s %s uses %s' % (
                            index + 1, chain['family'], chain['table'], name, uses)
        return None


def _devices(chain):
    return chain.get('dev') if isinstance(chain.get('dev'), list) else [chain.get('dev')]


# Counters and verdicts


_XT_COUNTED = re.compile(r'^\[(\d+):(\d+)\] -A (\S+) (.*)$')
_XT_POLICY = re.compile(r'^:(\S+) (\S+) \[(\d+):(\d+)\]$')


def xt_counters(text):
    """``*-save -c`` output -> {(table, chain, position): packets}, position 'policy' for a built-in chain's
    policy, else the rule's 1-based place; and {(table, chain, position): rule text}."""
    counts, texts, table, positions = {}, {}, None, {}
    for line in text.splitlines():
        if line.startswith('*'):
            table, positions = line[1:], {}
        elif line.startswith(':') and table:
            m = _XT_POLICY.match(line)
            if m and m.group(2) != '-':
                counts[(table, m.group(1), 'policy')] = int(m.group(3))
                texts[(table, m.group(1), 'policy')] = 'policy %s' % m.group(2)
        elif line.startswith('[') and table:
            m = _XT_COUNTED.match(line)
            if m:
                position = positions[m.group(3)] = positions.get(m.group(3), 0) + 1
                counts[(table, m.group(3), position)] = int(m.group(1))
                texts[(table, m.group(3), position)] = m.group(4)
    return counts, texts


def xt_action(text, chains):
    """What an iptables rule does to the packet it matches (``chains``: its table's chains): accept, drop,
    reject, return, jump:X, goto:X, nat, or None (it goes on); a policy ('policy DROP') accepts or drops."""
    if text.startswith('policy '):
        return 'drop' if text.lower().endswith('drop') else 'accept'
    word, value = _xt_target(text)
    if value in _XT_ENDS:
        return _XT_ENDS[value]
    if value in chains:
        return ('jump:' if word in ('-j', '--jump') else 'goto:') + value
    return 'nat' if value in _XT_NAT_TARGETS else None  # none, LOG, MARK ...: the packet goes on


_XT_ENDS = {'ACCEPT': 'accept', 'DROP': 'drop', 'REJECT': 'reject', 'RETURN': 'return'}
_XT_NAT_TARGETS = frozenset(['DNAT', 'SNAT', 'MASQUERADE', 'REDIRECT', 'NETMAP'])


def nft_action(expr):
    """xt_action's counterpart for an nft JSON rule's expressions."""
    for item in expr:
        if not isinstance(item, dict) or len(item) != 1:
            continue
        key, body = next(iter(item.items()))
        if key in ('accept', 'drop', 'reject', 'return'):
            return key
        if key in ('jump', 'goto') and isinstance(body, dict):
            return '%s:%s' % (key, body.get('target'))
        if key in ('dnat', 'snat', 'masquerade', 'redirect'):
            return 'nat'
        if key == 'vmap':
            return 'vmap'
    return None


def nft_targets(value):
    """'jump:X' and 'goto:X' of every chain an nft JSON expression (a rule's, or a map's elements) sends to."""
    if isinstance(value, list):
        return [t for item in value for t in nft_targets(item)]
    if not isinstance(value, dict):
        return []
    found = []
    for key, body in value.items():
        if key in ('jump', 'goto') and isinstance(body, dict) and isinstance(body.get('target'), str):
            found.append('%s:%s' % (key, body['target']))
        else:
            found += nft_targets(body)
    return found


def chain_hooks(chains):
    """{chain: set of hooks that reach it} for one table: ``chains`` maps a chain to (its hook or None, [actions of
    its rules, or the 'jump:X'/'goto:X' they send to]); a user chain takes the hooks of the chains that send to it."""
    hooks = dict((name, set([hook]) if hook else set()) for name, (hook, dummy) in chains.items())
    changed = True
    while changed:
        changed = False
        for name, (dummy, actions) in chains.items():
            for action in actions:
                target = action.split(':', 1)[1] if action and action.startswith(('jump:', 'goto:')) else None
                if target in hooks and not hooks[name] <= hooks[target]:
                    hooks[target] |= hooks[name]
                    changed = True
    return hooks


def side(item, matches):
    """Whose a rule of a chain both the packet and its answer pass is: 'packet' or 'answer' when its matches
    (``matches``: [the packet's, the answer's], matcher.YES/NO/MAYBE) cannot take the other, else None."""
    if matches[1] == matcher.NO and matches[0] != matcher.NO:
        return 'packet'
    if matches[0] == matcher.NO and matches[1] != matcher.NO:
        return 'answer'
    return None


def _witness_filter(item):
    return 'nftables' if item['filter'] == 'iptables-nft' else item['filter']  # nft_do_chain runs both


def decide(direction, outcome, counted, witnessed):
    """The flow's verdict from what the twin saw.

    ``counted`` are the rules and policies whose counters the flow raised (by the hook, then the priority and
    registration of their base chain), each {filter, family, table, chain, position, rule, action, hooks, and
    ``side`` where its matches tell whose it is};
    ``outcome`` the probe's (refused, unreachable: an answer came; dropped, timeout: none); ``witnessed`` the
    filters the drop witness saw drop a packet. A rule of a chain that both the packet and its answer pass (or
    whose hooks are not known) is the packet's or the answer's: when the verdict would rest on one, it is
    'undetermined'. Returns (verdict, the rule that decided or None, why, the packet's path, its answer's path,
    the rules counted in shared chains).
    """
    own, other = (RECEIVE_HOOKS, SEND_HOOKS) if direction == 'in' else (SEND_HOOKS, RECEIVE_HOOKS)
    path = [c for c in counted if c.get('side') == 'packet' or
            (c.get('side') is None and c['hooks'] & own and not c['hooks'] & other)]
    answer = [c for c in counted if c.get('side') == 'answer' or
              (c.get('side') is None and c['hooks'] & other and not c['hooks'] & own)]
    shared = [c for c in counted if c not in path and c not in answer]
    if outcome in ('refused', 'unreachable'):
        rejects = [c for c in path if c['action'] == 'reject']
        if rejects:
            return 'rejected', rejects[-1], 'a reject rule answered', path, answer, shared
        if any(c['action'] == 'reject' for c in shared):
            return UNDETERMINED, None, 'a reject rule of a chain the answer passes too counted', path, answer, shared
        return 'accepted', None, 'the host\'s stack answered (%s)' % (
            'a reset' if outcome == 'refused' else 'an ICMP error'), path, answer, shared
    drops = [c for c in path if c['action'] in ('drop', 'reject')] or \
        [c for c in path if c['action'] == 'vmap' and _witness_filter(c) in witnessed]
    if drops:  # a reject whose answer never reached the sender is a drop to it
        why = 'no answer; its counter rose'
        if drops[-1]['action'] == 'reject':
            why += ' (a reject: its answer did not reach the sender)'
        return 'dropped', drops[-1], why, path, answer, shared
    if any(c['action'] in ('drop', 'reject', 'vmap') for c in shared):
        return UNDETERMINED, None, 'no answer; a drop of a chain the answer passes too counted', path, answer, shared
    answer_drops = [c for c in answer if c['action'] in ('drop', 'reject')]
    if answer_drops:
        return ('accepted', answer_drops[-1], 'accepted, but the answer was dropped on its way back', path, answer,
                shared)
    if witnessed:
        return ('dropped', None, 'no answer; the drop witness saw %s drop it, no counter says which rule'
                % ', '.join(sorted(witnessed)), path, answer, shared)
    return UNDETERMINED, None, 'no answer, and neither a counter nor the drop witness says why', path, answer, shared
