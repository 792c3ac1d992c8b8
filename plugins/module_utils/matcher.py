# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a probe's packet can do in a chain: which LOG rules it hits, and the chain's verdict.

A conservative reading of the rules, three-valued: a rule matches the packet
(YES), cannot match it (NO), or depends on something this reading does not model
(MAYBE). Modelled: protocol, addresses, ports, interfaces, TCP flags, conntrack
state (NEW for the SYN, ESTABLISHED for the SYN-ACK), comments, jumps to user
chains, and the verdicts accept, drop, reject and return; anything else is MAYBE,
never guessed. The report predicts a trace only from this, so a LOG rule that
cannot match the probe (udp port 53) is not expected to write, and one whose match
is not modelled may write or not.

A walk gives the LOG prefixes the packet meets in order, each certain or not, and
the chain's verdict: 'accept', 'drop', or 'maybe' (drops or not, unknown here).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.pflab.netfilter.plugins.module_utils import nft, xtables

YES, NO, MAYBE = 'yes', 'no', 'maybe'
_DEPTH = 16  # jumps followed before the reading gives up (MAYBE)
_PROTOCOLS = {'tcp': 'tcp', '6': 'tcp', 'udp': 'udp', '17': 'udp', 'icmp': 'icmp', '1': 'icmp', 'all': None, '0': None}
# iptables targets that let the packet go on through the chain
_GOES_ON = frozenset(['LOG', 'NFLOG', 'MARK', 'CONNMARK', 'TRACE', 'TOS', 'DSCP', 'TTL', 'TCPMSS', 'CLASSIFY',
                      'CT', 'NOTRACK', 'AUDIT', 'SET'])
_STOPS = {'ACCEPT': 'accept', 'DROP': 'drop', 'REJECT': 'drop'}
_TCP_FLAGS = ('FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR')


def packet(proto, saddr, daddr, sport, dport, iif, oif, flags, ct_state):
    return dict(proto=proto, saddr=saddr, daddr=daddr, sport=int(sport), dport=int(dport), iif=iif or '',
                oif=oif or '', flags=frozenset(flags), ct_state=ct_state.lower() if ct_state else None,
                ipver=6 if ':' in saddr else 4)


def _and(a, b):
    if NO in (a, b):
        return NO
    return MAYBE if MAYBE in (a, b) else YES


def _negate(value, negated):
    if not negated or value == MAYBE:
        return value
    return NO if value == YES else YES


def _in_networks(address, text):
    try:
        return YES if any(ipaddress.ip_address(address) in ipaddress.ip_network(net, strict=False)
                          for net in text.split(',')) else NO
    except ValueError:
        return MAYBE


def _in_ports(port, text):
    try:
        for item in text.split(','):
            low, dummy, high = item.partition(':')
            if int(low or 0) <= port <= int(high or low or 65535):
                return YES
    except ValueError:
        return MAYBE
    return NO


def _iface(name, pattern):
    if pattern.endswith('+'):
        return YES if name.startswith(pattern[:-1]) else NO
    return YES if name == pattern else NO


class _Walk:
    """Walks chains for one packet. ``lookup(chain)`` gives a chain's rules (None: no such chain);
    ``reading(rule, packet)`` gives (LOG prefixes with the match they are under, the rule's match,
    its verdict or None, the (chain, 'jump'|'goto') it passes to or None)."""

    def __init__(self, pkt, lookup, reading):
        self.pkt = pkt
        self.lookup = lookup
        self.reading = reading
        self.logs = []

    def chain(self, name, sure, depth=0):
        """Walk chain ``name``, reached for sure when ``sure``; the set of ways it can end: 'accept',
        'drop', 'return' (a return, or off its end) and 'maybe' (a verdict this reading does not know)."""
        rules = self.lookup(name)
        if rules is None or depth > _DEPTH:  # not a chain here (an unknown target), or too deep
            return set(['maybe', 'return'])
        ends = set()
        for rule in rules:
            logs, match, verdict, target = self.reading(rule, self.pkt)
            self.logs += [{'prefix': prefix, 'certain': sure and at == YES} for prefix, at in logs if at != NO]
            if match == NO:
                continue
            certain = sure and match == YES
            if target is not None:
                inner = self.chain(target[0], certain, depth + 1)
                outcomes = set((None if target[1] == 'jump' else 'return') if o == 'return' else o for o in inner)
            else:
                outcomes = set([verdict, None]) if verdict == 'maybe' else set([verdict])
            if match == MAYBE:
                outcomes.add(None)
            if outcomes == set([None]):
                continue
            ends |= outcomes - set([None])
            if certain and None not in outcomes:
                return ends
            sure = False
        return ends | set(['return'])


