"""Scenario files against the JSON Schema, error messages, variants and the matrix."""

import glob
import os
import re

import pytest
import yaml

from ansible_collections.pflab.netfilter.plugins.plugin_utils import scenarios

ROOT = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..')
ARTICLE = os.path.join(ROOT, 'playbooks', 'scenarios', 'article')
MATRIX = os.path.join(ROOT, 'playbooks', 'scenarios', 'matrix.yml')
SHIPPED = sorted(glob.glob(os.path.join(ARTICLE, '*.yml')))


@pytest.mark.parametrize('path', SHIPPED, ids=os.path.basename)
def test_shipped_scenarios_are_valid(path):
    data = scenarios.load(path)
    assert data['id'] == os.path.basename(path)[:-4]


def test_the_five_experiments_and_the_control_are_shipped():
    assert [os.path.basename(p) for p in SHIPPED] == ['control.yml'] + ['experiment-%d.yml' % n for n in range(1, 6)]


def _write(tmp_path, data):
    path = tmp_path / 'broken.yml'
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return str(path)


def _base():
    return scenarios.load(os.path.join(ARTICLE, 'experiment-2.yml'))


@pytest.mark.parametrize('change, field, words', [
    (lambda d: d.pop('expect'), '(top level)', "'expect' is a required property"),
    (lambda d: d['expect'].update(reached='no'), 'expect.reached', "is not of type 'boolean'"),
    (lambda d: d['steps'][0]['iptables'].update(backend='ebtables'), 'steps[0].iptables.backend', 'is not one of'),
    (lambda d: d['steps'][1]['nft'].update(ruleset_file='/etc/nftables.conf'), 'steps[1].nft', 'ruleset_file'),
    (lambda d: d['steps'][0]['iptables'].update(host=True), 'steps[0].iptables', "'host' was unexpected"),
    (lambda d: d['steps'].append({'iptables': {'chains': []}, 'nft': {'table': 't'}}), 'steps[2]', 'too many'),
    (lambda d: d['probes'][0].update(port=70000), 'probes[0].port', 'greater than the maximum'),
    (lambda d: d.update(id='Experiment 2'), 'id', 'does not match'),
    (lambda d: d['steps'][0]['iptables'].update(netns='pfl-x-server'), 'steps[0].iptables.netns', 'does not match'),
])
def test_broken_scenario_names_file_and_field(tmp_path, change, field, words):
    data = _base()
    change(data)
    path = _write(tmp_path, data)
    with pytest.raises(scenarios.ScenarioFileError) as info:
        scenarios.load(path)
    message = str(info.value)
    assert path in message
    assert [line for line in message.splitlines() if line.strip().startswith(field + ':') and words in line], message


def test_invalid_yaml_names_the_file(tmp_path):
    path = _write(tmp_path, 'id: [unclosed\n')
    with pytest.raises(scenarios.ScenarioFileError, match='broken.yml is not valid YAML'):
        scenarios.load(path)


def test_missing_file():
    with pytest.raises(scenarios.ScenarioFileError, match='cannot read scenario /nonexistent.yml'):
        scenarios.load('/nonexistent.yml')


def test_variant_reverse_priority_backend_reload():
    base = _base()
    out = scenarios.apply_variant(base, {'id': 'x', 'label': 'all', 'reverse': True, 'nft_priority': -10,
                                         'iptables_backend': 'nft', 'reload': True,
                                         'expect': {'reached': True, 'trace': []}}, 'here')
    assert [list(s) for s in out['steps']] == [['nft'], ['iptables'], ['nft']]
    assert out['steps'][1]['iptables']['backend'] == 'nft'
    assert out['steps'][2]['nft']['reload'] is True
    assert out['steps'][0]['nft']['ruleset'].count('priority -10;') == 3
    assert 'priority 0' not in out['steps'][0]['nft']['ruleset']
    assert out['title'] == base['title'] + ' (all)'
    assert out['variant'] == {'reverse': True, 'nft_priority': -10, 'iptables_backend': 'nft', 'reload': True,
                              'of': 'experiment-2'}
    assert base['steps'][0]['iptables']['backend'] == 'legacy'  # the original is left alone


