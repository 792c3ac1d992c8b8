"""The report's verdicts, hook order, drawn path and rule evidence, from synthetic results."""

import html
import os
import re

import jinja2
import pytest

from ansible_collections.pflab.netfilter.plugins.plugin_utils import report

TEMPLATES = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'roles', 'report', 'templates')


def hook(filter_name, hook_name, registered, prefixes, priority=0, family='inet', chain=None, verdict='accept',
         hits=None):
    """A hook entry as the scenario module returns it; ``hits`` (default: every prefix, for sure) are the LOG
    prefixes the probe's packet hits there, each (prefix, certain)."""
    hits = [(p, True) for p in prefixes] if hits is None else hits
    walk = dict(probe=1, packet='syn' if hook_name in ('prerouting', 'input') else 'syn-ack', verdict=verdict,
                logs=[dict(prefix=p, certain=c) for p, c in hits])
    netdev = hook_name in ('ingress', 'egress')
    return dict(filter=filter_name, layer='netfilter', family=family, table='filter', chain=chain or hook_name,
                hook=hook_name, point='netdev-%s' % hook_name if netdev else hook_name,
                where='%s filter %s' % (family, chain or hook_name), priority=priority, registered=registered, step=1,
                netns='server', log_prefixes=prefixes, marks=prefixes, walks=[walk])


def record(prefix, direction='received'):
    return dict(source='log', prefix=prefix, direction=direction, probe=1, seq=1, timestamp_us=1, packet='syn')


SCENARIO = dict(id='experiment-2', title='t', source='article part 1, experiment 2',
                expect=dict(reached=False, trace=['nft-input', 'ipt-input']))
HOOKS = [hook('iptables-legacy', 'input', 1, ['ipt-input'], family='ip', chain='INPUT', verdict='drop'),
         hook('iptables-legacy', 'output', 3, ['ipt-output'], family='ip', chain='OUTPUT'),
         hook('nftables', 'input', 4, ['nft-input']), hook('nftables', 'output', 6, ['nft-output'])]


