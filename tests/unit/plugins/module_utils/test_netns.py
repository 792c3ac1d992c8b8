import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import netns


def test_check_target_wants_netns_or_an_explicit_host():
    with pytest.raises(netns.TargetError, match='host=true'):
        netns.check_target(None, False)
    with pytest.raises(netns.TargetError, match='exclude each other'):
        netns.check_target('pfl-x-server', True)
    netns.check_target(None, True)  # host mode asked for: nothing to check


def test_check_target_wants_an_existing_namespace():
    with pytest.raises(OSError, match='pfl-unit-absent-server does not exist'):
        netns.check_target('pfl-unit-absent-server', False)
