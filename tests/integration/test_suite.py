"""A suite in one call on the real kernel: labs in parallel give the traces one-by-one runs give, early verdicts
from the drop witness, and nothing left behind by a suite with failing, timed-out or killed runs."""

import glob
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import yaml

from conftest import ROOT, netns_names, run_module, settled_leftovers

ARTICLE = os.path.join(ROOT, 'playbooks', 'scenarios', 'article')
MARKERS = '/run/pflab/lab-*.json'


def _suite_results(ansible, tmp_path, scenarios_expr, parallels, vars_files=()):
    """The suite's results for each of ``parallels``, run one after another in one playbook."""
    tasks = []
    for parallel in parallels:
        out = str(tmp_path / ('suite-%d.json' % parallel))
        suite = {'scenarios': scenarios_expr, 'parallel': parallel}
        keep = {'content': '{{ run | to_json }}', 'dest': out}
        tasks += [{'name': 'suite %d' % parallel, 'pflab.netfilter.suite': suite, 'register': 'run'},
                  {'name': 'keep %d' % parallel, 'ansible.builtin.copy': keep, 'delegate_to': 'localhost'}]
    path = tmp_path / 'suite.yml'
    os.symlink(os.path.join(ROOT, 'playbooks', 'scenarios'), str(tmp_path / 'scenarios'))
    path.write_text(yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False, 'vars_files': list(vars_files),
                                     'tasks': tasks}]))
    ansible.playbook(str(path))
    found = {}
    for parallel in parallels:
        with open(str(tmp_path / ('suite-%d.json' % parallel))) as f:
            found[parallel] = json.load(f)
    return found


def _port(value, run):
    ports = dict((str(p['source_port']), 'source port of probe %d' % n) for n, p in enumerate(run['probes'], 1))
    return ports.get(value, value)


def _essence(run):
    """What a run found, without what differs from one run to the next by design: times, kernel log sequence
    numbers, the lab's interface tag, and its block of source ports."""
    def ifname(name):
        return name.split('-', 1)[1] if name else name

    trace = []
    for record in run['trace']:
        kept = dict((k, v) for k, v in record.items() if k not in ('time_ns', 'seq', 'timestamp_us', 'tie'))
        if 'fields' in kept:
            kept['fields'] = dict(kept['fields'], IN=ifname(kept['fields']['IN']), OUT=ifname(kept['fields']['OUT']),
                                  SPT=_port(kept['fields']['SPT'], run), DPT=_port(kept['fields']['DPT'], run))
        trace.append(kept)
    hooks = [dict((k, v) for k, v in e.items() if k not in ('program_id', 'device', 'hits')) for e in run['hooks']]
    probes = [dict((k, v) for k, v in p.items() if k not in ('source_port', 'elapsed_ms', 'window_ns'))
              for p in run['probes']]
    # witness.other_drops is left out: drops that are no filter's, counted by process context, include other labs'
    # packets that a run's softirq happened to handle while labs ran at once (seen: 2 against 0)
    return dict(id=run['id'], status=run['status'], observed=run['observed'], trace=trace, hooks=hooks, probes=probes,
                unregistered=run['unregistered'], lost=run['lost'], foreign=run['foreign'],
                retransmitted=run['retransmitted'], witness=run['witness']['available'], steps=run['steps'])


def test_the_matrix_in_parallel_gives_every_trace_of_the_matrix_run_one_by_one(ansible, tmp_path):
    runs = _suite_results(ansible, tmp_path, "{{ matrix_variants | pflab.netfilter.matrix_runs('%s') }}" % ARTICLE,
                          (4, 1), vars_files=[os.path.join(ROOT, 'playbooks', 'scenarios', 'matrix.yml')])
    parallel, serial = runs[4], runs[1]
    assert (parallel['parallel'], serial['parallel']) == (4, 1)
    assert parallel['summary'] == serial['summary'] == {'ran': 25, 'skipped': 0, 'failed': 0, 'not run': 0}
    assert [r['item'] for r in parallel['results']] == [r['item'] for r in serial['results']]
    for one, other in zip(parallel['results'], serial['results']):
        assert _essence(one) == _essence(other), one['id']
        assert one['trace'], one['id']
    # labs that ran at once had blocks of source ports of their own
    ports = [p['source_port'] for r in parallel['results'] for p in r['probes']]
    assert len(set(ports)) > 1 and all(20000 <= p < 32768 for p in ports)
    # a drop ends its probe when the witness sees it; the timeout decides only where nothing tells
    decided = dict((r['id'], r['probes'][0]['decided_by']) for r in parallel['results'])
    for run in parallel['results']:
        probe = run['probes'][0]
        if probe['reached']:
            assert probe['decided_by'] == 'syn-ack'
        else:
            assert (probe['outcome'], probe['decided_by']) == ('dropped', 'witness'), run['id']
            assert probe['elapsed_ms'] < probe['timeout_ms'] and run['drops']
    assert set(decided.values()) == {'syn-ack', 'witness'}