def _verdict(ends, policy):
    """One verdict for a base chain: 'accept', 'drop', or 'maybe' when it can end more than one way."""
    verdicts = set(policy if end == 'return' else end for end in ends)
    return verdicts.pop() if len(verdicts) == 1 and verdicts <= set(['accept', 'drop']) else 'maybe'


def _xt_reading(rule, pkt):
    """The reading (see _Walk) of one iptables-save rule: matches first, then its target."""
    try:
        words = xtables.split_words(rule)
    except xtables.XtablesError:
        return [], MAYBE, 'maybe', None
    at = [i for i, word in enumerate(words) if word in ('-j', '--jump', '-g', '--goto')]
    matches, jump = (words[:at[0]], words[at[0]:at[0] + 2]) if at else (words, [])
    match, negated, index = YES, False, 0
    while index < len(matches):
        word = matches[index]
        value = matches[index + 1] if index + 1 < len(matches) else ''
        if word == '!':
            negated, index = True, index + 1
            continue
        result, step = _xt_match(word, value, matches[index + 2] if index + 2 < len(matches) else '', pkt)
        match = _and(match, _negate(result, negated))
        if step is None:
            break
        negated = False
        index += step
    logs, verdict, target = [], None, None
    if len(jump) == 2:
        kind, value = jump
        if value in _STOPS:
            verdict = _STOPS[value]
        elif value == 'RETURN':
            verdict = 'return'
        elif value == 'LOG':
            logs = [_option(words, '--log-prefix').strip()]
        elif value not in _GOES_ON:  # a user chain, or a target this reading does not know
            target = (value, 'jump' if kind in ('-j', '--jump') else 'goto')
    return [(prefix, match) for prefix in logs], match, verdict, target


def _xt_match(word, value, third, pkt):
    """(result, words used) of the match option ``word`` with its ``value`` (and a ``third`` word)."""
    if word in ('-p', '--protocol'):
        wanted = _PROTOCOLS.get(value.lower(), 'other')
        return (YES if wanted is None or wanted == pkt['proto'] else NO), 2
    if word in ('-s', '--source', '--src'):
        return _in_networks(pkt['saddr'], value), 2
    if word in ('-d', '--destination', '--dst'):
        return _in_networks(pkt['daddr'], value), 2
    if word in ('-i', '--in-interface'):
        return _iface(pkt['iif'], value), 2
    if word in ('-o', '--out-interface'):
        return _iface(pkt['oif'], value), 2
    if word in ('--dport', '--destination-port', '--dports', '--destination-ports'):
        return _in_ports(pkt['dport'], value), 2
    if word in ('--sport', '--source-port', '--sports', '--source-ports'):
        return _in_ports(pkt['sport'], value), 2
    if word == '--ports':
        return (YES if YES in (_in_ports(pkt['sport'], value), _in_ports(pkt['dport'], value)) else NO), 2
    if word == '--syn':
        return (YES if pkt['flags'] & set(['SYN', 'RST', 'ACK', 'FIN']) == set(['SYN']) else NO), 1
    if word == '--tcp-flags':
        mask, comp = set(value.upper().split(',')), set(third.upper().split(','))
        mask = set(_TCP_FLAGS) if 'ALL' in mask else mask
        comp = set(_TCP_FLAGS) if 'ALL' in comp else comp - set(['NONE'])
        return (YES if pkt['flags'] & mask == comp else NO), 3
    if word in ('--state', '--ctstate'):
        states = set(value.lower().split(','))
        if pkt['ct_state'] is None or states & set(['dnat', 'snat']):
            return MAYBE, 2  # before conntrack, or a NAT state this reading does not model
        return (YES if pkt['ct_state'] in states else NO), 2
    if word in ('-m', '--match', '--comment'):
        return YES, 2
    return MAYBE, None  # a match this reading does not model: its values are not known, so nothing after it is read


def _option(words, name):
    found = [words[i + 1] for i, w in enumerate(words[:-1]) if w == name]
    return found[0] if found else ''


