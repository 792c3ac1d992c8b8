# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario runner: one experiment from a fresh lab to its observed trace.

stale labs reaped -> the lab claimed (a marker naming this process as its owner)
-> fresh lab -> steps in order (the order hooks register in) -> listeners -> kmsg
cursor -> probes -> collect -> lab removed and released, whatever happened. Steps
are the arguments of the iptables_rules and nft_rules modules, checked before any
lab exists, and run through the same engines; after each step the registered
hooks are read (hooks.Registry).

A LOG record belongs to a probe only when it carries the probe's addresses and
ports and names only this lab's interfaces, whose names no other live lab uses;
records with the probe's addresses and ports from anywhere else are counted
(``foreign``), never taken into the trace.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import signal
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pflab.netfilter.plugins.module_utils import (
    host, hooks, kmsg, lab, listener, matcher, names, netns, nflog, nft, nft_api, probe, proc, reaper, state, xtables)
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip, shown

DEFAULT_ROLES = ('client', 'server')
PROBE_GAP = 0.01  # nc -lk has a backlog of one: leave time between probes
_PROBE_DEFAULTS = {'from': 'client', 'to': 'server', 'port': 12345, 'timeout_ms': 200}
# What a step kind brings: its module's argument spec and rules, the check of the
# arguments without a target, and the function that applies them (the module's).
_StepKind = collections.namedtuple('_StepKind', 'spec rules validate apply')
_STEP_KINDS = {
    'iptables': _StepKind(xtables.ARGUMENT_SPEC, {}, xtables.validate, xtables.manage),
    'nft': _StepKind(nft.ARGUMENT_SPEC, nft.ARGUMENT_RULES, nft.validate, nft.manage),
}
# Arguments a scenario step may not give: the lab decides the namespace (never the
# host's own), and a scenario carries its ruleset inline.
_STEP_FORBIDDEN = ('host', 'ruleset_file')
# (the namespace's side of the probe, hook) -> the probe's packet that passes there
_PASSES = {('to', 'prerouting'): 'syn', ('to', 'input'): 'syn', ('to', 'output'): 'syn-ack',
           ('to', 'postrouting'): 'syn-ack', ('from', 'output'): 'syn', ('from', 'postrouting'): 'syn',
           ('from', 'prerouting'): 'syn-ack', ('from', 'input'): 'syn-ack'}
_CONNTRACK_PRIORITY = -200  # NF_IP_PRI_CONNTRACK
# TCP sends a SYN (or SYN-ACK) again after 1 s at the earliest: records that late are a retransmission
RETRANSMIT_US = 900000
# (IN set, OUT set) of a LOG line -> the way the packet was going
_DIRECTION = {(True, False): 'received', (False, True): 'sent', (True, True): 'forwarded', (False, False): 'unknown'}
_VERSION_TOOLS = ('iptables', 'iptables-legacy', 'iptables-nft', 'nft', 'ip')


class ScenarioError(PflabError):
    pass


class ScenarioTimeout(ScenarioError):
    pass


def _step_kind(index, step):
    kinds = [k for k in _STEP_KINDS if k in step] if isinstance(step, dict) else []
    if len(kinds) != 1 or len(step) != 1:
        raise ScenarioError('step %d: a step is a mapping with exactly one of %s, got %s' % (
            index, ', '.join(sorted(_STEP_KINDS)), shown(step)))
    return kinds[0]


def _list_of(scenario, key, default):
    value = scenario.get(key)
    if value is None:
        return list(default)
    if not isinstance(value, list):
        raise ScenarioError('%s is a list, got %s' % (key, shown(value)))
    return value


def step_params(index, step, namespaces):
    """Validated module arguments of step ``index`` (1-based), its ``netns`` mapped to the lab's namespace."""
    kind = _step_kind(index, step)
    step_kind = _STEP_KINDS[kind]
    where = 'step %d (%s)' % (index, kind)
    if not isinstance(step[kind], dict):
        raise ScenarioError('%s: the arguments are a mapping, got %s' % (where, shown(step[kind])))
    args = dict(step[kind])
    for key in _STEP_FORBIDDEN:
        if key in args:
            raise ScenarioError('%s: %s is not allowed in a scenario' % (where, key))
    role = args.pop('netns', 'server')
    if not isinstance(role, str) or role not in namespaces:
        raise ScenarioError('%s: netns %s is not a namespace of the lab (%s)' % (
            where, shown(role), ', '.join(sorted(namespaces))))
    args['netns'] = namespaces[role]
    result = ArgumentSpecValidator(step_kind.spec, **step_kind.rules).validate(args)
    if result.error_messages:
        raise ScenarioError(clip('%s: %s' % (where, '; '.join(result.error_messages))))
    try:
        step_kind.validate(result.validated_parameters)
    except PflabError as e:
        raise ScenarioError('%s: %s' % (where, e))
    return kind, role, result.validated_parameters


