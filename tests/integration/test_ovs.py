"""Open vSwitch on the userspace datapath in a bridged lab: netns_lab's switch and pflab.netfilter.ovs_flows."""

import os
import subprocess
import time

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import ovs, probe

from conftest import lab_switches, netns_names, run_module

LAB = 'itest-ovs'


@pytest.fixture
def bridged():
    result, failed = run_module('netns_lab', dict(name=LAB, namespaces=['client', 'switch', 'server'], bridge='switch'))
    assert not failed, result
    nc = subprocess.Popen(['ip', 'netns', 'exec', 'pfl-%s-server' % LAB, 'nc', '-lk', result['lab']['addresses']['server'],
                           '12345'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield result['lab']
    finally:
        nc.kill()
        nc.wait()
        done, failed = run_module('netns_lab', dict(name=LAB, state='absent'))
        assert not failed, done


def _connect(lab, port=12345):
    outcome = None
    for dummy in range(50):  # the listener may still be starting
        outcome = probe.tcp_connect(lab['namespaces']['client'], lab['addresses']['server'], port, 300)[0]
        if outcome != 'refused':
            return outcome
        time.sleep(0.02)
    return outcome


def _flows(lab, **kwargs):
    args = dict(netns=lab['switch']['netns'], flows=[dict(dport=12345, action='drop')])
    args.update(kwargs)
    return args


def test_a_switch_joins_the_lab_and_a_second_run_changes_nothing(bridged):
    assert bridged['addresses'] == {'client': '198.18.0.1', 'server': '198.18.0.2'}
    assert bridged['switch']['rundir'] == ovs.rundir('pfl-%s-switch' % LAB)
    assert _connect(bridged) == 'connected'
    again, failed = run_module('netns_lab', dict(name=LAB, namespaces=['client', 'switch', 'server'], bridge='switch'))
    assert not failed and not again['changed'], again['changes']


def test_flows_drop_then_go_and_a_second_run_changes_nothing(bridged):
    check, failed = run_module('ovs_flows', _flows(bridged), check_mode=True)
    assert not failed and check['changed'] and _connect(bridged) == 'connected'
    done, failed = run_module('ovs_flows', dict(_flows(bridged), _ansible_diff=True))
    assert not failed and done['changes'] == ['add priority=100,tcp,tp_dst=12345,actions=drop']
    assert 'tp_dst=12345 actions=drop' in done['diff']['after'] and 'tp_dst' not in done['diff']['before']
    assert _connect(bridged) == 'timeout'
    again, failed = run_module('ovs_flows', _flows(bridged))
    assert not failed and not again['changed']
    gone, failed = run_module('ovs_flows', _flows(bridged, state='absent'))
    assert not failed and gone['changed'] and _connect(bridged) == 'connected'


def test_a_bundle_the_switch_refuses_applies_nothing(bridged, monkeypatch):
    """The second flow's text is one ovs-ofctl refuses (validation never lets such a flow through, so the
    text is made here): the first, valid flow of the same call is not applied either."""
    real = ovs.flow_text
    monkeypatch.setattr(ovs, 'flow_text', lambda flow: real(flow).replace('12347', '99999'))
    where = dict(netns=bridged['switch']['netns'], bridge='br0')
    table = ovs.dump(where)
    params = dict(where, host=False, state='present', flows=[
        dict(priority=100, protocol='tcp', dport=12346, sport=None, action='drop', label=None),
        dict(priority=100, protocol='tcp', dport=12347, sport=None, action='drop', label=None)])
    with pytest.raises(ovs.OvsError, match='none was applied'):
        ovs.manage(None, params)
    assert ovs.dump(where) == table
    assert _connect(bridged, 12346) == 'refused'  # not dropped: the server answers, nothing listens there


@pytest.mark.parametrize('args, message', [
    (dict(netns='pfl-%s-server' % LAB), 'has no pflab switch'),
    (dict(bridge='br0\n'), 'bridge'),
    (dict(flows=[dict(dport=0)]), 'dport is a port from 1 to 65535'),
    (dict(flows=[dict(dport=1, label='Bad Label')]), 'label'),
    (dict(flows=[dict(dport=1), dict(dport=1)]), 'same match and priority'),
])
def test_bad_arguments_fail_clearly(bridged, args, message):
    result, failed = run_module('ovs_flows', _flows(bridged, **args))
    assert failed and message in result['msg'], result


def test_removing_the_lab_stops_the_switch_and_removes_its_files():
    result, failed = run_module('netns_lab', dict(name=LAB, namespaces=['client', 'switch', 'server'], bridge='switch'))
    assert not failed and len(lab_switches()) == 2
    rundir = result['lab']['switch']['rundir']
    assert os.path.exists(os.path.join(rundir, 'db.sock'))
    done, failed = run_module('netns_lab', dict(name=LAB, state='absent'))
    assert not failed
    assert lab_switches() == [] and not os.path.exists(rundir)
    assert not [n for n in netns_names() if n.startswith('pfl-%s-' % LAB)]
