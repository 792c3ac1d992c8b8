"""Scenarios on the real kernel: the article suite, the order matrix, user scenarios, and the runner's teardown."""

import glob
import json
import os

import pytest
import yaml

from conftest import ROOT, Ansible, netns_names

ARTICLE = os.path.join(ROOT, 'playbooks', 'scenarios', 'article')


def _expected(scenario_id):
    with open(os.path.join(ARTICLE, scenario_id + '.yml')) as f:
        return yaml.safe_load(f)['expect']


def _report(report_dir):
    latest = os.path.join(report_dir, 'latest')
    assert os.path.islink(latest)
    folder = os.path.join(report_dir, os.readlink(latest))
    assert sorted(os.listdir(folder)) == ['report.html', 'report.json', 'report.md']
    with open(os.path.join(folder, 'report.json')) as f:
        return json.load(f), folder


@pytest.fixture(scope='module')
def article(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('article')
    Ansible(tmp).playbook('article.yml', report_dir=str(tmp / 'report'))
    return _report(str(tmp / 'report'))


def test_article_reproduces_the_five_experiments(article):
    report, dummy = article
    assert report['schema'] == 'pflab.netfilter/report/1' and report['suite'] == 'article'
    (host,) = report['hosts']
    assert host['name'] == 'localhost' and host['versions']['iptables-legacy'].endswith('(legacy)')
    ids = [s['id'] for s in report['scenarios']]
    assert ids == ['control'] + ['experiment-%d' % n for n in range(1, 6)]
    for scenario in report['scenarios']:
        (result,) = scenario['results']
        expect = _expected(scenario['id'])
        assert result['observed']['trace'] == expect['trace'], scenario['id']
        assert result['observed']['reached'] == expect['reached'], scenario['id']
        assert result['status'] == 'reproduced' and result['observed']['lost'] == 0
        assert result['rule']['holds'], scenario['id']
    assert report['summary']['reproduced'] == 6
    assert report['rule']['holds'] and report['article']['does_not_hold'] == []


def test_article_measures_registration_order_and_trace_records(article):
    report, dummy = article
    exp2 = next(s for s in report['scenarios'] if s['id'] == 'experiment-2')['results'][0]
    inputs = next(p for p in exp2['path'] if p['hook'] == 'input')['stages']
    # nft -f came second, so its chain registered later and runs first at equal priority
    assert [(s['filter'], s['priority'], s['step']) for s in inputs] == [('nftables', 0, 2), ('iptables-legacy', 0, 1)]
    assert inputs[0]['registered'] > inputs[1]['registered']
    assert exp2['stopped_at']['filter'] == 'iptables-legacy' and exp2['stopped_at']['hook'] == 'input'
    # the kernel's drop, witnessed without a LOG rule, names the same filter and comes after both LOG records
    assert (exp2['stopped_at']['by'], exp2['stopped_at']['reason']) == ('witness', 'NETFILTER_DROP')
    first, second, drop = exp2['trace']
    # iptables-legacy's DROP is carried out by the hook core (nf_hook_slow on 6.x), nft's by nft_do_chain
    assert drop['source'] == 'witness' and drop['location'].split('+')[0] in ('nf_hook_slow', 'ipt_do_table')
    assert first['time_ns'] < second['time_ns'] <= drop['time_ns']
    window = exp2['probes'][0]['window_ns']
    assert window[0] <= first['time_ns'] and drop['time_ns'] <= window[1]
    assert first['seq'] < second['seq'] and first['timestamp_us'] <= second['timestamp_us']
    assert first['fields']['SRC'] == '198.18.0.1' and first['fields']['DST'] == '198.18.0.2'
    assert first['packet'] == 'syn' and first['direction'] == 'received'
    assert first['fields']['SPT'] == str(exp2['probes'][0]['source_port'])
    exp4 = next(s for s in report['scenarios'] if s['id'] == 'experiment-4')['results'][0]
    assert [r.get('packet') for r in exp4['trace']] == ['syn', 'syn', 'syn-ack', 'syn-ack', None]
    assert not [n for n in netns_names() if n.startswith('pfl-')]


def test_report_html_in_chromium(article, tmp_path):
    sync_playwright = pytest.importorskip('playwright.sync_api').sync_playwright
    report, folder = article
    messages, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path='/usr/bin/chromium', args=[
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
            '--disable-component-update', '--disable-sync'])
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 1000})
            page.on('console', lambda m: messages.append('%s: %s' % (m.type, m.text)))
            page.on('pageerror', lambda e: messages.append('pageerror: %s' % e))
            page.on('request', lambda r: requests.append(r.url))
            page.goto('file://' + os.path.join(folder, 'report.html'))
            page.screenshot(path=str(tmp_path / 'report.png'), full_page=True)
            sections = page.locator('section.scenario')
            assert sections.count() == len(report['scenarios']) == 6
            for scenario in report['scenarios']:
                section = page.locator('section.scenario[data-scenario="%s"]' % scenario['id'])
                assert section.count() == 1
                verdict = section.locator('td.verdict[data-host="localhost"]')
                assert verdict.get_attribute('data-status') == 'reproduced'
                assert section.locator('svg.path').count() == 1
                observed = section.locator('ol.trace.observed code').all_inner_texts()
                assert observed == _expected(scenario['id'])['trace']
            stopped = page.locator('section[data-scenario="experiment-3"] g.stage-stopped')
            assert stopped.get_attribute('data-filter') == 'nftables'
            assert page.locator('p.rule-verdict').get_attribute('data-holds') == 'true'
            assert page.locator('script').count() == 0
        finally:
            browser.close()
    assert messages == []
    assert requests == ['file://' + os.path.join(folder, 'report.html')]  # self-contained
    assert os.path.getsize(tmp_path / 'report.png') > 10000


