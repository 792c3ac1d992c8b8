# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report's data, built on the controller from the scenario module's results.

Pure functions: hosts' results in, the document of schemas/report.schema.json out.
The order rule checked here is the kernel's: hooks at one point run by priority,
lowest first; at equal priority the hook registered last runs first. What each
hook's chain does to a probe's packet (which LOG rules it hits, for sure or maybe,
and whether it drops) comes from the target (module_utils.matcher), so the trace
the rule predicts holds only the LOG rules the packet can hit.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import clip
from ansible_collections.pflab.netfilter.plugins.module_utils.steps.base import RECEIVE, SEND

SCHEMA = 'pflab.netfilter/report/1'
RULE = 'different priorities: lowest first; equal priorities: the hook registered last runs first'
ARTICLE_CONCLUSION = 'nftables has precedence over iptables'
# Points a locally delivered connection attempt crosses, in the kernel's order (steps.base): first a bridged lab's
# switch, a namespace of its own upstream of the server, then the server's own points.
SWITCH = 'switch'
PATH = (('received', SWITCH),) + tuple(('received', point) for point in RECEIVE) + \
    tuple(('sent', point) for point in SEND)
_ALWAYS_DRAWN = ('input', 'output')
_AFTER = {'prerouting': 'routing', 'input': 'socket', 'output': 'routing'}
# The points a probe's packets cross, in order: its SYN out of 'from' and into 'to', the SYN-ACK back.
PROBE_POINTS = (('from', 'output'), ('from', 'postrouting'), ('to', 'prerouting'), ('to', 'input'),
                ('to', 'output'), ('to', 'postrouting'), ('from', 'prerouting'), ('from', 'input'))
STATUSES = ('reproduced', 'differs', 'skipped', 'not run', 'failed', 'missing')
# Points whose filters' rules are not read (netdev chains, BPF programs): a drop there is never predicted.
_NOT_WALKED = frozenset(RECEIVE + SEND) - frozenset(['prerouting', 'input', 'output', 'postrouting'])
# A witnessed drop's filter -> the filters of the stages it can stand for (nft_do_chain runs iptables-nft too).
_DROPPED_BY = {'nftables': ('nftables', 'iptables-nft'), 'iptables-legacy': ('iptables-legacy',), 'tc': ('tc',),
               'xdp': ('xdp',), 'netfilter': ('nftables', 'iptables-nft', 'iptables-legacy')}
_VERSION_KEYS = ('iptables', 'iptables-legacy', 'iptables-nft', 'nft', 'ip')


def hook_order(entries):
    """``entries`` (hooks at one point) in the order the kernel runs them."""
    return sorted(entries, key=lambda e: (e['priority'], -e['registered']))


def _ordinal(n):
    suffix = 'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')
    return '%d%s' % (n, suffix)


def _label(entry):
    return '%s (%s)' % (entry['filter'], entry['where'])


def _next(point, drawn):
    """What a packet meets after ``point``: the next point drawn, or where it goes on to."""
    if point in _AFTER:
        return _AFTER[point]
    order = (SWITCH,) + RECEIVE if point in (SWITCH,) + RECEIVE else SEND
    for later in order[order.index(point) + 1:]:
        if later in drawn or later == 'prerouting':
            return later
    return 'the wire'


def path_of(run):
    """The destination's points of the first probe, each with its hooks and programs in kernel order."""
    probe = (run.get('probes') or [{}])[0]
    where = probe.get('to', 'server')
    seen = set((r['direction'], r['prefix']) for r in run.get('trace', [])
               if r.get('probe', 1) == 1 and r['source'] != 'witness')
    points = []
    for direction, point in PATH:
        # the probes are IPv4: IPv6 chains are not on their way
        entries = [e for e in run.get('hooks', []) if e.get('family') != 'ip6' and (
            (e['point'] == point and e['netns'] == where) or (point == SWITCH and e['layer'] == 'ovs'))]
        stages = []
        for entry in hook_order(entries):
            stage = dict(entry)
            # OVS counts packets per flow (every probe's), with no time: its flows are seen by their counters
            stage['seen'] = any((direction, mark) in seen for mark in entry['marks']) or \
                (entry['layer'] == 'ovs' and bool(entry.get('hits')))
            stages.append(stage)
        if stages or point in _ALWAYS_DRAWN:
            points.append(dict(direction=direction, hook=point, stages=stages))
    drawn = [p['hook'] for p in points]
    for point in points:
        point['next'] = _next(point['hook'], drawn)
    return points


