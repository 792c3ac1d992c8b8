"""Names are fully anchored patterns, and the scenario schema states the same ones."""

import json
import os

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import names

SCHEMA = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'schemas', 'scenario.schema.json')
GOOD = {'lab': 'sc-42', 'role': 'server', 'netns': 'pfl-sc-42-server', 'ifname': 'k3x9-client', 'xt_chain': 'KUBE-SVC',
        'nft_name': 'filter', 'scenario_id': 'experiment-2', 'run_id': '20261128T101010Z-article', 'mark': 'xdp-drop'}


@pytest.mark.parametrize('kind', sorted(names.PATTERNS))
@pytest.mark.parametrize('suffix', ['\n', '\r', ' ', '\x00', '/x', '\n' + 'x'])
def test_a_good_name_with_anything_after_it_is_refused(kind, suffix):
    assert names.valid(kind, GOOD[kind])
    assert not names.valid(kind, GOOD[kind] + suffix)
    with pytest.raises(names.InvalidName, match='is invalid'):
        names.check(kind, GOOD[kind] + suffix)


@pytest.mark.parametrize('value', [None, 7, ['x'], {'a': 1}, b'lab', '', '.', '..', '../x'])
def test_what_is_not_a_name(value):
    assert not any(names.valid(kind, value) for kind in names.PATTERNS)


def test_the_message_quotes_a_value_short():
    with pytest.raises(names.InvalidName) as e:
        names.check('lab', 'x' * 100000, 'lab name')
    assert len(str(e.value)) < 300 and '100000 characters' in str(e.value)


def _patterns(node, path=''):
    if isinstance(node, dict):
        if 'pattern' in node:
            yield path, node['pattern']
        for key, value in node.items():
            yield from _patterns(value, path + '/' + key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _patterns(value, '%s/%d' % (path, index))


SCHEMA_KINDS = {
    '/properties/id': 'scenario_id',
    '/properties/variant/properties/of': 'scenario_id',
    '/$defs/role': 'role',
    '/$defs/iptables/properties/chains/items/properties/name': 'xt_chain',
    '/$defs/nft/properties/table': 'nft_name',
    '/$defs/nft/properties/chains/items/properties/name': 'nft_name',
    '/$defs/bpf/properties/label': 'mark',
    '/$defs/ovs/properties/flows/items/properties/label': 'mark',
}


def test_the_scenario_schema_states_the_same_patterns():
    with open(SCHEMA) as f:
        found = dict(_patterns(json.load(f)))
    assert set(found) == set(SCHEMA_KINDS)
    for path, kind in SCHEMA_KINDS.items():
        assert found[path] == '^%s$' % names.PATTERNS[kind], path
