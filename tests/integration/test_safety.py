"""Each class of hostile input or misfortune, done for real: the call is refused or survives, says so
clearly, and leaves its target (and the host) as it was.

The numbers are the classes of issue 10: 1 namespace escape, 2 nft text injection, 3 file
disclosure, 4 native crash, 5 stale labs, 9 refused calls that changed the target, 10 trailing
newlines, 11 messages. Traces (6, 7) and concurrent runs (8) have their own files.
"""

import contextlib
import fcntl
import glob
import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from conftest import ROOT, netns_names, ns_state, run_module

NETNS = 'pfl-itest-safe-server'
SECRET = 'pflab-secret-4f1d2c'  # written into a file a hostile call tries to read


@pytest.fixture
def netns():
    subprocess.run(['ip', 'netns', 'add', NETNS], check=True)
    yield NETNS


@pytest.fixture
def host_alias():
    """A name in /run/netns bound to the host's own namespace (as `ip netns attach` makes)."""
    name = 'itest-hostalias'  # no lab prefix: nothing may ever stop "the processes in it"
    subprocess.run(['ip', 'netns', 'attach', name, str(os.getpid())], check=True)
    yield name
    subprocess.run(['ip', 'netns', 'del', name], check=True)


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / 'secret.conf'
    path.write_text('root:%s:19000:0:99999:7:::\ntable inet x { %s }\n' % (SECRET, SECRET))
    return str(path)


NFT_TABLE = {'table': 'filter', 'chains': [{'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 accept']}]}
IPT_TABLE = {'backend': 'legacy', 'chains': [{'name': 'INPUT', 'rules': ['-p tcp --dport 12345 -j ACCEPT']}]}


# 1. A namespace is a name under /run/netns, never a path, never the host's own.

@pytest.mark.parametrize('netns_arg', ['/proc/1/ns/net', '/proc/self/ns/net', '../../proc/self/ns/net', '..',
                                       'pfl-itest-safe-server/../../../proc/self/ns/net'])
@pytest.mark.parametrize('module, args', [('iptables_rules', IPT_TABLE), ('nft_rules', NFT_TABLE),
                                          ('listener', {}), ('probe', {'address': '198.18.0.2'})])
def test_1_a_path_for_netns_is_refused(ansible, netns, module, args, netns_arg):
    before = ns_state(NETNS)
    result, failed = ansible.module(module, dict(args, netns=netns_arg))
    assert failed and 'network namespace' in result['msg'] and 'never a path' in result['msg'], result
    assert ns_state(NETNS) == before


@pytest.mark.parametrize('module, args', [('iptables_rules', IPT_TABLE), ('nft_rules', NFT_TABLE),
                                          ('listener', {}), ('probe', {'address': '198.18.0.2'})])
def test_1_a_name_bound_to_the_host_namespace_is_refused(ansible, host_alias, module, args):
    result, failed = ansible.module(module, dict(args, netns=host_alias))
    assert failed and "is the host's own namespace" in result['msg'], result


def test_1_a_symlink_in_run_netns_is_refused(ansible, netns):
    link = '/run/netns/pfl-itest-link'
    os.symlink('/proc/self/ns/net', link)
    try:
        result, failed = ansible.module('nft_rules', dict(NFT_TABLE, netns='pfl-itest-link'))
    finally:
        os.unlink(link)
    assert failed and 'is not a network namespace mount' in result['msg'], result


def _rules(name):
    """A namespace's state but its links, which come up on their own while a lab is made."""
    return dict((view, text) for view, text in ns_state(name).items() if 'link' not in view)


