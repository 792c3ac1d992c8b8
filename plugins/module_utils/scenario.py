# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario runner: one experiment from a fresh lab to its observed trace.

stale labs reaped -> the lab claimed (a marker naming this process as its owner)
-> fresh lab (and its switch, when bridged) -> steps in order (the order hooks,
programs and flows register in) -> listeners -> kmsg cursor and the drop witness
-> probes -> collect -> lab removed and released, whatever happened. Steps are the
arguments of their kind's module (steps.KINDS: iptables_rules, nft_rules,
bpf_filter, ovs_flows), checked before any lab exists, and run through the same
engines; after each step the layers the scenario uses are read (hooks.Registry).

A LOG record belongs to a probe only when it carries the probe's addresses and
ports and names only this lab's interfaces, whose names no other live lab uses;
records with the probe's addresses and ports from anywhere else are counted
(``foreign``), never taken into the trace.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import signal
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pflab.netfilter.plugins.module_utils import (
    bpf, bpf_filter, host, hooks, kmsg, lab, listener, matcher, names, netns, nflog, nft, nft_api, ovs, probe, proc,
    reaper, state, witness, xtables)
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip, shown
from ansible_collections.pflab.netfilter.plugins.module_utils.steps import KINDS
from ansible_collections.pflab.netfilter.plugins.module_utils.steps.base import RECEIVE

DEFAULT_ROLES = ('client', 'server')
PROBE_GAP = 0.01  # nc -lk has a backlog of one: leave time between probes
_PROBE_DEFAULTS = {'from': 'client', 'to': 'server', 'port': 12345, 'timeout_ms': 200}
# (the namespace's side of the probe, hook) -> the probe's packet that passes there
_PASSES = {('to', 'prerouting'): 'syn', ('to', 'input'): 'syn', ('to', 'output'): 'syn-ack',
           ('to', 'postrouting'): 'syn-ack', ('from', 'output'): 'syn', ('from', 'postrouting'): 'syn',
           ('from', 'prerouting'): 'syn-ack', ('from', 'input'): 'syn-ack'}
_CONNTRACK_PRIORITY = -200  # NF_IP_PRI_CONNTRACK
# TCP sends a SYN (or SYN-ACK) again after 1 s at the earliest: records that late are a retransmission
RETRANSMIT_US = 900000
RETRANSMIT_FIRST_MS = 1000  # TCP_TIMEOUT_INIT
# (IN set, OUT set) of a LOG line -> the way the packet was going
_DIRECTION = {(True, False): 'received', (False, True): 'sent', (True, True): 'forwarded', (False, False): 'unknown'}
_VERSION_TOOLS = ('iptables', 'iptables-legacy', 'iptables-nft', 'nft', 'ip')
NETDEV_EGRESS_KERNEL = (5, 16)
TIMEOUT_MAX = 3600  # seconds a run may take at most


class ScenarioError(PflabError):
    pass


class ScenarioTimeout(ScenarioError):
    pass


def _step_kind(index, step):
    kinds = [k for k in KINDS if k in step] if isinstance(step, dict) else []
    if len(kinds) != 1 or len(step) != 1:
        raise ScenarioError('step %d: a step is a mapping with exactly one of %s, got %s' % (
            index, ', '.join(sorted(KINDS)), shown(step)))
    return kinds[0]


def _list_of(scenario, key, default):
    value = scenario.get(key)
    if value is None:
        return list(default)
    if not isinstance(value, list):
        raise ScenarioError('%s is a list, got %s' % (key, shown(value)))
    return value


