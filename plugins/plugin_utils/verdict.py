# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's flow verdicts as plain data: hosts x flows x verdict, and which flows fail the gate.

A flow *differs* when its verdicts, across every host and every order replayed on each,
are not all one; it *depends on order* on a host whose orders disagree; it is *unknown*
on a host where the twin could not replay it or what it saw does not say. The gate
(``fail_on``) fails a run on flows that differ or are unknown somewhere (``differs``:
nothing says they agree), on order dependence alone (``order``), or never; a host that
could not be checked fails any gate but ``never``, since nothing can be said of it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils.verdict import VERDICTS

SCHEMA = 'pflab.netfilter/verdict_report/1'
FAIL_ON = ('differs', 'order', 'never')


def _host_row(host, result):
    return dict(host=host, read=True, netns=result['host'].get('netns'),
                kernel=(result['host'].get('kernel') or {}).get('release'), rules=result['host'].get('rules'),
                units=result['host'].get('units', []), hooks_listed=result['host'].get('hooks_listed'),
                groups=result.get('groups', []), orders=[dict((k, v) for k, v in o.items() if k != 'registered')
                                                         for o in result.get('orders', [])],
                timing=result.get('timing', {}), flows=result.get('flows', []))


def build(run_id, generated, rows, fail_on):
    """The report's data from ``rows`` [(host, flow_verdict result or None, why not)]."""
    hosts, order = [], []
    for host, result, why in rows:
        if result is None:
            hosts.append(dict(host=host, read=False, error=why, flows=[]))
            continue
        hosts.append(_host_row(host, result))
        order += [f['name'] for f in result.get('flows', []) if f['name'] not in order]
    flows = []
    for name in order:
        verdicts, seen, by_order, unknown, headlines = {}, set(), [], [], {}
        for row in hosts:
            found = next((f for f in row['flows'] if f['name'] == name), None)
            if found is None:
                verdicts[row['host']] = 'not read' if not row['read'] else 'not asked'
                continue
            verdicts[row['host']] = found['verdict']
            seen |= set(o['verdict'] for o in found.get('orders', []) if o.get('verdict') in VERDICTS)
            if found.get('depends_on_order'):
                by_order.append(row['host'])
                headlines[row['host']] = found.get('headline')
            if found['verdict'] not in VERDICTS and found['verdict'] != 'depends on order':
                unknown.append(row['host'])  # not replayable, or undetermined
        differs = len(seen) > 1
        flows.append(dict(flow=name, verdicts=verdicts, seen=sorted(seen), differs=differs,
                          depends_on_order=by_order, unknown=unknown, headlines=headlines,
                          failing=(fail_on == 'differs' and (differs or bool(by_order) or bool(unknown))) or
                          (fail_on == 'order' and bool(by_order))))
    unreadable = [row['host'] for row in hosts if not row['read']]
    return dict(
        schema=SCHEMA, run_id=run_id, generated=generated, fail_on=fail_on, hosts=hosts, flows=flows,
        summary=dict(hosts=len(hosts), read=len(hosts) - len(unreadable), flows=len(flows), unreadable=unreadable,
                     differs=[f['flow'] for f in flows if f['differs']],
                     depends_on_order=[f['flow'] for f in flows if f['depends_on_order']],
                     unknown=[f['flow'] for f in flows if f['unknown']],
                     failing=[f['flow'] for f in flows if f['failing']],
                     gate_fails=fail_on != 'never' and (any(f['failing'] for f in flows) or bool(unreadable))))