def test_1_a_running_scenario_s_lab_is_refused_to_other_callers(ansible):
    scenario = {'id': 'busy', 'title': 't', 'source': 's', 'steps': IPT_STEP, 'expect': {'reached': True, 'trace': []}}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    with xtables_lock():  # the scenario waits in its step while the lab exists
        run = subprocess.Popen(['ansible', 'localhost', '-i', os.path.join(ROOT, 'inventory', 'localhost.yml'),
                                '-m', 'pflab.netfilter.scenario', '-a', json.dumps({'scenario': scenario,
                                                                                    'lab': 'itest-busy'})],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        owner = None
        try:
            owner = _wait(lambda: _owner('itest-busy'))
            _wait(lambda: glob.glob('/run/netns/pfl-itest-busy-server'))
            before = _rules('pfl-itest-busy-server')
            result, failed = ansible.module('nft_rules', dict(NFT_TABLE, netns='pfl-itest-busy-server'))
            assert failed and 'belongs to a scenario that process %d runs' % owner in result['msg'], result
            assert _rules('pfl-itest-busy-server') == before
        finally:
            if owner:
                os.kill(owner, signal.SIGTERM)  # the run ends as on a timeout: it removes its lab
            run.wait(30)
    assert not os.path.exists('/run/pflab/lab-itest-busy.json')


# 2. Nothing user-given reaches nft text unvalidated: the device field, names, rules.

@pytest.mark.parametrize('chain', [
    {'name': 'ingress', 'hook': 'ingress', 'device': 'lo" priority 0; }\nflush ruleset\nadd table ip pwned\n#'},
    {'name': 'input\nflush ruleset', 'hook': 'input'},
    {'name': 'input', 'hook': 'input', 'rules': ['accept\nflush ruleset']},
    {'name': 'input', 'hook': 'input', 'rules': ['accept; flush ruleset']},
    {'name': 'input', 'hook': 'input', 'rules': ['accept\rflush ruleset']},
])
def test_2_nft_fields_cannot_carry_a_second_command(ansible, netns, chain):
    ansible.module('nft_rules', dict(NFT_TABLE, netns=NETNS))  # something a flush would remove
    before = ns_state(NETNS)
    assert 'tcp dport 12345 accept' in before['nft list ruleset']
    family = 'netdev' if 'device' in chain else 'inet'
    result, failed = ansible.module('nft_rules', {'netns': NETNS, 'family': family, 'table': 'lab', 'chains': [chain]})
    assert failed and ('is invalid' in result['msg'] or 'one rule per entry' in result['msg']), result
    assert ns_state(NETNS) == before


def test_2_a_scenario_cannot_carry_nft_text_in_a_device(ansible, tmp_path):
    scenario = {'id': 'inject', 'title': 't', 'source': 's', 'expect': {'reached': True, 'trace': []},
                'steps': [{'nft': {'family': 'netdev', 'table': 't', 'chains': [
                    {'name': 'c', 'hook': 'ingress', 'device': 'lo" priority 0; }\nflush ruleset\n#'}]}}]}
    path = tmp_path / 'inject.yml'
    path.write_text(yaml.safe_dump(scenario))
    result = ansible.playbook('run.yml', check=False, scenario=str(path), report_dir=str(tmp_path / 'report'))
    out = result.stdout.read()
    assert result.rc != 0 and 'steps[0].nft.chains[0].device' in out and 'does not match' in out
    assert not [n for n in netns_names() if n.startswith('pfl-sc-')]


# 3. Rulesets cannot read files, and errors carry no file's lines.

@pytest.mark.parametrize('check_mode', [False, True])
def test_3_include_is_refused_and_nothing_is_read(ansible, netns, secret_file, check_mode):
    before = ns_state(NETNS)
    ruleset = 'table inet filter {\n  include "%s"\n}\n' % secret_file
    result, failed = ansible.module('nft_rules', {'netns': NETNS, 'ruleset': ruleset}, check_mode=check_mode)
    assert failed and 'has include statements (line 2)' in result['msg'], result
    assert SECRET not in json.dumps(result)
    assert ns_state(NETNS) == before


def test_3_a_ruleset_file_that_is_not_a_ruleset_is_refused_without_its_lines(ansible, netns, secret_file):
    before = ns_state(NETNS)
    result, failed = ansible.module('nft_rules', {'netns': NETNS, 'ruleset_file': secret_file})
    assert failed and 'nft refused ruleset_file %s: 3 errors, not shown here' % secret_file in result['msg'], result
    assert SECRET not in json.dumps(result) and 'root:' not in result['msg']
    assert ns_state(NETNS) == before


def test_3_a_scenario_with_include_never_reaches_the_report(ansible, tmp_path, secret_file):
    scenario = {'id': 'include', 'title': 't', 'source': 's', 'expect': {'reached': True, 'trace': []},
                'steps': [{'nft': {'ruleset': 'include "%s"\n' % secret_file}}]}
    path = tmp_path / 'include.yml'
    path.write_text(yaml.safe_dump(scenario))
    result = ansible.playbook('run.yml', check=False, scenario=str(path), report_dir=str(tmp_path / 'report'))
    out = result.stdout.read()
    assert 'has include statements' in out and SECRET not in out
    for written in glob.glob(str(tmp_path / 'report' / '*' / 'report.*')):
        with open(written) as f:
            assert SECRET not in f.read(), written


# 4. A native crash (libnftables 1.0.6 aborts on a log prefix far over its limit) skips no cleanup.

CRASHING_RULE = 'tcp dport 12345 log prefix "%s" accept' % ('x' * 200)


@pytest.mark.parametrize('api', ['binding', 'cli'])
def test_4_a_crash_of_libnftables_is_an_error_and_leaves_nothing(ansible, netns, api):
    ansible.module('nft_rules', dict(NFT_TABLE, netns=NETNS, api=api))  # a non-empty chain: the scratch trial runs
    before = ns_state(NETNS)
    chains = [{'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 accept', CRASHING_RULE]}]
    result, failed = ansible.module('nft_rules', {'netns': NETNS, 'table': 'filter', 'chains': chains, 'api': api})
    assert failed and 'chain input rule 2' in result['msg'] and 'crashed (killed by SIGABRT' in result['msg'], result
    assert ns_state(NETNS) == before
    assert not [n for n in netns_names() if n.startswith('pflscratch-')]


