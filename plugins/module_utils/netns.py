# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network namespace helpers shared by every module.

A namespace is given by name and resolved only under /run/netns, never as a path;
a name that leads to the host's own namespace is refused (``resolve``). One code
path runs a command inside a namespace (``in_netns``, ``Runner``); one finds the
processes that live in a namespace (``pids_in``). Names of lab namespaces are
``pfl-<lab>-<role>``; ``scratch()`` makes a short-lived one named
``pflscratch-<pid>-<start time>-<random>`` (its owner process, so a scratch
namespace left by a killed module is found and removed) where rules are tried before
they reach a real ruleset. Only the standard library is used here: importing
pyroute2 costs ~0.1 s, which the rule modules and the probe need not pay.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import contextlib
import ctypes
import os
import re
import signal
import stat
import time

from ansible_collections.pflab.netfilter.plugins.module_utils import names, proc, state
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

NETNS_DIR = '/run/netns'
# The namespace host=true works in: the module's own, and init's where it can be read.
_HOST_NETNS = ('/proc/self/ns/net', '/proc/1/ns/net')
CLONE_NEWNET = 0x40000000
PREFIX = 'pfl'
SCRATCH_PREFIX = 'pflscratch-'
_SCRATCH_NAME = re.compile(r'pflscratch-(\d+)-(\d+)-[0-9a-f]{6}')


class TargetError(PflabError):
    pass


def netns_path(name):
    return os.path.join(NETNS_DIR, names.check('netns', name, 'network namespace'))


def exists(name):
    return os.path.lexists(netns_path(name))


def _identity(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def is_host(path):
    """Whether the namespace at ``path`` is the host's own (the module's, or init's)."""
    try:
        return _identity(path) in _host_identities()
    except OSError:
        return False


def _host_identities():
    found = []
    for path in _HOST_NETNS:
        try:
            found.append(_identity(path))
        except OSError:
            continue  # pid 1 may be out of reach (another user namespace)
    return found


def resolve(name):
    """The path of namespace ``name`` under /run/netns; TargetError for anything else.

    Refused: a name that is not a name (a path, '..', a trailing newline), a name
    that does not exist or is a symlink, a name bound to the host's own namespace
    (only host=true works there), and a namespace of a scenario run that another
    live process owns (concurrent runs never touch each other's labs).
    """
    path = netns_path(name)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise TargetError('network namespace %s does not exist (looked for %s)' % (name, path))
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise TargetError('%s is not a network namespace mount' % path)
    if (st.st_dev, st.st_ino) in _host_identities():
        raise TargetError("network namespace %s is the host's own namespace: refused (the rule modules work there "
                          "only with host=true)" % name)
    lab = split_lab_netns_name(name)
    owner = (state.marker(lab[0]) or {}).get('owner') if lab else None
    if owner and owner.get('pid') != os.getpid() and state.alive(owner):
        raise TargetError('network namespace %s belongs to a scenario that process %s runs: refused' % (
            name, owner.get('pid')))
    return path


def check_target(name, host):
    """Rule modules work in the namespace ``name``, and in the host's own only when asked (``host``)."""
    if name and host:
        raise TargetError('netns and host=true exclude each other')
    if not name and not host:
        raise TargetError("no netns given: set netns to work in a namespace, or host=true to change the host's own rules")
    if name:
        resolve(name)


def lab_netns_name(lab, role):
    return '%s-%s-%s' % (PREFIX, lab, role)


def split_lab_netns_name(name):
    """Return (lab, role) for a lab namespace name, or None for any other name.

    Roles hold no hyphen, so the role is what follows the last one.
    """
    if not name.startswith(PREFIX + '-'):
        return None
    lab, sep, role = name[len(PREFIX) + 1:].rpartition('-')
    if not sep or not names.valid('lab', lab) or not names.valid('role', role):
        return None
    return lab, role


def list_netns():
    """Names in /run/netns that are valid names (others were not made by this collection)."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if names.valid('netns', n))
    except OSError:
        return []


def list_labs():
    """Lab ids that have at least one namespace on this host."""
    labs = set()
    for name in list_netns():
        parsed = split_lab_netns_name(name)
        if parsed:
            labs.add(parsed[0])
    return sorted(labs)


def scratch_owner(name):
    """The owner (pid, start time) a scratch namespace's name records, or None for other names."""
    match = _SCRATCH_NAME.fullmatch(name)
    return {'pid': int(match.group(1)), 'start': int(match.group(2))} if match else None


def in_netns(name, argv):
    """argv that runs ``argv`` inside the named namespace (never a shell)."""
    return ['nsenter', '--net=%s' % resolve(name), '--'] + list(argv)


def pids_in(name):
    """Pids of the processes whose network namespace is the named one."""
    try:
        target = _identity(netns_path(name))
    except OSError:
        return []
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            if _identity('/proc/%s/ns/net' % entry) == target:
                pids.append(int(entry))
        except OSError:
            continue  # the process ended or is a kernel thread
    return sorted(pids)


def alive(pid):
    """True while the process exists and is not a zombie."""
    return state.start_time(pid) is not None


def stop_pids(pids, grace=1.0):
    """SIGTERM, then SIGKILL what is still alive after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            pids = [p for p in pids if alive(p)]
            if not pids:
                return
            time.sleep(0.01)


class Runner:
    """Runs argv lists (never a shell), inside namespace ``netns`` when set."""

    def __init__(self, netns=None):
        self.netns = netns

    def run(self, argv, data=None):
        """Return (rc, stdout, stderr) as text."""
        if self.netns:
            argv = in_netns(self.netns, argv)
        return proc.run(argv, data)


def setns(fd):
    if hasattr(os, 'setns'):  # Python >= 3.12
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, 'setns: %s' % os.strerror(errno))


@contextlib.contextmanager
def entered(name):
    """Run the block with this thread inside namespace ``name``.

    Sockets opened in the block stay in that namespace after it ends.
    """
    path = resolve(name)
    own = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            setns(own)
    finally:
        os.close(own)


def remove(name):
    """``ip netns del name``; TargetError with ip's message when it fails."""
    rc, dummy, err = proc.run(['ip', 'netns', 'del', name])
    if rc != 0:
        raise TargetError('ip netns del %s: %s' % (name, err.strip()))


@contextlib.contextmanager
def scratch():
    """A fresh, empty network namespace for the block, removed afterwards whatever happens."""
    owner = state.me()
    name = '%s%d-%d-%s' % (SCRATCH_PREFIX, owner['pid'], owner['start'], binascii.hexlify(os.urandom(3)).decode())
    rc, dummy, err = proc.run(['ip', 'netns', 'add', name])
    if rc != 0:
        raise TargetError('ip netns add %s: %s' % (name, err.strip()))
    try:
        yield name
    finally:
        # Not raised from here, over the block's own error: a scratch namespace left
        # behind names its owner, and the reaper removes it once that owner is gone.
        proc.run(['ip', 'netns', 'del', name])
