# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's live rules replayed in a lab twin on this kernel, one flow's packet at a time.

reading (facts.read, read-only: the host is never changed and no packet is sent on it)
-> the units to load (iptables-legacy, iptables-nft, each native nftables table) and the
orders the host's hooks leave open (verdict.orders) -> for each order, a fresh lab
``tw-<pid>``, claimed like a scenario run's, whose namespace ``host`` carries each flow's
interface under the host's name with the host's addresses, joined by a veth to a peer
namespace per interface that carries the far ends -> the units loaded in that order
(what registers is observed, hooks.Registry) -> for each replayable flow: the rules'
counters, the packet sent for real under the drop witness, the counters again ->
verdict.decide. The lab is removed and released whatever happens.

Counters, not LOG rules, tell which rule decided: every copied nft rule gets a named
counter of the twin's just before its verdict (the host's own counters are left out),
and every nft base chain a last rule that only counts (the packets its policy took);
iptables rules and policies count on their own. Nothing but counters is added; what
would write outside the twin (LOG and the like, nft log statements) is left out of the
copy. The flows of an order share its twin and its conntrack table (verdict.check_flows
refuses two flows that would be one connection).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import ipaddress
import itertools
import json
import os
import re
import signal
import time

from ansible_collections.pflab.netfilter.plugins.module_utils import (
    facts, hooks, lab, matcher, names, netns, nft, nft_api, probe, proc, reaper, state, verdict, witness, xtables)
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip

HOST = 'host'
PEER_IFNAME = 'peer'
EXTRA_PEER = 'pfltw%d'  # the other end of an interface that rules name but no flow crosses
HOOK_RANK = {'ingress': 0, 'prerouting': 1, 'input': 2, 'forward': 3, 'output': 4, 'postrouting': 5, 'egress': 6}
_IPVERS = {4: ('ipv4', 'ip'), 6: ('ipv6', 'ip6')}
COUNTER_PREFIX = 'pflab_twin_'  # the twin's named counters
_ENDS = frozenset(['accept', 'drop', 'reject', 'return', 'jump', 'goto', 'queue', 'vmap', 'dnat', 'snat', 'masquerade',
                   'redirect'])
# targets and statements whose effect reaches beyond a namespace (kernel and audit logs, global timers, LEDs)
_LOUD_TARGETS = frozenset(['LOG', 'ULOG', 'AUDIT', 'IDLETIMER', 'LED'])
_LOUD_STATEMENTS = frozenset(['log'])
# Sysctls of every twin namespace, set before its links exist: every answer the stack owes (not a rate's worth),
# and IPv6 off (no IPv6 flow) or without autoconfiguration, router solicitations and DAD.
_RATELIMITS = (('/proc/sys/net/ipv4/icmp_ratelimit', '0'), ('/proc/sys/net/ipv6/icmp/ratelimit', '0'))
_IPV6 = '/proc/sys/net/ipv6/conf/%s/%s'
_SYSCTLS = {
    False: _RATELIMITS + tuple((_IPV6 % (c, 'disable_ipv6'), '1') for c in ('all', 'default')),
    True: _RATELIMITS + tuple((_IPV6 % (c, k), v) for c in ('all', 'default') for k, v in (
        ('addr_gen_mode', '1'), ('accept_ra', '0'), ('router_solicitations', '0'), ('accept_dad', '0'))),
}
_HANDLE = re.compile(r'^\s*(.*?) # handle (\d+)$')
_OWN_COUNTER = re.compile(r'counter name "?%s\d+"? ?' % COUNTER_PREFIX)  # the twin's, in a rule's text
_TEXT_CHAIN = re.compile(r'^\s*chain (\S+) \{')
_TEXT_TABLE = re.compile(r'^table (\S+) (\S+) \{')


class TwinError(PflabError):
    pass


_STOPPING = (signal.SIGTERM, signal.SIGHUP)


def _on_signal(signum, frame):
    raise TwinError('stopped by signal %d' % signum)


# Reading the host


