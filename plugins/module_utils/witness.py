# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The drop witness and the clock a trace shares: a tracefs instance of the run's own.

The instance records two events of this process only (``set_event_pid``; on veths
a probe's packets are sent, received and answered in the sending process's
softirq): ``skb:kfree_skb``, each dropped packet's reason and the function that
dropped it, which needs no LOG rule; and ``printk:console``, the text of each LOG
record. Its ``trace_clock`` is ``mono``: CLOCK_MONOTONIC, the clock of the BPF
programs' ``bpf_ktime_get_ns`` and of ``time.clock_gettime_ns`` here, so LOG
records, BPF sightings and drops fall in one order. /dev/kmsg's own timestamps
are ``local_clock``, which is not that clock (measured ~2 ms apart here).

The clock is checked, not assumed: a marker written to the instance between two
CLOCK_MONOTONIC readings must carry a time between them. tracefs is used where
it is mounted, else mounted for the run under state.RUN_DIR and unmounted after;
instances and mounts whose owner process is gone are removed by ``reap``.

A suite makes one instance for all its runs (``forks``: the processes it forks
are recorded too) and each run reads it for its own process's events
(``shared``): an instance costs ~40 ms to make and ~110 ms (an RCU grace period)
to remove. Kernels before 5.11 pause recording while ``trace`` is open for
reading (no ``options/pause-on-trace``); there runs do not share an instance and
never read it before their probes end (``live`` is false).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import os
import re
import time

from ansible_collections.pflab.netfilter.plugins.module_utils import state
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

_MOUNTS = '/proc/self/mounts'
PREFIX = 'pflab-'
_EVENTS = ('skb/kfree_skb', 'printk/console')
_BUFFER_KB = 256
_MARKER = 'pflab clock check'
# "<task>-<pid> [cpu] flags <sec>.<usec>: <event>: <text>"
_LINE = re.compile(r'^\s*.+?-(?P<pid>\d+)\s+\[\d+\]\s+\S+\s+(?P<sec>\d+)\.(?P<usec>\d{6}): (?P<event>[\w:]+): (?P<text>.*)$')
_DROP = re.compile(r'location=(?P<location>\S+)(?: reason: (?P<reason>\w+))?')
_OWNER = re.compile(r'^%s(?P<pid>\d+)-(?P<start>\d+)-' % re.escape(PREFIX))
# What a drop's reason says of the filter, and (when the reason does not say) its location's function.
_REASONS = {'TC_INGRESS': 'tc', 'TC_EGRESS': 'tc', 'XDP': 'xdp'}
_LOCATIONS = (('nft_do_chain', 'nftables'), ('ipt_do_table', 'iptables-legacy'), ('ip6t_do_table', 'iptables-legacy'),
              ('nf_hook_slow', 'netfilter'), ('do_xdp_generic', 'xdp'), ('veth_xdp', 'xdp'), ('tcf_classify', 'tc'))


class WitnessError(PflabError):
    pass


def tracefs_mounts():
    """Mount points of tracefs in this process's view."""
    try:
        with open(_MOUNTS) as f:
            return [line.split()[1] for line in f if len(line.split()) > 2 and line.split()[2] == 'tracefs']
    except (IOError, OSError):
        return []


def _mount(target):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b'nodev', target.encode(), b'tracefs', 0, None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _umount(target):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(target.encode(), 2) != 0:  # MNT_DETACH
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def dropped_by(location, reason):
    """The filter that dropped a packet, from kfree_skb's reason and location (``func+0x1/0x2``), or None."""
    if reason in _REASONS:
        return _REASONS[reason]
    function = location.split('+', 1)[0]
    return next((name for prefix, name in _LOCATIONS if function.startswith(prefix)), None)


def _threads(pid):
    try:
        return [int(t) for t in os.listdir('/proc/%d/task' % pid)]
    except OSError:
        return []