def test_matrix_every_row_as_the_rule_predicts(ansible, tmp_path):
    ansible.playbook('matrix.yml', report_dir=str(tmp_path / 'report'))
    report, dummy = _report(str(tmp_path / 'report'))
    with open(os.path.join(ROOT, 'playbooks', 'scenarios', 'matrix.yml')) as f:
        variants = yaml.safe_load(f)['matrix_variants']
    expected = dict(('%s-%s' % (row['scenario'], v['id']), row) for v in variants for row in v['expect'])
    assert sorted(s['id'] for s in report['scenarios']) == sorted(expected)
    for scenario in report['scenarios']:
        (result,) = scenario['results']
        row = expected[scenario['id']]
        assert (result['observed']['trace'], result['observed']['reached']) == (row['trace'], row['reached']), \
            scenario['id']
        assert result['status'] == 'reproduced' and result['rule']['holds']
    assert report['rule']['holds']
    assert set(report['rule']['by']) == {'priority', 'registration order'}
    assert sorted(set(report['article']['holds'])) == sorted(
        'experiment-%d-%s' % (n, v) for n in range(2, 6) for v in ('nft-prio-minus10', 'reload'))
    flushed = next(s for s in report['scenarios'] if s['id'] == 'experiment-2-iptables-nft')['results'][0]
    assert {(e['filter'], e['removed_by_step']) for e in flushed['unregistered']} == {('iptables-nft', 2)}


def test_run_playbook_with_a_user_scenario(ansible, tmp_path):
    user = {
        'id': 'nft-low-priority', 'title': 'Two nft tables, the lower priority first', 'source': 'beyond the article',
        'steps': [
            {'nft': {'table': 'late', 'chains': [
                {'name': 'input', 'hook': 'input', 'priority': 5, 'rules': ['tcp dport 12345 log prefix "late" accept']}]}},
            {'nft': {'table': 'early', 'chains': [
                {'name': 'input', 'hook': 'input', 'priority': -5, 'rules': ['tcp dport 12345 log prefix "early" accept']}]}},
        ],
        'probes': [{'port': 12345}, {'port': 12345}],
        'expect': {'reached': True, 'trace': ['early', 'late', 'early', 'late']},
    }
    path = tmp_path / 'mine.yml'
    path.write_text(yaml.safe_dump(user))
    ansible.playbook('run.yml', scenario=str(path), report_dir=str(tmp_path / 'report'))
    report, dummy = _report(str(tmp_path / 'report'))
    (result,) = report['scenarios'][0]['results']
    assert result['status'] == 'reproduced'
    assert [r['probe'] for r in result['trace']] == [1, 1, 2, 2]
    assert [p['outcome'] for p in result['probes']] == ['connected', 'connected']


