"""pflab.netfilter.bpf_filter on real veths: XDP native and generic, tc ingress and egress, loaded through bpf(2)."""

import json
import os
import subprocess
import time

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import bpf, bpf_filter, probe

from conftest import run_module

CLIENT, SERVER = 'pfl-itest-bpf-client', 'pfl-itest-bpf-server'
IFNAME = 'itb-client'  # the server's end, towards the client


def _sh(*argv):
    subprocess.run(argv, check=True)


def _ns_json(name, *argv):
    return json.loads(subprocess.run(['ip', 'netns', 'exec', name] + list(argv), capture_output=True, text=True,
                                     check=True).stdout or '[]')


@pytest.fixture
def pair():
    """A client and a server namespace joined by a veth, a listener on the server's port 12345."""
    for name in (CLIENT, SERVER):
        _sh('ip', 'netns', 'add', name)
    _sh('ip', 'link', 'add', 'itb-server', 'netns', CLIENT, 'type', 'veth', 'peer', 'name', IFNAME, 'netns', SERVER)
    _sh('ip', '-n', CLIENT, 'addr', 'add', '198.18.200.1/30', 'dev', 'itb-server')
    _sh('ip', '-n', SERVER, 'addr', 'add', '198.18.200.2/30', 'dev', IFNAME)
    for name, dev in ((CLIENT, 'itb-server'), (SERVER, IFNAME)):
        _sh('ip', '-n', name, 'link', 'set', dev, 'up')
        _sh('ip', '-n', name, 'link', 'set', 'lo', 'up')
    nc = subprocess.Popen(['ip', 'netns', 'exec', SERVER, 'nc', '-lk', '198.18.200.2', '12345'],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 3
        while _connect() != 'connected' and time.monotonic() < deadline:
            time.sleep(0.02)
        yield
    finally:
        nc.kill()
        nc.wait()


def _connect():
    return probe.tcp_connect(CLIENT, '198.18.200.2', 12345, 300)[0]


def _args(**kwargs):
    return dict(dict(netns=SERVER, interface=IFNAME, hook='xdp', dport=12345), **kwargs)


def _programs():
    """pflab's loaded programs, once the kernel has freed detached ones (after an RCU grace period, a moment later)."""
    deadline = time.monotonic() + 5
    while True:
        listed = json.loads(subprocess.run(['bpftool', '-j', 'prog', 'show'], capture_output=True, text=True,
                                           check=True).stdout or '[]')
        found = [p for p in listed if p.get('name', '').startswith('pfl')]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize('where', [dict(hook='xdp', mode='native'), dict(hook='xdp', mode='generic'),
                                   dict(hook='tc', direction='ingress')])
def test_a_drop_counts_idempotent_and_detached(pair, where):
    assert _connect() == 'connected'
    # check mode says what it would do and attaches nothing
    result, failed = run_module('bpf_filter', _args(**where), check_mode=True)
    assert not failed and result['changed'] and result['program']['id'] is None
    assert _connect() == 'connected'
    result, failed = run_module('bpf_filter', dict(_args(**where), _ansible_diff=True))
    assert not failed and result['changed'], result
    assert result['diff']['before'].endswith('none\n') and result['program']['name'] in result['diff']['after']
    program = result['program']
    assert _connect() == 'timeout'
    again, failed = run_module('bpf_filter', _args(**where))
    assert not failed and not again['changed'] and again['program']['id'] == program['id']
    assert again['hits'] == 1
    seen = again['sightings'][0]
    assert (seen['src'], seen['dst'], seen['dport'], seen['tcp_flags']) == ('198.18.200.1', '198.18.200.2', 12345, ['SYN'])
    # another port: the same place, another program, swapped
    other, failed = run_module('bpf_filter', _args(dport=12346, **where))
    assert not failed and other['changed'] and other['program']['name'] != program['name']
    assert _connect() == 'connected'
    gone, failed = run_module('bpf_filter', _args(dport=12346, state='absent', **where))
    assert not failed and gone['changed'] and gone['program'] is None
    twice, failed = run_module('bpf_filter', _args(state='absent', **where))
    assert not failed and not twice['changed']
    assert _connect() == 'connected'
    link = _ns_json(SERVER, 'ip', '-d', '-j', 'link', 'show', 'dev', IFNAME)[0]
    assert 'xdp' not in link
    for direction in ('ingress', 'egress'):  # the clsact qdisc may stay (it may be someone else's), empty
        assert _ns_json(SERVER, 'tc', '-j', 'filter', 'show', 'dev', IFNAME, direction) == []
    assert not _programs()


def test_tc_egress_sees_the_syn_ack_after_netfilter(pair):
    result, failed = run_module('bpf_filter', _args(hook='tc', direction='egress', dport=None, sport=12345,
                                                    action='pass', label='egress-count'))
    assert not failed and result['label'] == 'egress-count'
    assert _connect() == 'connected'
    again, dummy = run_module('bpf_filter', _args(hook='tc', direction='egress', dport=None, sport=12345,
                                                  action='pass', label='egress-count'))
    flags = [s['tcp_flags'] for s in again['sightings']]
    assert ['SYN', 'ACK'] in flags and again['hits'] >= 1


class _Foreign(bpf.Filter):
    name = 'foreign_prog'


def test_a_program_pflab_did_not_load_is_never_touched(pair):
    subprocess.run(['ip', '-n', SERVER, 'link', 'set', 'dev', IFNAME, 'xdpgeneric', 'off'], check=True)
    # a foreign XDP program: loaded under another name through the same loader
    fd = bpf.load(_Foreign('xdp', dport=9, action='pass'))
    try:
        point = bpf_filter.Point(SERVER, dict(_args(), mode='generic', direction='ingress', priority=1))
        point.attach(fd, 'foreign_prog', replace=False)
    finally:
        os.close(fd)
    before = _ns_json(SERVER, 'ip', '-d', '-j', 'link', 'show', 'dev', IFNAME)[0]['xdp']
    for state in ('present', 'absent'):
        result, failed = run_module('bpf_filter', _args(state=state))
        assert failed and 'pflab did not load' in result['msg'], result
    assert _ns_json(SERVER, 'ip', '-d', '-j', 'link', 'show', 'dev', IFNAME)[0]['xdp'] == before


@pytest.mark.parametrize('args, message', [
    (dict(interface='nosuch0'), 'interface nosuch0 does not exist'),
    (dict(interface='bad\nname'), 'interface'),
    (dict(dport=70000), 'dport is a port from 1 to 65535'),
    (dict(hook='tc', priority=0), 'priority (the tc filter preference)'),
    (dict(label='Not a label'), 'label'),
])
def test_bad_arguments_fail_clearly_and_change_nothing(pair, args, message):
    result, failed = run_module('bpf_filter', _args(**args))
    assert failed and message in result['msg'], result
    assert not _programs()


def test_the_host_namespace_needs_host_true():
    result, failed = run_module('bpf_filter', dict(interface='lo', hook='xdp'))
    assert failed and 'netns' in result['msg']


def test_only_the_mode_changes(pair):
    native, failed = run_module('bpf_filter', _args())
    assert not failed and native['program']['mode'] == 'native'
    generic, failed = run_module('bpf_filter', _args(mode='generic'))
    assert not failed and generic['changed'] and generic['program']['mode'] == 'generic'
    again, failed = run_module('bpf_filter', _args(mode='generic'))
    assert not failed and not again['changed']
    assert _connect() == 'timeout'


def test_a_mode_the_interface_cannot_take_leaves_the_old_program(pair):
    """lo has no native XDP: moving its generic program to native fails, and the generic one stays attached."""
    args = dict(_args(interface='lo'), mode='generic')
    done, failed = run_module('bpf_filter', args)
    assert not failed
    before = _ns_json(SERVER, 'ip', '-d', '-j', 'link', 'show', 'dev', 'lo')[0]['xdp']
    refused, failed = run_module('bpf_filter', dict(args, mode='native'))
    assert failed and 'XDP (native) on lo' in refused['msg'], refused
    assert _ns_json(SERVER, 'ip', '-d', '-j', 'link', 'show', 'dev', 'lo')[0]['xdp'] == before
