"""Property-based: every module's arguments, the scenario loader and the report builder, fed by hypothesis.

Modules run in this process (conftest.run_module) against real namespaces, EXAMPLES cases each
(500 unless PFLAB_PROPERTY_EXAMPLES says otherwise). A case is a well-formed call with, most of
the time, one field replaced by something hostile (a path, a newline, shell or nft syntax, a
huge or wrong-typed value), so the engines see many real calls and every field is attacked on
its own. For every case: no traceback (only the module's own exit), a failure is a short message,
a failed call or one in check mode leaves its target namespace byte-identical (legacy tables, nft
ruleset, links), no namespace appears but the ones the call may make, no file's contents reach a
result, and the host's own namespace is unchanged at the end. The last test checks that each
module both refused and carried out a share of its cases. Host mode only ever runs in check mode.
"""

import collections
import glob
import json
import os
import subprocess
import time

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, SYSCTL, host_state, netns_names, ns_state, run_module

from ansible_collections.pflab.netfilter.plugins.module_utils import kmsg, names, ovs
from ansible_collections.pflab.netfilter.plugins.plugin_utils import report, scenarios

EXAMPLES = int(os.environ.get('PFLAB_PROPERTY_EXAMPLES', '500'))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
TARGET = 'pfl-itest-prop-server'
PROBE_LAB = ('pfl-itest-probe-client', 'pfl-itest-probe-server')
SECRET = 'pflab-prop-secret-9d3e'
MSG_MAX = 2100  # PflabModule clips failure messages to 2000 characters and says how many more there were
OUTCOMES = collections.defaultdict(collections.Counter)

HOSTILE = st.sampled_from([
    '', ' ', '\n', 'x\n', '\r', '\t', '\x00', '../', '..', '.', '/', '/proc/self/ns/net', '/proc/1/ns/net',
    '../../proc/self/ns/net', '$(reboot)', '`id`', '; flush ruleset', '&& true', '| cat', '"', "'", '\\', '%s%n',
    '{{ 7 * 7 }}', '-A INPUT', '--help', 'COMMIT', '*filter', 'include "/etc/passwd"', '\u202eevil', 'é', 'x' * 300,
    '<script>alert(1)</script>', '[c](javascript:alert(1))', TARGET + '\n', 'pfl-itest-absent',
])
SMALL_JUNK = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70), st.floats(),
                       st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
                       st.text(max_size=40))
JUNK = st.one_of(SMALL_JUNK, st.just('ab' * 35000))
BAD = st.one_of(HOSTILE, JUNK)
PORT = st.integers(min_value=1, max_value=65535).map(str)
NET = st.sampled_from(['198.18.0.0/24', '198.18.0.1', '192.0.2.0/28', '203.0.113.7', '198.51.100.0/25'])
WORD = st.text(alphabet='abcdefghijklmnop-', min_size=1, max_size=12)


def arguments(valid, hostile, required=(), clean=50):
    """Arguments with each field of ``valid`` drawn (the optional ones now and then left out); then, in
    ``100 - clean`` cases of 100, one field replaced by a draw from ``hostile``."""
    @st.composite
    def build(draw):
        args = dict((key, draw(strategy)) for key, strategy in sorted(valid.items())
                    if key in required or draw(st.booleans()))
        if draw(st.integers(min_value=1, max_value=100)) > clean:
            key = draw(st.sampled_from(sorted(hostile)))
            args[key] = draw(hostile[key])
        return args
    return build()


def call(module, args, check_mode, target=None, may_create=()):
    """Run the module and check the invariants; (result, failed)."""
    before = ns_state(target) if target else None
    names_before = set(os.listdir('/run/netns'))
    result, failed = run_module(module, args, check_mode)
    OUTCOMES[module]['failed' if failed else 'done'] += 1
    assert SECRET not in json.dumps(result)
    if failed:
        assert isinstance(result.get('msg'), str) and 0 < len(result['msg']) <= MSG_MAX, result.get('msg')
    if target and (failed or check_mode):
        assert ns_state(target) == before, ('a refused call, or one in check mode, changed the target', args, result)
    names_after = set(os.listdir('/run/netns'))
    if failed or check_mode:
        assert names_after == names_before, (names_after ^ names_before, args, result.get('msg'))
    assert all(n.startswith(may_create) for n in names_after - names_before), (names_after - names_before, args)
    assert not [n for n in names_after if n.startswith('pflscratch-')]
    return result, failed