def test_report_fail_on_differs_is_a_rollout_gate(ansible, tmp_path):
    chain = {'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 log prefix "nft-input" accept']}
    wrong = {'id': 'wrong-expectation', 'title': 'Expects a drop that no rule makes', 'source': 'beyond the article',
             'steps': [{'nft': {'table': 't', 'chains': [chain]}}],
             'expect': {'reached': False, 'trace': ['nft-input']}}
    path = tmp_path / 'wrong.yml'
    path.write_text(yaml.safe_dump(wrong))
    default = ansible.playbook('run.yml', scenario=str(path), report_dir=str(tmp_path / 'a'))
    assert default.rc == 0  # differs is reported, not fatal, by default
    gated = ansible.playbook('run.yml', check=False, scenario=str(path), report_dir=str(tmp_path / 'b'),
                             report_fail_on=['failed', 'missing', 'differs'])
    assert gated.rc == 2
    assert 'localhost: wrong-expectation: differs' in gated.stdout.read()


def test_run_playbook_refuses_a_broken_scenario_before_any_lab(ansible, tmp_path):
    path = tmp_path / 'broken.yml'
    path.write_text('id: broken\ntitle: t\nsource: s\nsteps: [{nft: {table: t, chains: [{name: c, priority: high}]}}]\n'
                    'expect: {reached: true, trace: []}\n')
    result = ansible.playbook('run.yml', check=False, scenario=str(path), report_dir=str(tmp_path / 'report'))
    assert result.rc != 0
    out = result.stdout.read()
    assert str(path) in out and "steps[0].nft.chains[0].priority: 'high' is not of type 'integer'" in out


def _scenario(steps, probes=None, expect=None):
    return {'id': 'itest', 'title': 't', 'source': 'beyond the article', 'steps': steps,
            'probes': probes or [{}], 'expect': expect or {'reached': True, 'trace': []}}


def test_refused_step_fails_and_removes_the_lab(ansible):
    steps = [{'iptables': {'backend': 'legacy', 'chains': [{'name': 'INPUT', 'rules': ['-p tcp -j NOPE']}]}}]
    res, failed = ansible.module('scenario', {'scenario': _scenario(steps), 'lab': 'itest-refused'})
    assert failed and 'step 1 (iptables)' in res['msg'] and 'NOPE' in res['msg']
    assert not [n for n in netns_names() if n.startswith('pfl-itest-refused')]


def test_timeout_removes_the_lab_and_listener(ansible):
    steps = [{'nft': {'table': 'f', 'chains': [{'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 drop']}]}}]
    res, failed = ansible.module('scenario', {'scenario': _scenario(steps, probes=[{'timeout_ms': 5000}]),
                                              'lab': 'itest-timeout', 'timeout': 1})
    assert failed and 'timed out after 1s during probes; the lab was removed' in res['msg']
    assert not [n for n in netns_names() if n.startswith('pfl-itest-timeout')]
    assert not glob.glob('/run/pflab/nc-pfl-itest-timeout-*')


def test_check_mode_runs_nothing(ansible):
    res, failed = ansible.module('scenario', {'scenario': _scenario([]), 'lab': 'itest-check'}, check_mode=True)
    assert not failed and res['status'] == 'not run' and not res['changed']
    assert not [n for n in netns_names() if n.startswith('pfl-itest-check')]


def test_lab_id_in_use_is_refused_and_left_alone(ansible):
    ansible.module('netns_lab', {'name': 'itest-busy'})
    res, failed = ansible.module('scenario', {'scenario': _scenario([]), 'lab': 'itest-busy'})
    assert failed and 'exist already' in res['msg']
    assert 'pfl-itest-busy-server' in netns_names()


def test_report_json_fits_its_schema(article):
    import jsonschema

    report, dummy = article
    with open(os.path.join(ROOT, 'schemas', 'report.schema.json')) as f:
        jsonschema.Draft202012Validator(json.load(f)).validate(report)
