"""pflab.netfilter.iptables_rules on real namespaces, both backends, IPv4 and IPv6."""

import subprocess

import pytest

NETNS = 'pfl-itest-rules-server'
LOG_IN = '-p tcp --dport 12345 -j LOG --log-level 4 --log-prefix ipt-input'
DROP_IN = '-p tcp --dport 12345 -j DROP'
LOG_OUT = '-p tcp --sport 12345 -j LOG --log-level 4 --log-prefix ipt-output'
# How the kernel gives them back: -m tcp added, the default log level left out.
SAVED_LOG_IN = '-p tcp -m tcp --dport 12345 -j LOG --log-prefix ipt-input'
SAVED_DROP_IN = '-p tcp -m tcp --dport 12345 -j DROP'


@pytest.fixture
def netns():
    subprocess.run(['ip', 'netns', 'add', NETNS], check=True)
    yield NETNS
    # conftest's clean_labs removes every pfl-itest-* namespace


def save_task(backend, ip_version):
    stem = 'iptables' if ip_version == 4 else 'ip6tables'
    return {'ansible.builtin.command': {'argv': ['nsenter', '--net=/run/netns/' + NETNS, '%s-%s-save' % (stem, backend)]},
            'changed_when': False}


def saved_rules(result):
    """The -A lines of a save, without header comments and counters."""
    return [line for line in result['stdout'].splitlines() if line.startswith(('-A', ':', '*'))]


def rules_task(backend, ip_version, chains, check_mode=False, **extra):
    args = dict(backend=backend, ip_version=ip_version, netns=NETNS, chains=chains, **extra)
    return {'pflab.netfilter.iptables_rules': args, 'check_mode': check_mode, 'diff': True}


BACKENDS = [('legacy', 4), ('legacy', 6), ('nft', 4), ('nft', 6)]


@pytest.mark.parametrize('backend, ip_version', BACKENDS)
def test_apply_reapply_change_reorder_absent(ansible, netns, backend, ip_version):
    article = [{'name': 'INPUT', 'rules': [LOG_IN, DROP_IN]}, {'name': 'OUTPUT', 'rules': [LOG_OUT]}]
    changed_in = [{'name': 'INPUT', 'rules': [LOG_IN, '-p tcp --dport 12345 -j REJECT']}]
    reordered = [{'name': 'INPUT', 'rules': ['-p tcp --dport 12345 -j REJECT', LOG_IN]}]
    save = save_task(backend, ip_version)
    steps = [
        save,                                                                   # 0 nothing yet
        rules_task(backend, ip_version, article, exclusive=True),              # 1 apply
        rules_task(backend, ip_version, article, exclusive=True),              # 2 re-apply
        save,                                                                   # 3
        rules_task(backend, ip_version, changed_in, check_mode=True, exclusive=True),  # 4 check mode
        save,                                                                   # 5
        rules_task(backend, ip_version, changed_in, exclusive=True),           # 6 change one rule
        rules_task(backend, ip_version, reordered, exclusive=True),            # 7 reorder
        rules_task(backend, ip_version, [{'name': 'INPUT', 'rules': [LOG_IN]}]),  # 8 present, already there
        rules_task(backend, ip_version, [{'name': 'INPUT', 'rules': [LOG_IN]}], state='absent'),  # 9 absent
        rules_task(backend, ip_version, [{'name': 'INPUT', 'rules': [LOG_IN]}], state='absent'),  # 10 again
        rules_task(backend, ip_version, [{'name': 'INPUT', 'rules': [LOG_IN]}], check_mode=True),  # 11 check
        save,                                                                   # 12
    ]
    results = ansible.tasks(steps)
    assert not any(failed for dummy, failed in results), [r.get('msg') for r, failed in results if failed]
    res = [r for r, dummy in results]

    assert saved_rules(res[0]) == []  # reading created no table
    assert res[1]['changed'] and res[1]['backend']['name'] == backend
    assert res[1]['rules']['INPUT'] == [SAVED_LOG_IN, SAVED_DROP_IN]
    assert res[1]['diff']['before'] == ''
    assert '-A INPUT %s\n-A INPUT %s\n' % (SAVED_LOG_IN, SAVED_DROP_IN) in res[1]['diff']['after']
    assert not res[2]['changed'] and res[2]['changes'] == []
    assert res[2]['diff']['before'] == res[2]['diff']['after']

    assert res[4]['changed'] and 'REJECT' in res[4]['diff']['after']
    assert res[5]['stdout'] == res[3]['stdout'] or saved_rules(res[5]) == saved_rules(res[3])

    assert res[6]['changed'] and res[6]['rules']['INPUT'][0] == SAVED_LOG_IN
    assert 'REJECT' in res[6]['rules']['INPUT'][1]
    assert res[7]['changed'] and 'reordered' in res[7]['changes'][0]
    assert res[7]['rules']['INPUT'][1] == SAVED_LOG_IN and 'REJECT' in res[7]['rules']['INPUT'][0]
    assert not res[8]['changed']
    assert res[9]['changed'] and res[9]['rules']['INPUT'] == [res[7]['rules']['INPUT'][0]]
    assert not res[10]['changed']
    assert res[11]['changed']  # would add it back, but check mode:
    assert SAVED_LOG_IN not in res[12]['stdout']
    assert '-A OUTPUT -p tcp -m tcp --sport 12345 -j LOG --log-prefix ipt-output' in res[12]['stdout']