class Reading:
    """What a twin needs of the host: facts.read's reading, and its interfaces with their addresses."""

    def __init__(self, module, netns_name=None, api='auto'):
        reader = facts.Reader(module, netns_name, api)
        self.facts, self.raw = facts.read(reader)
        rc, out, err = reader.runner.run(['ip', '-d', '-j', 'addr', 'show'])
        if rc != 0:
            raise TwinError('ip -d -j addr show failed: %s' % clip(err.strip(), 200))
        attached = dict((i['name'], i) for i in self.facts['interfaces'])
        self.interfaces, self.local = {}, set()
        for link in json.loads(out or '[]'):
            info = link.get('linkinfo') or {}
            addresses = _addresses(link)
            self.local |= set(str(a.ip) for a in addresses)
            self.interfaces[link['ifname']] = dict(
                kind=info.get('info_kind'), master_kind=info.get('info_slave_kind'), link_type=link.get('link_type'),
                addresses=addresses, xdp=attached.get(link['ifname'], {}).get('xdp'),
                tc=attached.get(link['ifname'], {}).get('tc'))
        ovs_ = self.facts['ovs']
        self.ovs_ports = set(p for b in ovs_.get('bridges', []) for p in b['ports']) if ovs_.get('read') else set()
        self.incompatible = ['%s %s' % (ipver, name) for ipver in ('ipv4', 'ipv6')
                             for name in self.facts['iptables_nft'][ipver]['incompatible']]
        owners = self.raw['owners']
        self.native = [o for o in self.raw['objects']
                       if owners.get(_table_key(o)) is None]  # iptables-nft's tables are copied by its restore
        self._rule_limits = None

    def xt_tables(self, ipver):
        """[(filter, xtables.Table)] of IP version ``ipver`` (4 or 6)."""
        key = _IPVERS[ipver][0]
        return [('iptables-legacy', t) for t in self.raw['legacy'][key].values()] + \
            [('iptables-nft', t) for t in self.raw['iptables_nft'][key].values()]

    def units(self):
        """The units to load, in the host's listing order: [Unit]."""
        found = []
        for filter_name, key in (('iptables-legacy', 'legacy'), ('iptables-nft', 'iptables_nft')):
            texts = dict((ipver, ''.join(_quiet(t).text() for t in self.raw[key][_IPVERS[ipver][0]].values()))
                         for ipver in (4, 6))
            if any(texts.values()):
                found.append(Unit(filter_name, filter_name, texts=texts))
        for table in (o['table'] for o in self.native if 'table' in o):
            objects = [o for o in self.native if _table_key(o) == (table['family'], table['name'])]
            found.append(Unit('nftables %s %s' % (table['family'], table['name']), 'nftables', objects=objects))
        return found

    def limits(self, flow):
        """Why the twin cannot replay ``flow``, or None."""
        if self._rule_limits is None:
            self._rule_limits = verdict.RuleLimits(
                [(f, ipver, t) for ipver in (4, 6) for f, t in self.xt_tables(ipver)], self.native)
        why = verdict.host_limits(flow, self.interfaces, self.local, self.ovs_ports, self.incompatible,
                                  self.facts['bpftool'])
        return why or self._rule_limits.of(flow)

    def rule_count(self):
        xt = sum(len(r) for ipver in (4, 6) for dummy, t in self.xt_tables(ipver) for r in t.rules.values())
        return xt + sum(1 for o in self.native if 'rule' in o)


def _quiet(table):
    """A copy of an xtables.Table whose rules write nowhere outside the twin: the targets that write to host-wide
    logs or timers (LOG, AUDIT, IDLETIMER, LED ...) left out, the rule kept (it still counts)."""
    quiet = table.copy()
    for chain, rules in quiet.rules.items():
        for index, rule in enumerate(rules):
            try:
                words = xtables.split_words(rule)
            except xtables.XtablesError:
                continue  # restore refuses it as the host's save printed it
            at = [i for i, w in enumerate(words[:-1]) if w in ('-j', '--jump')]
            if at and words[at[-1] + 1] in _LOUD_TARGETS:  # a target and its options end a saved rule
                rules[index] = xtables.rule_args(words[:at[-1]])
    return quiet