def step_params(index, step, plan):
    """Validated module arguments of step ``index`` (1-based), its ``netns`` mapped to the lab's namespace;
    the interfaces it names are roles of the lab it has a link to (``StepKind.bind`` names them)."""
    name = _step_kind(index, step)
    kind = KINDS[name]
    where = 'step %d (%s)' % (index, name)
    if not isinstance(step[name], dict):
        raise ScenarioError('%s: the arguments are a mapping, got %s' % (where, shown(step[name])))
    args = dict(step[name])
    for key in kind.forbidden:
        if key in args:
            raise ScenarioError('%s: %s is not allowed in a scenario' % (where, key))
    role = args.pop('netns', 'server')
    if not isinstance(role, str) or role not in plan.namespaces:
        raise ScenarioError('%s: netns %s is not a namespace of the lab (%s)' % (
            where, shown(role), ', '.join(sorted(plan.namespaces))))
    args['netns'] = plan.namespaces[role]
    result = ArgumentSpecValidator(kind.spec, **kind.rules).validate(args)
    if result.error_messages:
        raise ScenarioError(clip('%s: %s' % (where, '; '.join(result.error_messages))))
    params = result.validated_parameters
    for path, peer in kind.lab_roles(params):
        if not isinstance(peer, str) or plan.end_towards(role, peer) is None:
            raise ScenarioError('%s: %s names the interface of %s towards a peer: %s is no namespace %s has a link to' % (
                where, '.'.join(str(p) for p in path), role, shown(peer), role))
    try:
        kind.validate(params)
    except PflabError as e:
        raise ScenarioError('%s: %s' % (where, e))
    return name, role, params


def missing_feature(steps, found, release, bridged, unavailable):
    """Why this host cannot run ``steps`` ([(kind, role, params)]) in a lab (``bridged``: with a switch), or None:
    the first feature needed that the host lacks. ``found`` is host.tools, ``release`` the kernel's, and
    ``unavailable`` says why 'bpf', 'bpf-tc' or 'ovs' cannot be used (None: they can)."""
    needed = set(KINDS[kind].needs(params) for kind, dummy, params in steps) | set(['ovs'] if bridged else [])
    needed.discard(None)
    if 'iptables-legacy' in needed:
        legacy = host.legacy_support(found, release)
        if not legacy['usable']:
            return legacy['reason']
    if 'netdev-egress' in needed:
        version = tuple(int(n) for n in re.findall(r'\d+', release)[:2])
        if version < NETDEV_EGRESS_KERNEL:
            return 'kernel %s has no nft netdev egress hook (it came in %d.%d)' % ((release,) + NETDEV_EGRESS_KERNEL)
    for feature in ('bpf', 'bpf-tc', 'ovs'):
        why = unavailable(feature) if feature in needed else None
        if why:
            return why
    return None


class HostFacts:
    """What a run needs to know of the host, read once for every run of a suite: the tools (``found``, as
    host.tools), the kernel release, and why a feature cannot be used (asked once a feature)."""

    def __init__(self, module, found=None, release=None):
        """``found`` and ``release`` as host.gather read them, when it did."""
        self.module = module
        self.found = found or host.tools(module.get_bin_path, proc.run)
        self.release = release or host.kernel_info()['release']
        self._why = {}

    def unavailable(self, feature):
        """Why 'bpf', 'bpf-tc' or 'ovs' cannot be used here, or None."""
        if feature not in self._why:
            if feature == 'bpf':
                why = bpf.available()
            elif feature == 'bpf-tc':
                why = self.unavailable('bpf') or (lab.PYROUTE2_IMPORT_ERROR and 'tc programs are attached with '
                                                  'pyroute2: ' + lab.PYROUTE2_IMPORT_ERROR)
            else:
                why = ovs.unavailable(self.module.get_bin_path)
            self._why[feature] = why
        return self._why[feature]

    def versions(self):
        return dict((name, self.found[name]['version']) for name in _VERSION_TOOLS)


_HELD = (signal.SIGALRM, signal.SIGTERM, signal.SIGINT)  # signals that wait for the removal of what a run made


def _on_alarm(signum, frame):
    raise ScenarioTimeout('timed out')


def _on_term(signum, frame):
    raise ScenarioError('terminated by signal %d' % signum)


