"""The fleet audit on namespaces standing in for hosts, each built to a real-world state with the real tools.

Every stand-in is made with iptables-legacy, iptables-nft, nft, tc and a BPF program loaded
through bpf(2), audited through playbooks/audit.yml (inventory hosts on the local connection,
each bound to its namespace by audit_netns), and its findings asserted. A reading must change
nothing: legacy table names, rulesets, links, qdiscs and attached programs are compared before
and after, on every stand-in, including one with no legacy table at all.
"""

import ctypes
import json
import os
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import yaml

from conftest import ROOT, ns_state, run_module

PREFIX = 'pfl-itest-aud-'
BPF_PROG_LOAD, PROG_XDP, PROG_SCHED_CLS = 5, 6, 3
XDP_PASS, TC_ACT_SHOT = 2, 2

DOCKER = '''
iptables-legacy -P FORWARD DROP
iptables-legacy -N DOCKER
iptables-legacy -N DOCKER-USER
iptables-legacy -A FORWARD -j DOCKER-USER
iptables-legacy -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables-legacy -A FORWARD -o docker0 -j DOCKER
iptables-legacy -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
iptables-legacy -A DOCKER-USER -j RETURN
nft -f - <<'EOF'
table inet lab {
  chain forward_lab {
    type filter hook forward priority 0;
    tcp dport 80 accept
  }
}
EOF
'''
KUBE = '''
iptables-legacy -t mangle -N KUBE-IPTABLES-HINT
iptables-legacy -t mangle -N KUBE-KUBELET-CANARY
iptables-nft -N KUBE-SERVICES
iptables-nft -N KUBE-FORWARD
iptables-nft -A INPUT -j KUBE-SERVICES
iptables-nft -A FORWARD -j KUBE-FORWARD
iptables-nft -A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -j ACCEPT
'''
NATIVE_IN_IPTABLES_NFT = '''
iptables-nft -A INPUT -p tcp --dport 22 -j ACCEPT
nft add rule ip filter INPUT tcp dport 9999 log prefix native drop
'''
TIE = '''
iptables-legacy -P INPUT DROP
iptables-legacy -A INPUT -p tcp --dport 22 -j ACCEPT
nft -f - <<'EOF'
table inet web {
  chain in_web {
    type filter hook input priority 0;
    tcp dport 443 accept
  }
}
EOF
'''
FLUSH_CONFIG = '''
iptables-nft -A FORWARD -p tcp --dport 8080 -j ACCEPT
nft -f - <<'EOF'
table inet mine {
  chain in_mine {
    type filter hook input priority 10;
    tcp dport 22 accept
  }
}
EOF
'''
NFT_ONLY = '''
nft -f - <<'EOF'
table inet host {
  chain in_host {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    tcp dport 22 accept
  }
}
EOF
'''
LEGACY_ONLY = 'iptables-legacy -A INPUT -p tcp --dport 23 -j DROP\n'
ATTACHED = 'ip link add va type veth peer name vb && ip link set va up && ip link set vb up\n'

# name -> (shell run inside the namespace, {finding id: severity} expected beside stale-legacy)
STANDINS = {
    'clean': ('', {}),
    'legacy': (LEGACY_ONLY, {}),
    'nft': (NFT_ONLY, {}),
    'docker': (DOCKER, {'accept-overridden': 'high', 'priority-tie': 'high', 'mixed-backends': 'info'}),
    'kube': (KUBE, {'kube-backend-mismatch': 'high'}),
    'native': (NATIVE_IN_IPTABLES_NFT, {'nft-in-iptables-nft-table': 'high'}),
    'tie': (TIE, {'accept-overridden': 'high', 'priority-tie': 'high', 'mixed-backends': 'info'}),
    'flush': (FLUSH_CONFIG, {'flush-ruleset-config': 'high'}),
    'attached': (ATTACHED, {'xdp-before-netfilter': 'medium', 'tc-before-netfilter': 'medium'}),
    'nolegacy': (NFT_ONLY.replace('in_host', 'in_other'), {}),
}


def schema(ref=None):
    with open(os.path.join(ROOT, 'schemas', 'audit.schema.json')) as f:
        found = json.load(f)
    return {'$schema': found['$schema'], '$defs': found['$defs'], '$ref': ref} if ref else found


def _bpf_load(prog_type, ret, name):
    """A two-instruction program (r0 = ret; exit) through bpf(2): no compiler, no object file."""
    libc = ctypes.CDLL(None, use_errno=True)
    insns = ctypes.create_string_buffer(struct.pack('<BBhi', 0xb7, 0, 0, ret) + struct.pack('<BBhi', 0x95, 0, 0, 0))
    licence = ctypes.create_string_buffer(b'GPL')
    attr = ctypes.create_string_buffer(128)
    struct.pack_into('<IIQQ', attr, 0, prog_type, 2, ctypes.addressof(insns), ctypes.addressof(licence))
    struct.pack_into('16s', attr, 48, name)
    fd = libc.syscall(321, BPF_PROG_LOAD, attr, 128)  # __NR_bpf on x86_64
    assert fd >= 0, os.strerror(ctypes.get_errno())
    return fd