def test_4_a_crash_inside_a_scenario_removes_the_lab(ansible):
    steps = [{'nft': {'table': 'filter', 'chains': [{'name': 'input', 'hook': 'input', 'rules': [CRASHING_RULE]}]}}]
    scenario = {'id': 'crash', 'title': 't', 'source': 's', 'steps': steps, 'expect': {'reached': True, 'trace': []}}
    with open('/proc/sys/net/netfilter/nf_log_all_netns') as f:
        sysctl = f.read()
    result, failed = ansible.module('scenario', {'scenario': scenario, 'lab': 'itest-crash'})
    assert failed and 'libnftables crashed' in result['msg'] and 'the lab was removed' in result['msg'], result
    assert not [n for n in netns_names() if n.startswith(('pfl-itest-crash-', 'pflscratch-'))]
    assert not os.path.exists('/run/pflab/lab-itest-crash.json')
    with open('/proc/sys/net/netfilter/nf_log_all_netns') as f:
        assert f.read() == sysctl


# 5. Labs that outlive their owner are found and removed.

def _wait(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError('timed out waiting')


def _owner(lab='itest-killed'):
    try:
        with open('/run/pflab/lab-%s.json' % lab) as f:
            return json.load(f)['owner']['pid']
    except (OSError, ValueError, KeyError, TypeError):
        return None


def test_5_a_scenario_killed_with_sigkill_is_cleaned_by_the_next_run(ansible, tmp_path):
    with open('/proc/sys/net/netfilter/nf_log_all_netns') as f:
        sysctl = f.read()
    steps = [{'nft': {'table': 'f', 'chains': [{'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 drop']}]}}]
    scenario = {'id': 'killed', 'title': 't', 'source': 's', 'steps': steps, 'probes': [{'timeout_ms': 8000}],
                'expect': {'reached': False, 'trace': []}}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    run = subprocess.Popen(['ansible', 'localhost', '-i', os.path.join(ROOT, 'inventory', 'localhost.yml'),
                            '-m', 'pflab.netfilter.scenario', '-a',
                            json.dumps({'scenario': scenario, 'lab': 'itest-killed', 'timeout': 60})],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        owner = _wait(_owner)
        listener = _wait(lambda: glob.glob('/run/pflab/nc-pfl-itest-killed-server-12345.pid'))
        with open(listener[0]) as f:
            nc = int(f.read())
        os.kill(owner, signal.SIGKILL)
        run.wait(30)
    finally:
        if run.poll() is None:
            run.kill()
    assert {'pfl-itest-killed-client', 'pfl-itest-killed-server'} <= set(netns_names())  # left behind
    with open('/proc/sys/net/netfilter/nf_log_all_netns') as f:
        assert f.read().strip() == '1'

    # The next run finds and removes them before it starts, and says so.
    other = dict(scenario, id='next', steps=[], probes=[{}], expect={'reached': True, 'trace': []})
    result, failed = ansible.module('scenario', {'scenario': other})
    assert not failed, result
    assert 'remove lab itest-killed: its owner, pid %d, is gone' % owner in result['cleaned']
    assert 'remove namespace pfl-itest-killed-server' in result['cleaned']
    assert any(line.startswith('stop processes [') and str(nc) in line for line in result['cleaned'])
    assert not [n for n in netns_names() if n.startswith('pfl-itest-killed-')]
    assert not os.path.exists('/proc/%d' % nc) or open('/proc/%d/stat' % nc).read().split(')')[1].split()[0] == 'Z'
    assert not glob.glob('/run/pflab/nc-pfl-itest-killed-*') and not os.path.exists('/run/pflab/lab-itest-killed.json')
    with open('/proc/sys/net/netfilter/nf_log_all_netns') as f:
        assert f.read() == sysctl
    assert not os.path.exists('/run/pflab/nf_log_all_netns.orig')


def test_5_cleanup_entry_point_reports_and_spares_live_labs(ansible):
    # A live lab (kept until removed) and a stale one (its owner is a process that is gone).
    ansible.module('netns_lab', {'name': 'itest-live', 'nf_log_all_netns': True})
    dead = subprocess.Popen(['true'])
    dead.wait()
    subprocess.run(['ip', 'netns', 'add', 'pfl-itest-stale-server'], check=True)
    with open('/proc/sys/kernel/random/boot_id') as f:
        boot = f.read().strip()
    with open('/run/pflab/lab-itest-stale.json', 'w') as f:
        json.dump({'lab': 'itest-stale', 'owner': {'pid': dead.pid, 'start': 1, 'boot': boot},
                   'namespaces': ['pfl-itest-stale-server'], 'log': True, 'ifname_tag': 'abcd'}, f)
    subprocess.run(['ip', 'netns', 'add', 'pfl-itest-unmarked-x'], check=True)

    checked, failed = ansible.module('lab_cleanup', {}, check_mode=True)
    assert not failed and checked['labs'] == ['itest-stale'] and 'pfl-itest-stale-server' in netns_names()
    result, failed = ansible.module('lab_cleanup', {})
    assert not failed and result['changed'] and result['labs'] == ['itest-stale']
    assert result['unmarked'] == ['pfl-itest-unmarked-x'] and 'pfl-itest-unmarked-x' in netns_names()
    assert 'pfl-itest-stale-server' not in netns_names() and 'pfl-itest-live-server' in netns_names()
    assert result['log_holders'] == ['itest-live']
    again, dummy = ansible.module('lab_cleanup', {'unmarked': True})
    assert again['changes'] == ['remove namespace pfl-itest-unmarked-x'] and again['labs'] == []
    ansible.module('netns_lab', {'name': 'itest-live', 'state': 'absent'})


# 9. A refused call leaves the target byte-identical, down to which tables (and hooks) exist.

@pytest.mark.parametrize('table, ip_version', [('nat', 4), ('filter', 6), ('raw', 4)])
def test_9_a_refused_rule_creates_no_legacy_table(ansible, netns, table, ip_version):
    before = ns_state(NETNS)
    chain = 'PREROUTING' if table in ('nat', 'raw') else 'INPUT'
    result, failed = ansible.module('iptables_rules', {'netns': NETNS, 'backend': 'legacy', 'table': table,
                                                       'ip_version': ip_version,
                                                       'chains': [{'name': chain, 'rules': ['-p tcp -j NOPE']}]})
    assert failed and "chain %s rule 1 ('-p tcp -j NOPE')" % chain in result['msg'] and 'nothing was applied' in \
        result['msg'], result
    assert ns_state(NETNS) == before


# 10. Names are fully anchored: a trailing newline is not a name.

@pytest.mark.parametrize('module, args, field', [
    ('netns_lab', {'name': 'itest-x\n'}, 'lab name'),
    ('netns_lab', {'name': 'itest-x', 'namespaces': ['client', 'server\n']}, 'namespace role'),
    ('iptables_rules', {'netns': NETNS + '\n', 'backend': 'legacy', 'chains': [{'name': 'INPUT'}]}, 'network namespace'),
    ('iptables_rules', {'netns': NETNS, 'backend': 'legacy', 'chains': [{'name': 'INPUT\n'}]}, 'chain name'),
    ('nft_rules', {'netns': NETNS, 'table': 'filter\n'}, 'table name'),
    ('listener', {'netns': NETNS + '\n'}, 'network namespace'),
])
def test_10_a_trailing_newline_is_not_a_name(ansible, netns, module, args, field):
    before = set(netns_names())
    result, failed = ansible.module(module, args)
    assert failed and field in result['msg'] and 'is invalid' in result['msg'], result
    assert set(netns_names()) == before
    assert not [n for n in os.listdir('/run/netns') if '\n' in n]


def test_10_a_scenario_lab_id_with_a_newline_is_refused(ansible):
    scenario = {'id': 'nl', 'title': 't', 'source': 's', 'steps': [], 'expect': {'reached': True, 'trace': []}}
    result, failed = ansible.module('scenario', {'scenario': scenario, 'lab': 'x\n'})
    assert failed and 'lab name' in result['msg'], result
    assert not [n for n in os.listdir('/run/netns') if '\n' in n or n.startswith('pfl-x')]


# 11. Messages that say what failed, where, and in what state the target is.

def test_11_an_oversized_rule_is_named(ansible, netns):
    before = ns_state(NETNS)
    rules = ['-p tcp --dport 1 -j ACCEPT', '-p tcp -m comment --comment ' + 'c' * 5000 + ' -j ACCEPT']
    result, failed = ansible.module('iptables_rules', {'netns': NETNS, 'backend': 'legacy',
                                                       'chains': [{'name': 'INPUT', 'rules': rules}]})
    assert failed and 'chain INPUT rule 2' in result['msg'] and 'at most 4096' in result['msg'], result
    assert len(result['msg']) < 400 and ns_state(NETNS) == before


def test_11_a_megabyte_of_the_wrong_type_is_not_echoed(ansible, netns):
    # In this process: ansible-runner's events leave out a result that carries a megabyte of arguments.
    result, failed = run_module('probe', {'netns': NETNS, 'address': '198.18.0.2', 'port': 'x' * (1 << 20)})
    assert failed and "'port'" in result['msg'] and len(result['msg']) < 2200, len(result['msg'])


def test_11_a_yaml_alias_bomb_fails_fast(ansible, tmp_path):
    lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]']
    lines += ['a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]' % ((n, n) + (n - 1,) * 10)
              for n in range(1, 10)]
    path = tmp_path / 'bomb.yml'
    path.write_text('\n'.join(lines) + '\nid: bomb\n')
    started = time.monotonic()
    result = ansible.playbook('run.yml', check=False, scenario=str(path), report_dir=str(tmp_path / 'report'))
    assert result.rc != 0 and 'expands to more than 100000 YAML nodes' in result.stdout.read()
    assert time.monotonic() - started < 60