def _addresses(link):
    """The addresses of an ``ip -j addr`` link, as ipaddress interfaces (whatever else it says is left out)."""
    found = []
    for info in link.get('addr_info', []):
        try:
            found.append(ipaddress.ip_interface('%s/%s' % (info['local'], int(info['prefixlen']))))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def _sends_to(rule, maps):
    """The 'jump:X' and 'goto:X' of an nft rule: its own, and its verdict maps' (``maps``: {'@name': targets})."""
    found = verdict.nft_targets(rule.get('expr', []))
    text = json.dumps(rule.get('expr', []))
    return found + [t for name, targets in maps.items() if json.dumps(name) in text for t in targets]


def _rule_key(rule):
    """What names a rule or policy of the twin, its counts left out."""
    return None if rule is None else tuple(rule[k] for k in ('filter', 'family', 'table', 'chain', 'position'))


def _table_key(obj):
    body = next(iter(obj.values()))
    return body.get('family'), body.get('table', body.get('name'))


class Unit:
    """One thing that registers hooks when loaded: iptables-legacy or iptables-nft (``texts``: restore text
    per IP version) or one native nftables table (``objects``: its ``list ruleset`` objects)."""

    def __init__(self, name, filter_name, texts=None, objects=None):
        self.name, self.filter = name, filter_name
        self.texts, self.objects = texts, objects

    def devices(self):
        """Interfaces the table's chains hook or its rules name by index (iif, oif): the twin must have them."""
        found = set()
        for obj in self.objects or []:
            body = next(iter(obj.values()))
            dev = body.get('dev') if 'chain' in obj or 'flowtable' in obj else None
            found |= set(dev if isinstance(dev, list) else [dev] if dev else [])
            if 'rule' in obj:
                found |= set(_named_interfaces(body.get('expr', [])))
        return found

    def load_json(self):
        """The table as nft JSON input: handles and the host's counters left out, and a counter of the twin's (a
        named one: the twin reads them without the rules) just before each rule's verdict and as a last rule in
        each base chain; log statements left out (they would write to the host's kernel log). Sets ``counters``
        ({counter name: (chain, the rule's place in it or 'policy')})."""
        objects, counters, rules, base, places = [], [], [], [], {}
        self.counters = {}

        def counter(body, chain, place):
            name = '%s%d' % (COUNTER_PREFIX, len(self.counters))
            self.counters[name] = (chain, place)
            counters.append({'add': {'counter': {'family': body['family'], 'table': body['table'], 'name': name}}})
            return name

        table, chains = [], []
        for obj in self.objects:
            kind, body = next(iter(obj.items()))
            body = dict((k, v) for k, v in body.items() if k != 'handle')
            if kind == 'table':  # not owned by the process that loads it, which ends with the load
                flags = body.pop('flags', [])
                flags = [f for f in (flags if isinstance(flags, list) else [flags]) if f not in ('owner', 'persist')]
                body.update({'flags': flags} if flags else {})
                table.append({'add': {kind: body}})
            elif kind == 'rule':
                place = places[body['chain']] = places.get(body['chain'], 0) + 1
                expr = [e for e in body.get('expr', []) if not (isinstance(e, dict) and set(e) & _LOUD_STATEMENTS)]
                body['expr'] = _counted(expr, counter(body, body['chain'], place))
                rules.append({'add': {'rule': body}})
            elif kind == 'chain':  # before the maps whose elements go to them
                chains.append({'add': {kind: body}})
                if body.get('hook'):
                    base.append(body)
            else:
                objects.append({'add': {kind: body}})
        for chain in base:
            name = counter(chain, chain['name'], 'policy')
            rules.append({'add': {'rule': {'family': chain['family'], 'table': chain['table'], 'chain': chain['name'],
                                           'expr': [{'counter': name}]}}})
        return json.dumps({'nftables': table + chains + counters + objects + rules})


def _named_interfaces(value):
    if isinstance(value, list):
        return [name for item in value for name in _named_interfaces(item)]
    if not isinstance(value, dict):
        return []
    if 'match' in value and isinstance(value['match'], dict):
        left, right = value['match'].get('left'), value['match'].get('right')
        if isinstance(left, dict) and (left.get('meta') or {}).get('key') in ('iif', 'oif'):
            values = right.get('set') if isinstance(right, dict) else [right]
            return [v for v in values or [] if isinstance(v, str)]
    return []