def _witnessed_stop(points, drops):
    """The stage a witnessed drop of the first probe stands for, or None: among the stages of the dropping
    filter, one whose chain surely drops the packet, else the last that saw it, else the first after it."""
    drop = next((d for d in drops if d.get('probe') == 1 and d.get('filter') in _DROPPED_BY), None)
    if drop is None:
        return None, None
    stages = [s for p in points for s in p['stages']]
    candidates = [s for s in stages if s['filter'] in _DROPPED_BY[drop['filter']]]
    sure = [s for s in candidates if any(w['probe'] == 1 and w['verdict'] == 'drop' for w in s.get('walks', []))]
    seen = [s for s in candidates if s['seen']]
    last_seen = max([stages.index(s) for s in stages if s['seen']] or [-1])
    after = [s for s in candidates if stages.index(s) > last_seen]
    stop = (sure or seen[-1:] or after or [None])[0]
    return stop, drop


def _mark_stop(points, reached, drops):
    """Give every stage and point a state; return where the packet stopped, or None: the stage a witnessed
    drop stands for, else (when it did not get through) the last stage that saw it."""
    stop, drop = _witnessed_stop(points, drops) if not reached else (None, None)
    if stop is None:
        drop = None  # a drop no stage on this path stands for (another namespace's): the trace decides
        seen = [s for p in points for s in p['stages'] if s['seen']]
        stop = seen[-1] if seen and not reached else None
    after_stop = False
    for point in points:
        point['state'] = 'not-reached' if after_stop else 'passed'
        for stage in point['stages']:
            if after_stop:
                stage['state'] = 'not-reached'
            elif stage is stop:
                stage['state'] = point['state'] = 'stopped'
                after_stop = True
            else:
                stage['state'] = 'seen' if stage['seen'] else 'not-seen'
    if not stop:
        return None
    drawn = next(p['hook'] for p in points if any(s is stop for s in p['stages']))
    out = dict(filter=stop['filter'], where=stop['where'], hook=drawn)
    out.update(by='witness' if drop else 'trace', reason=drop['reason'] if drop else None,
               location=drop['location'] if drop else None)
    return out


def _walk(entry, number):
    return next((w for w in entry.get('walks', []) if w['probe'] == number), None)


def predicted(run, number):
    """The trace the order rule predicts for probe ``number``, (prefix, required) in kernel order; and
    whether the probe surely stops (then it cannot connect).

    The probe's points in path order, each point's hooks in the order the kernel runs
    them; a LOG rule the packet hits for sure is required, one it may hit is optional; a
    sure drop ends the path, a possible drop makes the rest optional.
    """
    probe = run['probes'][number - 1]
    # A netdev ingress or egress hook on the probe's way is not walked, and may drop first: then nothing is sure.
    roles = (probe.get('from'), probe.get('to'))
    # (a bridged lab's switch is on every probe's way, in a namespace of its own)
    items, sure = [], not any(e['point'] in _NOT_WALKED and (e['netns'] in roles or e['layer'] == 'ovs')
                              for e in run.get('hooks', []))
    for side, hook in PROBE_POINTS:
        entries = [e for e in run.get('hooks', []) if e['netns'] == probe.get(side) and e['point'] == hook]
        for walk in (_walk(entry, number) for entry in hook_order(entries)):
            if walk is None:
                continue  # the probe's packet does not pass this hook (its family is IPv6, say)
            items += [(log['prefix'], sure and log['certain']) for log in walk['logs']]
            if walk['verdict'] == 'drop' and sure:
                return items, True
            sure = sure and walk['verdict'] == 'accept'
    return items, False


