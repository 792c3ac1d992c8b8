"""The fleet report as data, its gate, JUnit, textfiles, and the templates rendering it (escaped)."""

import json
import os
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from ansible_collections.pflab.netfilter.plugins.plugin_utils import audit, output

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
TEMPLATES = os.path.join(ROOT, 'roles', 'audit', 'templates')
HOSTILE = '<script>alert(1)</script>[x](javascript:y)'


def finding(fid, severity, title='t'):
    return dict(id=fid, severity=severity, title=title, evidence=['e'], evidence_count=1, effect='x', fix='y')


def reading(digest, found, hooks=()):
    return dict(schema='pflab.netfilter/filter_facts/1', netns=None, kernel={'release': '6.18', 'legacy_xtables': True},
                commands={'iptables': 'nf_tables'}, digest=digest, findings=found, hooks=list(hooks),
                hooks_listed=False)


HOOK = {'point': 'ipv4/input', 'order': 'priority', 'entries': [
    dict(layer='netfilter', backend='iptables-legacy', family='ip', table='filter', chain='INPUT', type='filter',
         priority=0, policy='drop', rules=1, accepts=0, drops=0, filters=True, tie=True),
    dict(layer='netfilter', backend='nftables', family='inet', table=HOSTILE, chain='in', type='filter',
         priority=0, policy='accept', rules=1, accepts=1, drops=0, filters=False, tie=True)]}


def fleet(fail_on='high'):
    return audit.build('20261128T000000Z-audit', '2026-11-28T00:00:00Z', [
        ('a', reading('1' * 64, []), None),
        ('b', reading('2' * 64, [finding('priority-tie', 'high', HOSTILE), finding('mixed-backends', 'info')],
                      [HOOK]), None),
        ('c', reading('1' * 64, []), None),
        ('d', None, 'unreachable'),
        ('e', reading('3' * 64, [finding('tc-before-netfilter', 'medium'), finding('tc-before-netfilter', 'low')]),
         None),
    ], fail_on)


def test_groups_matrix_and_gate():
    data = fleet()
    assert [g['hosts'] for g in data['groups']] == [['a', 'c'], ['b'], ['e']]
    assert data['summary']['failing'] == ['b', 'd']  # high, and not read
    assert data['summary']['clean'] == ['a', 'c'] and data['summary']['unreadable'] == ['d']
    cells = dict((m['host'], m['cells']) for m in data['matrix'])
    assert cells['e'] == {'tc-before-netfilter': 'medium'} and cells['b']['priority-tie'] == 'high'
    assert fleet('medium')['summary']['failing'] == ['b', 'd', 'e']
    assert fleet('never')['summary']['failing'] == []
    with pytest.raises(ValueError):
        fleet('urgent')
    with open(os.path.join(ROOT, 'schemas', 'audit.schema.json')) as f:
        jsonschema.validate(json.loads(json.dumps(data)), json.load(f))


def test_junit_fails_exactly_the_failing_hosts():
    root = ET.fromstring(audit.junit(fleet()))
    suites = dict((s.get('name'), s) for s in root.iter('testsuite'))
    assert sorted(suites) == ['a', 'b', 'c', 'd', 'e']
    assert (suites['b'].get('failures'), suites['d'].get('errors'), suites['e'].get('failures')) == ('1', '1', '0')
    assert len(suites['a'].findall('testcase')) == len(audit.findings.IDS)


def test_file_names_are_safe_and_unique():
    names = audit.file_names(['web/1', 'web:1', '../x', ''])
    assert len(set(names.values())) == 4 and all('/' not in n and n not in ('.', '..') for n in names.values())


def test_textfile_metrics():
    row = [r for r in fleet()['hosts'] if r['host'] == 'b'][0]
    text = generate_latest(audit.metrics(row, CollectorRegistry, Gauge)).decode()
    assert 'pflab_audit_findings{id="priority-tie",severity="high"} 1.0' in text
    assert 'pflab_audit_failing 1.0' in text and 'pflab_audit_priority_ties 2.0' in text


def test_templates_escape_what_hosts_give():
    files = output.render(TEMPLATES, fleet(), 'audit', (('audit.md', 'audit.md.j2'), ('audit.html', 'audit.html.j2')))
    assert '<script>' not in files['audit.html'] and '&lt;script&gt;' in files['audit.html']
    assert '<script>' not in files['audit.md'] and '](javascript' not in files['audit.md']
    assert files['audit.html'].count('class="entry tie') == 2


def test_junit_drops_characters_xml_cannot_hold():
    data = audit.build('r', 'g', [('a', reading('1' * 64, [finding('priority-tie', 'high', 'ctl\x01\x1b[0m')]), None)],
                       'high')
    root = ET.fromstring(audit.junit(data))
    assert root.find('.//failure').get('message') == 'high: ctl[0m'