class Runner:
    """Runs one scenario (already checked against the schema) with an AnsibleModule for commands."""

    def __init__(self, module, scenario, lab_id=None, timeout=30):
        """Check ``scenario`` here too (the controller checked it against the schema, but a module can be
        reached without its action plugin) and every step's arguments, before any lab exists. The lab id
        defaults to ``sc-<pid>`` of the process that builds the runner (a suite builds it in the run's own)."""
        self.module = module
        self.scenario = scenario
        names.check('scenario_id', scenario.get('id'), 'scenario id')
        self.lab_id = lab_id or 'sc-%d' % os.getpid()
        self.timeout = timeout
        self.roles = _list_of(scenario, 'namespaces', DEFAULT_ROLES)
        self.bridge = scenario.get('bridge')
        self.plan = lab.LabPlan(self.lab_id, self.roles, bridge=self.bridge)  # interface names come with the claim
        self.steps = [step_params(i, s, self.plan) for i, s in enumerate(_list_of(scenario, 'steps', []), 1)]
        for index, (kind, role, dummy) in enumerate(self.steps, 1):
            if KINDS[kind].in_bridge and role != self.bridge:
                raise ScenarioError('step %d (%s): netns must be the lab\'s switch (the scenario\'s bridge), not %s'
                                    % (index, kind, role))
        self.layers = set(KINDS[kind].layer for kind, dummy, dummy in self.steps)
        self.probes = [self._probe_spec(i, p) for i, p in enumerate(_list_of(scenario, 'probes', [{}]), 1)]
        if not 1 <= len(self.probes) <= state.PORTS_BLOCK:
            raise ScenarioError('probes: give 1 to %d probes, or leave probes out for the default, got %d'
                                % (state.PORTS_BLOCK, len(self.probes)))
        self.registry = {}
        self.ruleset = {}  # role -> `list ruleset` objects after the last step there
        self.source_ports = None  # the first of the lab's block of probe source ports, given with the claim
        self.shared_witness = None
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
            if spec[key] == self.bridge:
                raise ScenarioError('probe %d: %s %s is the lab\'s switch, which has no address' % (
                    index, key, shown(spec[key])))
        return spec

    def missing(self, facts):
        """Why this host (HostFacts) cannot run the scenario, or None."""
        return missing_feature(self.steps, facts.found, facts.release, bool(self.bridge), facts.unavailable)

    def run(self, facts=None, reap=True, shared_witness=None):
        """The result of the run; the lab is removed and released before this returns or raises. ``facts``
        (HostFacts) are read here when not given; ``reap`` first removes what runs whose owner is gone left;
        ``shared_witness`` is a suite's drop witness, which records this process too (else the run makes its own)."""
        self.shared_witness = shared_witness
        facts = facts or HostFacts(self.module)
        result = dict(id=self.scenario['id'], kernel=facts.release, versions=facts.versions())
        missing = self.missing(facts)
        if missing:
            result.update(status='skipped', reason=missing)
            return result
        result['cleaned'] = reaper.reap()['changes'] if reap else []
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
                self.plan = lab.LabPlan(self.lab_id, self.roles, ifname_tag=state.new_ifname_tag(markers),
                                        bridge=self.bridge)
                self.source_ports = state.new_source_ports(markers)
                state.claim(self.lab_id, self.plan.namespaces.values(), state.me(), log=True,
                            ifname_tag=self.plan.ifname_tag, source_ports=self.source_ports)
                claimed = True
                nflog.sync()
            result['nf_log_all_netns'] = nflog.read()
            result.update(self._run_in_lab())
        except ScenarioTimeout:
            error = 'scenario %s timed out after %ss during %s' % (self.scenario['id'], self.timeout, self.phase)
        except (PflabError, OSError) as e:
            error = 'scenario %s, %s: %s' % (self.scenario['id'], self.phase, e)
        finally:
            # The timer's alarm, SIGTERM and SIGINT wait (blocked) until the teardown is done; a pending alarm
            # is dropped with the timer. Any other signal that ends the process leaves the lab to the next
            # run (the lab's marker names this process).
            held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.sigtimedwait((signal.SIGALRM,), 0)
                signal.signal(signal.SIGALRM, previous[0])
                signal.signal(signal.SIGTERM, previous[1])
                if claimed:
                    left = self._teardown()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
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
        switch = None
        if self.bridge:
            self.phase = 'switch'
            switch = lab.switch_of(self.plan)
            switch.start()
            lab.offload_off(self.plan)
        steps = []
        for index, (name, role, params) in enumerate(self.steps, 1):
            self.phase = 'step %d (%s)' % (index, name)
            kind = KINDS[name]
            done = kind.apply(self.module, kind.bind(params, self.plan, role))
            self._observe(index, role, done['filter'])
            steps.append(dict(kind=name, netns=role, filter=done['filter'], changes=done['changes']))

        self.phase = 'listeners'
        for spec in self.probes:
            nc = listener.Listener(self.plan.namespaces[spec['to']], spec['port'])
            if nc.pid() is None:
                nc.start()
        self.phase = 'probes'
        addresses = self.plan.addresses()
        recording = witness.Witness(self.lab_id, shared=self.shared_witness)
        ring = kmsg.Reader()
        try:
            try:
                recording.start(switch.pids() if switch else [])
                cursor = ring.skip()
                probes, ports = [], self._source_ports()
                for number, spec in enumerate(self.probes):
                    if number:
                        time.sleep(PROBE_GAP)
                    started = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                    outcome, elapsed_ms, source_port, decided = probe.tcp_connect(
                        self.plan.namespaces[spec['from']], addresses[spec['to']], spec['port'], spec['timeout_ms'],
                        source_port=ports[number], dropped=self._drop_told(recording, spec, started))
                    probes.append(dict(spec, address=addresses[spec['to']], source=self.plan.address_towards(
                        spec['from'], spec['to']), source_port=source_port, outcome=outcome,
                        reached=outcome == 'connected', decided_by=decided, elapsed_ms=elapsed_ms,
                        window_ns=[started, time.clock_gettime_ns(time.CLOCK_MONOTONIC)]))
                self.phase = 'collection'
                events = recording.events()
            finally:
                # not cut short by the run's timer, SIGTERM or SIGINT: they arrive once the instance is gone
                held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
                try:
                    recording.stop()
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, held)
            new, lost, dummy = kmsg.since(ring.records(), cursor)
        finally:
            ring.close()
        alive, unregistered = self._hooks(probes)
        logged, foreign, retransmitted = _trace(kmsg.log_records(new), probes, self.plan.ifnames())
        seen, late = _sightings(alive, probes)
        trace, drops, others = timeline(logged, seen, events, probes, recording.clock['checked'])
        return dict(
            status='ran',
            lab=self.plan.as_result(),
            steps=steps,
            hooks=alive,
            unregistered=unregistered,
            probes=probes,
            trace=trace,
            drops=drops,
            witness=dict(available=recording.reason is None, reason=recording.reason, clock=recording.clock,
                         other_drops=others, overwritten=recording.overwritten),
            lost=lost,
            foreign=foreign,
            retransmitted=retransmitted + late,
            observed=dict(reached=all(p['reached'] for p in probes),
                          trace=[r['prefix'] for r in trace if r['source'] != 'witness']),
        )

    def _source_ports(self):
        """A source port for each probe from the lab's block, none a port a listener of the lab uses in the probe's
        namespace."""
        listening = set((spec['to'], spec['port']) for spec in self.probes)
        block = iter(range(self.source_ports, self.source_ports + state.PORTS_BLOCK))
        ports = []
        for spec in self.probes:
            port = next((p for p in block if (spec['from'], p) not in listening), None)
            if port is None:
                raise ScenarioError('the probes\' listeners take too many of the lab\'s %d source ports (%d-%d): '
                                    'give listener ports outside that range' % (
                                        state.PORTS_BLOCK, self.source_ports, self.source_ports + state.PORTS_BLOCK - 1))
            ports.append(port)
        return ports

    def _drop_told(self, recording, spec, started):
        """What tells the probe of a drop before its timeout, or None (the timeout decides).

        The drop witness, in a lab whose links are veth pairs (through a switch, a packet takes its way
        asynchronously through the switch's daemon, which taps its copy before a filter of the switch's
        namespace runs: a drop there is not the packet's end) and for a probe that ends before TCP's first
        retransmission (1 s), which could still pass where the first SYN was dropped. probe.tcp_connect
        takes a drop only while the socket has no answer. Drops are told apart by process, not by packet:
        a filter drop of another packet in the run's context (a host's, handled in its softirq) while the
        probe's own answer is late would end the probe too early; on veths the answer comes within the
        connect call.
        """
        if recording.reason or not recording.live or self.bridge or spec['timeout_ms'] >= RETRANSMIT_FIRST_MS:
            return None
        return lambda: recording.dropped_since(started)

    def _observe(self, step, role, filter_name):
        """Snapshot, after step ``step``, of what the layers the scenario uses hold in ``role``'s namespace."""
        name = self.plan.namespaces[role]
        found = {}
        if 'netfilter' in self.layers:
            api = nft_api.open_api(self.module, name)
            try:
                objects = self.ruleset[role] = api.objects('ruleset') or []
            finally:
                api.close()
            found.update(hooks.snapshot(name, objects))
        if 'bpf' in self.layers:
            found.update(bpf_filter.snapshot(self.module, name))
        if 'ovs' in self.layers:
            found.update(ovs.snapshot(name))
        self.registry.setdefault(role, hooks.Registry()).observe(step, filter_name, found)

    def _hooks(self, probes):
        """Hooks and attachments registered at probe time in every namespace a step changed, in registration
        order, each with the marks it leaves in a trace (its chain's LOG prefixes, a program's label); and
        the hooks steps unregistered."""
        alive, unregistered = [], []
        for role, registry in sorted(self.registry.items()):
            name = self.plan.namespaces[role]
            runner = netns.Runner(name)
            xtables_rules = {}
            for entry in registry.alive.values():
                key = (entry['filter'], entry['family'], entry['table']) if entry['layer'] == 'netfilter' else None
                if key and entry['filter'].startswith('iptables') and key not in xtables_rules:
                    backend = xtables.resolve_backend(entry['filter'].split('-')[1], 4 if entry['family'] == 'ip' else 6,
                                                      runner, self.module.get_bin_path)
                    xtables_rules[key] = backend.save().get(entry['table'])
            counted = ovs.snapshot(name) if 'ovs' in self.layers else {}  # the flows' packets, probes included
            for entry in registry.entries(xtables_rules, self.ruleset.get(role, [])):
                if entry['layer'] == 'ovs':
                    entry['hits'] = counted.get(('ovs', ovs.BRIDGE, entry['flow']), {}).get('hits')
                if entry['layer'] == 'netfilter':
                    table = xtables_rules.get((entry['filter'], entry['family'], entry['table']))
                    entry.update(marks=entry['log_prefixes'], walks=self._walks(entry, role, probes, table))
                else:
                    kind, dummy, params = self.steps[entry['step'] - 1]
                    entry.update(marks=KINDS[kind].marks(params, entry), walks=[])
                alive.append(dict(entry, netns=role))
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
    ours = set(ifnames) | set([''])
    trace, foreign, retransmitted, first = [], 0, 0, {}
    for record in records:
        fields = record['fields']
        if fields.get('PROTO') != 'TCP' or 'SYN' not in record['tcp_flags']:
            continue
        sport, dport = (int(fields[k]) if fields.get(k, '').isdigit() else None for k in ('SPT', 'DPT'))
        probe_number = _probe_of(probes, fields.get('SRC'), sport, fields.get('DST'), dport)[0]
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
            message=record['message'],
        ))
    return trace, foreign, retransmitted