def _attach_programs(netns):
    """XDP (pass) on va, a tc direct-action program (drop) on vb's clsact ingress: held by the links."""
    from pyroute2 import NetNS
    xdp, tc = _bpf_load(PROG_XDP, XDP_PASS, b'pfl_xdp_pass'), _bpf_load(PROG_SCHED_CLS, TC_ACT_SHOT, b'pfl_tc_drop')
    ns = NetNS(netns)
    try:
        ns.link('set', index=ns.link_lookup(ifname='va')[0], xdp_fd=xdp)
        vb = ns.link_lookup(ifname='vb')[0]
        ns.tc('add', 'clsact', vb)
        ns.tc('add-filter', 'bpf', vb, ':1', fd=tc, name='pfl_tc_drop', parent='ffff:fff2', classid=1,
              direct_action=True)
    finally:
        ns.close()
        os.close(xdp)
        os.close(tc)


def make_standin(name, kind, config_dir):
    subprocess.run(['ip', 'netns', 'add', name], check=True)
    script = STANDINS[kind][0]
    if script:
        subprocess.run(['ip', 'netns', 'exec', name, 'sh', '-ec', script], check=True, capture_output=True)
    if kind == 'attached':
        _attach_programs(name)
    if kind == 'flush':
        path = os.path.join(config_dir, 'nftables.conf')
        with open(path, 'w') as f:
            f.write('#!/usr/sbin/nft -f\n# as Debian ships it, with a table of its own\nflush ruleset\n\n'
                    'table inet mine {\n  chain in_mine {\n    type filter hook input priority 10;\n'
                    '    tcp dport 22 accept\n  }\n}\n')
        return path
    return None


def full_state(name):
    """ns_state plus what an audit reads beyond it: qdiscs, tc filters and XDP programs."""
    state = ns_state(name)

    def run(argv):
        return subprocess.run(['nsenter', '--net=/run/netns/' + name] + argv, capture_output=True, text=True,
                              check=False).stdout
    state['ip -d link'] = run(['ip', '-d', 'link', 'show'])
    state['tc qdisc'] = run(['tc', 'qdisc', 'show'])
    state['tc filter vb'] = run(['tc', 'filter', 'show', 'dev', 'vb', 'ingress'])
    return state


