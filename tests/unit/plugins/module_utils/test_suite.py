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
