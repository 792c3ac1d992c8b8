# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each base chain at a hook does, and the order of everything at each hook point (pure data).

A base chain is read for what the audit needs: its policy, the rules it reaches
(through jumps), which of them accept and which drop, and whether it drops
unconditionally (a drop policy, or a drop rule without any match). An accept is
summed up by the part of its match this reading models, its ``scope``: protocol,
destination port, conntrack state (established/related only, or any), input and
output interface. Anything else in a rule makes its scope narrower than stated,
never wider.

Hook points are ordered as the kernel runs them: by priority, lowest first. At
equal priority the hook registered last runs first, and no interface shows that
order on kernels without ``nft list hooks``: such entries are marked as a tie,
never put in an order that was not read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils import hooks, nft, xtables

ANY = '*'
_XT_VERDICTS = {'ACCEPT': 'accept', 'DROP': 'drop', 'REJECT': 'drop'}
_XT_IGNORED = frozenset(['-m', '--comment', '--match'])
_XT_SCOPE = {'-p': 'proto', '--protocol': 'proto', '--dport': 'dport', '--destination-port': 'dport',
             '--dports': 'dport', '--destination-ports': 'dport', '-i': 'iif', '--in-interface': 'iif',
             '-o': 'oif', '--out-interface': 'oif', '--ctstate': 'ct', '--state': 'ct'}
_XT_NAMES = frozenset(['tcp', 'udp', 'sctp', 'multiport', 'conntrack', 'state', 'comment'])
_NFT_VERDICTS = {'accept': 'accept', 'drop': 'drop', 'reject': 'drop'}
_NFT_NEUTRAL = frozenset(['counter', 'comment', 'log'])
_DEPTH = 16
# Receive and send paths of one device, in the kernel's order (DESIGN.md).
INGRESS_LAYERS = ('xdp', 'tc', 'nft-netdev')
EGRESS_LAYERS = ('nft-netdev', 'tc')
IP_HOOKS = ('prerouting', 'input', 'forward', 'output', 'postrouting')
_IPVER_FAMILIES = {'ip': ('ipv4',), 'ip6': ('ipv6',), 'inet': ('ipv4', 'ipv6')}


def _scope(fields):
    out = dict(proto=ANY, dport=ANY, ct=ANY, iif=ANY, oif=ANY)
    out.update((k, v) for k, v in fields.items() if v is not None)
    return out


def _ct_scope(states):
    states = set(s.lower() for s in states)
    return 'established' if states and states <= set(['established', 'related']) else ANY


def describe(fields, other, verdict):
    """A rule in short from its modelled fields: 'tcp dport 80 ... accept' ('...': matches not modelled)."""
    words = ['%s %s' % (k, fields[k]) if k != 'proto' else fields[k] for k in ('proto', 'dport', 'ct', 'iif', 'oif')
             if fields.get(k) not in (None, ANY)]
    return ' '.join(words + (['...'] if other else []) + [verdict or 'continue'])


def covers(outer, inner):
    """Whether accept scope ``outer`` takes in every packet of scope ``inner``."""
    return all(outer[k] in (ANY, inner[k]) for k in ('proto', 'dport', 'ct', 'iif', 'oif'))


class View:
    """One base chain as the audit reads it.

    ``accepts``: [(scope, rule text, exact)], exact when the rule matches on nothing but its scope;
    ``drops``: rule texts that drop; ``unconditional_drop``: the policy or rule that drops every packet
    reaching it, or None; ``reached``: the user chains its jumps reach.
    """

    def __init__(self, backend, family, table, chain, kind, hook, priority, policy, rules, device=None):
        self.backend, self.family, self.table, self.chain = backend, family, table, chain
        self.type, self.hook, self.priority, self.policy, self.device = kind, hook, priority, policy, device
        self.rules = rules
        self.accepts, self.drops, self.reached = [], [], []
        self.unconditional_drop = 'policy drop' if policy == 'drop' else None

    def record(self, verdict, fields, other, text, top):
        """A rule that accepts or drops; ``top``: in the base chain itself, where a drop without any match
        drops every packet that reaches it."""
        if verdict == 'accept':
            self.accepts.append((_scope(fields), text, not other))
            return
        self.drops.append(text)
        if top and not fields and not other and self.unconditional_drop is None:
            self.unconditional_drop = text

    @property
    def filters(self):
        return self.type == 'filter' and bool(self.drops or self.unconditional_drop)

    def name(self):
        return '%s %s %s %s' % (self.backend, self.family, self.table, self.chain)

    def entry(self):
        out = dict(backend=self.backend, family=self.family, table=self.table, chain=self.chain, type=self.type,
                   priority=self.priority, policy=self.policy, rules=self.rules, accepts=len(self.accepts),
                   drops=len(self.drops), filters=self.filters)
        if self.device is not None:
            out['device'] = self.device
        return out