@pytest.fixture(scope='module')
def host_before():
    before = host_state()
    with open(SYSCTL) as f:
        sysctl = f.read()
    yield
    assert host_state() == before, 'a module changed the initial network namespace'
    with open(SYSCTL) as f:
        assert f.read() == sysctl
    assert not glob.glob('/run/pflab/lab-*.json')


@pytest.fixture
def target(host_before):
    subprocess.run(['ip', 'netns', 'add', TARGET], check=True)
    subprocess.run(['ip', '-n', TARGET, 'link', 'set', 'lo', 'up'], check=True)
    yield TARGET


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('files')
    (folder / 'good.nft').write_text('table inet filter {\n chain input { type filter hook input priority 0; }\n}\n')
    (folder / 'secret.conf').write_text('root:%s:19000::\ntable inet x { %s }\n' % (SECRET, SECRET))
    (folder / 'binary.nft').write_bytes(b'\xff\xfe\x00table')
    (folder / 'include.nft').write_text('include "%s"\n' % (folder / 'secret.conf'))
    return dict((p.name, str(p)) for p in folder.iterdir()) | {'folder': str(folder)}


# iptables_rules

IPT_VALID = st.one_of(
    st.builds('-p tcp --dport {} -j {}'.format, PORT, st.sampled_from(['ACCEPT', 'DROP', 'REJECT', 'RETURN'])),
    st.builds('-p udp --sport {} -j DROP'.format, PORT),
    st.builds('-s {} -j ACCEPT'.format, NET),
    st.builds('-p tcp --dport {} -j LOG --log-prefix {}'.format, PORT, WORD),
    st.builds('-m comment --comment "{} {}" -j ACCEPT'.format, WORD, WORD),
    st.just('-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'))
IPT_SOUP = st.lists(st.sampled_from(['-p', 'tcp', 'udp', '--dport', '12345', '70000', '-s', '198.18.0.0/24', '-j',
                                     'ACCEPT', 'NOPE', 'LOG', '--log-prefix', 'x' * 40, '!', '-i', 'lo', '-A', 'INPUT',
                                     '-F', '-t', 'nat', ';', '$(reboot)', '`id`', '|', '\n', 'COMMIT', '"', "'", '\\']),
                    min_size=1, max_size=6).map(' '.join)
IPT_CHAIN = st.fixed_dictionaries(
    {'name': st.sampled_from(['INPUT', 'OUTPUT', 'PREROUTING', 'LABCHAIN'])},
    optional={'policy': st.sampled_from(['ACCEPT', 'DROP']),
              'rules': st.lists(st.one_of(IPT_VALID, IPT_VALID, IPT_VALID, IPT_SOUP), max_size=4)})
IPT_BAD_CHAIN = st.fixed_dictionaries({'name': st.one_of(st.sampled_from(['INPUT']), BAD)},
                                      optional={'rules': st.one_of(st.lists(BAD, max_size=3), JUNK), 'bogus': JUNK,
                                                'policy': BAD})


@SETTINGS
@given(args=arguments(
    {'netns': st.just(TARGET), 'chains': st.lists(IPT_CHAIN, min_size=1, max_size=3),
     'backend': st.sampled_from(['legacy', 'nft', 'auto']), 'ip_version': st.sampled_from([4, 6]),
     'table': st.sampled_from(['filter', 'nat', 'mangle', 'raw', 'security']),
     'state': st.sampled_from(['present', 'absent']), 'exclusive': st.booleans()},
    {'netns': BAD, 'chains': st.one_of(JUNK, st.lists(IPT_BAD_CHAIN, min_size=1, max_size=2)), 'backend': BAD,
     'ip_version': BAD, 'table': BAD, 'state': BAD, 'exclusive': BAD, 'host': st.just(True), 'unknown': JUNK},
    required=('netns', 'chains')),
    check_mode=st.booleans())
def test_iptables_rules_arguments(target, args, check_mode):
    call('iptables_rules', args, check_mode or args.get('host') is True, TARGET)


# nft_rules

NFT_VALID = st.one_of(
    st.builds('tcp dport {} {}'.format, PORT, st.sampled_from(['accept', 'drop', 'reject', 'counter accept'])),
    st.builds('udp sport {} drop'.format, PORT),
    st.builds('ip saddr {} accept'.format, NET),
    st.builds('tcp dport {{ {}, {} }} log prefix "{}" accept'.format, PORT, PORT, WORD),
    st.just('ct state established,related accept'),
    st.builds('meta l4proto tcp log prefix "{}" level warn'.format, WORD),
    st.just('tcp flags syn / syn,ack counter'))