def _probe_of(probes, src, sport, dst, dport):
    """(probe number, 'syn' or 'syn-ack' direction of its ends) of a packet with these ends, or (None, None)."""
    for number, spec in enumerate(probes, 1):
        ends = ((spec['source'], spec['source_port']), (spec['address'], spec['port']))
        if ((src, sport), (dst, dport)) == ends:
            return number, 'syn'
        if ((dst, dport), (src, sport)) == ends:
            return number, 'syn-ack'
    return None, None


def _sightings(alive, probes):
    """The BPF programs' sightings of the probes' SYN and SYN-ACK, as trace records with CLOCK_MONOTONIC
    times; and how many were retransmissions (RETRANSMIT_US or more after the probe's first sighting)."""
    records, late, first = [], 0, {}
    for entry in alive:
        read = bpf.read(entry['program_id']) if entry['layer'] == 'bpf' and entry.get('program_id') else None
        if not read:
            continue
        entry['hits'] = read['hits']
        for seen in read['sightings']:
            number, way = _probe_of(probes, seen['src'], seen['sport'], seen['dst'], seen['dport'])
            if number is None or 'SYN' not in seen['tcp_flags'] or (way == 'syn-ack') != ('ACK' in seen['tcp_flags']):
                continue
            if seen['time_ns'] - first.setdefault(number, seen['time_ns']) >= RETRANSMIT_US * 1000:
                late += 1
                continue
            records.append(dict(
                source='bpf', prefix=entry['marks'][0], probe=number, packet=way, time_ns=seen['time_ns'],
                direction='received' if entry['point'] in RECEIVE else 'sent', netns=entry['netns'],
                tcp_flags=seen['tcp_flags'], fields=dict(IN=entry['device'] if entry['point'] in RECEIVE else '',
                                                         OUT='' if entry['point'] in RECEIVE else entry['device'],
                                                         SRC=seen['src'], DST=seen['dst'], SPT=str(seen['sport']),
                                                         DPT=str(seen['dport']))))
    return records, late