def _counted(expr, name):
    """``expr`` without its counters, with counter ``name`` just before its verdict (or at its end)."""
    expr = [e for e in expr if not (isinstance(e, dict) and 'counter' in e)]
    ends = [i for i, e in enumerate(expr) if isinstance(e, dict) and len(e) == 1 and next(iter(e)) in _ENDS]
    at = ends[0] if ends else len(expr)
    return expr[:at] + [{'counter': name}] + expr[at:]


# The twin


class Twin:
    """Replays ``flows`` (verdict.check_flows) against ``reading`` in each order."""

    def __init__(self, module, reading, flows, timeout_ms, max_orders, api='auto'):
        self.module = module
        self.api = api
        self.reading = reading
        self.flows = flows
        self.timeout_ms = timeout_ms
        self.units = reading.units()
        self.groups = verdict.order_groups(reading.facts['hooks'], set(u.name for u in self.units))
        self.orders = verdict.orders([u.name for u in self.units], self.groups, max_orders)
        self.limits = [reading.limits(flow) for flow in flows]
        far = {}
        for index, flow in enumerate(flows):  # the twin routes an address one way only
            end = flow['source'] if flow['direction'] == 'in' else flow['destination']
            other = far.setdefault(end, (flow['interface'], index)) if self.limits[index] is None else None
            if other and other[0] != flow['interface']:
                self.limits[index] = '%s is flow %d\'s far end too, on interface %s: a twin routes it one way only' % (
                    end, other[1] + 1, other[0])
        self.lab_id = 'tw-%d' % os.getpid()
        self.interfaces = sorted(set(f['interface'] for f, why in zip(flows, self.limits) if why is None))
        self.roles = [HOST] + ['p%d' % i for i in range(len(self.interfaces))]
        self.namespaces = dict((role, netns.lab_netns_name(self.lab_id, role)) for role in self.roles)
        self.cleaned = []

    def run(self):
        """[order result], [flow result]: every order replayed, and each flow's verdicts across them."""
        replayed = []
        if any(why is None for why in self.limits):
            self.cleaned = reaper.reap()['changes']  # what runs whose owner is gone left, twins or labs
            recording = witness.Witness(self.lab_id)  # one for every order: an instance costs ~150 ms
            # SIGTERM and SIGHUP (a lost connection) end the replay through its finally
            previous = dict((s, signal.signal(s, _on_signal)) for s in _STOPPING)
            try:
                recording.start()
                for index, order in enumerate(self.orders):
                    replayed.append(self._order(index, order, recording))
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
                recording.stop()
        return replayed, [self._flow_result(i, flow, replayed) for i, flow in enumerate(self.flows)]

    def _flow_result(self, index, flow, replayed):
        shown = dict((k, v) for k, v in flow.items() if k != 'name')
        out = dict(name=flow['name'], flow=shown, replayable=self.limits[index] is None, reason=self.limits[index])
        if self.limits[index] is not None:
            out.update(verdict='not replayable', depends_on_order=False, rule_depends_on_order=False, orders=[],
                       live=None, headline=None)
            return out
        not_loaded = [o for o in replayed if not o['loaded']]
        if not_loaded:  # a verdict from some orders only is no answer
            out.update(verdict='not replayable', replayable=False, reason=not_loaded[0]['reason'],
                       depends_on_order=False, rule_depends_on_order=False, orders=[], live=None, headline=None)
            return out
        results = [dict(o['flows'][index], order=o['index']) for o in replayed]
        found = sorted(set(r['verdict'] for r in results if r['verdict'] in verdict.VERDICTS))
        deciders = set(_rule_key(r['decided_by']) for r in results)
        live = [r['verdict'] for r, o in zip(results, replayed) if o['live']]
        undetermined = any(r['verdict'] == verdict.UNDETERMINED for r in results)
        out.update(orders=results, depends_on_order=len(found) > 1, rule_depends_on_order=len(deciders) > 1,
                   verdict=verdict.UNDETERMINED if undetermined else found[0] if len(found) == 1 else 'depends on order',
                   live=live[0] if live else None)
        out['headline'] = headline(out, replayed)
        return out

    # one order

    def _order(self, index, order, recording):
        started = time.monotonic()
        units = [next(u for u in self.units if u.name == name) for name in order]
        result = dict(index=index, units=list(order), live=verdict.live_order(order, self.groups),
                      runs_first=[dict(point=g[0], priority=g[1], unit=verdict.runs_first(order, g[2]))
                                  for g in self.groups])
        claimed, left = False, None
        try:
            with state.locked():
                taken = [n for n in self.namespaces.values() if netns.exists(n)]
                if taken:
                    raise TwinError('namespaces %s exist already' % ', '.join(taken))
                state.claim(self.lab_id, self.namespaces.values(), state.me(), log=False)
                claimed = True
            self._build(units)
            result['registered'], loaded = self._load(units)
            result.update(loaded=loaded is None, reason=loaded)
            if loaded is None:
                result['flows'] = self._flows(units, recording)
        finally:
            # SIGTERM, SIGHUP and SIGINT wait until the twin is removed
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING + (signal.SIGINT,))
            try:
                if claimed:
                    left = self._teardown()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if left:
            raise TwinError('the twin %s could not be removed (%s): lab_cleanup removes it' % (self.lab_id, left))
        result['duration_ms'] = round((time.monotonic() - started) * 1000.0, 1)
        return result

    def _teardown(self):
        try:
            lab.remove_lab(self.lab_id)
            with state.locked():
                state.release(self.lab_id)
        except (PflabError, OSError) as e:
            return '%s' % e
        return None

    def _ip(self, role, lines):
        argv = ['ip'] + (['-n', self.namespaces[role]] if role else []) + ['-batch', '-']
        rc, dummy, err = proc.run(argv, data='\n'.join(lines) + '\n')
        if rc != 0:
            raise TwinError('building the twin: %s' % clip(err.strip(), 300))

    def _build(self, units):
        """Namespaces (IPv6 off when no flow uses it, else without autoconfiguration: no packets of their own in
        the rules' counters); each flow's interface in ``host`` with the host's addresses and a veth to its peer
        namespace; the other interfaces rules name, as unconnected veths; routes between the flows' ends. Links are
        made inside the twin's namespaces: nothing of the host's names reaches a command run in the module's."""
        self._ip(None, ['netns add %s' % name for name in self.namespaces.values()])
        ipv6 = any(f['ipver'] == 6 for f, why in zip(self.flows, self.limits) if why is None)
        for name in self.namespaces.values():
            with netns.entered(name):
                for path, value in _SYSCTLS[ipv6]:
                    try:
                        with open(path, 'w') as f:
                            f.write(value)
                    except (IOError, OSError):
                        pass  # a kernel without it: the twin is noisier, the counters say what they counted
        inside = {HOST: ['link set lo up']}
        for number, ifname in enumerate(self.interfaces):
            role = 'p%d' % number
            inside[HOST].append('link add %s type veth peer name %s netns %s' % (
                ifname, PEER_IFNAME, self.namespaces[role]))
            inside[HOST] += ['addr add %s dev %s%s' % (a, ifname, ' nodad' if a.version == 6 else '')
                             for a in self.reading.interfaces[ifname]['addresses'] if ipv6 or a.version == 4]
            inside[HOST].append('link set %s up' % ifname)
            inside[role] = ['link set lo up', 'link set %s up' % PEER_IFNAME]
        # the names the host's rules give: only names that are names, and none a fresh namespace has (lo)
        extra = sorted(d for d in set(d for u in units for d in u.devices()) - set(self.interfaces)
                       if names.valid('ifname', d) and d != 'lo')
        peers = (p for p in (EXTRA_PEER % n for n in itertools.count()) if p not in extra)
        inside[HOST] += ['link add %s type veth peer name %s' % (ifname, next(peers)) for ifname in extra]
        for flow, why in zip(self.flows, self.limits):
            if why is not None:
                continue
            role = 'p%d' % self.interfaces.index(flow['interface'])
            own, far = (flow['destination'], flow['source']) if flow['direction'] == 'in' else \
                (flow['source'], flow['destination'])
            bits, nodad = (32, '') if flow['ipver'] == 4 else (128, ' nodad')
            on_interface = [str(a.ip) for a in self.reading.interfaces[flow['interface']]['addresses']]
            line = 'addr add %s/%d dev lo%s' % (own, bits, nodad)
            if own not in on_interface and line not in inside[HOST]:
                inside[HOST].append(line)
            line = 'addr add %s/%d dev %s%s' % (far, bits, PEER_IFNAME, nodad)
            if line not in inside[role]:
                inside[role].append(line)
            inside[HOST].append('route replace %s/%d dev %s' % (far, bits, flow['interface']))
            inside[role].append('route replace %s/%d dev %s' % (own, bits, PEER_IFNAME))
        for role in self.roles:
            self._ip(role, inside[role])

    def _load(self, units):
        """Load the units in order, observing what registers: (registered entries in order, None or why the
        order could not be loaded)."""
        host = self.namespaces[HOST]
        registry = hooks.Registry()
        api = nft_api.open_api(self.module, host, self.api)
        # nf_tables is asked only when a unit lives there: asking would load the module on a legacy-only host
        nf_tables = any(u.filter != 'iptables-legacy' for u in units)
        try:
            for step, unit in enumerate(units, 1):
                if unit.objects is not None:
                    rc, dummy, err = api.run(unit.load_json())
                    if rc != 0:
                        return [], 'nft refused table %s in the twin: %s' % (unit.name[9:], nft_api.message(err)[:300])
                else:
                    for ipver, text in sorted(unit.texts.items()):
                        if text:
                            backend = xtables.Backend(unit.filter.split('-')[1], ipver, netns.Runner(host),
                                                      self.module.get_bin_path)
                            rc, message = backend.restore(text, noflush=False)
                            if rc != 0:
                                return [], '%s refused the host\'s rules in the twin: %s' % (
                                    backend.restore_cmd.rsplit('/', 1)[-1], clip(message, 300))
                listed = (api.objects('tables') or []) + (api.objects('chains') or []) if nf_tables else []
                registry.observe(step, unit.filter, hooks.snapshot(host, listed))
        finally:
            api.close()
        self.registered = sorted(registry.alive.values(), key=lambda e: e['registered'])
        shown = [dict((k, v) for k, v in e.items() if k not in ('identity', 'where', 'layer')) for e in self.registered]
        return shown, None

    # flows

    def _flows(self, units, recording):
        host = self.namespaces[HOST]
        runner = netns.Runner(host)
        api = nft_api.open_api(self.module, host, self.api)
        try:
            layout = self._layout(runner, units)
            before = self._counters(api, runner, layout)
            out = []
            for index, (flow, why) in enumerate(zip(self.flows, self.limits)):
                if why is not None:
                    out.append(None)
                    continue
                started = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                outcome, elapsed_ms, port, decided = self._send(index, flow, recording, started)
                after = self._counters(api, runner, layout)
                drops = [e['filter'] for e in recording.events()
                         if e['event'] == 'drop' and e['filter'] and e['time_ns'] >= started]
                counted = sorted((dict(layout[k], packets=after[k] - before.get(k, 0))
                                  for k in after if after[k] > before.get(k, 0)), key=lambda c: c['rank'])
                packets = verdict.flow_packets(flow)
                for item in counted:
                    how = item.pop('match')
                    if how and item['hooks'] & verdict.RECEIVE_HOOKS and item['hooks'] & verdict.SEND_HOOKS:
                        item['side'] = verdict.side(item, [how(p) for p in packets])
                found, by, why_, path, answer, shared = verdict.decide(flow['direction'], outcome, counted, set(drops))
                for item in counted:
                    item.pop('rank')
                    item['hooks'] = sorted(item['hooks'])
                out.append(dict(verdict=found, decided_by=by, why=why_, outcome=outcome, decided=decided,
                                source_port=port, elapsed_ms=elapsed_ms, path=path, answer=answer, shared=shared,
                                witness=dict(available=recording.reason is None, drops=sorted(set(drops)))))
                before = after
            return out
        finally:
            api.close()

    def _send(self, index, flow, recording, started):
        role = 'p%d' % self.interfaces.index(flow['interface']) if flow['direction'] == 'in' else HOST
        name = self.namespaces[role]
        port = flow['source_port']
        dropped = (lambda: recording.dropped_since(started)) if recording.live and recording.reason is None else None
        if flow['protocol'] == 'tcp':
            return probe.tcp_connect(name, flow['destination'], flow['destination_port'], self.timeout_ms,
                                     source_port=port, dropped=dropped, source_address=flow['source'])
        return probe.udp_send(name, flow['source'], port, flow['destination'], flow['destination_port'],
                              self.timeout_ms, dropped)

    def _layout(self, runner, units):
        """{counter key: the rule or policy it counts} for every counter the twin reads: the save's own (a key
        per filter, IP version, table, chain and place) and the nft tables' named ones (a key per name)."""
        registered = dict(((e['filter'], e['family'], e['table'], e['chain']), e) for e in self.registered)
        layout = {}
        texts = None
        for unit in units:
            if unit.texts is not None:
                for ipver, text in sorted(unit.texts.items()):
                    if text:
                        self._xt_layout(unit.filter, ipver, registered, layout, runner)
                continue
            if texts is None:
                texts = _nft_texts(runner, self.module.get_bin_path('nft'))
            family, table = _table_key(unit.objects[0])
            chains, chain_rules = nft.by_chain(unit.objects, family, table)
            maps = dict(('@' + o['map']['name'], verdict.nft_targets(o['map'].get('elem', [])))
                        for o in unit.objects if 'map' in o)
            reach = verdict.chain_hooks(dict(
                (name, (chain.get('hook'), [t for r in chain_rules.get(name, []) for t in _sends_to(r, maps)]))
                for name, chain in chains.items()))
            for counter, (chain, place) in unit.counters.items():
                policy = place == 'policy'
                listed = texts.get((family, table, chain), [])
                layout[('nftables', family, table, counter)] = dict(
                    filter='nftables', family=family, table=table, chain=chain, position=place,
                    rule='policy %s' % chains[chain].get('policy', 'accept') if policy else
                    (listed[place - 1] if place <= len(listed) else ''),
                    action=chains[chain].get('policy', 'accept') if policy else
                    verdict.nft_action(chain_rules[chain][place - 1].get('expr', [])),
                    match=None if policy else functools.partial(matcher.nft_matches, chain_rules[chain][place - 1]),
                    hooks=reach[chain], rank=self._rank(reach[chain], table, chain, registered, 'nftables', family,
                                                        place))
        return layout

    def _xt_layout(self, filter_name, ipver, registered, layout, runner):
        family = _IPVERS[ipver][1]
        dummy, texts = verdict.xt_counters(self._xt_save(filter_name, ipver, runner))
        tables = {}
        for (table, chain, position), text in texts.items():
            tables.setdefault(table, {}).setdefault(chain, []).append(text)
        for table, chains in tables.items():
            names_ = set(chains)
            reach = verdict.chain_hooks(dict(
                (c, (verdict.XT_HOOKS.get(c), [verdict.xt_action(t, names_) for t in ts])) for c, ts in chains.items()))
            for (t, chain, position), text in texts.items():
                if t == table:
                    layout[(filter_name, ipver, table, chain, position)] = dict(
                        filter=filter_name, family=family, table=table, chain=chain, position=position, rule=text,
                        action=verdict.xt_action(text, names_), hooks=reach[chain],
                        match=None if position == 'policy' else functools.partial(matcher.xtables_matches, text),
                        rank=self._rank(reach[chain], table, chain, registered, filter_name, family, position))

    def _xt_save(self, filter_name, ipver, runner):
        backend = xtables.Backend(filter_name.split('-')[1], ipver, runner, self.module.get_bin_path)
        rc, out, err = runner.run([backend.save_cmd, '-c'])
        if rc != 0:
            raise TwinError('%s -c failed in the twin: %s' % (backend.save_cmd, clip(err.strip(), 200)))
        return out

    def _rank(self, hooks_, table, chain, registered, filter_name, family, position):
        """Sort key of a counted rule: the hook, then the priority and registration of its base chain."""
        base = registered.get((filter_name, family, table, chain))
        hook = min(hooks_, key=lambda h: HOOK_RANK.get(h, 9)) if hooks_ else None
        entry = base or next((e for e in self.registered if (e['filter'], e['family'], e['table'], e['hook']) ==
                              (filter_name, family, table, hook)), None)
        return (HOOK_RANK.get(hook, 9), entry['priority'] if entry else 0, -(entry['registered'] if entry else 0),
                0 if base else 1, chain, position if isinstance(position, int) else 1 << 30)

    def _counters(self, api, runner, layout):
        """{counter key: packets} of every counter in ``layout``, read now."""
        counts = {}
        for key in set(k[:2] for k in layout if k[0] != 'nftables'):
            found, dummy = verdict.xt_counters(self._xt_save(key[0], key[1], runner))
            counts.update((key + k, v) for k, v in found.items())
        if any(k[0] == 'nftables' for k in layout):
            for obj in api.objects('counters') or []:  # every table's: no host name reaches the command
                body = obj.get('counter') or {}
                if str(body.get('name', '')).startswith(COUNTER_PREFIX):
                    counts[('nftables', body.get('family'), body.get('table'), body['name'])] = body.get('packets', 0)
        return dict((k, v) for k, v in counts.items() if k in layout)


