"""Pure parts of a suite: probe source port blocks, the order runs start in, and what a dead run's result says."""

import os
import signal

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import state, suite


def test_source_port_blocks_never_collide_and_stay_below_the_ephemeral_range():
    markers = {}
    for n in range(state.PORTS_BLOCKS):
        first = state.new_source_ports(markers)
        assert first not in [m['source_ports'] for m in markers.values()]
        assert state.PORTS_FIRST <= first and first + state.PORTS_BLOCK <= 32768
        markers['lab%d' % n] = {'source_ports': first}
    with pytest.raises(state.StateError, match='every block of probe source ports'):
        state.new_source_ports(markers)
    del markers['lab7']  # a released lab's block is given again
    assert state.new_source_ports(dict(markers, broken=None, unreadable={})) == state.PORTS_FIRST + 7 * state.PORTS_BLOCK


def test_a_probe_block_holds_every_probe_a_scenario_may_have():
    import json
    with open(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'schemas', 'scenario.schema.json')) as f:
        assert json.load(f)['properties']['probes']['maxItems'] <= state.PORTS_BLOCK


def test_default_parallel_is_twice_the_usable_cpus():
    assert suite.default_parallel() == min(suite.PARALLEL_MAX, 2 * len(os.sched_getaffinity(0)))


@pytest.mark.parametrize('status, killed, message', [
    (signal.SIGKILL, False, 'its run ended by signal 9 without a result; its lab was removed'),
    (3 << 8, False, 'its run ended with status 3 without a result; its lab was removed'),
    (signal.SIGKILL, True, 'killed after its timeout and %d s more; its lab was removed' % suite.GRACE),
])
def test_a_run_without_a_result_says_how_it_ended(status, killed, message):
    assert suite._ended(status, killed) == message


def test_the_files_of_a_live_lab_being_removed_are_no_orphans(tmp_path, monkeypatch):
    """A run removes its namespaces, then their listener files and switch directory; a reaper of another run
    in between must leave them to it (a 20-host fleet on one machine met that race)."""
    from ansible_collections.pflab.netfilter.plugins.module_utils import listener, netns, ovs, reaper
    run_dir, netns_dir = tmp_path / 'run', tmp_path / 'netns'
    run_dir.mkdir()
    netns_dir.mkdir()
    for module in (listener, ovs):
        monkeypatch.setattr(module, 'RUN_DIR', str(run_dir))
    monkeypatch.setattr(netns, 'NETNS_DIR', str(netns_dir))
    for name in ('nc-pfl-sc-1-server-12345.pid', 'nc-pfl-sc-1-server-12345.log', 'nc-pfl-sc-2-server-12345.pid'):
        (run_dir / name).write_text('1')
    (run_dir / 'ovs-pfl-sc-1-switch').mkdir()
    markers = {'sc-1': {'namespaces': ['pfl-sc-1-client', 'pfl-sc-1-server', 'pfl-sc-1-switch']}}
    assert reaper._orphans(markers, stale={}) == [str(run_dir / 'nc-pfl-sc-2-server-12345.pid')]
    assert len(reaper._orphans(markers, stale={'sc-1': 'its owner is gone'})) == 4
    listener.forget_netns('pfl-sc-1-server')  # the run's own removal, after the files went: no error
    listener.forget_netns('pfl-sc-1-server')
    assert sorted(os.listdir(str(run_dir))) == ['nc-pfl-sc-2-server-12345.pid', 'ovs-pfl-sc-1-switch']