NFT_SOUP = st.lists(st.sampled_from(['tcp', 'dport', '12345', '70000', 'accept', 'log', 'prefix', '"x"', 'jump',
                                     'nosuchchain', ';', '\n', 'flush ruleset', 'include "/etc/passwd"', '#', '}',
                                     '{', '"', '$var', 'log prefix "%s"' % ('x' * 200), 'add table ip pwned']),
                    min_size=1, max_size=6).map(' '.join)
NFT_CHAIN = st.fixed_dictionaries(
    {'name': st.sampled_from(['input', 'output', 'other'])},
    optional={'hook': st.sampled_from(['input', 'output', 'prerouting', 'postrouting', 'forward']),
              'priority': st.integers(min_value=-400, max_value=400), 'policy': st.sampled_from(['accept', 'drop']),
              'rules': st.lists(st.one_of(NFT_VALID, NFT_VALID, NFT_VALID, NFT_SOUP), max_size=4)})
NFT_BAD_CHAIN = st.fixed_dictionaries(
    {'name': st.one_of(st.just('input'), BAD)},
    optional={'hook': st.one_of(st.sampled_from(['ingress', 'egress']), BAD), 'type': BAD, 'device': BAD,
              'priority': BAD, 'rules': st.one_of(st.lists(BAD, max_size=3), JUNK), 'bogus': JUNK})
RULESET_VALID = st.builds(
    '{}table inet t{} {{\n chain c {{ type filter hook input priority {}; {} }}\n}}\n'.format,
    st.sampled_from(['', 'flush ruleset\n']), st.integers(min_value=0, max_value=3),
    st.integers(min_value=-10, max_value=10), NFT_VALID)
RULESET_BAD = st.one_of(
    BAD, st.builds('include "{}"\n'.format, st.sampled_from(['/etc/hostname', '/etc/passwd'])),
    st.just('table inet t { chain c { type filter hook input priority 0; log prefix "%s" } }' % ('z' * 200)),
    st.just('# include "/etc/hostname"\ntable inet t { include "/etc/hostname" }\n'),
    st.just('flush ruleset; add table ip pwned'), st.just('add rule inet nosuch c accept'))


@SETTINGS
@given(mode=st.sampled_from(['table', 'table', 'ruleset', 'file']), data=st.data(), check_mode=st.booleans())
def test_nft_rules_arguments(target, files, mode, data, check_mode):
    common_valid = {'netns': st.just(TARGET), 'state': st.sampled_from(['present', 'absent']),
                    'exclusive': st.booleans(), 'reload': st.booleans(),
                    'api': st.sampled_from(['auto', 'binding', 'cli'])}
    common_bad = {'netns': BAD, 'state': BAD, 'api': BAD, 'host': st.just(True), 'unknown': JUNK}
    if mode == 'table':
        valid = dict(common_valid, table=st.sampled_from(['filter', 'lab']), family=st.sampled_from(['inet', 'ip']),
                     chains=st.lists(NFT_CHAIN, max_size=3, unique_by=lambda c: c['name']))
        bad = dict(common_bad, table=BAD, family=BAD,
                   chains=st.one_of(JUNK, st.lists(NFT_BAD_CHAIN, min_size=1, max_size=2)))
        required = ('netns', 'table')
    elif mode == 'ruleset':
        valid, bad = dict(common_valid, ruleset=RULESET_VALID), dict(common_bad, ruleset=RULESET_BAD)
        required = ('netns', 'ruleset')
    else:
        valid = dict(common_valid, ruleset_file=st.just(files['good.nft']))
        hostile_files = [files['secret.conf'], files['binary.nft'], files['include.nft'], files['folder'], '/dev/zero',
                         '/nonexistent/x.nft']
        bad = dict(common_bad, ruleset_file=st.sampled_from(hostile_files))
        required = ('netns', 'ruleset_file')
    args = data.draw(arguments(valid, bad, required))
    call('nft_rules', args, check_mode or args.get('host') is True, TARGET)


# netns_lab

ROLES = st.lists(st.sampled_from(['client', 'server', 'router', 'a', 'b']), min_size=2, max_size=3, unique=True)
SUBNETS = st.sampled_from(['198.18.0.0/24', '198.19.255.0/24', '198.18.4.0/29', '192.0.2.0/28', '203.0.113.0/29',
                           '198.51.100.0/24'])


