# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network namespace helpers shared by every module.

One code path runs a command inside a namespace (``in_netns``, ``Runner``); one
finds the processes that live in a namespace (``pids_in``). Names of lab
namespaces are ``pfl-<lab>-<role>``; ``scratch()`` makes a short-lived one
named ``pflscratch-*`` where rules are tried before they reach a real ruleset.
Only the standard library is used here: importing pyroute2 costs ~0.1 s, which
the rule modules and the probe need not pay.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import contextlib
import ctypes
import os
import re
import signal
import time

NETNS_DIR = '/run/netns'
CLONE_NEWNET = 0x40000000
PREFIX = 'pfl'
LAB_ID_RE = re.compile(r'^[a-z0-9][a-z0-9-]{0,31}$')
ROLE_RE = re.compile(r'^[a-z][a-z0-9]{0,9}$')


def netns_path(name):
    return os.path.join(NETNS_DIR, name)


def exists(name):
    return os.path.exists(netns_path(name))


def require(name):
    if not exists(name):
        raise OSError('network namespace %s does not exist' % name)


class TargetError(Exception):
    pass


def check_target(name, host):
    """Rule modules work in the namespace ``name``, and in the host's own only when asked (``host``)."""
    if name and host:
        raise TargetError('netns and host=true exclude each other')
    if not name and not host:
        raise TargetError("no netns given: set netns to work in a namespace, or host=true to change the host's own rules")
    if name:
        require(name)


def lab_netns_name(lab, role):
    return '%s-%s-%s' % (PREFIX, lab, role)


def split_lab_netns_name(name):
    """Return (lab, role) for a lab namespace name, or None for any other name.

    Roles hold no hyphen, so the role is what follows the last one.
    """
    if not name.startswith(PREFIX + '-'):
        return None
    lab, sep, role = name[len(PREFIX) + 1:].rpartition('-')
    if not sep or not LAB_ID_RE.match(lab) or not ROLE_RE.match(role):
        return None
    return lab, role


def list_netns():
    try:
        return sorted(os.listdir(NETNS_DIR))
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


def in_netns(name, argv):
    """argv that runs ``argv`` inside the named namespace (never a shell)."""
    return ['nsenter', '--net=%s' % netns_path(name), '--'] + list(argv)


def _inode(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def pids_in(name):
    """Pids of the processes whose network namespace is the named one."""
    try:
        target = _inode(netns_path(name))
    except OSError:
        return []
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            if _inode('/proc/%s/ns/net' % entry) == target:
                pids.append(int(entry))
        except OSError:
            continue  # the process ended or is a kernel thread
    return sorted(pids)


def alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):
        return False


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
    """Runs argv lists (never a shell) through an AnsibleModule, inside ``netns`` when set."""

    def __init__(self, module, netns=None):
        self.module = module
        self.netns = netns

    def run(self, argv, data=None):
        """Return (rc, stdout, stderr)."""
        if self.netns:
            argv = in_netns(self.netns, argv)
        return self.module.run_command(argv, data=data, binary_data=True)


def _setns(fd):
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
    require(name)
    own = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
    try:
        target = os.open(netns_path(name), os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


@contextlib.contextmanager
def scratch(run):
    """A fresh, empty network namespace for the block; ``run`` is AnsibleModule.run_command."""
    name = 'pflscratch-%d-%s' % (os.getpid(), binascii.hexlify(os.urandom(3)).decode())
    rc, out, err = run(['ip', 'netns', 'add', name])
    if rc != 0:
        raise OSError('ip netns add %s: %s' % (name, err.strip()))
    try:
        yield name
    finally:
        run(['ip', 'netns', 'del', name])
