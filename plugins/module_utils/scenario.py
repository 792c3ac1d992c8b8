# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario runner: one experiment from a fresh lab to its observed trace.

fresh lab -> steps in order (the order hooks register in) -> listeners -> kmsg
cursor -> probes -> collect -> lab removed, whatever happened. Steps are the
arguments of the iptables_rules and nft_rules modules and run through the same
engines; after each step the registered hooks are read (hooks.Registry).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import time

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.pflab.netfilter.plugins.module_utils import (
    host, hooks, kmsg, lab, listener, netns, nft, probe, xtables)

DEFAULT_ROLES = ('client', 'server')
LOG_SYSCTL = 'net.netfilter.nf_log_all_netns'  # LOG rules in namespaces are silent unless it is 1
PROBE_GAP = 0.01  # nc -lk has a backlog of one: leave time between probes
_STEP_KINDS = {
    'iptables': (xtables.ARGUMENT_SPEC, {}, xtables.manage),
    'nft': (nft.ARGUMENT_SPEC, nft.ARGUMENT_RULES, nft.manage),
}
_RUN_ERRORS = (lab.LabError, listener.ListenerError, probe.ProbeError, kmsg.KmsgError, nft.NftError,
               xtables.XtablesError, OSError)
# Arguments a scenario step may not give: the lab decides the namespace (never the
# host's own), and a scenario carries its ruleset inline.
_STEP_FORBIDDEN = ('host', 'ruleset_file')
# (IN set, OUT set) of a LOG line -> the way the packet was going
_DIRECTION = {(True, False): 'received', (False, True): 'sent', (True, True): 'forwarded', (False, False): 'unknown'}
_VERSION_TOOLS = ('iptables', 'iptables-legacy', 'iptables-nft', 'nft', 'ip')


class ScenarioError(Exception):
    pass


class ScenarioTimeout(ScenarioError):
    pass


def _step_kind(step):
    kinds = [k for k in _STEP_KINDS if k in step]
    if len(kinds) != 1:
        raise ScenarioError('each step needs exactly one of %s, got %s' % (', '.join(sorted(_STEP_KINDS)), sorted(step)))
    return kinds[0]


