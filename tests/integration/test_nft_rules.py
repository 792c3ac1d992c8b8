"""pflab.netfilter.nft_rules on real namespaces, through the binding and through nft -j."""

import subprocess

import pytest

NETNS = 'pfl-itest-nft-server'
LOG_IN = 'tcp dport 12345 log prefix "nft-input " level warn accept'
DROP_IN = 'tcp dport 12345 drop'
LOG_OUT = 'tcp sport 12345 log prefix "nft-output " level warn accept'
ARTICLE_FILE = '''flush ruleset
table inet filter {
       chain input {
          type filter hook input priority 0;
          tcp dport 12345 log level warn prefix "nft-input" accept
       }
       chain forward {
          type filter hook forward priority 0;
       }
       chain output {
          type filter hook output priority 0;
          tcp sport 12345 log level warn prefix "nft-output" accept
       }
}
'''


@pytest.fixture
def netns():
    subprocess.run(['ip', 'netns', 'add', NETNS], check=True)
    yield NETNS


RULESET = {'ansible.builtin.command': {'argv': ['nsenter', '--net=/run/netns/' + NETNS, 'nft', 'list', 'ruleset']},
           'changed_when': False}


def nft_task(api, check_mode=False, **args):
    return {'pflab.netfilter.nft_rules': dict(api=api, netns=NETNS, **args), 'check_mode': check_mode, 'diff': True}


def table(api, chains, check_mode=False, **extra):
    return nft_task(api, check_mode, family='inet', table='filter', chains=chains, **extra)


@pytest.mark.parametrize('api', ['binding', 'cli'])
def test_apply_reapply_change_reorder_absent(ansible, netns, api):
    article = [{'name': 'input', 'hook': 'input', 'priority': 0, 'rules': [LOG_IN, DROP_IN]},
               {'name': 'output', 'hook': 'output', 'rules': [LOG_OUT]}]
    changed_in = [{'name': 'input', 'hook': 'input', 'rules': [LOG_IN, 'tcp dport 12345 reject']}]
    reordered = [{'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 reject', LOG_IN]}]
    steps = [
        table(api, article, exclusive=True),                      # 0 apply
        table(api, article, exclusive=True),                      # 1 re-apply
        RULESET,                                                  # 2
        table(api, changed_in, check_mode=True, exclusive=True),  # 3 check mode
        RULESET,                                                  # 4
        table(api, changed_in, exclusive=True),                   # 5 change one rule
        table(api, reordered, exclusive=True),                    # 6 reorder
        table(api, [{'name': 'input', 'hook': 'input', 'rules': [LOG_IN]}]),                  # 7 present, there
        table(api, [{'name': 'input', 'hook': 'input', 'rules': [LOG_IN]}], state='absent'),  # 8 absent
        table(api, [{'name': 'input', 'hook': 'input', 'rules': [LOG_IN]}], state='absent'),  # 9 again
        RULESET,                                                  # 10
        nft_task(api, family='inet', table='filter', state='absent'),  # 11 delete the table
        RULESET,                                                  # 12
    ]
    results = ansible.tasks(steps)
    assert not any(failed for dummy, failed in results), [r.get('msg') for r, failed in results if failed]
    res = [r for r, dummy in results]
    expected_api = 'libnftables binding' if api == 'binding' else 'nft -j'
    assert res[0]['changed'] and res[0]['api'] == expected_api
    assert res[0]['diff']['before'] == ''
    assert 'tcp dport 12345 log prefix "nft-input " accept\n\t\ttcp dport 12345 drop' in res[0]['diff']['after']
    assert not res[1]['changed'] and res[1]['diff']['before'] == res[1]['diff']['after']
    assert res[3]['changed'] and 'reject' not in res[3]['diff']['after']
    assert res[4]['stdout'] == res[2]['stdout']
    assert res[5]['changed'] and 'reject' in res[5]['diff']['after']
    after = res[6]['diff']['after']
    assert res[6]['changed'] and after.index('reject') < after.index('nft-input')
    assert not res[7]['changed']
    assert res[8]['changes'] == ['input: 1 rules removed'] and not res[9]['changed']
    assert 'nft-input' not in res[10]['stdout'] and 'nft-output' in res[10]['stdout']
    assert res[11]['changes'] == ['delete table inet filter']
    assert 'table inet filter' not in res[12]['stdout']


BAD_RULES = [
    ('unknown chain in a jump', ['tcp dport 1 jump nosuchchain'], 'nosuchchain'),
    ('port 70000', ['tcp dport 70000 drop'], 'rule 2'),
    ('syntax error in rule 500 of 1000',
     ['tcp dport %d accept' % (1000 + i) for i in range(498)] + ['tcp dprt 5 accept']
     + ['tcp dport %d accept' % (3000 + i) for i in range(500)], "rule 500 ('tcp dprt 5 accept')"),
    ('newline smuggling a second command', ['accept\nflush ruleset'], 'one rule per entry'),
]