def fits(observed, items):
    """Whether ``observed`` (prefixes) is ``items`` (prefix, required) with only optional items left out."""
    consumed = set([0])  # how much of ``observed`` the items so far can stand for
    for prefix, required in items:
        matched = set(n + 1 for n in consumed if n < len(observed) and observed[n] == prefix)
        consumed = matched if required else matched | consumed
    return len(observed) in consumed


def _order_sentences(points):
    out = []
    for point, first, second in _pairs(points):
        if first['layer'] == 'ovs':
            why = 'OpenFlow priority %d is higher than %d' % (-first['priority'], -second['priority'])
        elif first['priority'] != second['priority']:
            why = 'priority %d is lower than %d' % (first['priority'], second['priority'])
        else:
            why = 'both priority %d, and it registered later (%s vs %s registration)' % (
                first['priority'], _ordinal(first['registered']), _ordinal(second['registered']))
        out.append('at %s, %s runs before %s: %s' % (point['hook'], _label(first), _label(second), why))
    return out


def _pairs(points):
    """Adjacent hooks at one point: the rows of evidence for the order rule."""
    for point in points:
        for first, second in zip(point['stages'], point['stages'][1:]):
            yield point, first, second


def evaluate(scenario, run):
    """One scenario on one host: status, reasons, the drawn path and the rule check."""
    if run is None:
        return dict(status='missing', reasons=['no result from this host (unreachable, or failed before the run)'])
    if run.get('status') == 'not run' and not run.get('failed'):
        return dict(status='not run', reasons=['check mode: the scenario was checked, nothing ran'])
    if run.get('failed') or run.get('status') not in ('ran', 'skipped'):
        return dict(status='failed', reasons=['%s' % (run.get('msg') or 'the scenario module failed',)])
    if run['status'] == 'skipped':
        return dict(status='skipped', reasons=['%s' % (run.get('reason') or 'skipped',)])
    observed = run['observed']
    expect = scenario['expect']
    points = path_of(run)
    stop = _mark_stop(points, observed['reached'], run.get('drops', []))
    probes = run.get('probes', [])
    predictions = [predicted(run, number) for number in range(1, len(probes) + 1)]
    rule_holds = all(fits([r['prefix'] for r in run.get('trace', []) if r['probe'] == number and r['source'] == 'log'],
                          items)
                     and not (stops and probe.get('outcome') == 'connected')
                     for number, (probe, (items, stops)) in enumerate(zip(probes, predictions), 1))
    reasons = []
    if observed['reached'] != expect['reached']:
        reasons.append('expected the connection to %s, it %s' % (
            'succeed' if expect['reached'] else 'fail', 'succeeded' if observed['reached'] else 'failed'))
    if observed['trace'] != expect['trace']:
        reasons.append('expected the trace %s, the kernel logged %s' % (
            ' > '.join(expect['trace']) or '(nothing)', ' > '.join(observed['trace']) or '(nothing)'))
    for entry in run.get('unregistered', []):
        reasons.append('%s was unregistered by step %d' % (_label(entry), entry['removed_by_step']))
    if run.get('nf_log_all_netns') == '0':
        reasons.append('net.netfilter.nf_log_all_netns was 0 on the host: LOG rules in namespaces wrote nothing '
                       '(the role pflab.netfilter.lab_host sets it)')
    if run.get('lost'):
        reasons.append('%d kernel log records were lost before they were read: the trace may be incomplete'
                       % run['lost'])
    overwritten = (run.get('witness') or {}).get('overwritten')
    if overwritten:
        reasons.append('the drop witness\'s buffer overflowed during the run (%d events overwritten): drops may be '
                       'missing from the trace' % overwritten)
    if run.get('retransmitted'):
        reasons.append('%d kernel log records of retransmitted SYNs or SYN-ACKs (a second or more after the first) '
                       'are not in the trace' % run['retransmitted'])
    if run.get('foreign'):
        reasons.append('%d kernel log records had the probes\' addresses and ports but came through interfaces of '
                       'no namespace of this lab: they are not in the trace' % run['foreign'])
    status = 'reproduced' if observed['reached'] == expect['reached'] and observed['trace'] == expect['trace'] \
        and not run.get('lost') else 'differs'
    return dict(
        status=status,
        reasons=reasons,
        why=_order_sentences(points),
        observed=dict(reached=observed['reached'], trace=observed['trace'], lost=run.get('lost', 0)),
        probes=run.get('probes', []),
        trace=run.get('trace', []),
        witness=run.get('witness'),
        foreign=run.get('foreign', 0),
        retransmitted=run.get('retransmitted', 0),
        steps=run.get('steps', []),
        unregistered=run.get('unregistered', []),
        path=points,
        stopped_at=stop,
        rule=dict(predicted=[prefix + ('' if required else '?') for prefix, required in
                             (predictions[0][0] if predictions else [])], holds=rule_holds),
        duration_ms=run.get('duration_ms'),
    )


