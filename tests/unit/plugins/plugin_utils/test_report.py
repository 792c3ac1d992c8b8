"""The report's verdicts, hook order, drawn path and rule evidence, from synthetic results."""

import os

import jinja2

from ansible_collections.pflab.netfilter.plugins.plugin_utils import report

TEMPLATES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'report', 'templates')


def hook(filter_name, hook_name, registered, prefixes, priority=0, family='inet', chain=None):
    return dict(filter=filter_name, family=family, table='filter', chain=chain or hook_name, hook=hook_name,
                priority=priority, registered=registered, step=1, netns='server', log_prefixes=prefixes)


def record(prefix, direction='received'):
    return dict(prefix=prefix, direction=direction, probe=1, seq=1, timestamp_us=1, packet='syn')


SCENARIO = dict(id='experiment-2', title='t', source='article part 1, experiment 2',
                expect=dict(reached=False, trace=['nft-input', 'ipt-input']))
HOOKS = [hook('iptables-legacy', 'input', 1, ['ipt-input'], family='ip', chain='INPUT'),
         hook('iptables-legacy', 'output', 3, ['ipt-output'], family='ip', chain='OUTPUT'),
         hook('nftables', 'input', 4, ['nft-input']), hook('nftables', 'output', 6, ['nft-output'])]


def run(trace, reached=False, hooks=None, **extra):
    out = dict(status='ran', scenario=SCENARIO, kernel='6.1.0', versions={'nft': 'nftables v1.0.6'},
               hooks=HOOKS if hooks is None else hooks, probes=[dict(to='server', port=12345, outcome='timeout', elapsed_ms=200.1)],
               trace=[record(p, 'sent' if p.endswith('output') else 'received') for p in trace],
               observed=dict(reached=reached, trace=trace), lost=0)
    out.update(extra)
    return out


def test_hook_order_priority_then_last_registered():
    entries = [hook('a', 'input', 1, []), hook('b', 'input', 2, []), hook('c', 'input', 3, [], priority=-10),
               hook('d', 'input', 4, [], priority=10)]
    assert [e['filter'] for e in report.hook_order(entries)] == ['c', 'b', 'a', 'd']


def test_reproduced_with_path_stop_and_rule():
    result = report.evaluate(SCENARIO, run(['nft-input', 'ipt-input']))
    assert result['status'] == 'reproduced' and result['reasons'] == []
    points = dict((p['hook'], p) for p in result['path'])
    assert [s['filter'] for s in points['input']['stages']] == ['nftables', 'iptables-legacy']
    assert [s['state'] for s in points['input']['stages']] == ['seen', 'stopped']
    assert [s['state'] for s in points['output']['stages']] == ['not-reached', 'not-reached']
    assert result['stopped_at']['filter'] == 'iptables-legacy'
    assert result['rule'] == dict(predicted=['nft-input', 'ipt-input', 'nft-output', 'ipt-output'], holds=True)
    assert 'registered later (4th vs 1st registration)' in result['why'][0]


def test_differs_says_why_and_rule_contradiction():
    result = report.evaluate(SCENARIO, run(['ipt-input']))
    assert result['status'] == 'differs'
    assert 'expected the trace nft-input > ipt-input, the kernel logged ipt-input' in result['reasons']
    assert result['rule']['holds'] is False
    reached = report.evaluate(SCENARIO, run(['nft-input', 'ipt-input'], reached=True))
    assert 'expected the connection to fail, it succeeded' in reached['reasons']
    assert reached['rule']['holds'] is False  # a connection that got through must have passed every logging hook


def test_lost_records_never_reproduce():
    result = report.evaluate(SCENARIO, run(['nft-input', 'ipt-input'], lost=3))
    assert result['status'] == 'differs' and any('3 kernel log records were lost' in r for r in result['reasons'])


def test_skipped_failed_missing():
    assert report.evaluate(SCENARIO, dict(status='skipped', reason='no iptables-legacy'))['status'] == 'skipped'
    assert report.evaluate(SCENARIO, dict(failed=True, msg='boom')) == dict(status='failed', reasons=['boom'])
    assert report.evaluate(SCENARIO, None)['status'] == 'missing'


def test_build_hosts_differ_rule_and_article():
    reversed_hooks = [dict(h, registered=h['registered'] + (10 if h['filter'] == 'iptables-legacy' else 0))
                      for h in HOOKS]
    doc = report.build('article', 'r1', '2026-11-27T00:00:00Z', [
        ('a', [run(['nft-input', 'ipt-input'])]),
        ('b<script>', [run(['ipt-input'], hooks=reversed_hooks, versions={'nft': 'nftables v1.1.1'})]),
        ('c', None),
    ])
    assert doc['schema'] == 'pflab.netfilter/report/1'
    assert doc['summary'] == dict(reproduced=1, differs=1, skipped=0, failed=0, missing=1)
    scenario = doc['scenarios'][0]
    assert scenario['hosts_differ'] is True
    assert doc['host_facts_differ']['nft'] is True and doc['host_facts_differ']['iptables'] is False
    assert doc['rule']['holds'] is True and doc['rule']['by']['registration order']['rows'] == 4
    assert doc['article']['holds'] == ['experiment-2'] and doc['article']['does_not_hold'] == ['experiment-2']


def test_html_escapes_everything_from_hosts():
    evil = '<img src=x onerror=alert(1)>'
    doc = report.build('article', 'r1', 'now', [(evil, [run(['nft-input', 'ipt-input'], kernel=evil)])])
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    html = env.get_template('report.html.j2').render(report=doc)
    assert evil not in html
    assert '&lt;img src=x onerror=alert(1)&gt;' in html
    assert '<script' not in html and 'http://' not in html.replace('http://www.w3.org/2000/svg', '')