@SETTINGS
@given(args=arguments(
    {'name': st.sampled_from(['itest-p1', 'itest-p2']), 'namespaces': ROLES, 'subnet': SUBNETS,
     'state': st.sampled_from(['present', 'present', 'absent']), 'nf_log_all_netns': st.booleans()},
    {'name': BAD, 'namespaces': st.one_of(BAD, st.lists(BAD, max_size=3)),
     'links': st.one_of(BAD, st.lists(st.one_of(BAD, st.lists(BAD, max_size=3)), max_size=3)),
     'subnet': st.one_of(BAD, st.sampled_from(['198.18.0.0/33', '2001:db8::/64', '198.18.0.1/24', '198.18.0.0/31'])),
     'state': BAD, 'nf_log_all_netns': BAD, 'unknown': JUNK},
    required=('name',)),
    check_mode=st.booleans())
def test_netns_lab_arguments(host_before, args, check_mode):
    # Ansible turns a number given for name into text: 70 names lab "70".
    lab = '%s' % (args['name'],)
    try:
        call('netns_lab', args, check_mode, may_create=('pfl-%s-' % lab,))
    finally:
        if names.valid('lab', lab):
            run_module('netns_lab', {'name': lab, 'state': 'absent'})


# listener

@SETTINGS
@given(args=arguments(
    {'netns': st.just(TARGET), 'port': st.integers(min_value=1024, max_value=65535),
     'state': st.sampled_from(['present', 'absent'])},
    {'netns': BAD, 'port': st.one_of(BAD, st.sampled_from([0, -1, 65536, 10 ** 20])), 'state': BAD, 'unknown': JUNK},
    required=('netns',)),
    check_mode=st.booleans())
def test_listener_arguments(target, args, check_mode):
    result, failed = call('listener', args, check_mode, TARGET)
    if not failed and result.get('pid'):
        with open('/proc/%d/cmdline' % result['pid'], 'rb') as f:
            assert f.read().split(b'\0')[0].endswith(b'nc')
        assert os.stat('/proc/%d/ns/net' % result['pid']).st_ino == os.stat('/run/netns/' + TARGET).st_ino
        run_module('listener', dict(args, state='absent'))
    assert not glob.glob('/run/pflab/nc-*'), 'a listener left its files'  # none runs now


# probe (addresses only in the lab's subnet and documentation ranges; the lab routes nowhere else)

@pytest.fixture
def probe_lab(host_before):
    client, server = PROBE_LAB
    for name in PROBE_LAB:
        subprocess.run(['ip', 'netns', 'add', name], check=True)
    subprocess.run(['ip', 'link', 'add', 'to-server', 'netns', client, 'type', 'veth', 'peer', 'name', 'to-client',
                    'netns', server], check=True)
    for name, dev, address in ((client, 'to-server', '198.18.0.1/30'), (server, 'to-client', '198.18.0.2/30')):
        subprocess.run(['ip', '-n', name, 'addr', 'add', address, 'dev', dev], check=True)
        subprocess.run(['ip', '-n', name, 'link', 'set', dev, 'up'], check=True)
    for name, dev in ((client, 'to-server'), (server, 'to-client')):  # carrier comes a moment after "up"
        while 'state UP' not in subprocess.run(['ip', '-n', name, '-o', 'link', 'show', dev], capture_output=True,
                                               text=True, check=True).stdout:
            time.sleep(0.01)
    return client


@SETTINGS
@given(args=arguments(
    {'netns': st.just(PROBE_LAB[0]),
     'address': st.sampled_from(['198.18.0.2', '198.18.0.1', '198.18.0.6', '192.0.2.1', '203.0.113.9', '2001:db8::1']),
     'port': st.integers(min_value=1, max_value=65535), 'timeout_ms': st.integers(min_value=1, max_value=30)},
    {'netns': BAD, 'address': BAD, 'port': st.one_of(BAD, st.sampled_from([0, -1, 65536])),
     'timeout_ms': st.one_of(BAD, st.sampled_from([0, -1, 10001, 10 ** 20])), 'unknown': JUNK},
    required=('netns', 'address', 'timeout_ms')),
    check_mode=st.booleans())
def test_probe_arguments(probe_lab, args, check_mode):
    call('probe', args, check_mode, PROBE_LAB[1])


# kernel_log, host_info, lab_cleanup: read-only, or remove only what no live owner holds