def _uses_legacy(steps):
    return any(kind == 'iptables' and params['backend'] == 'legacy' for kind, dummy, params in steps)


def _on_alarm(signum, frame):
    raise ScenarioTimeout('timed out')


def _on_term(signum, frame):
    raise ScenarioError('terminated by signal %d' % signum)


class Runner:
    """Runs one scenario (already checked against the schema) with an AnsibleModule for commands."""

    def __init__(self, module, scenario, lab_id=None, timeout=30):
        """Check ``scenario`` here too (the controller checked it against the schema, but a module can be
        reached without its action plugin) and every step's arguments, before any lab exists."""
        self.module = module
        self.scenario = scenario
        names.check('scenario_id', scenario.get('id'), 'scenario id')
        self.lab_id = lab_id or 'sc-%d' % os.getpid()
        self.timeout = timeout
        self.roles = _list_of(scenario, 'namespaces', DEFAULT_ROLES)
        self.plan = lab.LabPlan(self.lab_id, self.roles)  # its interface names come when the lab is claimed
        namespaces = self.plan.namespaces
        self.steps = [step_params(i, s, namespaces) for i, s in enumerate(_list_of(scenario, 'steps', []), 1)]
        self.probes = [self._probe_spec(i, p) for i, p in enumerate(_list_of(scenario, 'probes', [{}]), 1)]
        if not self.probes:
            raise ScenarioError('probes is empty: give at least one probe, or leave probes out for the default')
        self.registry = {}
        self.ruleset = {}  # role -> `list ruleset` objects after the last step there
        self.phase = 'start'

    def _probe_spec(self, index, spec):
        if not isinstance(spec, dict) or set(spec) - set(_PROBE_DEFAULTS):
            raise ScenarioError('probe %d: a probe is a mapping of %s, got %s' % (
                index, ', '.join(sorted(_PROBE_DEFAULTS)), shown(spec)))
        spec = dict(_PROBE_DEFAULTS, **spec)
        for key, (low, high) in (('port', (1, 65535)), ('timeout_ms', (1, probe.TIMEOUT_MS_MAX))):
            if not isinstance(spec[key], int) or isinstance(spec[key], bool) or not low <= spec[key] <= high:
                raise ScenarioError('probe %d: %s is a whole number from %d to %d, got %s' % (
                    index, key, low, high, shown(spec[key])))
        for key in ('from', 'to'):
            if not isinstance(spec[key], str) or spec[key] not in self.plan.namespaces:
                raise ScenarioError('probe %d: %s %s is not a namespace of the lab (%s)' % (
                    index, key, shown(spec[key]), ', '.join(sorted(self.plan.namespaces))))
        return spec

    def versions(self, found):
        return dict((name, found[name]['version']) for name in _VERSION_TOOLS)

    def run(self):
        """The result of the run; the lab is removed and released before this returns or raises."""
        found = host.tools(self.module.get_bin_path, proc.run)
        release = host.kernel_info()['release']
        result = dict(id=self.scenario['id'], kernel=release, versions=self.versions(found))
        legacy = host.legacy_support(found, release)
        if _uses_legacy(self.steps) and not legacy['usable']:
            result.update(status='skipped', reason=legacy['reason'])
            return result
        result['cleaned'] = reaper.reap()['changes']
        started = time.monotonic()
        previous = signal.signal(signal.SIGALRM, _on_alarm), signal.signal(signal.SIGTERM, _on_term)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        claimed, error, left = False, None, None
        try:
            self.phase = 'lab claim'
            with state.locked():
                lab.require_absent(self.plan)
                markers = state.markers()
                if self.lab_id in markers:
                    raise ScenarioError('lab %s is in use by another run' % self.lab_id)
                self.plan = lab.LabPlan(self.lab_id, self.roles, ifname_tag=state.new_ifname_tag(markers))
                state.claim(self.lab_id, self.plan.namespaces.values(), state.me(), log=True,
                            ifname_tag=self.plan.ifname_tag)
                claimed = True
                nflog.sync()
            result['nf_log_all_netns'] = nflog.read()
            result.update(self._run_in_lab())
        except ScenarioTimeout:
            error = 'scenario %s timed out after %ss during %s' % (self.scenario['id'], self.timeout, self.phase)
        except (PflabError, OSError) as e:
            error = 'scenario %s, %s: %s' % (self.scenario['id'], self.phase, e)
        finally:
            # The timer and handlers go first: a signal during the teardown ends the process, and the
            # next run removes what is left (the lab's marker names this process).
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous[0])
            signal.signal(signal.SIGTERM, previous[1])
            if claimed:
                left = self._teardown()
        if claimed:
            removed = '; the lab was removed' if left is None else \
                '; the lab could not be removed (%s): lab_cleanup removes it once this run has ended' % left
            if error or left:
                raise ScenarioError((error or 'scenario %s' % self.scenario['id']) + removed)
        elif error:
            raise ScenarioError(error)
        result['duration_ms'] = round((time.monotonic() - started) * 1000.0, 1)
        return result

    def _teardown(self):
        """Remove the lab and release its marker; None, or why that failed (the marker then stays)."""
        self.phase = 'teardown'
        try:
            lab.remove_lab(self.lab_id)
            with state.locked():
                state.release(self.lab_id)
                nflog.sync()
        except (PflabError, OSError) as e:
            return '%s' % e
        return None

    def _run_in_lab(self):
        self.phase = 'lab creation'
        lab.create_fresh(self.plan)
        steps = []
        for index, (kind, role, params) in enumerate(self.steps, 1):
            self.phase = 'step %d (%s)' % (index, kind)
            done = _STEP_KINDS[kind].apply(self.module, params)
            filter_name = 'nftables' if kind == 'nft' else 'iptables-%s' % done['backend']['name']
            self._observe(index, role, filter_name)
            steps.append(dict(kind=kind, netns=role, filter=filter_name, changes=done['changes']))

        self.phase = 'listeners'
        for spec in self.probes:
            nc = listener.Listener(self.plan.namespaces[spec['to']], spec['port'])
            if nc.pid() is None:
                nc.start()
        self.phase = 'probes'
        addresses = self.plan.addresses()
        cursor = kmsg.cursor_after(kmsg.read_ring())
        probes = []
        for number, spec in enumerate(self.probes):
            if number:
                time.sleep(PROBE_GAP)
            outcome, elapsed_ms, source_port = probe.tcp_connect(
                self.plan.namespaces[spec['from']], addresses[spec['to']], spec['port'], spec['timeout_ms'])
            probes.append(dict(spec, address=addresses[spec['to']], source=self.plan.address_towards(
                spec['from'], spec['to']), source_port=source_port, outcome=outcome, reached=outcome == 'connected',
                elapsed_ms=elapsed_ms))
        self.phase = 'collection'
        new, lost, dummy = kmsg.since(kmsg.read_ring(), cursor)
        trace, foreign, retransmitted = _trace(kmsg.log_records(new), probes, self.plan.ifnames())
        alive, unregistered = self._hooks(probes)
        return dict(
            status='ran',
            lab=self.plan.as_result(),
            steps=steps,
            hooks=alive,
            unregistered=unregistered,
            probes=probes,
            trace=trace,
            lost=lost,
            foreign=foreign,
            retransmitted=retransmitted,
            observed=dict(reached=all(p['reached'] for p in probes), trace=[r['prefix'] for r in trace]),
        )

    def _observe(self, step, role, filter_name):
        name = self.plan.namespaces[role]
        api = nft_api.open_api(self.module, name)
        try:
            objects = self.ruleset[role] = api.objects('ruleset') or []
        finally:
            api.close()
        self.registry.setdefault(role, hooks.Registry()).observe(
            step, filter_name, hooks.legacy_tables(name), nft.base_chains(objects))

    def _hooks(self, probes):
        """Hooks registered at probe time in every namespace a step changed, with the LOG prefixes
        of their chains, in registration order; and the hooks steps unregistered."""
        alive, unregistered = [], []
        for role, registry in sorted(self.registry.items()):
            name = self.plan.namespaces[role]
            runner = netns.Runner(name)
            xtables_rules = {}
            for entry in registry.alive.values():
                key = (entry['filter'], entry['family'], entry['table'])
                if entry['filter'].startswith('iptables') and key not in xtables_rules:
                    backend = xtables.resolve_backend(entry['filter'].split('-')[1], 4 if entry['family'] == 'ip' else 6,
                                                      runner, self.module.get_bin_path)
                    xtables_rules[key] = backend.save().get(entry['table'])
            for entry in registry.entries(xtables_rules, self.ruleset[role]):
                table = xtables_rules.get((entry['filter'], entry['family'], entry['table']))
                alive.append(dict(entry, netns=role, walks=self._walks(entry, role, probes, table)))
            unregistered += [dict(entry, netns=role) for entry in registry.removed_entries()]
        return alive, unregistered

    def _walks(self, entry, role, probes, table):
        """For each probe whose packet passes this hook: what the packet can do in its chain (matcher)."""
        walks = []
        nat = entry['table'] == 'nat' if entry['filter'].startswith('iptables') else \
            self._chain_type(role, entry) == 'nat'
        for number, spec in enumerate(probes, 1):
            side = 'to' if role == spec['to'] else 'from' if role == spec['from'] else None
            kind = _PASSES.get((side, entry['hook']))
            if kind is None or entry['family'] not in ('ip', 'inet') or (nat and kind == 'syn-ack'):
                continue  # NAT chains see only a connection's first packet
            end = self.plan.end_towards(role, spec['from'] if side == 'to' else spec['to'])
            ifname = end['ifname'] if end else ''
            ends = [(spec['source'], spec['source_port']), (spec['address'], spec['port'])]
            (src, sport), (dst, dport) = ends if kind == 'syn' else ends[::-1]
            received = entry['hook'] in ('prerouting', 'input')
            # Conntrack runs at priority -200: a hook before it sees no state yet.
            state = None if entry['priority'] <= _CONNTRACK_PRIORITY else 'new' if kind == 'syn' else 'established'
            pkt = matcher.packet('tcp', src, dst, sport, dport, ifname if received else '', '' if received else ifname,
                                 ['SYN'] if kind == 'syn' else ['SYN', 'ACK'], state)
            if entry['filter'].startswith('iptables'):
                walk = matcher.xtables_walk(table, entry['chain'], pkt) if table else {'logs': [], 'verdict': 'accept'}
            else:
                walk = matcher.nft_walk(self.ruleset[role], entry['family'], entry['table'], entry['chain'], pkt)
            walks.append(dict(walk, probe=number, packet=kind))
        return walks

    def _chain_type(self, role, entry):
        chains = nft.by_chain(self.ruleset[role], entry['family'], entry['table'])[0]
        return chains.get(entry['chain'], {}).get('type')


