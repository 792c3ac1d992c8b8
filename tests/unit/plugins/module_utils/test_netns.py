import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import names, netns


def test_check_target_wants_netns_or_an_explicit_host():
    with pytest.raises(netns.TargetError, match='host=true'):
        netns.check_target(None, False)
    with pytest.raises(netns.TargetError, match='exclude each other'):
        netns.check_target('pfl-x-server', True)
    netns.check_target(None, True)  # host mode asked for: nothing to check


def test_check_target_wants_an_existing_namespace():
    with pytest.raises(netns.TargetError, match='pfl-unit-absent-server does not exist'):
        netns.check_target('pfl-unit-absent-server', False)


@pytest.mark.parametrize('name', [
    '/proc/1/ns/net', '/proc/self/ns/net', '../../proc/self/ns/net', '..', '.', '.hidden', 'a/b',
    'pfl-x-server\n', 'pfl x', '', 'x' * 65, 'pfl-\x00', 'ns\u00e9',
])
def test_a_namespace_is_a_name_never_a_path(name):
    with pytest.raises(names.InvalidName, match='network namespace'):
        netns.resolve(name)
    with pytest.raises(names.InvalidName):
        netns.in_netns(name, ['true'])


def test_the_host_namespace_is_known():
    assert netns.is_host('/proc/self/ns/net')
    assert not netns.is_host('/nonexistent')


@pytest.mark.parametrize('name, owner', [
    ('pflscratch-123-456-abcdef', {'pid': 123, 'start': 456}),
    ('pflscratch-123-abcdef', None),
    ('pflscratch-123-456-abcdef\n', None),
    ('pfl-sc-1-server', None),
])
def test_scratch_names_record_their_owner(name, owner):
    assert netns.scratch_owner(name) == owner