@SETTINGS
@given(args=arguments(
    {'action': st.sampled_from(['mark', 'collect']), 'cursor': st.integers(min_value=-5, max_value=0),
     'prefixes': st.lists(st.sampled_from(['nft-input', 'ipt-input', 'x']), max_size=3)},
    {'action': BAD, 'cursor': st.one_of(BAD, st.just(2 ** 40)), 'prefixes': st.one_of(BAD, st.lists(BAD, max_size=3)),
     'unknown': JUNK}),
    check_mode=st.booleans())
def test_kernel_log_arguments(host_before, args, check_mode):
    if isinstance(args.get('cursor'), int) and not isinstance(args['cursor'], bool) and args['cursor'] <= 0:
        args['cursor'] += kmsg.cursor_after(kmsg.read_ring())  # a cursor of this host: now, or a few records back
    call('kernel_log', args, check_mode)


@SETTINGS
@given(args=arguments({}, {'unknown': JUNK, 'gather_subset': BAD}), check_mode=st.booleans())
def test_host_info_arguments(host_before, args, check_mode):
    result, failed = call('host_info', args, check_mode)
    assert failed == bool(args), result


@SETTINGS
@given(args=arguments({'unmarked': st.booleans()}, {'unmarked': BAD, 'unknown': JUNK}), check_mode=st.booleans())
def test_lab_cleanup_arguments(host_before, args, check_mode):
    result, failed = call('lab_cleanup', args, check_mode)
    assert failed or not result['changed'], result['changes']  # nothing here is stale


# scenario: the target side, which a call can reach without the action plugin's schema check

SCENARIO_STEP = st.one_of(
    st.fixed_dictionaries({'nft': st.fixed_dictionaries(
        {'table': st.just('filter'), 'chains': st.just([{'name': 'input', 'hook': 'input', 'rules':
                                                         ['tcp dport 12345 log prefix "nft-input" accept']}])})}),
    st.fixed_dictionaries({'iptables': st.fixed_dictionaries(
        {'backend': st.just('legacy'), 'chains': st.just([{'name': 'INPUT', 'rules': ['-p tcp -j ACCEPT']}])})}))
SCENARIO_BAD_STEP = st.one_of(
    BAD, st.fixed_dictionaries({'nft': st.one_of(BAD, st.fixed_dictionaries({'ruleset': RULESET_BAD}),
                                                 st.fixed_dictionaries({'table': st.just('t'), 'netns': BAD}),
                                                 st.fixed_dictionaries({'table': BAD}))}),
    st.fixed_dictionaries({'iptables': st.fixed_dictionaries(
        {'chains': st.just([{'name': 'INPUT'}])},
        optional={'host': st.just(True), 'ruleset_file': st.just('/etc/hostname'), 'netns': BAD})}),
    st.fixed_dictionaries({'nft': st.just({'table': 't'}), 'iptables': st.just({'chains': []})}))
BAD_PROBE = st.dictionaries(st.sampled_from(['from', 'to', 'port', 'x']), BAD, max_size=2)
SCENARIO = arguments(
    {'id': st.just('prop'), 'title': st.just('t'), 'source': st.just('s'),
     'expect': st.just({'reached': True, 'trace': []}), 'steps': st.lists(SCENARIO_STEP, max_size=2),
     'probes': st.lists(st.fixed_dictionaries({}, optional={'timeout_ms': st.integers(min_value=1, max_value=30)}),
                        min_size=1, max_size=2)},
    {'id': BAD, 'steps': st.one_of(BAD, st.lists(SCENARIO_BAD_STEP, min_size=1, max_size=2)),
     'probes': st.one_of(BAD, st.lists(st.one_of(BAD, BAD_PROBE), min_size=1, max_size=2)),
     'namespaces': st.one_of(BAD, st.lists(BAD, max_size=3))},
    required=('id', 'title', 'source', 'expect'), clean=20)


@SETTINGS
@given(args=arguments({'scenario': SCENARIO, 'timeout': st.just(10)},
                      {'lab': BAD, 'timeout': st.one_of(BAD, st.sampled_from([0, -1, 3601, 10 ** 20])),
                       'unknown': JUNK},
                      required=('scenario', 'timeout'), clean=80),
       check_mode=st.booleans())
def test_scenario_module_arguments(host_before, args, check_mode):
    call('scenario', args, check_mode)
    assert not [n for n in netns_names() if n.startswith(('pfl-sc-', 'pfl-itest-ps-'))]
    assert not glob.glob('/run/pflab/lab-*.json')


