"""Every module's EXAMPLES block, run as written against a lab named demo.

The examples name the lab the documentation uses (pfl-demo-client/-server, and
pfl-chain-* made by netns_lab's own example), so the test refuses to run when a
lab of those names exists already, and removes them afterwards.
"""

import json
import os
import subprocess

import pytest
import yaml

from conftest import ROOT, netns_names, remove_test_labs

MODULES_DIR = os.path.join(ROOT, 'plugins', 'modules')
MODULES = sorted(f[:-3] for f in os.listdir(MODULES_DIR) if f.endswith('.py') and not f.startswith('_'))
EXAMPLE_LAB_PREFIXES = ('pfl-demo-', 'pfl-chain-')


def _ansible_doc(*args):
    proc = subprocess.run(['ansible-doc', '--json'] + list(args), capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg')), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope='module')
def module_docs():
    """ansible-doc's reading of every module, by short name."""
    docs = _ansible_doc(*['pflab.netfilter.' + m for m in MODULES])
    return dict((name.rsplit('.', 1)[1], doc) for name, doc in docs.items())


def _article_ruleset():
    # The ruleset file nft_rules' example loads: the article's, from its experiment 2.
    with open(os.path.join(ROOT, 'playbooks', 'scenarios', 'article', 'experiment-2.yml')) as f:
        steps = yaml.safe_load(f)['steps']
    return [s['nft']['ruleset'] for s in steps if 'nft' in s][0]


@pytest.fixture
def example_labs():
    taken = [n for n in netns_names() if n.startswith(EXAMPLE_LAB_PREFIXES)]
    if taken:
        pytest.fail('namespaces %s exist: the EXAMPLES use these names; remove them first' % taken)
    yield
    remove_test_labs(EXAMPLE_LAB_PREFIXES)


@pytest.mark.parametrize('module', MODULES)
def test_examples_run_against_a_lab(ansible, tmp_path, module, module_docs, example_labs):
    examples = yaml.safe_load(module_docs[module]['examples'])
    assert any('pflab.netfilter.' + module in task for task in examples), 'the EXAMPLES never call the module'
    (tmp_path / 'article.nft').write_text(_article_ruleset())
    os.symlink(os.path.join(ROOT, 'playbooks', 'scenarios'), str(tmp_path / 'scenarios'))
    playbook = tmp_path / 'examples.yml'
    playbook.write_text(yaml.safe_dump([
        {'name': 'Prepare the host and lab demo', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
            {'ansible.builtin.include_role': {'name': 'pflab.netfilter.lab_host'}},
            {'ansible.builtin.include_role': {'name': 'pflab.netfilter.lab'}, 'vars': {'lab_name': 'demo'}},
        ]},
        {'name': 'EXAMPLES', 'hosts': 'localhost', 'gather_facts': False, 'tasks': examples},
        {'name': 'Remove lab demo', 'hosts': 'localhost', 'gather_facts': False, 'tasks': [
            {'ansible.builtin.include_role': {'name': 'pflab.netfilter.lab'},
             'vars': {'lab_name': 'demo', 'lab_state': 'absent'}},
            {'ansible.builtin.include_role': {'name': 'pflab.netfilter.lab_host', 'tasks_from': 'cleanup'}},
        ]},
    ]))

    result = ansible.playbook(str(playbook))

    done = {}
    for event in result.events:
        data = event.get('event_data', {})
        if data.get('play') == 'EXAMPLES' and event['event'] in ('runner_on_ok', 'runner_on_failed',
                                                                 'runner_on_skipped', 'runner_item_on_failed'):
            done.setdefault(data['task'], set()).add(event['event'])
    assert done == dict((task['name'], {'runner_on_ok'}) for task in examples), result.stdout.read()
    assert not [n for n in netns_names() if n.startswith(EXAMPLE_LAB_PREFIXES)]


def test_ansible_doc_is_complete_for_every_module_and_role(module_docs):
    assert sorted(module_docs) == MODULES
    for name, doc in module_docs.items():
        assert doc['doc']['short_description'] and doc['doc']['description'], name
        assert doc['doc']['author'] and doc['doc']['attributes'].get('check_mode'), name
        assert doc['examples'].strip() and doc['return'], name
    roles = _ansible_doc('-t', 'role', 'pflab.netfilter.lab_host', 'pflab.netfilter.lab', 'pflab.netfilter.report',
                         'pflab.netfilter.audit')
    for name, doc in roles.items():
        assert doc['entry_points']['main']['short_description'], name
        assert doc['entry_points']['main']['options'], name
