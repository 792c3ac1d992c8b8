# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A suite: the scenarios of one host in one call, each in a lab of its own, up to ``parallel`` at once.

Every scenario and step is checked before any lab exists, the host is read and
stale labs are reaped once. Then each scenario runs in a child process of its own
(fork), exactly as one call of the scenario module does: the child's pid names
its lab (``sc-<pid>``) and owns its marker and its timer, and its lab is removed
in ``finally``. The suite's one drop witness records the children it forks
(``event-fork``); each reads its own process's events. Labs never share interface
names or probe source ports (both are given with the claim), so LOG records
are told apart by lab and port. The child sends its result as JSON through a
pipe. A child that ends without a result (killed, crashed) or outlives its
timeout by GRACE (then it is killed) leaves a lab whose owner is gone: the suite
removes it (reaper) as soon as the child is waited for. SIGTERM or SIGINT to the
suite stops it: the running children get SIGTERM once (Ctrl-C reaches them
itself), remove their labs (signals wait for a run's teardown), and the suite
waits for them, kills what outlives GRACE and removes what is left.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import selectors
import signal
import time
import traceback

from ansible_collections.pflab.netfilter.plugins.module_utils import lab, reaper, scenario, witness
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip

PARALLEL_MAX = 64
GRACE = 30  # seconds a run may take beyond its timeout to remove its lab, before it is killed
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class SuiteError(PflabError):
    pass


def default_parallel():
    """Labs at once when the caller does not say: two per CPU this process may use (a lab's run spends
    most of its time waiting on the kernel: namespace removal, RCU grace periods, listeners)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(PARALLEL_MAX, 2 * cpus))


class _Child:
    def __init__(self, index, pid, fd, deadline):
        self.index, self.pid, self.fd, self.deadline = index, pid, fd, deadline
        self.chunks = []
        self.killed = False


class Suite:
    """Runs ``scenarios`` (already checked against the schema on the controller) with an AnsibleModule."""

    def __init__(self, module, scenarios, parallel, timeout):
        self.module = module
        self.scenarios = scenarios
        self.parallel = parallel
        self.timeout = timeout
        self.checked = []  # per scenario: its Runner (the checks passed), or why it cannot run (PflabError)
        for data in scenarios:
            try:
                self.checked.append(scenario.Runner(module, data, timeout=timeout))
            except PflabError as e:
                self.checked.append(e)
        self.cleaned = []
        self.stopped_by = None  # the signal that stops the suite
        self.pid = os.getpid()

    def checked_results(self):
        """The results of check mode: each scenario's checks, nothing run."""
        return [_failed(data, 'scenario %s: %s' % (data.get('id'), checked)) if isinstance(checked, PflabError)
                else dict(id=data['id'], status='not run', scenario=data)
                for data, checked in zip(self.scenarios, self.checked)]

    def run(self, facts):
        """(results in the order of the scenarios, what was reaped: left by runs whose owner is gone); every lab
        a run made is gone when this returns or raises SuiteError. ``facts`` are the host's (HostFacts)."""
        self._reap()
        results, queue = [None] * len(self.scenarios), []
        for index, data in enumerate(self.scenarios):
            if isinstance(self.checked[index], PflabError):
                results[index] = _failed(data, 'scenario %s: %s' % (data.get('id'), self.checked[index]))
                continue
            why = self.checked[index].missing(facts)
            if why:
                results[index] = dict(id=data['id'], scenario=data, kernel=facts.release, versions=facts.versions(),
                                      status='skipped', reason=why)
            else:
                queue.append(index)
        queue.sort(key=lambda i: not self.checked[i].bridge)  # a lab with a switch takes longest: it goes first
        lab.preload()
        wakeup_r, wakeup_w = os.pipe()
        os.set_blocking(wakeup_w, False)
        running = {}
        recording = witness.Witness('suite', forks=True)
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        previous = dict((s, signal.signal(s, self._on_signal)) for s in _SIGNALS)
        previous_wakeup = signal.set_wakeup_fd(wakeup_w)
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            recording.start()
            if not recording.live:
                recording.stop()  # it pauses while read (kernels before 5.11): each run records with one of its own
            self._schedule(queue, running, results, facts, recording if recording.live else None, wakeup_r)
        finally:
            # a signal meanwhile only sets stopped_by (a second Ctrl-C, say): the cleanup goes on
            try:
                self._end(running, results)
                recording.stop()
                self._reap()
            finally:
                signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
                signal.set_wakeup_fd(previous_wakeup)
                for s, handler in previous.items():
                    signal.signal(s, handler)
                os.close(wakeup_r)
                os.close(wakeup_w)
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if self.stopped_by:
            raise SuiteError('stopped by signal %d' % self.stopped_by)
        return results, self.cleaned

    def _on_signal(self, signum, frame):
        self.stopped_by = signum  # the loop stops at its next turn (the wakeup fd ends its wait)

    def _reap(self):
        self.cleaned += [c for c in reaper.reap()['changes'] if c not in self.cleaned]

    def _schedule(self, queue, running, results, facts, shared, wakeup):
        with selectors.DefaultSelector() as selector:
            selector.register(wakeup, selectors.EVENT_READ)
            while (queue or running) and not self.stopped_by:
                while queue and len(running) < self.parallel and not self.stopped_by:
                    child = self._fork(queue.pop(0), facts, shared, running)
                    running[child.pid] = child
                    selector.register(child.fd, selectors.EVENT_READ, child)
                wait = max(0.0, min(c.deadline for c in running.values()) - time.monotonic())
                for key, dummy in selector.select(wait):
                    if key.data is None:
                        os.read(wakeup, 64)
                        continue
                    child = key.data
                    chunk = os.read(child.fd, 1 << 16)
                    if chunk:
                        child.chunks.append(chunk)
                        continue
                    selector.unregister(child.fd)
                    results[child.index] = self._collect(running.pop(child.pid))
                for child in [c for c in running.values() if time.monotonic() > c.deadline]:
                    os.kill(child.pid, signal.SIGKILL)  # its lab is reaped as it is collected
                    child.killed = True
                    selector.unregister(child.fd)
                    results[child.index] = self._collect(running.pop(child.pid))

    def _fork(self, index, facts, shared, running):
        read_fd, write_fd = os.pipe()
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        finally:
            if os.getpid() == self.pid:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if pid == 0:
            self._child(index, facts, shared, read_fd, write_fd, running, held)
        os.close(write_fd)
        return _Child(index, pid, read_fd, time.monotonic() + self.timeout + GRACE)

    def _child(self, index, facts, shared, read_fd, write_fd, running, held):
        """In the child process (signals still blocked): run one scenario, write its result, and end without
        returning, whatever happens."""
        code = 1
        try:
            # the suite's handlers and wakeup fd are not the run's: it installs its own for SIGTERM, and SIGINT
            # (Ctrl-C reaches the whole process group) raises KeyboardInterrupt through its teardown
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            os.close(read_fd)
            for child in running.values():
                os.close(child.fd)
            data = self.scenarios[index]
            try:  # a runner of its own: the lab id is this process's
                runner = scenario.Runner(self.module, data, timeout=self.timeout)
                result = dict(runner.run(facts, reap=False, shared_witness=shared), scenario=data)
            except (PflabError, OSError) as e:
                result = _failed(data, '%s' % e)
            payload = json.dumps(result).encode()
            while payload:
                payload = payload[os.write(write_fd, payload):]
            code = 0
        except BaseException:  # pylint: disable=broad-except  # the parent says the run gave no result
            traceback.print_exc()
        finally:
            os._exit(code)

    def _collect(self, child):
        """A child's result, once it has ended (waited for here); a lab it left is removed first."""
        os.close(child.fd)
        dummy, status = os.waitpid(child.pid, 0)
        data = self.scenarios[child.index]
        if child.killed or status != 0:
            self._reap()
            return _failed(data, 'scenario %s: %s' % (data['id'], _ended(status, child.killed)))
        try:
            return json.loads(b''.join(child.chunks).decode())
        except ValueError:
            return _failed(data, 'scenario %s: its run sent a result that is not JSON' % data['id'])

    def _end(self, running, results):
        """Stop the children still running (the suite was stopped): SIGTERM once, GRACE to remove their labs,
        then SIGKILL; each is waited for, and its result says so."""
        for child in running.values():
            os.close(child.fd)  # a result written now goes nowhere: the run ends after its teardown
            os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while running:
            late = time.monotonic() > deadline
            for child in list(running.values()):
                if os.waitpid(child.pid, os.WNOHANG) != (0, 0) or late:
                    if late:
                        os.kill(child.pid, signal.SIGKILL)  # not waited for yet: at most a zombie
                        os.waitpid(child.pid, 0)
                    del running[child.pid]
                    results[child.index] = _failed(self.scenarios[child.index], 'scenario %s: stopped with the suite'
                                                   % self.scenarios[child.index]['id'])
            time.sleep(0.01)


def _ended(status, killed):
    if killed:
        return 'killed after its timeout and %d s more; its lab was removed' % GRACE
    if os.WIFSIGNALED(status):
        return 'its run ended by signal %d without a result; its lab was removed' % os.WTERMSIG(status)
    return 'its run ended with status %d without a result; its lab was removed' % os.WEXITSTATUS(status)


def _failed(data, msg):
    return dict(failed=True, msg=clip(msg), scenario=data)