def step_params(index, step, namespaces):
    """Validated module arguments of step ``index`` (1-based), its ``netns`` mapped to the lab's namespace."""
    kind = _step_kind(step)
    spec, rules, dummy = _STEP_KINDS[kind]
    args = dict(step[kind] or {})
    where = 'step %d (%s)' % (index, kind)
    for key in _STEP_FORBIDDEN:
        if key in args:
            raise ScenarioError('%s: %s is not allowed in a scenario' % (where, key))
    role = args.pop('netns', 'server')
    if role not in namespaces:
        raise ScenarioError('%s: netns %r is not a namespace of the lab (%s)' % (where, role, ', '.join(sorted(namespaces))))
    args['netns'] = namespaces[role]
    result = ArgumentSpecValidator(spec, **rules).validate(args)
    if result.error_messages:
        raise ScenarioError('%s: %s' % (where, '; '.join(result.error_messages)))
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
        self.module = module
        self.scenario = scenario
        self.lab_id = lab_id or 'sc-%d' % os.getpid()
        self.timeout = timeout
        roles = list(scenario.get('namespaces') or DEFAULT_ROLES)
        self.plan = lab.LabPlan(self.lab_id, roles)
        namespaces = self.plan.namespaces
        self.steps = [step_params(i, s, namespaces) for i, s in enumerate(scenario.get('steps') or [], 1)]
        self.probes = [self._probe_spec(i, p) for i, p in enumerate(scenario.get('probes') or [{}], 1)]
        self.registry = {}
        self.ruleset = {}  # role -> `list ruleset` objects after the last step there
        self.phase = 'start'

    def _probe_spec(self, index, spec):
        spec = dict({'from': 'client', 'to': 'server', 'port': 12345, 'timeout_ms': 200}, **spec)
        for key in ('from', 'to'):
            if spec[key] not in self.plan.namespaces:
                raise ScenarioError('probe %d: %s %r is not a namespace of the lab (%s)' % (
                    index, key, spec[key], ', '.join(sorted(self.plan.namespaces))))
        return spec

    def versions(self, found):
        return dict((name, found[name]['version']) for name in _VERSION_TOOLS)

    def run(self):
        """The result of the run; the lab is removed before this returns or raises."""
        found = host.tools(self.module.get_bin_path, self.module.run_command)
        release = host.kernel_info()['release']
        result = dict(id=self.scenario['id'], kernel=release, versions=self.versions(found),
                      nf_log_all_netns=host.read_sysctl(LOG_SYSCTL))
        legacy = host.legacy_support(found, release)
        if _uses_legacy(self.steps) and not legacy['usable']:
            result.update(status='skipped', reason=legacy['reason'])
            return result
        lab.require_absent(self.plan)
        started = time.monotonic()
        previous = signal.signal(signal.SIGALRM, _on_alarm), signal.signal(signal.SIGTERM, _on_term)
        signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            result.update(self._run_in_lab())
        except _RUN_ERRORS as e:
            raise ScenarioError('scenario %s, %s: %s' % (self.scenario['id'], self.phase, e))
        except ScenarioTimeout:
            raise ScenarioError('scenario %s timed out after %ss during %s; the lab was removed' % (
                self.scenario['id'], self.timeout, self.phase))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.phase = 'teardown'
            lab.remove_lab(self.module.run_command, self.lab_id)
            signal.signal(signal.SIGALRM, previous[0])
            signal.signal(signal.SIGTERM, previous[1])
        result['duration_ms'] = round((time.monotonic() - started) * 1000.0, 1)
        return result

    def _run_in_lab(self):
        self.phase = 'lab creation'
        lab.create_fresh(self.module.run_command, self.plan)
        steps = []
        for index, (kind, role, params) in enumerate(self.steps, 1):
            self.phase = 'step %d (%s)' % (index, kind)
            done = _STEP_KINDS[kind][2](self.module, params)
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
            probes.append(dict(spec, address=addresses[spec['to']], source_port=source_port,
                               outcome=outcome, reached=outcome == 'connected', elapsed_ms=elapsed_ms))
        self.phase = 'collection'
        new, lost, dummy = kmsg.since(kmsg.read_ring(), cursor)
        trace = _trace(kmsg.log_records(new), probes)
        alive, unregistered = self._hooks()
        return dict(
            status='ran',
            lab=self.plan.as_result(),
            steps=steps,
            hooks=alive,
            unregistered=unregistered,
            probes=probes,
            trace=trace,
            lost=lost,
            observed=dict(reached=all(p['reached'] for p in probes), trace=[r['prefix'] for r in trace]),
        )

    def _observe(self, step, role, filter_name):
        name = self.plan.namespaces[role]
        objects = self.ruleset[role] = nft.open_api(self.module, name).objects('ruleset') or []
        self.registry.setdefault(role, hooks.Registry()).observe(
            step, filter_name, hooks.legacy_tables(name), nft.base_chains(objects))

    def _hooks(self):
        """Hooks registered at probe time in every namespace a step changed, with the LOG prefixes
        of their chains, in registration order; and the hooks steps unregistered."""
        alive, unregistered = [], []
        for role, registry in sorted(self.registry.items()):
            name = self.plan.namespaces[role]
            runner = netns.Runner(self.module, name)
            xtables_rules = {}
            for entry in registry.alive.values():
                key = (entry['filter'], entry['family'], entry['table'])
                if entry['filter'].startswith('iptables') and key not in xtables_rules:
                    backend = xtables.resolve_backend(entry['filter'].split('-')[1], 4 if entry['family'] == 'ip' else 6,
                                                      runner, self.module.get_bin_path)
                    xtables_rules[key] = backend.save().get(entry['table'])
            alive += [dict(entry, netns=role) for entry in registry.entries(xtables_rules, self.ruleset[role])]
            unregistered += [dict(entry, netns=role) for entry in registry.removed_entries()]
        return alive, unregistered


def _trace(records, probes):
    """LOG records of the probes' SYN and SYN-ACK, in kernel sequence order, with the probe they belong to."""
    by_ports = {}
    for number, spec in enumerate(probes, 1):
        by_ports[(str(spec['source_port']), str(spec['port']))] = number
        by_ports[(str(spec['port']), str(spec['source_port']))] = number
    trace = []
    for record in records:
        fields = record['fields']
        probe_number = by_ports.get((fields.get('SPT'), fields.get('DPT')))
        if probe_number is None or fields.get('PROTO') != 'TCP' or 'SYN' not in record['tcp_flags']:
            continue
        trace.append(dict(
            seq=record['seq'], timestamp_us=record['timestamp_us'], prefix=record['prefix'], probe=probe_number,
            direction=_DIRECTION[(bool(fields.get('IN')), bool(fields.get('OUT')))],
            packet='syn-ack' if 'ACK' in record['tcp_flags'] else 'syn',
            fields=dict((k, fields.get(k)) for k in ('IN', 'OUT', 'SRC', 'DST', 'SPT', 'DPT')),
        ))
    return trace
