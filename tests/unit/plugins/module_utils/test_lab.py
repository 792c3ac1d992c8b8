"""Lab planning and namespace naming: pure logic, no namespaces made."""

import os

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import lab, netns
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError


def test_default_plan_names_and_addresses():
    plan = lab.LabPlan('demo', ['client', 'server'])
    assert plan.namespaces == {'client': 'pfl-demo-client', 'server': 'pfl-demo-server'}
    assert plan.addresses() == {'client': '198.18.0.1', 'server': '198.18.0.2'}
    a, b = plan.links[0]
    assert (a['ifname'], b['ifname']) == ('to-server', 'to-client')
    assert (a['netns'], b['netns']) == ('pfl-demo-client', 'pfl-demo-server')


def test_consecutive_links_take_consecutive_blocks():
    plan = lab.LabPlan('chain', ['client', 'router', 'server'], subnet='198.18.1.0/24')
    ends = [(end['role'], end['address']) for link in plan.links for end in link]
    assert ends == [('client', '198.18.1.1'), ('router', '198.18.1.2'),
                    ('router', '198.18.1.5'), ('server', '198.18.1.6')]


def test_interface_names_fit_ifnamsiz():
    plan = lab.LabPlan('x' * 32, ['abcdefghij', 'klmnopqrst'])
    assert all(len(end['ifname']) <= 15 for link in plan.links for end in link)


@pytest.mark.parametrize('kwargs, message', [
    (dict(lab='Bad_Name', roles=['client', 'server']), 'lab name'),
    (dict(lab='demo\n', roles=['client', 'server']), 'lab name'),
    (dict(lab='demo', roles=['client', 'server\n']), 'role'),
    (dict(lab='demo', roles=['client', 'server'], links=[['client', {'a': 1}]]), 'two different'),
    (dict(lab='demo', roles=['client']), 'at least two'),
    (dict(lab='demo', roles=['client', 'client']), 'unique'),
    (dict(lab='demo', roles=['client', 'srv-1']), 'role'),
    (dict(lab='demo', roles=['client', 'server'], links=[['client', 'client']]), 'two different'),
    (dict(lab='demo', roles=['client', 'server'], links=[['client', 'nobody']]), 'two different'),
    (dict(lab='demo', roles=['client', 'server'], links=[['client', 'server'], ['server', 'client']]), 'twice'),
    (dict(lab='demo', roles=['client', 'server'], subnet='2001:2::/64'), 'not an IPv4'),
    (dict(lab='demo', roles=['a', 'b', 'c'], subnet='198.18.0.0/30'), 'room for 1 links'),
])
def test_bad_plans_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(PflabError, match=message):
        lab.LabPlan(**kwargs)


@pytest.mark.parametrize('name, expected', [
    ('pfl-demo-client', ('demo', 'client')),
    ('pfl-a-b-server', ('a-b', 'server')),
    ('pfl-demo', None),
    ('other-demo-client', None),
    ('pfl-demo-srv-1', None),
    ('pfl-demo-client\n', None),
])
def test_split_lab_netns_name(name, expected):
    assert netns.split_lab_netns_name(name) == expected


def test_a_namespace_s_listener_files_are_only_its_own(tmp_path, monkeypatch):
    from ansible_collections.pflab.netfilter.plugins.module_utils import listener
    monkeypatch.setattr(listener, 'RUN_DIR', str(tmp_path))
    for name in ('nc-pfl-x-server-12345.pid', 'nc-pfl-x-server-12345.log', 'nc-pfl-x-server-2-client-80.pid',
                 'other.json'):
        (tmp_path / name).write_text('1\n')
    listener.forget_netns('pfl-x-server')
    assert sorted(os.listdir(str(tmp_path))) == ['nc-pfl-x-server-2-client-80.pid', 'other.json']


def test_a_huge_subnet_takes_only_the_blocks_it_needs():
    plan = lab.LabPlan('big', ['client', 'server'], subnet='0.0.0.0/0')  # 2^30 blocks: never listed
    assert plan.addresses() == {'client': '0.0.0.1', 'server': '0.0.0.2'}