def _xt_read(table, chain_name, view, depth=0, top=True, narrowed=False):
    for rule in table.rules.get(chain_name, []) if depth <= _DEPTH else []:
        try:
            words = xtables.split_words(rule)
        except xtables.XtablesError:
            words = ['?']  # quotes the reading cannot split: a rule of unknown match and verdict
        target, fields, other, index, negated = None, {}, narrowed, 0, False
        while index < len(words):
            word = words[index]
            value = words[index + 1] if index + 1 < len(words) else ''
            if word in ('-j', '--jump', '-g', '--goto'):
                target = value
                break
            if word == '!':  # the next match is negated: not a scope, only narrower
                other = negated = True
                index += 1
                continue
            if negated and word in _XT_SCOPE:
                index += 2
            elif word in _XT_SCOPE:
                key = _XT_SCOPE[word]
                fields[key] = _ct_scope(value.split(',')) if key == 'ct' else value
                index += 2
            elif word in _XT_IGNORED or word in _XT_NAMES:
                index += 2 if word == '--comment' else 1
            else:
                other = True
                index += 1
            negated = False
        text = '-A %s %s' % (chain_name, rule)
        verdict = _XT_VERDICTS.get(target)
        if verdict in ('accept', 'drop'):
            view.record(verdict, fields, other, text, top)
        elif target in table.policies and target not in view.reached:
            view.reached.append(target)  # what it accepts there is narrowed by this rule's match
            _xt_read(table, target, view, depth + 1, False, narrowed or other or bool(fields))


def xtables_views(backend, family, table):
    """Views of the built-in chains of an xtables.Table (iptables-legacy or iptables-nft)."""
    views = []
    for hook, priority in hooks.LEGACY_HOOKS.get(table.name, ()):
        chain = hook.upper()
        if chain not in table.policies:
            continue
        policy = table.policies[chain].lower()
        view = View(backend, family, table.name, chain, 'nat' if table.name == 'nat' else 'filter', hook, priority,
                    policy if policy in ('accept', 'drop') else 'accept', len(table.rules.get(chain, [])))
        _xt_read(table, chain, view)
        views.append(view)
    return views


def _nft_value(right):
    if isinstance(right, (str, int)):
        return str(right)
    return None  # a set, a range, a map: more than one value


def _nft_match(expr, fields):
    """Put a match into ``fields`` when this reading models it; False when it does not."""
    left, right, op = expr.get('left'), expr.get('right'), expr.get('op', '==')
    if not isinstance(left, dict):
        return False
    if 'payload' in left and isinstance(left['payload'], dict) and left['payload'].get('field') == 'dport':
        fields['proto'] = left['payload'].get('protocol')
        value = _nft_value(right) if op == '==' else None
        fields['dport'] = value
        return value is not None
    meta = left.get('meta', {}).get('key') if isinstance(left.get('meta'), dict) else None
    if meta in ('l4proto', 'iifname', 'oifname') and op == '==' and _nft_value(right) is not None:
        fields[{'l4proto': 'proto', 'iifname': 'iif', 'oifname': 'oif'}[meta]] = _nft_value(right)
        return True
    ct = left.get('ct', {}).get('key') if isinstance(left.get('ct'), dict) else None
    if ct == 'state' and op in ('==', 'in'):
        fields['ct'] = _ct_scope(right if isinstance(right, list) else [right] if isinstance(right, str) else [])
        return True
    return False


def _nft_read(rules, chain_name, view, depth=0, top=True, narrowed=False):
    for rule in rules.get(chain_name, []) if depth <= _DEPTH else []:
        fields, other, verdict, target = {}, narrowed, None, None
        for expr in rule.get('expr', []):
            if not isinstance(expr, dict) or not expr:
                continue
            kind = next(iter(expr))
            if kind == 'match':
                other = not _nft_match(expr['match'], fields) or other
            elif kind in _NFT_VERDICTS:
                verdict = _NFT_VERDICTS[kind]
            elif kind in ('jump', 'goto') and isinstance(expr[kind], dict):
                target = expr[kind].get('target')
            elif kind == 'xt' and isinstance(expr['xt'], dict) and expr['xt'].get('type') == 'target':
                verdict = _XT_VERDICTS.get(expr['xt'].get('name'), verdict)  # iptables-nft's REJECT, LOG
            elif kind not in _NFT_NEUTRAL:
                other = True  # xt matches too
        text = '%s: %s (handle %s)' % (chain_name, describe(fields, other, verdict or (target and 'jump')),
                                       rule.get('handle'))
        if verdict in ('accept', 'drop'):
            view.record(verdict, fields, other, text, top)
        elif target and target in rules and target not in view.reached:
            view.reached.append(target)
            _nft_read(rules, target, view, depth + 1, False, narrowed or other or bool(fields))