def test_a_probe_that_could_see_a_retransmission_waits_for_its_timeout(ansible, tmp_path):
    scenario = dict(id='itest-long', title='t', source='beyond the article', probes=[{'timeout_ms': 1000}],
                    steps=[{'nft': {'table': 'f', 'chains': [{'name': 'input', 'hook': 'input',
                                                              'rules': ['tcp dport 12345 drop']}]}}],
                    expect={'reached': False, 'trace': []})
    (res, failed), = ansible.tasks([{'pflab.netfilter.suite': {'scenarios': [{'scenario': scenario}]}}])
    assert not failed
    (run,) = res['results']
    assert (run['probes'][0]['outcome'], run['probes'][0]['decided_by']) == ('timeout', 'timeout')
    assert run['probes'][0]['elapsed_ms'] >= 1000 and run['drops'][0]['filter'] == 'nftables'


def test_a_drop_ends_a_probe_only_while_the_socket_has_no_answer(ansible):
    """A REJECT drops the SYN and answers with a reset; a filter that drops the handshake's last ACK drops a packet
    of a connection that is made: neither is a 'dropped' probe."""
    reject = _scenario('itest-reject', [{'iptables': {'backend': 'legacy', 'chains': [
        {'name': 'INPUT', 'rules': ['-p tcp --dport 12345 -j REJECT --reject-with tcp-reset']}]}}])
    last_ack = _scenario('itest-last-ack', [{'nft': {'table': 'f', 'chains': [{'name': 'input', 'hook': 'input', 'rules': [
        'tcp dport 12345 ct state established drop']}]}}])
    (res, failed), = ansible.tasks([{'pflab.netfilter.suite': {'scenarios': [{'scenario': reject},
                                                                             {'scenario': last_ack}]}}])
    assert not failed, res
    refused, made = res['results']
    assert (refused['probes'][0]['outcome'], refused['probes'][0]['decided_by']) == ('refused', 'reset')
    assert refused['drops'] and refused['drops'][0]['filter'] == 'netfilter'  # the witness saw the SYN dropped
    assert (made['probes'][0]['outcome'], made['probes'][0]['decided_by']) == ('connected', 'syn-ack')
    _nothing_left()


def _scenario(scenario_id, steps, timeout_ms=200):
    return dict(id=scenario_id, title='t', source='beyond the article', steps=steps,
                probes=[{'timeout_ms': timeout_ms}], expect={'reached': False, 'trace': []})


DROP = [{'nft': {'table': 'f', 'chains': [{'name': 'input', 'hook': 'input', 'rules': ['tcp dport 12345 drop']}]}}]


def _nothing_left():
    assert not [n for n in netns_names() if n.startswith('pfl-sc-')]
    assert not glob.glob(MARKERS) and not glob.glob('/run/pflab/nc-*')
    assert settled_leftovers() == []


def test_a_parallel_suite_with_failing_runs_leaves_nothing(ansible):
    with open(os.path.join(ARTICLE, 'experiment-3.yml')) as f:
        good = yaml.safe_load(f)
    refused = _scenario('itest-refused', [{'iptables': {'backend': 'legacy', 'chains': [
        {'name': 'INPUT', 'rules': ['-p tcp -j NOPE']}]}}])
    slow = _scenario('itest-slow', DROP, timeout_ms=5000)
    unknown = _scenario('itest-unknown', [{'nft': {'table': 'f', 'chains': [{'name': 'input', 'hook': 'nowhere'}]}}])
    (res, failed), = ansible.tasks([{'pflab.netfilter.suite': {
        'scenarios': [{'scenario': s} for s in (good, refused, slow, good, unknown)], 'parallel': 3, 'timeout': 2}}])
    assert not failed, res
    ok, no, late, again, bad = res['results']
    assert ok['status'] == again['status'] == 'ran' and ok['observed'] == again['observed'] == good['expect']
    assert no['failed'] and 'step 1 (iptables)' in no['msg'] and 'the lab was removed' in no['msg']
    assert late['failed'] and 'timed out after 2s during probes; the lab was removed' in late['msg']
    assert bad['failed'] and 'hook' in bad['msg']  # refused before any lab
    assert res['summary'] == {'ran': 2, 'skipped': 0, 'failed': 3, 'not run': 0}
    _nothing_left()


def _parent(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_a_run_killed_mid_way_is_reaped_by_the_suite():
    """SIGKILL to one run's process (a child of this one, which runs the suite module's main()): its lab
    (namespaces, veths, listener, marker) is removed by the suite."""
    killed = []

    def kill_the_slow_run():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            for path in glob.glob(MARKERS):
                try:
                    with open(path) as f:
                        marker = json.load(f)
                except (OSError, ValueError):
                    continue  # gone, or being written
                if _parent(marker['owner']['pid']) == os.getpid() and \
                        glob.glob('/run/pflab/nc-%s-*' % marker['namespaces'][0].rsplit('-', 1)[0]):
                    time.sleep(0.5)  # into its 5 s probe
                    os.kill(marker['owner']['pid'], signal.SIGKILL)
                    killed.append(marker['owner']['pid'])
                    break
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_slow_run)
    killer.start()
    try:
        res, failed = run_module('suite', {'scenarios': [_scenario('itest-killed', DROP, timeout_ms=5000)]})
    finally:
        killer.join()
    assert killed and not failed, res
    (run,) = res['results']
    assert run['failed'] and run['msg'] == ('scenario itest-killed: its run ended by signal 9 without a result; '
                                            'its lab was removed')
    assert any('sc-%d' % killed[0] in change for change in res['cleaned'])
    _nothing_left()