def xtables_walk(table, chain, pkt):
    """The walk of built-in chain ``chain`` of an xtables.Table (its policy ends it): {logs, verdict}."""
    walk = _Walk(pkt, lambda name: table.rules.get(name) if name in table.policies else None, _xt_reading)
    ends = walk.chain(chain, True)
    return {'logs': walk.logs, 'verdict': _verdict(ends, 'drop' if table.policies.get(chain) == 'DROP' else 'accept')}


_NFT_META = {'iifname': 'iif', 'oifname': 'oif'}
# nft statements that let the packet go on, and ones that only match (rate, quota)
_NFT_GOES_ON = frozenset(['counter', 'comment', 'mangle', 'notrack', 'dup', 'set', 'map', 'ct helper', 'ct timeout'])
_NFT_MATCHING = frozenset(['limit', 'quota', 'numgen', 'fib', 'osf', 'socket'])
_TCP_FLAGS_FIELD = {'payload': {'protocol': 'tcp', 'field': 'flags'}}


def _flag_set(value):
    values = value if isinstance(value, list) else [value]
    return frozenset(('%s' % v).upper() for v in values if isinstance(v, str))


def _nft_value(value, pkt_value):
    """Whether ``pkt_value`` equals, or lies in, an nft JSON right-hand side."""
    if isinstance(value, dict) and 'set' in value:
        return YES if YES in [_nft_value(v, pkt_value) for v in value['set']] else \
            (MAYBE if MAYBE in [_nft_value(v, pkt_value) for v in value['set']] else NO)
    if isinstance(value, dict) and 'range' in value:
        low, high = value['range']
        if isinstance(low, int) and isinstance(high, int) and isinstance(pkt_value, int):
            return YES if low <= pkt_value <= high else NO
        return MAYBE
    if isinstance(value, dict) and 'prefix' in value:
        try:
            net = ipaddress.ip_network('%s/%s' % (value['prefix']['addr'], value['prefix']['len']), strict=False)
            return YES if ipaddress.ip_address(pkt_value) in net else NO
        except (ValueError, KeyError, TypeError):
            return MAYBE
    if isinstance(value, str) and value.startswith('@'):
        return MAYBE  # a named set: its elements are not read
    if isinstance(value, str) and value.endswith('*') and isinstance(pkt_value, str):
        return YES if pkt_value.startswith(value[:-1]) else NO  # iifname "ab12*"
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return YES if value == pkt_value or ('%s' % value) == ('%s' % pkt_value) else NO
    return MAYBE


def _nft_match(expr, pkt):
    left, right, op = expr.get('left'), expr.get('right'), expr.get('op', '==')
    if not isinstance(left, dict) or op not in ('==', '!=', 'in'):
        return MAYBE
    masked = left.get('&')
    if isinstance(masked, list) and len(masked) == 2 and masked[0] == _TCP_FLAGS_FIELD and pkt['proto'] == 'tcp':
        # tcp flags syn / syn,ack: the flags under the mask equal the right side
        mask = _flag_set(masked[1])
        return _negate(YES if pkt['flags'] & mask == _flag_set(right) & mask else NO, op == '!=')
    if 'payload' in left and isinstance(left['payload'], dict):
        protocol, field = left['payload'].get('protocol'), left['payload'].get('field')
        if protocol in ('tcp', 'udp'):
            if pkt['proto'] != protocol:
                return NO  # the implicit "meta l4proto" nft puts before a transport match
            if field == 'flags':
                if op == 'in':  # tcp flags syn: any of them set
                    return YES if _flag_set(right) & pkt['flags'] else NO
                return _negate(YES if _flag_set(right) == pkt['flags'] else NO, op == '!=')
            if field in ('sport', 'dport'):
                return _negate(_nft_value(right, pkt[field]), op == '!=')
            return MAYBE
        if protocol in ('ip', 'ip6'):
            if pkt['ipver'] != (4 if protocol == 'ip' else 6):
                return NO  # the implicit "meta nfproto" of an ip or ip6 match in an inet table
            if field in ('saddr', 'daddr'):
                return _negate(_nft_value(right, pkt[field]), op == '!=')
            if field in ('protocol', 'nexthdr'):
                return _negate(_nft_value(right, pkt['proto']), op == '!=')
        return MAYBE
    if 'meta' in left and isinstance(left['meta'], dict):
        key = left['meta'].get('key')
        if key == 'l4proto':
            return _negate(_nft_value(right, pkt['proto']), op == '!=')
        if key in _NFT_META:
            return _negate(_nft_value(right, pkt[_NFT_META[key]]), op == '!=')
        if key == 'nfproto':
            return _negate(_nft_value(right, 'ipv%d' % pkt['ipver']), op == '!=')
        return MAYBE
    if 'ct' in left and isinstance(left['ct'], dict) and left['ct'].get('key') == 'state':
        if pkt['ct_state'] is None:
            return MAYBE  # before conntrack (priority -200 and lower) the state is not the connection's yet
        states = right.get('set') if isinstance(right, dict) else right
        states = states if isinstance(states, list) else [states]
        if not all(isinstance(s, str) for s in states):
            return MAYBE
        return _negate(YES if pkt['ct_state'] in [s.lower() for s in states] else NO, op == '!=')
    return MAYBE


