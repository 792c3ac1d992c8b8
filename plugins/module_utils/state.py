# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the collection keeps on a host between calls, and who owns it.

Everything lives in /run/pflab (a tmpfs: gone at reboot, as labs are), and only while
it is in use: one marker per lab (``lab-<lab>.json``: its owner, namespaces and
whether its LOG rules need nf_log_all_netns), listener pidfiles, and the sysctl's
original value. Every change of that state happens under one lock (flock on the
directory itself, so no lock file stays behind), so concurrent runs see each other's
labs whole.

An owner is a process: pid, start time (clock ticks after boot) and boot id. It is
alive while a process with that pid and that start time runs on this boot, so a
recycled pid never keeps a dead owner's lab alive.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import fcntl
import json
import os
import random
import re

from ansible_collections.pflab.netfilter.plugins.module_utils import names
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

RUN_DIR = '/run/pflab'
_MARKER = re.compile(r'lab-(?P<lab>.+)\.json')
_BOOT_ID = '/proc/sys/kernel/random/boot_id'
# Probes' source ports: one block per lab, below the kernel's default ephemeral range (32768-60999), so
# no two live labs' probes share a port and a LOG record's ports name its lab.
PORTS_FIRST = 20000
PORTS_BLOCK = 64
PORTS_BLOCKS = 199


class StateError(PflabError):
    pass


def boot_id():
    with open(_BOOT_ID) as f:
        return f.read().strip()


def start_time(pid):
    """Start time of ``pid`` in clock ticks after boot, or None when no such process runs."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    # fields[0] is field 3 (state); the start time is field 22. A zombie is not alive.
    return None if fields[0] == 'Z' else int(fields[19])


def me():
    pid = os.getpid()
    return {'pid': pid, 'start': start_time(pid), 'boot': boot_id()}


def alive(owner):
    """True while the owner process runs; an owner of None (a lab kept until removed) is always alive."""
    if owner is None:
        return True
    return owner.get('boot') == boot_id() and start_time(owner['pid']) == owner.get('start')


@contextlib.contextmanager
def locked():
    """Hold the host's pflab lock for the block."""
    if not os.path.isdir(RUN_DIR):
        os.makedirs(RUN_DIR, 0o755)
    fd = os.open(RUN_DIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _marker_path(lab):
    return os.path.join(RUN_DIR, 'lab-%s.json' % names.check('lab', lab, 'lab name'))


def claim(lab, namespaces, owner, log, ifname_tag=None, source_ports=None):
    """Write the marker of a new lab; StateError when the lab has one already. Call under ``locked()``."""
    marker = {'lab': lab, 'owner': owner, 'namespaces': sorted(namespaces), 'log': bool(log), 'ifname_tag': ifname_tag,
              'source_ports': source_ports}
    try:
        fd = os.open(_marker_path(lab), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise StateError('lab %s is in use (marker %s)' % (lab, _marker_path(lab)))
    with os.fdopen(fd, 'w') as f:
        json.dump(marker, f)
    return marker


def update(marker):
    """Rewrite a lab's marker (for example a persistent lab that changed). Call under ``locked()``."""
    path = _marker_path(marker['lab'])
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(marker, f)
    os.replace(tmp, path)


def new_ifname_tag(markers):
    """Four characters for a lab's interface names that no lab in ``markers`` uses. Call under ``locked()``."""
    taken = set(m.get('ifname_tag') for m in markers.values() if m)
    rng = random.SystemRandom()
    while True:
        tag = rng.choice('abcdefghijklmnopqrstuvwxyz') + ''.join(rng.choice('abcdefghijklmnopqrstuvwxyz0123456789')
                                                                 for dummy in range(3))
        if tag not in taken:
            return tag


def new_source_ports(markers):
    """The first port of a block of PORTS_BLOCK probe source ports that no lab in ``markers`` holds; StateError
    when every block is held. Call under ``locked()``."""
    taken = set(m.get('source_ports') for m in markers.values() if m)
    for block in range(PORTS_BLOCKS):
        first = PORTS_FIRST + block * PORTS_BLOCK
        if first not in taken:
            return first
    raise StateError('every block of probe source ports (%d labs) is held by a live lab' % PORTS_BLOCKS)


def release(lab):
    """Remove a lab's marker. Call under ``locked()``."""
    try:
        os.unlink(_marker_path(lab))
    except FileNotFoundError:
        pass


def marker(lab):
    """The marker of ``lab``, or None."""
    return _read(_marker_path(lab))


def markers():
    """Every lab marker on this host, by lab id; unreadable ones as None."""
    try:
        entries = sorted(os.listdir(RUN_DIR))
    except OSError:
        return {}
    found = {}
    for entry in entries:
        match = _MARKER.fullmatch(entry)
        if match and names.valid('lab', match.group('lab')):
            found[match.group('lab')] = _read(os.path.join(RUN_DIR, entry))
    return found


def _read(path):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # present but unreadable: treated as a lab whose owner is unknown
    return data if isinstance(data, dict) else {}
