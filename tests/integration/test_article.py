"""playbooks/article.yml end to end: the article's first experiment on the real kernel."""

import json


def test_article_experiment_1_and_control(ansible, tmp_path):
    ansible.playbook('article.yml', report_dir=str(tmp_path / 'report'))
    with open(tmp_path / 'report' / 'article.json') as f:
        report = json.load(f)

    assert report['schema'] == 'pflab.netfilter/article/1'
    (host,) = report['hosts']
    assert host['host'] == 'localhost'
    assert host['kernel']['release']
    assert host['tools']['iptables-legacy']['version'].endswith('(legacy)')
    results = {e['id']: e for e in host['experiments']}

    control = results['control']['observed']
    assert control['reached'] is True and control['outcome'] == 'connected'
    assert control['trace'] == [] and control['records'] == []
    assert results['control']['status'] == 'reproduced'

    exp1 = results['experiment-1']['observed']
    assert exp1['reached'] is False and exp1['outcome'] == 'timeout'
    assert exp1['trace'] == ['ipt-input']  # dropped: no ipt-output, and one SYN within 200 ms
    assert exp1['lost'] == 0
    (record,) = exp1['records']
    assert record['fields']['SRC'] == '198.18.0.1' and record['fields']['DST'] == '198.18.0.2'
    assert record['fields']['DPT'] == '12345' and record['fields']['IN'] == 'to-client'
    assert record['tcp_flags'] == ['SYN']
    assert results['experiment-1']['status'] == 'reproduced'


def test_article_leaves_no_lab(ansible, tmp_path):
    from conftest import netns_names

    ansible.playbook('article.yml', report_dir=str(tmp_path / 'report'))
    assert [n for n in netns_names() if n.startswith('pfl-article')] == []