def _host_facts(name, runs):
    for run in runs:
        if isinstance(run, dict) and isinstance(run.get('kernel'), str):
            versions = run.get('versions') if isinstance(run.get('versions'), dict) else {}
            return dict(name=name, kernel=run['kernel'], versions=dict(
                (k, versions.get(k) if isinstance(versions.get(k), str) else None) for k in _VERSION_KEYS))
    return dict(name=name, kernel=None, versions=dict((k, None) for k in _VERSION_KEYS))


def _article_check(scenario_id, host, result):
    """Whether 'nftables first' held at input for this row, when both kinds of filter were there."""
    for point in result.get('path', []):
        if point['hook'] != 'input':
            continue
        filters = [s['filter'] for s in point['stages']]
        has_ipt = [f for f in filters if f.startswith('iptables')]
        if 'nftables' in filters and has_ipt:
            return dict(scenario=scenario_id, host=host, first=filters[0], holds=filters[0] == 'nftables')
    return None


def _usable(scenario):
    expect = scenario.get('expect') if isinstance(scenario, dict) else None
    return isinstance(expect, dict) and all(isinstance(scenario.get(k), str) for k in ('id', 'title', 'source')) \
        and isinstance(expect.get('trace'), list) and all(isinstance(p, str) for p in expect['trace']) \
        and isinstance(expect.get('reached'), (bool, type(None))) and isinstance(scenario.get('notes', ''), str)


def scenario_of(run, index):
    """The scenario a result is of; for a scenario that could not be read, a stand-in named after the loop item."""
    run = run if isinstance(run, dict) else {}
    if _usable(run.get('scenario')):
        return run['scenario']
    item = run.get('item')
    src = item.get('src') if isinstance(item, dict) else item
    variant = item.get('variant') or {} if isinstance(item, dict) else {}
    name = variant.get('id') if isinstance(variant, dict) else None
    if not isinstance(name, str):
        name = os.path.splitext(os.path.basename(src))[0] if isinstance(src, str) and src else 'scenario-%d' % (index + 1)
    return dict(id=name, title='not run', source=src if isinstance(src, str) and src else 'unknown', notes='',
                expect=dict(reached=None, trace=[]))


def _evaluated(scenario, run):
    """evaluate(), or a failure when the host's result is not one this report can read (a host may send anything)."""
    try:
        return evaluate(scenario, run)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return dict(status='failed', reasons=['the host returned a result this report cannot read (%s)' % type(e).__name__])


def problems(document, statuses):
    """'host: scenario: status: reason' for every run with one of ``statuses``."""
    return [clip('%s: %s: %s: %s' % (r['host'], s['id'], r['status'], '; '.join('%s' % why for why in r.get('reasons') or [])),
                 500) for s in document['scenarios'] for r in s['results'] if r['status'] in statuses]