def timeline(logged, seen, events, probes, clock_checked):
    """One trace of LOG records, BPF sightings and witnessed drops in the order the packets met them; the
    drops alone; and how many drops in the probes' time were no filter's (left out).

    With the witness's clock checked, every record has a CLOCK_MONOTONIC time: a LOG
    record takes the time of its text in the witness (``console`` events), a drop is
    the witness's, a sighting the program's. Records less than a microsecond apart
    (the witness's resolution) are marked ``tie``: their order is not known. Without
    that clock, the LOG records stay in kernel log order and sightings follow them,
    marked ``unordered``.
    """
    texts = [record.pop('message').strip() for record in logged]
    logged = [dict(record, source='log') for record in logged]
    if not clock_checked:
        return logged + [dict(record, unordered=True) for record in seen], [], 0
    witnessed = {}
    for event in events:
        if event['event'] == 'console':
            witnessed.setdefault(event['message'], []).append(event['time_ns'])
    previous = 0
    for record, text in zip(logged, texts):
        times = witnessed.get(text)
        if times:
            record['time_ns'] = previous = times.pop(0)
        else:
            record.update(time_ns=previous, unordered=True)  # not in the witness (another context logged it)
    drops, others = [], 0
    for event in events:
        if event['event'] != 'drop':
            continue
        number = next((n for n, p in enumerate(probes, 1) if p['window_ns'][0] <= event['time_ns'] <= p['window_ns'][1]),
                      None)
        if number is None:
            continue
        if event['filter'] is None:
            others += 1  # not a filter's drop (a flooded copy, a closed socket): not the probe's path
            continue
        drops.append(dict(source='witness', prefix='drop', probe=number, time_ns=event['time_ns'],
                          reason=event['reason'], location=event['location'], filter=event['filter']))
    merged = sorted(logged + seen + drops, key=lambda r: r['time_ns'])
    for before, after in zip(merged, merged[1:]):
        if after['time_ns'] - before['time_ns'] < 1000 and before['source'] != after['source']:
            before['tie'] = after['tie'] = True
    return merged, drops, others