def _trace(records, probes, ifnames):
    """The LOG records of the probes' SYN and SYN-ACK, in kernel sequence order, each with its probe;
    how many records had a probe's addresses and ports but came through interfaces of no namespace
    of this lab (another lab's, or anyone's); and how many were retransmissions (a SYN or SYN-ACK
    sent again, RETRANSMIT_US or more after the probe's first record), which are not its path."""
    tuples = {}
    for number, spec in enumerate(probes, 1):
        ends = ((spec['source'], str(spec['source_port'])), (spec['address'], str(spec['port'])))
        tuples[ends[0] + ends[1]] = tuples[ends[1] + ends[0]] = number
    ours = set(ifnames) | set([''])
    trace, foreign, retransmitted, first = [], 0, 0, {}
    for record in records:
        fields = record['fields']
        if fields.get('PROTO') != 'TCP' or 'SYN' not in record['tcp_flags']:
            continue
        probe_number = tuples.get(tuple(fields.get(k) for k in ('SRC', 'SPT', 'DST', 'DPT')))
        if probe_number is None:
            continue
        if fields.get('IN', '') not in ours or fields.get('OUT', '') not in ours:
            foreign += 1
            continue
        if record['timestamp_us'] - first.setdefault(probe_number, record['timestamp_us']) >= RETRANSMIT_US:
            retransmitted += 1
            continue
        trace.append(dict(
            seq=record['seq'], timestamp_us=record['timestamp_us'], prefix=record['prefix'], probe=probe_number,
            direction=_DIRECTION[(bool(fields.get('IN')), bool(fields.get('OUT')))],
            packet='syn-ack' if 'ACK' in record['tcp_flags'] else 'syn',
            fields=dict((k, fields.get(k)) for k in ('IN', 'OUT', 'SRC', 'DST', 'SPT', 'DPT')),
        ))
    return trace, foreign, retransmitted