BAD_RULES = [
    ('unknown target', ['-p tcp --dport 1 -j NOSUCHTARGET'], 'NOSUCHTARGET'),
    ('port 70000', ['-p tcp --dport 70000 -j DROP'], '70000'),
    ('unknown chain', ['-p tcp --dport 1 -j NOSUCHCHAIN'], 'NOSUCHCHAIN'),
    ('log prefix over 29', ['-j LOG --log-prefix this-prefix-is-thirty-chars-xy'], 'at most 29'),
    ('shell metacharacters', ['-m comment --comment "x; rm -rf /tmp/y" -j ACCEPT'], "character ';'"),
    # After the LOG rule every case starts with: the bad rule is the 500th of 1000.
    ('syntax error in rule 500 of 1000',
     ['-p tcp --dport %d -j ACCEPT' % (1000 + i) for i in range(498)] + ['-p tcp --dprt 5 -j ACCEPT']
     + ['-p tcp --dport %d -j ACCEPT' % (2000 + i) for i in range(500)], "rule 500 ('-p tcp --dprt 5"),
]


@pytest.mark.parametrize('backend, ip_version', [('legacy', 4), ('nft', 4), ('legacy', 6)])
def test_bad_input_names_the_rule_and_changes_nothing(ansible, netns, backend, ip_version):
    save = save_task(backend, ip_version)
    steps = [rules_task(backend, ip_version, [{'name': 'INPUT', 'rules': [LOG_IN]}]), save]
    for dummy, rules, dummy2 in BAD_RULES:
        steps += [rules_task(backend, ip_version, [{'name': 'INPUT', 'rules': [LOG_IN] + rules}], exclusive=True), save]
    results = ansible.tasks(steps)
    assert not results[0][1]
    baseline = saved_rules(results[1][0])
    assert '-A INPUT ' + SAVED_LOG_IN in baseline
    for index, (what, dummy, needle) in enumerate(BAD_RULES):
        result, failed = results[2 + 2 * index]
        assert failed, what
        assert needle in result['msg'], (what, result['msg'])
        assert saved_rules(results[3 + 2 * index][0]) == baseline, what


def test_rule_with_chain_option_is_refused(ansible, netns):
    (result, failed), = ansible.tasks([rules_task('legacy', 4, [{'name': 'INPUT', 'rules': ['-A INPUT -j DROP']}])])
    assert failed and 'does not belong in a rule' in result['msg']


def test_auto_backend_reports_what_iptables_is(ansible, netns):
    (result, failed), = ansible.tasks([rules_task('auto', 4, [{'name': 'INPUT', 'rules': [DROP_IN]}])])
    version = subprocess.run(['iptables', '--version'], capture_output=True, text=True, check=True).stdout
    assert not failed
    assert result['backend']['name'] == ('legacy' if '(legacy)' in version else 'nft')


def test_user_chain_created_jumped_to_and_deleted(ansible, netns):
    chains = [{'name': 'LAB-LOG', 'rules': ['-j LOG --log-prefix "lab log "']},
              {'name': 'INPUT', 'rules': ['-p tcp --dport 12345 -j LAB-LOG']}]
    results = ansible.tasks([
        rules_task('legacy', 4, chains),
        rules_task('legacy', 4, [{'name': 'INPUT', 'rules': ['-p tcp --dport 12345 -j LAB-LOG']}], state='absent'),
        rules_task('legacy', 4, [{'name': 'LAB-LOG'}], state='absent'),
        save_task('legacy', 4),
    ])
    assert not any(failed for dummy, failed in results), [r.get('msg') for r, failed in results]
    assert 'create chain LAB-LOG' in results[0][0]['changes']
    assert results[0][0]['rules']['LAB-LOG'] == ['-j LOG --log-prefix "lab log "']
    assert results[2][0]['changes'] == ['delete chain LAB-LOG']
    assert 'LAB-LOG' not in results[3][0]['stdout']


def test_policy(ansible, netns):
    results = ansible.tasks([
        rules_task('nft', 4, [{'name': 'FORWARD', 'policy': 'DROP', 'rules': []}]),
        rules_task('nft', 4, [{'name': 'FORWARD', 'policy': 'DROP', 'rules': []}]),
        save_task('nft', 4),
    ])
    assert results[0][0]['changes'] == ['policy of FORWARD: ACCEPT -> DROP']
    assert not results[1][0]['changed']
    assert ':FORWARD DROP' in results[2][0]['stdout']


@pytest.mark.parametrize('backend', ['legacy', 'nft'])
def test_bad_rule_into_an_empty_chain_is_named_and_nothing_is_applied(ansible, netns, backend):
    """An empty chain skips the scratch trial; the refused transaction is explained afterwards."""
    rules = ['-p tcp --dport %d -j ACCEPT' % (1000 + i) for i in range(9)] + ['-p tcp --dport 70000 -j DROP']
    results = ansible.tasks([rules_task(backend, 4, [{'name': 'INPUT', 'rules': rules}], exclusive=True),
                             save_task(backend, 4)])
    result, failed = results[0]
    assert failed and "chain INPUT rule 10 ('-p tcp --dport 70000 -j DROP')" in result['msg']
    assert '-A INPUT' not in results[1][0]['stdout']