def nft_views(objects, owners, skip=()):
    """Views of every base chain in ``list ruleset`` objects but those of the tables in ``skip``; ``owners``
    maps (family, table) to the backend that owns the table ('iptables-nft'; others are 'nftables')."""
    views, tables = [], {}
    for obj in objects or []:
        body = obj.get('chain') or obj.get('rule')
        if body is not None:
            tables.setdefault((body['family'], body['table']), []).append(obj)
    for (family, table), listed in sorted(tables.items()):
        if (family, table) in skip:
            continue
        chains, rules = nft.by_chain(listed)
        for name, chain in sorted(chains.items()):
            if not chain.get('hook'):
                continue
            view = View(owners.get((family, table), 'nftables'), family, table, name, chain.get('type', 'filter'),
                        chain['hook'], chain.get('prio', 0), chain.get('policy', 'accept'), len(rules.get(name, [])),
                        device=chain.get('dev'))
            _nft_read(rules, name, view)
            views.append(view)
    return views


def points(view):
    """The hook points a base chain sits at: 'ipv4/input', 'bridge/forward', 'ingress/eth0' ..."""
    if view.hook in ('ingress', 'egress'):
        devices = view.device if isinstance(view.device, list) else [view.device or '?']
        return ['%s/%s' % (view.hook, d) for d in devices]
    return ['%s/%s' % (ipver, view.hook) for ipver in _IPVER_FAMILIES.get(view.family, (view.family,))]


def _attachment_entries(interfaces):
    """Entries of XDP and tc programs, by hook point."""
    out = {}
    for iface in interfaces:
        for prog in iface.get('xdp', []):
            out.setdefault('ingress/' + iface['name'], []).append(dict(
                layer='xdp', backend='xdp-' + prog['mode'], name=prog.get('name'), id=prog.get('id'),
                priority=None, filters=True))
        for direction in ('ingress', 'egress'):
            for flt in iface.get('tc', {}).get(direction, []):
                out.setdefault('%s/%s' % (direction, iface['name']), []).append(dict(
                    layer='tc', backend='tc-' + flt['kind'], name=flt.get('name'), id=flt.get('id'),
                    priority=flt.get('pref'), filters=flt.get('drops', True)))
    return out


def _ties(entries):
    by_priority = {}
    for entry in entries:
        if entry['layer'] == 'netfilter' or entry['layer'] == 'nft-netdev':
            by_priority.setdefault((entry['layer'], entry['priority']), []).append(entry)
    return [group for group in by_priority.values() if len(group) > 1]


def hook_points(views, interfaces, listed_order=None):
    """[{point, order, entries}] for every hook point where something runs, in the kernel's order.

    ``listed_order`` ({point: [(family, table, chain) or ('legacy', family, table)]}) is the order
    ``nft list hooks`` showed; without it equal priorities are ties.
    """
    found = _attachment_entries(interfaces)
    for view in views:
        for point in points(view):
            layer = 'nft-netdev' if view.hook in ('ingress', 'egress') else 'netfilter'
            found.setdefault(point, []).append(dict(view.entry(), layer=layer))
    out = []
    for point in sorted(found, key=_point_key):
        direction = point.split('/')[0]
        layers = INGRESS_LAYERS if direction == 'ingress' else EGRESS_LAYERS if direction == 'egress' else ()
        known = (listed_order or {}).get(point)
        entries = sorted(found[point], key=lambda e: (
            layers.index(e['layer']) if e['layer'] in layers else 0, e['priority'] if e['priority'] is not None else 0,
            _listed_index(known, e) if known is not None else 0))
        for entry in entries:
            entry['tie'] = False
        for group in _ties(entries):  # the kernel's order among equal priorities, where it names every entry
            if known is None or not all(_listed_index(known, e) < len(known) for e in group):
                for entry in group:
                    entry['tie'] = True
        out.append(dict(point=point, order='priority' if known is None else 'nft list hooks', entries=entries))
    return out


def _listed_index(known, entry):
    key = (('legacy', entry['family'], entry['table']) if entry['backend'] == 'iptables-legacy'
           else (entry['family'], entry['table'], entry['chain']))
    return known.index(key) if key in known else len(known)


def _point_key(point):
    family, dummy, hook = point.partition('/')
    rank = {'ingress': 0, 'ipv4': 1, 'ipv6': 2, 'bridge': 3, 'arp': 4, 'egress': 5}.get(family, 6)
    return rank, IP_HOOKS.index(hook) if hook in IP_HOOKS else 0, hook