def build(suite, run_id, generated, hosts_runs):
    """The report document.

    ``hosts_runs`` is a list of (host name, list of scenario module results or
    None when the host gave none); every host ran the same scenarios in order.
    """
    scenarios, by_host = [], {}
    for host, runs in hosts_runs:
        by_host[host] = {}
        for index, run in enumerate(runs or []):
            scenario = scenario_of(run, index)
            by_host[host][scenario['id']] = run
            if scenario['id'] not in [s['id'] for s in scenarios]:
                scenarios.append(scenario)
    rule_rows, article_rows, out = [], [], []
    for scenario in scenarios:
        results = []
        for host, dummy in hosts_runs:
            result = _evaluated(scenario, by_host[host].get(scenario['id']))
            result['host'] = host
            results.append(result)
            for point, first, second in _pairs(result.get('path', [])):
                rule_rows.append(dict(
                    scenario=scenario['id'], host=host, hook=point['hook'], first=_label(first), second=_label(second),
                    decided_by='priority' if first['priority'] != second['priority'] else 'registration order',
                    confirmed=result['rule']['holds'] and first['seen'], holds=result['rule']['holds']))
            check = _article_check(scenario['id'], host, result)
            if check:
                article_rows.append(check)
        outcomes = set((r['status'], tuple(r.get('observed', {}).get('trace', [])), r.get('observed', {}).get('reached'))
                       for r in results if r['status'] not in ('skipped', 'missing'))
        out.append(dict(
            id=scenario['id'], title=scenario['title'], source=scenario['source'], notes=scenario.get('notes', ''),
            variant=scenario.get('variant'), steps=scenario.get('steps', []), expect=scenario['expect'],
            results=results, hosts_differ=len(outcomes) > 1,
        ))
    statuses = [r['status'] for s in out for r in s['results']]
    hosts = [_host_facts(host, runs or []) for host, runs in hosts_runs]
    return dict(
        schema=SCHEMA,
        suite=suite,
        run_id=run_id,
        generated=generated,
        hosts=hosts,
        host_facts_differ=dict((key, len(set(h['versions'][key] for h in hosts)) > 1) for key in _VERSION_KEYS),
        summary=dict((status, statuses.count(status)) for status in STATUSES),
        rule=_rule_summary(rule_rows),
        article=_article_summary(article_rows),
        scenarios=out,
    )


def _rule_summary(rows):
    by = {}
    for row in rows:
        counts = by.setdefault(row['decided_by'], dict(rows=0, confirmed=0, contradicted=0))
        counts['rows'] += 1
        counts['confirmed'] += 1 if row['confirmed'] else 0
        counts['contradicted'] += 0 if row['holds'] else 1
    contradicted = sum(c['contradicted'] for c in by.values())
    if not rows:
        verdict = 'no scenario had two hooks at one point: the order rule was not exercised'
    elif contradicted:
        verdict = 'contradicted by %d of %d rows: see them below' % (contradicted, len(rows))
    else:
        verdict = 'every observed order agrees with it (%d rows)' % len(rows)
    return dict(statement=RULE, verdict=verdict, holds=bool(rows) and not contradicted, by=by, rows=rows)


def _article_summary(rows):
    holds = [r for r in rows if r['holds']]
    fails = [r for r in rows if not r['holds']]
    if not rows:
        text = 'no scenario had nftables and iptables hooks at input together'
    elif not fails:
        text = 'holds in every row here (%d): nftables ran first at input each time' % len(rows)
    elif not holds:
        text = 'does not hold in any row here (%d): iptables ran first at input each time' % len(rows)
    else:
        text = ('holds in %d rows and not in %d: nftables runs first only when its chains have a lower priority, '
                'or the same priority and were registered after the iptables hooks' % (len(holds), len(fails)))
    return dict(conclusion=ARTICLE_CONCLUSION, verdict=text, holds=list(dict.fromkeys(r['scenario'] for r in holds)),
                does_not_hold=list(dict.fromkeys(r['scenario'] for r in fails)), rows=rows)