@pytest.mark.parametrize('api', ['binding', 'cli'])
def test_bad_input_names_the_rule_and_changes_nothing(ansible, netns, api):
    base = [{'name': 'input', 'hook': 'input', 'rules': [LOG_IN]}]
    steps = [table(api, base), RULESET]
    for dummy, rules, dummy2 in BAD_RULES:
        steps += [table(api, [{'name': 'input', 'hook': 'input', 'rules': [LOG_IN] + rules}], exclusive=True), RULESET]
    results = ansible.tasks(steps)
    assert not results[0][1]
    baseline = results[1][0]['stdout']
    assert 'nft-input' in baseline
    for index, (what, dummy, needle) in enumerate(BAD_RULES):
        result, failed = results[2 + 2 * index]
        assert failed, what
        assert needle in result['msg'], (what, result['msg'])
        assert results[3 + 2 * index][0]['stdout'] == baseline, what


def test_base_chain_cannot_move_in_place(ansible, netns):
    results = ansible.tasks([
        table('binding', [{'name': 'input', 'hook': 'input', 'priority': 0}]),
        table('binding', [{'name': 'input', 'hook': 'input', 'priority': -10}]),
    ])
    assert not results[0][1]
    assert results[1][1] and 'cannot change type, hook, priority or device in place' in results[1][0]['msg']


def test_ruleset_file_like_the_article(ansible, netns, tmp_path):
    path = tmp_path / 'article.nft'
    path.write_text(ARTICLE_FILE)
    load = nft_task('binding', ruleset_file=str(path))
    results = ansible.tasks([
        nft_task('binding', check_mode=True, ruleset_file=str(path)),  # 0 check mode
        RULESET,                                                        # 1
        load,                                                           # 2 first load
        load,                                                           # 3 nothing would change
        nft_task('binding', ruleset_file=str(path), reload=True),       # 4 forced reload
        RULESET,                                                        # 5
    ])
    assert not any(failed for dummy, failed in results), [r.get('msg') for r, failed in results if failed]
    res = [r for r, dummy in results]
    assert res[0]['changed'] and res[1]['stdout'].strip() == ''
    assert res[2]['changed'] and res[2]['reregistered_hooks'] == [
        'inet filter forward forward', 'inet filter input input', 'inet filter output output']
    assert not res[3]['changed'] and res[3]['reregistered_hooks'] == []
    assert res[4]['changed'] and len(res[4]['reregistered_hooks']) == 3
    assert 'log prefix "nft-input"' in res[5]['stdout']


def test_refused_ruleset_file(ansible, netns, tmp_path):
    path = tmp_path / 'bad.nft'
    path.write_text('table inet filter {\n chain input { type filter hook input priority 0; tcp dport 70000 drop; }\n}\n')
    (result, failed), = ansible.tasks([nft_task('cli', ruleset_file=str(path))])
    assert failed and 'nft refused ruleset_file %s: ' % path in result['msg'] and 'nothing was applied' in result['msg']


@pytest.mark.parametrize('api', ['binding', 'cli'])
def test_bad_rule_into_a_new_table_is_named_and_nothing_is_applied(ansible, netns, api):
    """A new table skips the scratch trial; the refused transaction is explained afterwards."""
    rules = ['tcp dport %d accept' % (1000 + i) for i in range(9)] + ['tcp dport 70000 drop']
    results = ansible.tasks([table(api, [{'name': 'input', 'hook': 'input', 'rules': rules}]), RULESET])
    result, failed = results[0]
    assert failed and "chain input rule 10 ('tcp dport 70000 drop')" in result['msg']
    assert results[1][0]['stdout'].strip() == ''


def test_netdev_chains_on_a_device_of_the_namespace(ansible, netns):
    """The scratch namespace gets a device of the same name, for the wanted chain and the table's others."""
    subprocess.run(['ip', '-n', NETNS, 'link', 'add', 'eth-lab', 'type', 'veth', 'peer', 'name', 'eth-peer'],
                   check=True)
    ingress = {'name': 'ingress', 'hook': 'ingress', 'device': 'eth-lab', 'priority': -10,
               'rules': ['ip saddr 192.0.2.1 counter drop']}
    other = {'name': 'peer', 'hook': 'ingress', 'device': 'eth-peer', 'rules': ['ip saddr 192.0.2.2 drop']}
    task = {'pflab.netfilter.nft_rules': {'netns': NETNS, 'family': 'netdev', 'table': 'lab', 'chains': [ingress]}}
    results = ansible.tasks([
        task, task,
        {'pflab.netfilter.nft_rules': {'netns': NETNS, 'family': 'netdev', 'table': 'lab', 'chains': [other]}},
        {'pflab.netfilter.nft_rules': {'netns': NETNS, 'family': 'netdev', 'table': 'lab', 'exclusive': True,
                                       'chains': [dict(ingress, rules=['ip saddr 192.0.2.3 drop'])]}},
        RULESET,
    ])
    assert not any(failed for dummy, failed in results), [r.get('msg') for r, failed in results if failed]
    assert results[0][0]['changed'] and not results[1][0]['changed'] and results[2][0]['changed']
    ruleset = results[4][0]['stdout']
    assert 'devices = { eth-lab }' in ruleset or 'device "eth-lab"' in ruleset
    assert '192.0.2.3' in ruleset and '192.0.2.1' not in ruleset and '192.0.2.2' in ruleset