def run(trace, reached=False, hooks=None, **extra):
    out = dict(status='ran', scenario=SCENARIO, kernel='6.1.0', versions={'nft': 'nftables v1.0.6'},
               hooks=HOOKS if hooks is None else hooks,
               probes=[dict(to='server', port=12345, outcome='timeout', elapsed_ms=200.1, **{'from': 'client'})],
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
    # iptables drops at input for sure: nothing after it is predicted
    assert result['rule'] == dict(predicted=['nft-input', 'ipt-input'], holds=True)
    assert 'registered later (4th vs 1st registration)' in result['why'][0]


def test_differs_says_why_and_rule_contradiction():
    result = report.evaluate(SCENARIO, run(['ipt-input']))
    assert result['status'] == 'differs'
    assert 'expected the trace nft-input > ipt-input, the kernel logged ipt-input' in result['reasons']
    assert result['rule']['holds'] is False
    connected = run(['nft-input', 'ipt-input'], reached=True)
    connected['probes'][0]['outcome'] = 'connected'
    reached = report.evaluate(SCENARIO, connected)
    assert 'expected the connection to fail, it succeeded' in reached['reasons']
    assert reached['rule']['holds'] is False  # iptables drops for sure in the predicted order: it cannot connect


def test_lost_records_never_reproduce():
    result = report.evaluate(SCENARIO, run(['nft-input', 'ipt-input'], lost=3))
    assert result['status'] == 'differs' and any('3 kernel log records were lost' in r for r in result['reasons'])


def test_a_log_rule_the_probe_cannot_hit_is_not_predicted():
    """A LOG rule for udp 53 in the nft input chain: the walk says the SYN hits no LOG rule there."""
    hooks = [HOOKS[0], dict(HOOKS[2], walks=[dict(HOOKS[2]['walks'][0], logs=[])])]
    result = report.evaluate(dict(SCENARIO, expect=dict(reached=False, trace=['ipt-input'])), run(['ipt-input'], hooks=hooks))
    assert result['status'] == 'reproduced'
    assert result['rule'] == dict(predicted=['ipt-input'], holds=True)


def test_a_log_rule_the_probe_may_hit_is_optional():
    maybe = dict(HOOKS[2], walks=[dict(HOOKS[2]['walks'][0], logs=[dict(prefix='nft-input', certain=False)])])
    hooks = [HOOKS[0], maybe]
    for trace in (['nft-input', 'ipt-input'], ['ipt-input']):
        result = report.evaluate(SCENARIO, run(trace, hooks=hooks))
        assert result['rule'] == dict(predicted=['nft-input?', 'ipt-input'], holds=True), trace
    # still an order: the optional one cannot come after the drop
    assert report.evaluate(SCENARIO, run(['ipt-input', 'nft-input'], hooks=hooks))['rule']['holds'] is False


def test_a_possible_drop_makes_the_rest_optional():
    hooks = [dict(HOOKS[0], walks=[dict(HOOKS[0]['walks'][0], verdict='maybe')])] + HOOKS[1:]
    for trace, reached in ((['nft-input', 'ipt-input'], False), (['nft-input', 'ipt-input', 'nft-output'], True)):
        assert report.evaluate(SCENARIO, run(trace, reached=reached, hooks=hooks))['rule']['holds'], trace


@pytest.mark.parametrize('observed, items, expected', [
    ([], [], True),
    (['a'], [('a', True)], True),
    ([], [('a', True)], False),
    ([], [('a', False)], True),
    (['b'], [('a', False), ('b', True)], True),
    (['b', 'a'], [('a', False), ('b', True)], False),
    (['a', 'a'], [('a', False), ('a', True)], True),
    (['a'], [('a', False), ('a', True)], True),
    (['c'], [('a', False), ('b', False)], False),
])
def test_fits(observed, items, expected):
    assert report.fits(observed, items) is expected


def test_every_probe_is_checked_against_its_own_prediction():
    second = dict(to='server', port=12345, outcome='timeout', elapsed_ms=200.1, **{'from': 'client'})
    hooks = [dict(h, walks=h['walks'] + [dict(h['walks'][0], probe=2)]) for h in HOOKS]
    records = [dict(record(p), probe=n) for n in (1, 2) for p in ('nft-input', 'ipt-input')]
    both = run(['nft-input', 'ipt-input'] * 2, hooks=hooks, probes=[run([])['probes'][0], second])
    assert report.evaluate(SCENARIO, dict(both, trace=records))['rule']['holds'] is True
    # the second probe's trace is checked too: ipt-input before nft-input contradicts the order
    swapped = records[:2] + [records[3], records[2]]
    assert report.evaluate(SCENARIO, dict(both, trace=swapped))['rule']['holds'] is False


def test_a_hook_no_walk_reads_makes_the_prediction_optional():
    """A netdev ingress chain may drop before input: the prediction cannot be sure of anything."""
    ingress = dict(hook('nftables', 'ingress', 9, ['nft-ingress'], family='netdev'), walks=[])
    result = report.evaluate(SCENARIO, run([], hooks=HOOKS + [ingress]))
    assert result['rule'] == dict(predicted=['nft-input?', 'ipt-input?', 'nft-output?', 'ipt-output?'], holds=True)


def test_retransmissions_are_said():
    result = report.evaluate(SCENARIO, run(['nft-input', 'ipt-input'], retransmitted=4))
    assert result['status'] == 'reproduced' and any(r.startswith('4 kernel log records of retransmitted')
                                                    for r in result['reasons'])


def test_foreign_records_are_said():
    result = report.evaluate(SCENARIO, run(['nft-input', 'ipt-input'], foreign=7))
    assert result['status'] == 'reproduced' and any(r.startswith('7 kernel log records') for r in result['reasons'])


def test_skipped_failed_missing_not_run():
    assert report.evaluate(SCENARIO, dict(status='skipped', reason='no iptables-legacy'))['status'] == 'skipped'
    assert report.evaluate(SCENARIO, dict(status='not run'))['status'] == 'not run'
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
    assert doc['summary'] == {'reproduced': 1, 'differs': 1, 'skipped': 0, 'not run': 0, 'failed': 0, 'missing': 1}
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


@pytest.mark.parametrize('text', ['[c](javascript:alert(1))', '![i](http://192.0.2.1/x.png)', '<b>x</b>',
                                  '<javascript:alert(1)>', '*em* _u_ `code` a|b', 'line\nbreak'])
def test_markdown_cells_show_text_as_it_is(text):
    from ansible_collections.pflab.netfilter.plugins.plugin_utils.output import md as _md
    cell = _md(text)
    assert '](' not in cell and '<' not in cell and '\n' not in cell and '|' not in cell.replace('\\|', '')
    # and it reads back as the text itself, once escapes and entities are undone
    assert html.unescape(re.sub(r'\\([!-/:-@\[-`{-~])', r'\1', cell)) == ' '.join(text.split())


def _render(doc):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.get_template('report.html.j2').render(report=doc)


def test_a_witnessed_drop_names_the_filter_that_logged_nothing():
    """iptables drops without a LOG rule: the last filter that logged is nftables, the witness says otherwise."""
    silent = dict(HOOKS[0], log_prefixes=[], marks=[],
                  walks=[dict(HOOKS[0]['walks'][0], logs=[])])
    hooks = [silent] + HOOKS[1:]
    expect = dict(SCENARIO, expect=dict(reached=False, trace=['nft-input']))
    unwitnessed = report.evaluate(expect, run(['nft-input'], hooks=hooks))
    assert unwitnessed['stopped_at']['filter'] == 'nftables' and unwitnessed['stopped_at']['by'] == 'trace'
    drop = dict(source='witness', prefix='drop', probe=1, reason='NETFILTER_DROP', location='nf_hook_slow+0x9c/0xf0',
                filter='netfilter', time_ns=5)
    witnessed = report.evaluate(expect, run(['nft-input'], hooks=hooks, drops=[drop]))
    assert witnessed['stopped_at'] == dict(filter='iptables-legacy', where='ip filter INPUT', hook='input',
                                           by='witness', reason='NETFILTER_DROP', location='nf_hook_slow+0x9c/0xf0')
    states = dict((p['hook'], [s['state'] for s in p['stages']]) for p in witnessed['path'])
    assert states['input'] == ['seen', 'stopped'] and states['output'] == ['not-reached', 'not-reached']


def _program(filter_name, point, registered, mark, priority=0):
    return dict(filter=filter_name, layer='bpf', point=point, hook=point, where='k3x9-client', priority=priority,
                registered=registered, step=registered, netns='server', marks=[mark], walks=[], device='k3x9-client')


def test_layers_are_drawn_in_the_kernels_order_and_an_xdp_drop_ends_the_path():
    hooks = [HOOKS[2], _program('tc', 'tc-egress', 7, 'tc-egress', 1), _program('xdp', 'xdp', 8, 'xdp')]
    sighting = dict(source='bpf', prefix='xdp', probe=1, packet='syn', direction='received', time_ns=1)
    drop = dict(source='witness', prefix='drop', probe=1, reason='NOT_SPECIFIED', location='veth_xdp_rcv_skb+0x2',
                filter='xdp', time_ns=2)
    scenario = dict(SCENARIO, expect=dict(reached=False, trace=['xdp']))
    ran = dict(run([], hooks=hooks, drops=[drop], observed=dict(reached=False, trace=['xdp'])), trace=[sighting, drop])
    result = report.evaluate(scenario, ran)
    assert result['status'] == 'reproduced'
    assert [(p['hook'], p['next'], p['state']) for p in result['path']] == [
        ('xdp', 'prerouting', 'stopped'), ('input', 'socket', 'not-reached'), ('output', 'routing', 'not-reached'),
        ('tc-egress', 'the wire', 'not-reached')]
    assert result['stopped_at']['hook'] == 'xdp' and result['stopped_at']['by'] == 'witness'
    # the prediction knows nothing is sure where a program sits, and the rule check reads LOG records only
    assert result['rule'] == dict(predicted=['nft-input?'], holds=True)
    page = _render(report.build('layers', 'r1', 'now', [('h', [dict(ran, witness=dict(available=True))])]))
    assert 'data-hook="xdp"' in page and 'the kernel dropped it there (NOT_SPECIFIED at veth_xdp_rcv_skb+0x2)' in page


def test_a_drop_no_stage_stands_for_does_not_name_the_stop():
    drop = dict(source='witness', prefix='drop', probe=1, reason='TC_INGRESS', location='x+0x1', filter='tc', time_ns=2)
    result = report.evaluate(SCENARIO, run(['nft-input', 'ipt-input'], drops=[drop]))
    assert result['stopped_at']['filter'] == 'iptables-legacy' and result['stopped_at']['by'] == 'trace'
    assert result['stopped_at']['reason'] is None


def test_no_witness_is_said():
    doc = report.build('article', 'r1', 'now', [('h', [run(['nft-input', 'ipt-input'],
                                                           witness=dict(available=False, reason='no tracefs'))])])
    assert 'No witness: no tracefs.' in _render(doc)


def test_a_switch_upstream_is_drawn_first_and_makes_nothing_sure():
    """A bridged lab's OVS flow sits in the switch's namespace, before the server's points."""
    flow = dict(_program('ovs', 'bridge', 9, 'ovs-drop', -100), layer='ovs', netns='switch', hits=1)
    scenario = dict(SCENARIO, expect=dict(reached=False, trace=[]))
    result = report.evaluate(scenario, run([], hooks=HOOKS + [flow]))
    assert [(p['hook'], p['next']) for p in result['path']][:2] == [('switch', 'prerouting'), ('input', 'socket')]
    assert result['stopped_at']['hook'] == 'switch' and result['stopped_at']['by'] == 'trace'
    assert result['rule']['holds'] and all(p.endswith('?') for p in result['rule']['predicted'])