@pytest.fixture
def fleet(tmp_path):
    """Two stand-ins of each kind (20 hosts), an inventory binding each host to its namespace."""
    hosts = {}
    for index, kind in enumerate(sorted(STANDINS) * 2):
        name = '%s%s-%d' % (PREFIX, kind, index // len(STANDINS))
        config = make_standin(name, kind, str(tmp_path))
        hosts['%s-%d' % (kind, index // len(STANDINS))] = dict(audit_netns=name, kind=kind,
                                                               **({'audit_nftables_config': config} if config else {}))
    return hosts


def write_inventory(path, hosts):
    inventory = {'all': {'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': '/usr/bin/python3'},
                         'hosts': hosts}}
    path.write_text(yaml.safe_dump(inventory))
    return str(path)


def expected(kind, reading):
    want = dict(STANDINS[kind][1])
    legacy_rules = kind in ('legacy', 'docker', 'tie')
    if legacy_rules and reading['commands']['iptables'] == 'nf_tables':
        want['stale-legacy'] = 'high'  # each of them drops: a policy or a rule
    return want


def test_fleet_audit_finds_each_standin_state_and_changes_nothing(ansible, tmp_path, fleet):
    before = dict((h['audit_netns'], full_state(h['audit_netns'])) for h in fleet.values())
    hosts = dict(fleet, **{'gone-0': {'audit_netns': PREFIX + 'gone'}})  # no such namespace: not readable
    inventory = write_inventory(tmp_path / 'fleet.yml', hosts)
    result = ansible.playbook('audit.yml', check=False, inventory=inventory, audit_dir=str(tmp_path / 'audit'),
                              audit_textfiles=True)
    after = dict((h['audit_netns'], full_state(h['audit_netns'])) for h in fleet.values())
    assert after == before, 'the audit changed a namespace it read'
    assert result.rc != 0  # the gate failed the high hosts and the unreadable one

    report = json.loads((tmp_path / 'audit' / 'latest' / 'audit.json').read_text())
    jsonschema.validate(report, schema())
    rows = dict((row['host'], row) for row in report['hosts'])
    assert sorted(rows) == sorted(hosts)
    assert not rows['gone-0']['read'] and rows['gone-0']['failing']
    for host, spec in fleet.items():
        row = rows[host]
        assert row['read'], host
        got = {}
        for found in row['findings']:
            got[found['id']] = min(got.get(found['id'], 'z'), found['severity'], key=lambda s: 'hmliz'.index(s[0]))
        assert got == expected(spec['kind'], {'commands': row['commands']}), host
        assert row['failing'] == any(s == 'high' for s in got.values()), host

    # identical stand-ins share a digest, different ones do not ('nft' and 'nolegacy' differ by a chain name)
    groups = sorted(sorted(g['hosts']) for g in report['groups'])
    assert groups == sorted(['%s-0' % k, '%s-1' % k] for k in STANDINS)
    assert sorted(report['summary']['failing']) == sorted(
        [h for h, r in rows.items() if r['failing']])

    # the observer effect: no legacy table was created where there was none
    for host, spec in fleet.items():
        state = after[spec['audit_netns']]
        if spec['kind'] in ('clean', 'nft', 'nolegacy', 'attached', 'native', 'flush'):
            assert state['cat /proc/net/ip_tables_names'] == '', host

    # JUnit: a suite per host, failures exactly for the failing hosts
    junit = ET.parse(str(tmp_path / 'audit' / 'latest' / 'audit.junit.xml')).getroot()
    failed = sorted(s.get('name') for s in junit.iter('testsuite') if s.get('failures') != '0' or s.get('errors') != '0')
    assert failed == sorted(report['summary']['failing'])
    prom = (tmp_path / 'audit' / 'latest' / 'textfiles' / 'docker-0.prom').read_text()
    assert 'pflab_audit_findings{id="accept-overridden",severity="high"} 1.0' in prom
    assert 'pflab_audit_failing 1.0' in prom


def test_the_order_of_a_tie_is_never_stated(tmp_path):
    make_standin(PREFIX + 'tie-x', 'tie', str(tmp_path))
    result, failed = run_module('filter_facts', {'netns': PREFIX + 'tie-x'}, check_mode=True)
    assert not failed, result
    reading = result['ansible_facts']['pflab_filter_facts']
    jsonschema.validate(reading, schema('#/$defs/facts'))
    point = [p for p in reading['hooks'] if p['point'] == 'ipv4/input'][0]
    assert point['order'] == 'priority' and not reading['hooks_listed']
    assert [(e['backend'], e['tie']) for e in point['entries']] == [('iptables-legacy', True), ('nftables', True)]
    tie = [f for f in reading['findings'] if f['id'] == 'priority-tie'][0]
    assert 'order is unknown here' in tie['effect']
    assert any('tcp dport 443 accept' in e for e in tie['evidence'])


def test_serial_rollout_stops_at_the_first_batch_with_a_conflict(ansible, tmp_path):
    kinds = ['clean', 'nft', 'docker', 'clean', 'nft', 'clean']
    hosts = {}
    for index, kind in enumerate(kinds):
        make_standin('%sroll-%d' % (PREFIX, index), kind, str(tmp_path))
        hosts['roll-%d' % index] = {'audit_netns': '%sroll-%d' % (PREFIX, index)}
    inventory = write_inventory(tmp_path / 'rollout.yml', hosts)
    deployed = tmp_path / 'deployed'
    deployed.mkdir()
    playbook = tmp_path / 'rollout-play.yml'
    playbook.write_text(yaml.safe_dump([{
        'name': 'Roll out behind the audit gate', 'hosts': 'all', 'gather_facts': False, 'serial': 2,
        'max_fail_percentage': 0,
        'roles': [{'role': 'pflab.netfilter.audit', 'vars': {'audit_dir': str(tmp_path / 'audit')}}],
        'tasks': [{'name': 'Deploy', 'ansible.builtin.copy': {
            'content': 'deployed\n', 'dest': str(deployed) + '/{{ inventory_hostname }}', 'mode': '0644'}}],
    }]))
    result = ansible.playbook(str(playbook), check=False, inventory=inventory)
    assert result.rc != 0
    assert sorted(os.listdir(str(deployed))) == ['roll-0', 'roll-1']  # the first batch only
    report = json.loads((tmp_path / 'audit' / 'latest' / 'audit.json').read_text())
    assert sorted(r['host'] for r in report['hosts']) == ['roll-0', 'roll-1', 'roll-2', 'roll-3']
    assert report['summary']['failing'] == ['roll-2']


def test_execution_environment_metadata_is_what_ansible_builder_reads():
    """ansible-builder's own reading of the collection (meta/execution-environment.yml, its Python requirements
    and bindep.txt), as it would build an execution environment for AWX from them."""
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-builder'), 'introspect',
                           os.path.join(ROOT, '.collections')], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    found = yaml.safe_load(proc.stdout)
    python = [line.split('#')[0].split('==')[0].strip() for line in found['python']]
    system = [line.split('#')[0].strip() for line in found['system']]
    assert sorted(python) == ['jinja2', 'prometheus_client', 'pyroute2']
    for package in ('iptables', 'nftables', 'iproute2', 'netcat-openbsd', 'python3-nftables', 'python3-pyroute2'):
        assert any(line.split()[0] == package and 'platform:dpkg' in line for line in system), package
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        pins = set(line.split('#')[0].split(';')[0].strip() for line in f)
    assert all(line.split('#')[0].strip() in pins for line in found['python']), 'the EE pins differ from requirements.txt'