def parse(text, pids):
    """The events of the threads ``pids`` in an instance's ``trace`` text: [{time_ns, event, ...}] in order."""
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or int(m.group('pid')) not in pids:
            continue
        when = (int(m.group('sec')) * 1000000 + int(m.group('usec'))) * 1000
        if m.group('event') == 'kfree_skb':
            drop = _DROP.search(m.group('text'))
            if drop:
                reason = drop.group('reason') or 'NOT_SPECIFIED'
                out.append(dict(time_ns=when, event='drop', location=drop.group('location'), reason=reason,
                                filter=dropped_by(drop.group('location'), reason)))
        elif m.group('event') == 'console':
            out.append(dict(time_ns=when, event='console', message=m.group('text').strip()))
        elif m.group('event') == 'tracing_mark_write':
            out.append(dict(time_ns=when, event='marker', message=m.group('text').strip()))
    return out


class Witness:
    """One recording: ``start`` before the probes, ``events`` after, ``stop`` in every case.

    When tracefs cannot be used, ``reason`` says why and ``events`` is empty: the
    run goes on without a witness and says so.
    """

    def __init__(self, lab_id, forks=False, shared=None):
        """A recording for lab ``lab_id``; with ``forks``, of the processes this one forks too; with
        ``shared`` (a started Witness with ``forks`` of a parent process), in that instance."""
        owner = state.me()
        self.name = '%s%d-%d-%s' % (PREFIX, owner['pid'], owner['start'], lab_id)
        self.pid = os.getpid()
        self.pids = set([self.pid])
        self.forks, self.shared = forks, shared
        self.root, self.mounted, self.path = None, None, None
        self.reason = None
        self.live = False  # reading ``trace`` does not pause the recording
        self.overwritten = 0  # events the ring buffer overwrote while this run recorded
        self._overrun_at_start = 0
        self.since_ns = 0
        self.clock = dict(name='CLOCK_MONOTONIC', trace_clock='mono', checked=False)

    def _write(self, relative, value):
        with open(os.path.join(self.path, relative), 'w') as f:
            f.write(value)

    def start(self, pids=()):
        """Start recording this process and ``pids`` (with all their threads)."""
        try:
            self._start(pids)
        except (IOError, OSError, WitnessError) as e:
            self.reason = '%s' % (e.strerror if isinstance(e, (IOError, OSError)) and e.strerror else e)
            self.stop()

    def _start(self, pids):
        threads = [t for pid in pids for t in _threads(pid)]
        if self.shared is not None:
            if self.shared.reason or not self.shared.path:
                raise WitnessError(self.shared.reason or 'the suite\'s witness is gone')
            if threads:  # appended (O_APPEND; a seek, as open(..., 'a') makes, is refused): the others' stay
                fd = os.open(os.path.join(self.shared.path, 'set_event_pid'), os.O_WRONLY | os.O_APPEND)
                try:
                    os.write(fd, ' '.join(str(p) for p in threads).encode())
                finally:
                    os.close(fd)
            self.path, self.live, self.clock = self.shared.path, self.shared.live, dict(self.shared.clock)
            self.pids = set([self.pid] + threads)
            self._overrun_at_start = self._overrun()
            self.since_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - 1000  # the instance holds its past (us times)
            return
        # not another run's private mount: it goes when that run ends
        mounts = [m for m in tracefs_mounts() if os.path.isdir(os.path.join(m, 'instances'))
                  and not m.startswith(state.RUN_DIR + '/')]
        if mounts:
            self.root = mounts[0]
        else:
            self.root = self.mounted = os.path.join(state.RUN_DIR, self.name)
            os.makedirs(self.mounted, mode=0o700)
            _mount(self.mounted)
        if not os.path.isdir(os.path.join(self.root, 'events', 'skb', 'kfree_skb')):
            raise WitnessError('this kernel has no skb:kfree_skb tracepoint')
        self.path = os.path.join(self.root, 'instances', self.name)
        os.mkdir(self.path)
        self._write('buffer_size_kb', str(_BUFFER_KB * (4 if self.forks else 1)))
        self._write('trace_clock', 'mono')
        if os.path.exists(os.path.join(self.path, 'options', 'pause-on-trace')):
            self._write('options/pause-on-trace', '0')
            self.live = True
        if self.forks:
            self._write('options/event-fork', '1')
        self.pids = set([self.pid] + threads)
        self._write('set_event_pid', ' '.join(str(p) for p in sorted(self.pids)))
        for event in _EVENTS:
            self._write('events/%s/enable' % event, '1')
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self._write('trace_marker', _MARKER)
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        marks = [e for e in self._read() if e['event'] == 'marker' and e['message'] == _MARKER]
        # the marker's time is truncated to the microsecond
        if not marks or not before - 1000 < marks[0]['time_ns'] <= after:
            raise WitnessError('the trace clock is not CLOCK_MONOTONIC here (marker %s, read between %d and %d ns)'
                               % (marks[0]['time_ns'] if marks else 'missing', before, after))
        self.clock.update(checked=True, marker_ns=marks[0]['time_ns'], between_ns=[before, after])

    def _read(self):
        with open(os.path.join(self.path, 'trace')) as f:
            return parse(f.read(), self.pids)

    def _overrun(self):
        """Events the instance's ring buffer has overwritten, all CPUs."""
        total = 0
        folder = os.path.join(self.path, 'per_cpu')
        for cpu in os.listdir(folder) if os.path.isdir(folder) else []:
            try:
                with open(os.path.join(folder, cpu, 'stats')) as f:
                    total += sum(int(line.split()[1]) for line in f if line.startswith('overrun:'))
            except (IOError, OSError, ValueError, IndexError):
                continue
        return total

    def events(self):
        """Drops and LOG texts recorded since start (the clock marker left out); ``overwritten`` says how many
        events the buffer lost meanwhile (any process's, in a suite's instance)."""
        if self.reason or not self.path:
            return []
        found = [e for e in self._read() if e['event'] != 'marker' and e['time_ns'] >= self.since_ns]
        self.overwritten = self._overrun() - self._overrun_at_start
        return found

    def dropped_since(self, since_ns):
        """Whether a filter dropped a packet of the recorded threads at ``since_ns`` (CLOCK_MONOTONIC) or later."""
        return bool(self.path) and not self.reason and any(
            e['event'] == 'drop' and e['filter'] and e['time_ns'] >= since_ns for e in self._read())

    def stop(self):
        """Remove the instance and the mount made for it (a shared instance stays for its owner); never raises. A
        mount whose instance could not be removed stays, so that ``reap`` still sees the instance."""
        if self.shared is not None:
            self.path = None
            return
        if self.path and os.path.isdir(self.path):
            _quietly(os.rmdir, self.path)  # removing an instance disables its events
        if self.mounted and not (self.path and os.path.isdir(self.path)):
            _quietly(_umount, self.mounted)
            _quietly(os.rmdir, self.mounted)
        self.path = self.mounted = None


def _quietly(action, *args):
    try:
        action(*args)
    except (IOError, OSError):
        pass


def reap(check_mode=False):
    """Remove (unless ``check_mode``) the instances and mounts of owners that are gone; what that is."""
    removed = []
    places = [os.path.join(m, 'instances') for m in tracefs_mounts()]
    for where in places:
        for name in sorted(os.listdir(where)) if os.path.isdir(where) else []:
            m = _OWNER.match(name)
            if m and state.start_time(int(m.group('pid'))) != int(m.group('start')):
                if not check_mode:
                    _quietly(os.rmdir, os.path.join(where, name))
                removed.append('remove tracefs instance %s (its owner is gone)' % name)
    for name in sorted(os.listdir(state.RUN_DIR)) if os.path.isdir(state.RUN_DIR) else []:
        m = _OWNER.match(name)
        path = os.path.join(state.RUN_DIR, name)
        if m and os.path.isdir(path) and state.start_time(int(m.group('pid'))) != int(m.group('start')):
            if not check_mode:
                if path in tracefs_mounts():
                    _quietly(_umount, path)
                _quietly(os.rmdir, path)
            removed.append('remove %s (its owner is gone)' % path)
    return removed
