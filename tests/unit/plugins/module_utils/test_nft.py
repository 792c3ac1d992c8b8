"""nftables rule identity, chain declarations and ruleset file checks: pure logic."""

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import nft
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

# A rule as `nft -j list table inet filter` gives it back (nftables 1.0.6).
RULE = {'family': 'inet', 'table': 'filter', 'chain': 'input', 'handle': 7, 'expr': [
    {'match': {'op': '==', 'left': {'payload': {'protocol': 'tcp', 'field': 'dport'}}, 'right': 12345}},
    {'counter': {'packets': 3, 'bytes': 180}},
    {'log': {'prefix': 'nft-input ', 'level': 'warn'}},
    {'accept': None}]}


def test_rule_key_ignores_place_and_counter_values():
    moved = dict(RULE, handle=99, chain='other', expr=list(RULE['expr']))
    moved['expr'][1] = {'counter': {'packets': 0, 'bytes': 0}}
    assert nft.rule_key(moved) == nft.rule_key(RULE)


def test_rule_key_sees_a_different_statement_and_a_comment():
    other = dict(RULE, expr=RULE['expr'][:3] + [{'drop': None}])
    assert nft.rule_key(other) != nft.rule_key(RULE)
    assert nft.rule_key(dict(RULE, comment='x')) != nft.rule_key(RULE)


def test_base_chain_command_is_json():
    chain = nft.Chain({'name': 'input', 'hook': 'input', 'priority': -10, 'policy': 'drop'}, 'inet')
    assert chain.command('inet', 'filter') == {'add': {'chain': {
        'family': 'inet', 'table': 'filter', 'name': 'input', 'type': 'filter', 'hook': 'input', 'prio': -10,
        'policy': 'drop'}}}
    assert nft.Chain({'name': 'helper'}, 'inet').command('inet', 'filter') == \
        {'add': {'chain': {'family': 'inet', 'table': 'filter', 'name': 'helper'}}}


def test_netdev_chain_command_has_the_device():
    chain = nft.Chain({'name': 'ingress', 'hook': 'ingress', 'device': 'to-client'}, 'netdev')
    assert chain.command('netdev', 'lab')['add']['chain']['dev'] == 'to-client'


def test_base_differs():
    chain = nft.Chain({'name': 'input', 'hook': 'input', 'priority': 0}, 'inet')
    assert chain.base_differs({'type': 'filter', 'hook': 'input', 'prio': 0}) is None
    assert 'cannot change' in chain.base_differs({'type': 'filter', 'hook': 'input', 'prio': 10})


@pytest.mark.parametrize('spec, family, message', [
    ({'name': 'bad name'}, 'inet', 'chain name'),
    ({'name': 'input\n'}, 'inet', 'chain name'),
    ({'name': 'c', 'priority': 5}, 'inet', 'need a hook'),
    ({'name': 'c', 'hook': 'ingress'}, 'netdev', 'needs a device'),
    ({'name': 'c', 'hook': 'ingress', 'device': 'lo" priority 0; }\nflush ruleset\n'}, 'netdev', 'device'),
    ({'name': 'c', 'hook': 'ingress', 'device': 'to-client\n'}, 'netdev', 'device'),
    ({'name': 'c', 'rules': ['accept; flush ruleset']}, 'inet', 'one rule per entry'),
    ({'name': 'c', 'rules': ['accept\rflush ruleset']}, 'inet', 'control characters'),
    ({'name': 'c', 'rules': ['x' * 70000]}, 'inet', 'at most 65536'),
])
def test_chain_refuses(spec, family, message):
    with pytest.raises(PflabError, match=message):
        nft.Chain(spec, family)


def test_request_rule_lines_name_each_rule():
    request = nft.Request('inet', 'filter', [{'name': 'input', 'hook': 'input', 'rules': ['accept', 'drop']}],
                          'present', False)
    assert request.rule_lines() == [('add rule inet filter input accept', "chain input rule 1 ('accept')"),
                                    ('add rule inet filter input drop', "chain input rule 2 ('drop')")]
    assert nft.Request('inet', 'filter', None, 'absent', False).delete_table


@pytest.mark.parametrize('text, flushes', [
    ('flush ruleset\ntable inet filter {}\n', True),
    ('  flush ruleset;  # start clean\n', True),
    ('# flush ruleset\ntable inet filter {}\n', False),
    ('flush table inet filter\n', False),
])
def test_flushes_ruleset(text, flushes):
    assert nft.flushes_ruleset(text) is flushes


def test_same_ruleset_ignores_handles_and_counters():
    current = [{'table': {'family': 'inet', 'name': 'filter', 'handle': 1}},
               {'rule': dict(RULE)}]
    predicted = [{'table': {'family': 'inet', 'name': 'filter', 'handle': 4}},
                 {'rule': dict(RULE, handle=2, expr=[RULE['expr'][0], {'counter': {'packets': 0, 'bytes': 0}}] + RULE['expr'][2:])}]
    assert nft.same_ruleset(current, predicted)
    assert not nft.same_ruleset(current, predicted[:1])
    assert not nft.same_ruleset(current, None)