def test_check_mode_runs_nothing(ansible):
    (res, failed), = ansible.tasks([{'pflab.netfilter.suite': {'scenarios': [{'scenario': _scenario('x', DROP)}]},
                                     'check_mode': True}])
    assert not failed and res['results'][0]['status'] == 'not run' and not res['changed']
    assert not [n for n in netns_names() if n.startswith('pfl-sc-')]


def test_bad_arguments_are_refused_before_any_lab(ansible):
    results = ansible.tasks([
        {'pflab.netfilter.suite': {'scenarios': []}},
        {'pflab.netfilter.suite': {'scenarios': [{'scenario': _scenario('x', DROP)}], 'parallel': 0}},
        {'pflab.netfilter.suite': {'scenarios': ['/nonexistent/scenario.yml', {'src': 'a', 'scenario': {}}]}},
        {'pflab.netfilter.suite': {'scenarios': [{'scenario': _scenario('x', DROP)}], 'min_kernel': '99.0'}},
        {'pflab.netfilter.suite': {'scenarios': [{'scenario': _scenario('x', DROP)}], 'min_kernel': '5.4\n'}},
    ])
    (empty, failed_empty), (zero, failed_zero), (unreadable, failed_unreadable), (new, failed_new), \
        (bad, failed_bad) = results
    assert failed_new and new['msg'].startswith('pflab.netfilter needs Linux >= 99.0; this host runs ')
    assert failed_bad and 'min_kernel is major.minor' in bad['msg']
    assert failed_empty and 'scenarios is a list of 1 to' in empty['msg']
    assert failed_zero and 'parallel must be from 1 to 64, got 0' in zero['msg']
    assert not failed_unreadable and [r['failed'] for r in unreadable['results']] == [True, True]
    assert 'exactly one of src and scenario' in unreadable['results'][1]['msg']
    assert not [n for n in netns_names() if n.startswith('pfl-sc-')]


def _runs_of_a_suite(count, deadline=20):
    """The pids of ``count`` runs (lab owners) whose parent is one process, the suite module; and that module."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        owners = {}
        for path in glob.glob(MARKERS):
            try:
                with open(path) as f:
                    pid = json.load(f)['owner']['pid']
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if glob.glob('/run/pflab/nc-pfl-sc-%d-*' % pid):  # into its probes
                owners.setdefault(_parent(pid), []).append(pid)
        for module, runs in owners.items():
            if len(runs) == count:
                return module, runs
        time.sleep(0.05)
    raise AssertionError('no suite with %d runs in their probes' % count)


@pytest.mark.parametrize('how', ['SIGTERM to the module', 'SIGINT to the process group (Ctrl-C)'])
def test_a_stopped_suite_removes_every_lab_it_made(how):
    scenarios = [{'scenario': _scenario('itest-stopped-%d' % n, DROP, timeout_ms=8000)} for n in range(2)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    run = subprocess.Popen(['ansible', 'localhost', '-i', os.path.join(ROOT, 'inventory', 'localhost.yml'),
                            '-m', 'pflab.netfilter.suite', '-a', json.dumps({'scenarios': scenarios, 'parallel': 2})],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        module, runs = _runs_of_a_suite(2)
        if how.startswith('SIGTERM'):
            os.kill(module, signal.SIGTERM)
            out = run.communicate(timeout=60)[0].decode()
            assert 'the suite stopped: stopped by signal 15; the labs its runs had made were removed' in out, out
        else:
            os.killpg(run.pid, signal.SIGINT)
            run.communicate(timeout=60)
            _wait_gone([module] + runs)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    _nothing_left()


def _wait_gone(pids, deadline=60):
    end = time.monotonic() + deadline
    while any(os.path.exists('/proc/%d' % p) and _parent(p) is not None for p in pids) and time.monotonic() < end:
        time.sleep(0.05)


def test_make_reports_playbook_runs_both_suites_in_one_call_and_reports_each(ansible, tmp_path):
    result = ansible.playbook('report.yml', report_dir=str(tmp_path / 'report'))
    suites = [e['event_data']['res'] for e in result.events if e.get('event') == 'runner_on_ok'
              and e['event_data'].get('task_action') == 'pflab.netfilter.suite']
    assert len(suites) == 1 and suites[0]['summary']['ran'] == 15
    reports = {}
    for folder in os.listdir(str(tmp_path / 'report')):
        if folder != 'latest':
            with open(str(tmp_path / 'report' / folder / 'report.json')) as f:
                report = json.load(f)
            reports[report['suite']] = report['summary']
    assert reports == {'article': dict(reproduced=6, differs=0, skipped=0, failed=0, missing=0, **{'not run': 0}),
                       'layers': dict(reproduced=9, differs=0, skipped=0, failed=0, missing=0, **{'not run': 0})}
    _nothing_left()