def _nft_texts(runner, nft_path):
    """{(family, table, chain): [rule texts in order]} of ``nft -a list ruleset`` in the twin (none without nft:
    the rules are then known by their place)."""
    if not nft_path:
        return {}
    rc, out, err = runner.run([nft_path, '-a', 'list', 'ruleset'])
    if rc != 0:
        raise TwinError('nft -a list ruleset failed in the twin: %s' % clip(err.strip(), 200))
    return parse_nft_texts(out)


def parse_nft_texts(text):
    found, table, chain = {}, None, None
    for line in text.splitlines():
        m = _TEXT_TABLE.match(line)
        if m:
            table, chain = (m.group(1), m.group(2)), None
            continue
        m = _TEXT_CHAIN.match(line)
        if m and table:
            chain = table + (m.group(1),)
            found[chain] = []
            continue
        if line == '\t}':
            chain = None  # the end of a chain, set or other object of the table
            continue
        m = _HANDLE.match(line)
        if m and chain:
            found[chain].append(_OWN_COUNTER.sub('', m.group(1)).strip())
    return found


def headline(flow, replayed):
    """One sentence for a flow whose verdict depends on the order: each verdict with the units that run first
    where the flow's packet passes (its IP version's hook points, and its interface's)."""
    if not flow['depends_on_order']:
        return None
    passes = ('ipv%d/' % flow['flow']['ipver'], 'ingress/%s' % flow['flow']['interface'],
              'egress/%s' % flow['flow']['interface'])
    parts = []
    for result in flow['orders']:
        order = next(o for o in replayed if o['index'] == result['order'])
        first = {}
        for group in order['runs_first']:
            if group['point'].startswith(passes) and not group['point'].endswith('/forward'):
                first.setdefault(group['unit'], []).append(group['point'])
        parts.append('%s if %s%s' % (result['verdict'], ' and '.join(
            '%s registered last (it runs first at %s)' % (unit, ', '.join(points)) for unit, points in first.items()),
            ' (the live order)' if order['live'] else ''))
    return '; '.join(parts)


