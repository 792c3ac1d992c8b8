"""Concurrent runs on one host (issue 10, class 8), from the stock nf_log_all_netns=0.

Two, then four, full article runs at once: every report is right, so every scenario of every run
had LOG in namespaces switched on while it ran, and the sysctl is back to 0 once the last run ends.
"""

import glob
import json
import os
import subprocess

import pytest

from conftest import ROOT, SYSCTL, netns_names

STATE = '/run/pflab/nf_log_all_netns.orig'


@pytest.fixture
def stock_sysctl():
    with open(SYSCTL) as f:
        before = f.read()
    with open(SYSCTL, 'w') as f:
        f.write('0\n')
    yield
    with open(SYSCTL, 'w') as f:
        f.write(before)


@pytest.mark.parametrize('runs', [2, 4])
def test_8_concurrent_article_runs(tmp_path, stock_sysctl, runs):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    procs = [subprocess.Popen(['ansible-playbook', os.path.join(ROOT, 'playbooks', 'article.yml'),
                               '-e', 'report_dir=%s' % (tmp_path / ('run-%d' % n))],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in range(runs)]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-3000:]
    for n in range(runs):
        with open(str(tmp_path / ('run-%d' % n) / 'latest' / 'report.json')) as f:
            report = json.load(f)
        assert report['summary']['reproduced'] == 6, [(s['id'], s['results'][0]['reasons']) for s in report['scenarios']]
        assert all(s['results'][0]['observed']['lost'] == 0 for s in report['scenarios'])
    with open(SYSCTL) as f:
        assert f.read().strip() == '0'
    assert not os.path.exists(STATE)
    assert not glob.glob('/run/pflab/lab-*.json')
    assert not [n for n in netns_names() if n.startswith(('pfl-sc-', 'pflscratch-'))]