# The controller: scenario files, and reports built from whatever hosts return

SCENARIO_VALUES = st.recursive(
    st.one_of(SMALL_JUNK, HOSTILE, st.sampled_from(['client', 'server', 'nft', 'iptables', 'filter', 'input', 12345])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(['id', 'title', 'source', 'steps', 'probes', 'expect',
                                                                'nft', 'iptables', 'chains', 'rules', 'name', 'hook',
                                                                'device', 'ruleset', 'reached', 'trace', 'variant',
                                                                'namespaces', 'port', 'from', 'to']) | st.text(max_size=6),
                                               children, max_size=5)),
    max_leaves=20)


@SETTINGS
@given(data=st.one_of(SCENARIO_VALUES, st.text(max_size=200)), as_yaml=st.booleans())
def test_scenario_loader(tmp_path_factory, data, as_yaml):
    OUTCOMES['scenario loader']['done'] += 1
    path = tmp_path_factory.mktemp('scenario') / 'scenario.yml'
    if isinstance(data, str) and not as_yaml:
        path.write_text(data)
    else:
        try:
            path.write_text(yaml.safe_dump(data))
        except (yaml.YAMLError, UnicodeEncodeError):
            return
    try:
        loaded = scenarios.load(str(path))
    except scenarios.ScenarioFileError as e:
        assert len(str(e)) < 6000
    else:
        assert isinstance(loaded, dict) and isinstance(loaded['id'], str)


RESULT = st.one_of(
    st.none(), SMALL_JUNK,
    st.fixed_dictionaries({'status': st.sampled_from(['ran', 'skipped', 'not run', 'bogus'])},
                          optional={'failed': st.booleans(), 'msg': HOSTILE, 'reason': HOSTILE, 'kernel': HOSTILE,
                                    'versions': st.one_of(SMALL_JUNK, st.dictionaries(st.sampled_from(['nft', 'ip']), HOSTILE)),
                                    'scenario': st.one_of(SMALL_JUNK, st.fixed_dictionaries(
                                        {'id': st.sampled_from(['a', 'b']), 'title': HOSTILE, 'source': HOSTILE,
                                         'notes': HOSTILE, 'expect': st.just({'reached': False, 'trace': []})})),
                                    'observed': SMALL_JUNK, 'hooks': st.one_of(SMALL_JUNK, st.lists(SMALL_JUNK, max_size=2)),
                                    'trace': st.one_of(SMALL_JUNK, st.lists(SMALL_JUNK, max_size=2)), 'probes': SMALL_JUNK,
                                    'lost': SMALL_JUNK, 'foreign': SMALL_JUNK}))
TEMPLATES = os.path.join(ROOT, 'roles', 'report', 'templates')


@SETTINGS
@given(hosts=st.lists(st.tuples(st.one_of(HOSTILE, st.sampled_from(['h1', 'h2'])),
                                st.one_of(st.none(), st.lists(RESULT, max_size=3))),
                      max_size=3, unique_by=lambda h: h[0]))
def test_report_from_hostile_results(hosts):
    """A host's result is whatever it sent: the report marks what it cannot read, never crashes, and escapes."""
    OUTCOMES['report']['done'] += 1
    document = report.build('run', 'r', 'now', hosts)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    html = env.get_template('report.html.j2').render(report=document)
    assert '<script>' not in html


@SETTINGS
@given(data=st.data(), check_mode=st.booleans())
def test_filter_facts_arguments(target, files, data, check_mode):
    """A reading never changes its target, and never carries a file's contents, whatever it is given."""
    path = st.sampled_from([files[n] for n in ('good.nft', 'secret.conf', 'binary.nft', 'include.nft', 'folder')]
                           + ['/proc/self/environ', '/dev/zero', '/nonexistent'])
    args = data.draw(arguments({'netns': st.just(TARGET), 'nftables_config': path,
                                'api': st.sampled_from(['auto', 'binding', 'cli'])},
                               {'netns': BAD, 'nftables_config': BAD, 'api': BAD, 'unknown': JUNK}, required=('netns',)))
    before = ns_state(target)
    result, failed = call('filter_facts', args, check_mode, target)
    assert ns_state(target) == before, ('a reading changed its target', args)
    if not failed:
        assert result['changed'] is False and result['ansible_facts']['pflab_filter_facts']['netns'] in (TARGET, None)


# bpf_filter: a veth pair inside the target; its XDP attachments show in ns_state's links, its tc filters here