def replay(module, flows, netns_name=None, api='auto', timeout_ms=250, max_orders=24):
    """Read the host (or ``netns_name``) and replay ``flows`` (verdict.check_flows) in each order."""
    started = time.monotonic()
    reading = Reading(module, netns_name, api)
    read_ms = (time.monotonic() - started) * 1000.0
    twin = Twin(module, reading, flows, timeout_ms, max_orders, api)
    orders, results = twin.run()
    total_ms = (time.monotonic() - started) * 1000.0
    sent = sum(1 for o in orders if o['loaded'] for f in o['flows'] if f)
    return dict(
        host=dict(netns=netns_name, kernel=reading.facts['kernel'], hooks_listed=reading.facts['hooks_listed'],
                  digest=reading.facts['digest'], rules=reading.rule_count(), units=[u.name for u in twin.units]),
        groups=[dict(point=g[0], priority=g[1], units=g[2], known=g[3]) for g in twin.groups],
        orders=[dict((k, v) for k, v in o.items() if k != 'flows') for o in orders],
        flows=results,
        cleaned=twin.cleaned,
        timing=dict(read_ms=round(read_ms, 1), total_ms=round(total_ms, 1), packets=sent,
                    per_flow_ms=round((total_ms - read_ms) / sent, 1) if sent else None))