def _nft_reading(rule, pkt):
    """The reading (see _Walk) of one nft JSON rule: its expressions in order, a log under the matches
    before it."""
    match, logs = YES, []
    for expr in rule.get('expr', []):
        if not isinstance(expr, dict) or len(expr) != 1:
            return logs, _and(match, MAYBE), 'maybe', None
        kind, body = next(iter(expr.items()))
        if kind == 'match':
            match = _and(match, _nft_match(body, pkt) if isinstance(body, dict) else MAYBE)
            if match == NO:
                return logs, NO, None, None
        elif kind == 'log':
            if not (isinstance(body, dict) and 'group' in body):  # a group goes to NFLOG, not the kernel log
                logs.append((('%s' % body.get('prefix', '')).strip() if isinstance(body, dict) else '', match))
        elif kind in ('accept', 'drop', 'reject'):
            return logs, match, 'accept' if kind == 'accept' else 'drop', None
        elif kind == 'return':
            return logs, match, 'return', None
        elif kind in ('jump', 'goto') and isinstance(body, dict) and isinstance(body.get('target'), str):
            return logs, match, None, (body['target'], kind)
        elif kind in _NFT_MATCHING or (kind == 'xt' and isinstance(body, dict) and body.get('type') == 'match'):
            match = _and(match, MAYBE)  # a match this reading does not model (a rate, a quota, an xtables match)
        elif kind not in _NFT_GOES_ON:
            return logs, _and(match, MAYBE), 'maybe', None  # dnat, queue, ...: it may end the chain
    return logs, match, None, None


def _reach(lookup, reading, name, pkt, out, path=(), depth=0):
    rules = lookup(name)
    if rules is None or depth > _DEPTH or name in path:
        return
    for index, rule in enumerate(rules):
        dummy, match, verdict, target = reading(rule, pkt)
        if match == NO:
            continue
        out.append((name, index, rule))
        if target is not None:
            _reach(lookup, reading, target[0], pkt, out, path + (name,), depth + 1)
        if match == YES and (verdict in ('accept', 'drop', 'return') or (target and target[1] == 'goto')):
            return


def xtables_matches(rule, pkt):
    """Whether an iptables-save rule's matches take the packet: YES, NO or MAYBE."""
    return _xt_reading(rule, pkt)[1]


def nft_matches(rule, pkt):
    """Whether an nft JSON rule's matches take the packet (before its verdict): YES, NO or MAYBE."""
    return _nft_reading(rule, pkt)[1]


def xtables_reachable(table, chain, pkt):
    """The rules of an xtables.Table the packet may reach from built-in chain ``chain`` (through jumps):
    [(chain, index, rule text)]. Only a rule that certainly ends the packet's way stops a chain's walk."""
    out = []
    _reach(lambda name: table.rules.get(name) if name in table.policies else None, _xt_reading, chain, pkt, out)
    return out


def nft_reachable(objects, family, table, chain, pkt):
    """nft_walk's counterpart of xtables_reachable: [(chain, index, rule)] of ``list ruleset`` objects."""
    chains, rules = nft.by_chain(objects, family, table)
    out = []
    _reach(lambda name: rules.get(name) if name in chains else None, _nft_reading, chain, pkt, out)
    return out


def nft_walk(objects, family, table, chain, pkt):
    """The walk of base chain ``chain`` of table ``family table`` in ``list ruleset`` objects: {logs, verdict}."""
    chains, rules = nft.by_chain(objects, family, table)
    walk = _Walk(pkt, lambda name: rules.get(name) if name in chains else None, _nft_reading)
    ends = walk.chain(chain, True)
    return {'logs': walk.logs, 'verdict': _verdict(ends, chains.get(chain, {}).get('policy', 'accept'))}