def _tc_state(name):
    return [subprocess.run(['ip', 'netns', 'exec', name, 'tc', 'filter', 'show', 'dev', 'pv0', d], capture_output=True,
                           text=True, check=False).stdout for d in ('ingress', 'egress')]


@pytest.fixture
def bpf_target(target):
    subprocess.run(['ip', '-n', target, 'link', 'add', 'pv0', 'type', 'veth', 'peer', 'name', 'pv1'], check=True)
    subprocess.run(['ip', '-n', target, 'link', 'set', 'pv0', 'up'], check=True)
    return target


BPF_PORT = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))


@SETTINGS
@given(args=arguments(
    {'netns': st.just(TARGET), 'interface': st.sampled_from(['pv0', 'pv0', 'lo', 'absent0']),
     'hook': st.sampled_from(['xdp', 'tc']), 'mode': st.sampled_from(['native', 'generic']),
     'direction': st.sampled_from(['ingress', 'egress']), 'priority': st.integers(min_value=1, max_value=3),
     'protocol': st.sampled_from(['tcp', 'udp']), 'dport': BPF_PORT, 'sport': BPF_PORT,
     'action': st.sampled_from(['pass', 'drop']), 'label': st.sampled_from(['xdp-drop', 'edge']),
     'state': st.sampled_from(['present', 'present', 'absent'])},
    {'netns': BAD, 'interface': BAD, 'hook': BAD, 'mode': BAD, 'direction': BAD,
     'priority': st.one_of(BAD, st.sampled_from([0, 65536, -1])), 'protocol': BAD,
     'dport': st.one_of(BAD, st.sampled_from([0, 65536])), 'sport': BAD, 'action': BAD, 'label': BAD, 'state': BAD,
     'host': st.just(True), 'unknown': JUNK},
    required=('netns', 'interface', 'hook')),
    check_mode=st.booleans())
def test_bpf_filter_arguments(bpf_target, args, check_mode):
    """A refused call or one in check mode attaches nothing; a program is only ever pflab's own."""
    tc_before = _tc_state(bpf_target)
    result, failed = call('bpf_filter', args, check_mode, bpf_target)
    if failed or check_mode:
        assert _tc_state(bpf_target) == tc_before, ('a refused call changed tc', args, result)
    elif result['program']:
        assert result['program']['name'].startswith('pfl')


# ovs_flows: the switch of a bridged lab; its flow table is the target

OVS_LAB = 'itest-prop-ovs'
OVS_LAB_SERVER = 'pfl-%s-server' % OVS_LAB  # a namespace of the lab without a switch


@pytest.fixture(scope='module')
def switch(host_before):
    result, failed = run_module('netns_lab', dict(name=OVS_LAB, namespaces=['client', 'switch', 'server'],
                                                  bridge='switch'))
    assert not failed, result
    yield result['lab']['switch']
    run_module('netns_lab', dict(name=OVS_LAB, state='absent'))


OVS_FLOW = st.fixed_dictionaries({}, optional={
    'priority': st.integers(min_value=1, max_value=200), 'protocol': st.sampled_from(['tcp', 'udp']),
    'dport': BPF_PORT, 'sport': BPF_PORT, 'action': st.sampled_from(['drop', 'normal']),
    'label': st.sampled_from(['ovs-drop', 'ovs'])})
OVS_BAD_FLOW = st.fixed_dictionaries({}, optional={
    'priority': st.one_of(BAD, st.sampled_from([0, 65536])), 'protocol': BAD, 'dport': BAD, 'sport': BAD,
    'action': BAD, 'label': BAD, 'bogus': JUNK})


@SETTINGS
@given(data=st.data(), check_mode=st.booleans())
def test_ovs_flows_arguments(switch, data, check_mode):
    """A refused call or one in check mode leaves the flow table as it was, and no file's contents come back."""
    args = data.draw(arguments(
        {'netns': st.just(switch['netns']), 'bridge': st.just('br0'),
         'flows': st.lists(OVS_FLOW, min_size=1, max_size=3), 'state': st.sampled_from(['present', 'absent'])},
        {'netns': st.one_of(BAD, st.just(OVS_LAB_SERVER)),
         'bridge': BAD, 'flows': st.one_of(JUNK, st.lists(OVS_BAD_FLOW, min_size=1, max_size=2)), 'state': BAD,
         'host': st.just(True), 'unknown': JUNK},
        required=('netns', 'flows')))
    where = dict(netns=switch['netns'], bridge='br0')
    before = ovs.dump(where)
    result, failed = call('ovs_flows', args, check_mode, switch['netns'])
    if failed or check_mode:
        assert ovs.dump(where) == before, ('a refused call changed the flows', args, result)