def test_variant_priority_on_chains():
    data = {'id': 'c', 'title': 't', 'source': 's', 'expect': {'reached': True, 'trace': []},
            'steps': [{'nft': {'table': 'f', 'chains': [{'name': 'input', 'hook': 'input'}, {'name': 'helper'}]}}]}
    out = scenarios.apply_variant(data, {'nft_priority': 10}, 'here')
    assert out['steps'][0]['nft']['chains'] == [{'name': 'input', 'hook': 'input', 'priority': 10}, {'name': 'helper'}]


def test_variant_errors():
    with pytest.raises(scenarios.ScenarioFileError, match="unknown variant keys \\['priority'\\]"):
        scenarios.apply_variant(_base(), {'priority': 1}, 'here')
    one = scenarios.load(os.path.join(ARTICLE, 'experiment-1.yml'))
    with pytest.raises(scenarios.ScenarioFileError, match='reload needs an nft step with a ruleset'):
        scenarios.apply_variant(one, {'reload': True}, 'here')
    with pytest.raises(scenarios.ScenarioFileError, match='steps\\[0\\].iptables.backend'):
        scenarios.apply_variant(one, {'iptables_backend': 'ebtables'}, 'here')


def test_matrix_rows_all_apply():
    with open(MATRIX) as f:
        variants = yaml.safe_load(f)['matrix_variants']
    runs = scenarios.matrix_runs(variants, ARTICLE)
    assert len(runs) == sum(len(v['expect']) for v in variants) == 25
    assert len(set(r['variant']['id'] for r in runs)) == 25
    for run in runs:
        out = scenarios.apply_variant(scenarios.load(run['src']), run['variant'], run['src'])
        assert out['id'] == run['variant']['id']


@pytest.mark.parametrize('change, field', [
    (lambda d: d.update(id='experiment-2\n'), 'id'),
    (lambda d: d['steps'][0]['iptables']['chains'][0].update(name='INPUT\n'), 'steps[0].iptables.chains[0].name'),
    (lambda d: d['steps'].append({'nft': {'family': 'netdev', 'table': 't', 'chains': [
        {'name': 'c', 'hook': 'ingress', 'device': 'lo" priority 0; }\nflush ruleset\n'}]}}),
     'steps[2].nft.chains[0].device'),
])
def test_a_trailing_newline_does_not_pass_the_schema(tmp_path, change, field):
    """JSON Schema patterns are ECMA-262: '$' is the end of the text, not a place before a final newline."""
    data = _base()
    change(data)
    with pytest.raises(scenarios.ScenarioFileError, match='%s: .* does not match' % re.escape(field)):
        scenarios.load(_write(tmp_path, data))


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    lines += ['a%d: &a%d [%s]' % (n, n, ', '.join(['*a%d' % (n - 1)] * 10)) for n in range(1, 9)]
    with pytest.raises(scenarios.ScenarioFileError, match='expands to more than 100000 YAML nodes'):
        scenarios.load(_write(tmp_path, '\n'.join(lines) + '\n'))


def test_a_recursive_alias_is_refused(tmp_path):
    with pytest.raises(scenarios.ScenarioFileError, match='refers to itself|not valid YAML'):
        scenarios.load(_write(tmp_path, 'a: &a [*a]\n'))


def test_a_big_file_is_refused_unread(tmp_path):
    path = tmp_path / 'big.yml'
    path.write_text('#' * (scenarios.MAX_BYTES + 1))
    with pytest.raises(scenarios.ScenarioFileError, match='at most %d' % scenarios.MAX_BYTES):
        scenarios.load(str(path))


def test_yaml_errors_name_the_place_without_quoting_the_file(tmp_path):
    with pytest.raises(scenarios.ScenarioFileError) as e:
        scenarios.load(_write(tmp_path, 'id: x\nsecret-line: [unclosed\n'))
    assert 'line 3' in str(e.value) and 'secret-line' not in str(e.value)


def test_a_long_wrong_value_is_quoted_short(tmp_path):
    data = _base()
    data['title'] = ['y' * 100000]
    with pytest.raises(scenarios.ScenarioFileError) as e:
        scenarios.load(_write(tmp_path, data))
    assert len(str(e.value)) < 2000


def test_a_variant_of_the_wrong_type_is_refused_before_it_changes_text():
    with pytest.raises(scenarios.ScenarioFileError, match='nft_priority'):
        scenarios.apply_variant(_base(), {'nft_priority': '0; flush ruleset', 'id': 'v'}, 'experiment-2')
