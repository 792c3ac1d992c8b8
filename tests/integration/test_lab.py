"""playbooks/lab.yml and the lab modules on real network namespaces."""

import os

from ansible_collections.pflab.netfilter.plugins.module_utils import probe as probe_engine
from conftest import netns_names


def listener_pid(netns, port=12345):
    path = '/run/pflab/nc-%s-%d.pid' % (netns, port)
    with open(path) as f:
        return int(f.read())


def pid_alive(pid):
    """Alive and not a zombie (a stopped listener may wait for its reaper)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def test_lab_playbook_is_idempotent_and_absent_removes_only_its_lab(ansible):
    first = ansible.playbook('lab.yml', lab='itest-a')
    assert first.stats['changed'].get('localhost', 0) > 0
    second = ansible.playbook('lab.yml', lab='itest-a')
    assert second.stats['changed'].get('localhost', 0) == 0
    assert {'pfl-itest-a-client', 'pfl-itest-a-server'} <= set(netns_names())
    pid_a = listener_pid('pfl-itest-a-server')
    assert pid_alive(pid_a)

    ansible.playbook('lab.yml', lab='itest-b')
    pid_b = listener_pid('pfl-itest-b-server')

    ansible.playbook('lab.yml', lab='itest-a', state='absent')
    names = set(netns_names())
    assert not {n for n in names if n.startswith('pfl-itest-a-')}
    assert not pid_alive(pid_a)
    assert not os.path.exists('/run/pflab/nc-pfl-itest-a-server-12345.pid')
    # The other lab is untouched and the sysctl stays on while it runs.
    assert {'pfl-itest-b-client', 'pfl-itest-b-server'} <= names and pid_alive(pid_b)
    with open('/proc/sys/net/netfilter/nf_log_all_netns') as f:
        assert f.read().strip() == '1'

    ansible.playbook('lab.yml', lab='itest-b', state='absent')
    assert not [n for n in netns_names() if n.startswith('pfl-itest-')]
    assert not pid_alive(pid_b)


def test_netns_lab_check_mode_creates_nothing(ansible):
    result, failed = ansible.module('netns_lab', {'name': 'itest-c'}, check_mode=True)
    assert not failed and result['changed']
    assert 'create namespace pfl-itest-c-client' in result['changes']
    assert 'pfl-itest-c-client' not in netns_names()


def test_netns_lab_repairs_a_missing_address_and_is_idempotent(ansible):
    ansible.module('netns_lab', {'name': 'itest-d'})
    os.system('ip -n pfl-itest-d-server addr flush dev to-client')
    result, failed = ansible.module('netns_lab', {'name': 'itest-d'})
    assert not failed and result['changes'] == ['add 198.18.0.2/30 to to-client in pfl-itest-d-server']
    result, dummy = ansible.module('netns_lab', {'name': 'itest-d'})
    assert result['changed'] is False


def test_bad_lab_name_is_a_clear_error(ansible):
    result, failed = ansible.module('netns_lab', {'name': 'Bad Name'})
    assert failed and 'lab name' in result['msg']


def test_probe_outcomes_and_listener_lifecycle(ansible):
    ansible.module('netns_lab', {'name': 'itest-e'})
    probe = {'netns': 'pfl-itest-e-client', 'address': '198.18.0.2', 'port': 12345}

    result, dummy = ansible.module('probe', probe)
    assert (result['reached'], result['outcome']) == (False, 'refused')

    started, dummy = ansible.module('listener', {'netns': 'pfl-itest-e-server'})
    assert started['changed'] and pid_alive(started['pid'])
    again, dummy = ansible.module('listener', {'netns': 'pfl-itest-e-server'})
    assert not again['changed'] and again['pid'] == started['pid']

    result, dummy = ansible.module('probe', probe)
    assert (result['reached'], result['outcome'], result['decided_by']) == (True, 'connected', 'syn-ack')
    assert 0 < result['elapsed_ms'] < 200

    # a drop reported while the socket has its answer is not the probe's verdict
    def told():
        return True  # a witness that always saw a drop

    assert probe_engine.tcp_connect(probe['netns'], '198.18.0.2', 12345, 200, 24000, dropped=told)[::3] == \
        ('connected', 'syn-ack')
    assert probe_engine.tcp_connect(probe['netns'], '198.18.0.2', 12346, 200, 24001, dropped=told)[::3] == \
        ('refused', 'reset')
    assert probe_engine.tcp_connect(probe['netns'], '198.18.0.2', 12345, 200, 24002)[2] == 24002  # the port asked

    stopped, dummy = ansible.module('listener', {'netns': 'pfl-itest-e-server', 'state': 'absent'})
    assert stopped['changed'] and not pid_alive(started['pid'])
    result, dummy = ansible.module('probe', dict(probe, address='198.18.0.6'))
    assert result['outcome'] in ('timeout', 'unreachable')


def test_listener_in_a_missing_namespace_fails_clearly(ansible):
    result, failed = ansible.module('listener', {'netns': 'pfl-itest-none-server'})
    assert failed and 'does not exist' in result['msg']