def test_each_module_both_refused_and_carried_out_calls():
    """The cases reached the engines: at least a tenth of each module's were carried out, a tenth refused."""
    modules = ['iptables_rules', 'nft_rules', 'netns_lab', 'listener', 'probe', 'kernel_log', 'lab_cleanup', 'scenario',
               'filter_facts', 'bpf_filter', 'ovs_flows']
    for module in modules:
        counts = OUTCOMES[module]
        assert sum(counts.values()) >= EXAMPLES, (module, counts)
        assert counts['done'] >= EXAMPLES // 10 and counts['failed'] >= EXAMPLES // 10, (module, dict(counts))
    assert sum(OUTCOMES['host_info'].values()) >= EXAMPLES


# flow_verdict: the target stands in for a host with an eth0 and rules in both iptables-legacy and nftables

FLOW_TEXT = st.builds('{} {} > {}:{} {} {}'.format, st.sampled_from(['tcp', 'udp', 'icmp', 'TCP']),
                      st.sampled_from(['203.0.113.9', '203.0.113.9:40001', '[2001:db8:1::9]', '192.0.2.10', '::1']),
                      st.sampled_from(['192.0.2.10', '[2001:db8::10]', '198.51.100.1', '0.0.0.0']),
                      st.one_of(PORT, st.just('0'), st.just('99999')), st.sampled_from(['in', 'out', 'sideways']),
                      st.sampled_from(['eth0', 'eth1', 'lo', 'eth0\n', '-eth0', 'x' * 16]))
FLOW_MAP = st.fixed_dictionaries(
    {'source': st.sampled_from(['203.0.113.9', '192.0.2.10', '2001:db8:1::9']),
     'destination': st.sampled_from(['192.0.2.10', '2001:db8::10', '198.51.100.1']),
     'destination_port': st.integers(min_value=1, max_value=65535), 'interface': st.just('eth0')},
    optional={'protocol': st.sampled_from(['tcp', 'udp']), 'direction': st.sampled_from(['in', 'out']),
              'source_port': st.integers(min_value=1, max_value=65535), 'name': WORD})


@pytest.fixture
def standin(target):
    subprocess.run(['ip', '-n', target, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p'], check=True)
    for line in (['addr', 'add', '192.0.2.10/24', 'dev', 'eth0'], ['link', 'set', 'eth0', 'up']):
        subprocess.run(['ip', '-n', target] + line, check=True)
    subprocess.run(['ip', 'netns', 'exec', target, 'iptables-legacy', '-A', 'INPUT', '-p', 'tcp', '--dport', '22',
                    '-j', 'DROP'], check=True)
    subprocess.run(['ip', 'netns', 'exec', target, 'nft', 'add table inet t; add chain inet t in '
                    '{ type filter hook input priority 0; }; add rule inet t in udp dport 53 reject'], check=True)
    return target


@settings(max_examples=max(20, EXAMPLES // 5), deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(args=arguments({'netns': st.just(TARGET),
                       'flows': st.lists(st.one_of(FLOW_TEXT, FLOW_MAP), min_size=1, max_size=3),
                       'timeout_ms': st.integers(min_value=1, max_value=300),
                       'max_orders': st.integers(min_value=1, max_value=3)},
                      {'netns': BAD, 'flows': st.one_of(JUNK, st.lists(BAD, max_size=3)), 'timeout_ms': BAD,
                       'max_orders': st.one_of(BAD, st.sampled_from([0, 121])), 'unknown': JUNK},
                      required=('netns', 'flows')),
       check_mode=st.booleans())
def test_flow_verdict_arguments(standin, args, check_mode):
    """A check never changes the host it reads, leaves no twin, and answers every flow it accepts."""
    before = ns_state(standin)
    result, failed = call('flow_verdict', args, check_mode, standin)
    assert ns_state(standin) == before, ('a check changed the host it read', args)
    assert not [n for n in netns_names() if n.startswith('pfl-tw-')]
    if not failed:
        assert len(result['flows']) == len(args['flows'])
        for found in result['flows']:
            assert found['verdict'] in ('accepted', 'dropped', 'rejected', 'depends on order', 'not replayable')
            assert found['replayable'] or found['reason']
