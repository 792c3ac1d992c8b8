"""The fleet's flow verdicts as data, the gate, and the templates rendering them (escaped)."""

import json
import os

import jsonschema
import pytest

from ansible_collections.pflab.netfilter.plugins.plugin_utils import output, verdict

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
TEMPLATES = os.path.join(ROOT, 'roles', 'verdict', 'templates')
HOSTILE = '<script>alert(1)</script>[x](javascript:y)'


def _order(index, found, decided=None):
    return dict(order=index, verdict=found, why='w', outcome='refused', decided='reset', elapsed_ms=1.0,
                decided_by=decided, path=[dict(filter='nftables', family='inet', table='t', chain='in', position=1,
                                               rule=HOSTILE, action='accept', hooks=['input'], packets=1)],
                answer=[], witness=dict(available=True, drops=[]))


def result(*flows):
    return dict(host=dict(netns=None, kernel=dict(release='6.18'), rules=3, units=['iptables-legacy'],
                          hooks_listed=False),
                groups=[], orders=[dict(index=0, units=['iptables-legacy'], live=None, runs_first=[], loaded=True,
                                        registered=[]),
                                   dict(index=1, units=['iptables-legacy'], live=None, runs_first=[], loaded=True,
                                        registered=[])],
                timing=dict(per_flow_ms=5.0), flows=list(flows))


def flow(name, *verdicts, headline=None):
    found = sorted(set(verdicts))
    return dict(name=name, flow={}, replayable=True, reason=None,
                verdict=found[0] if len(found) == 1 else 'depends on order',
                depends_on_order=len(found) > 1, headline=headline,
                orders=[_order(i, v) for i, v in enumerate(verdicts)])


ROWS = [('web-1', result(flow('a', 'accepted', 'accepted'), flow('b', 'accepted', 'accepted'),
                         flow('c', 'accepted', 'accepted')), None),
        ('web-2', result(flow('a', 'accepted', 'accepted'), flow('b', 'dropped', 'accepted', headline='h'),
                         flow('c', 'rejected', 'rejected')), None),
        ('web-3', result(flow('a', 'accepted', 'accepted'), flow(HOSTILE, 'dropped', 'dropped')), None)]


@pytest.mark.parametrize('fail_on, failing, gate', [
    ('differs', ['b', 'c'], True), ('order', ['b'], True), ('never', [], False)])
def test_the_gate(fail_on, failing, gate):
    data = verdict.build('r', 'now', ROWS, fail_on)
    assert data['summary']['failing'] == failing and data['summary']['gate_fails'] is gate
    rows = dict((f['flow'], f) for f in data['flows'])
    assert rows['a']['differs'] is False and rows['b']['differs'] is True
    assert rows['b']['depends_on_order'] == ['web-2'] and rows['b']['headlines'] == {'web-2': 'h'}
    # asked on one host only: the others did not ask, which is no verdict and no difference
    assert rows[HOSTILE]['verdicts'] == {'web-1': 'not asked', 'web-2': 'not asked', 'web-3': 'dropped'}


def test_the_data_is_what_its_schema_says():
    with open(os.path.join(ROOT, 'schemas', 'verdict.schema.json')) as f:
        schema = json.load(f)
    for fail_on in verdict.FAIL_ON:
        data = verdict.build('r-1', '2026-11-28T10:00:00Z', ROWS + [('down', None, 'unreachable')], fail_on)
        jsonschema.validate(json.loads(json.dumps(data)), schema)
    assert schema['properties']['schema']['const'] == verdict.SCHEMA
    assert schema['properties']['fail_on']['enum'] == list(verdict.FAIL_ON)


def test_a_host_that_could_not_be_checked_fails_every_gate_but_never():
    rows = ROWS[:1] + [('down', None, 'unreachable')]
    assert verdict.build('r', 'now', rows, 'order')['summary']['gate_fails'] is True
    assert verdict.build('r', 'now', rows, 'never')['summary']['gate_fails'] is False
    data = verdict.build('r', 'now', rows, 'differs')
    assert data['summary']['unreadable'] == ['down'] and data['flows'][0]['verdicts']['down'] == 'not read'


def test_the_pages_escape_what_hosts_gave():
    data = verdict.build('r', 'now', ROWS + [(HOSTILE, None, HOSTILE)], 'differs')
    files = output.render(TEMPLATES, data, 'verdict', (('verdict.md', 'verdict.md.j2'),
                                                       ('verdict.html', 'verdict.html.j2')))
    assert '<script>' not in files['verdict.html'] and '&lt;script&gt;' in files['verdict.html']
    assert '<svg' in files['verdict.html'] and 'depends on order on web-2' in files['verdict.html']
    assert '<script>' not in files['verdict.md'] and '](' not in files['verdict.md']
