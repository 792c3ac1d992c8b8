"""The rule modules touch the host's own namespace only with host=true; these tests
use it in check mode only, and check that the host's rules stay byte-identical."""

import pytest

from conftest import host_state

MODULES = {
    'iptables_rules': {'backend': 'legacy', 'chains': [{'name': 'INPUT', 'rules': ['-p tcp --dport 12345 -j DROP']}]},
    'nft_rules': {'table': 'pflab_itest', 'chains': [{'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 drop']}]},
}


@pytest.mark.parametrize('module', sorted(MODULES))
def test_without_netns_or_host_the_call_is_refused(ansible, module):
    before = host_state()
    result, failed = ansible.module(module, MODULES[module])
    assert failed and 'host=true' in result['msg'], result
    assert host_state() == before


@pytest.mark.parametrize('module', sorted(MODULES))
def test_netns_and_host_exclude_each_other(ansible, module):
    result, failed = ansible.module(module, dict(MODULES[module], netns='pfl-itest-x', host=True))
    assert failed and 'exclude each other' in result['msg'], result


@pytest.mark.parametrize('module', sorted(MODULES))
def test_host_true_in_check_mode_plans_on_the_host_and_changes_nothing(ansible, module):
    before = host_state()
    result, failed = ansible.module(module, dict(MODULES[module], host=True), check_mode=True)
    assert not failed and result['changed'], result
    assert host_state() == before