@contextlib.contextmanager
def xtables_lock():
    """Hold the xtables lock: iptables-restore -w then waits inside the scenario's step."""
    fd = os.open('/run/xtables.lock', os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


IPT_STEP = [{'iptables': {'backend': 'legacy', 'chains': [{'name': 'INPUT', 'rules': ['-p tcp -j ACCEPT']}]}}]


def test_11_a_timeout_inside_a_command_is_named(ansible):
    scenario = {'id': 'slow', 'title': 't', 'source': 's', 'steps': IPT_STEP, 'expect': {'reached': True, 'trace': []}}
    with xtables_lock():
        result, failed = ansible.module('scenario', {'scenario': scenario, 'lab': 'itest-slow', 'timeout': 1})
    assert failed and result['msg'] == 'scenario slow timed out after 1s during step 1 (iptables); the lab was removed', \
        result
    assert not [n for n in netns_names() if n.startswith(('pfl-itest-slow-', 'pflscratch-'))]


def test_11_sigterm_inside_a_command_is_named(ansible):
    scenario = {'id': 'term', 'title': 't', 'source': 's', 'steps': IPT_STEP, 'expect': {'reached': True, 'trace': []}}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    with xtables_lock():
        run = subprocess.Popen(['ansible', 'localhost', '-i', os.path.join(ROOT, 'inventory', 'localhost.yml'),
                                '-m', 'pflab.netfilter.scenario', '-a', json.dumps({'scenario': scenario,
                                                                                    'lab': 'itest-term'})],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            owner = _wait(lambda: _owner('itest-term'))
            _wait(lambda: glob.glob('/run/netns/pfl-itest-term-server'))
            time.sleep(0.5)  # into the restore that waits for the lock
            os.kill(owner, signal.SIGTERM)
            out = run.communicate(timeout=30)[0]
        finally:
            if run.poll() is None:
                run.kill()
    assert 'scenario term, step 1 (iptables): terminated by signal 15; the lab was removed' in out, out
    assert not [n for n in netns_names() if n.startswith(('pfl-itest-term-', 'pflscratch-'))]
    assert not os.path.exists('/run/pflab/lab-itest-term.json')


def test_11_check_mode_of_the_article_says_so_and_writes_nothing(ansible, tmp_path):
    result = ansible._run(playbook=os.path.join(ROOT, 'playbooks', 'article.yml'), cmdline='--check',
                          extravars={'report_dir': str(tmp_path / 'report')})
    out = result.stdout.read()
    assert result.rc == 0, out
    assert 'check mode: no report was written' in out and "'not run': 6" in out
    assert not os.path.exists(str(tmp_path / 'report'))


def test_11_a_markdown_link_in_a_scenario_is_shown_as_text(ansible, tmp_path):
    scenario = {'id': 'md', 'title': '[click](javascript:alert(1))', 'source': 's <b>x</b>', 'steps': [],
                'notes': '![img](http://192.0.2.1/x.png) *em*', 'expect': {'reached': True, 'trace': []}}
    path = tmp_path / 'md.yml'
    path.write_text(yaml.safe_dump(scenario))
    ansible.playbook('run.yml', scenario=str(path), report_dir=str(tmp_path / 'report'))
    with open(str(tmp_path / 'report' / 'latest' / 'report.md')) as f:
        md = f.read()
    assert '](javascript' not in md and '\\[click\\]\\(javascript\\:alert\\(1\\)\\)' in md
    assert '<b>' not in md and '](http' not in md
