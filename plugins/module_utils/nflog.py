# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one host-wide change: net.netfilter.nf_log_all_netns.

LOG rules in a namespace other than the initial one write nothing while it is 0.
It is 1 exactly while a lab that logs exists with its owner alive (a scenario run,
or a lab kept until removed), and goes back to its original value when the last
such lab goes. ``sync`` decides this from the lab markers alone, under the state
lock, so concurrent runs never set it back under each other, and a run killed
mid-scenario leaves nothing that blocks the next ``sync``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.pflab.netfilter.plugins.module_utils import state
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

SYSCTL = 'net.netfilter.nf_log_all_netns'
_PATH = '/proc/sys/net/netfilter/nf_log_all_netns'
_ORIGINAL = os.path.join(state.RUN_DIR, 'nf_log_all_netns.orig')


class SysctlError(PflabError):
    pass


def read():
    """The sysctl's value, or None where the kernel has none (nf_log not loaded)."""
    try:
        with open(_PATH) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(value):
    try:
        with open(_PATH, 'w') as f:
            f.write(value + '\n')
    except OSError as e:
        raise SysctlError('cannot set %s to %s: %s' % (SYSCTL, value, e.strerror or e))


def original():
    """The value recorded before the first lab that logs set it to 1, or None."""
    try:
        with open(_ORIGINAL) as f:
            value = f.read().strip()
    except OSError:
        return None
    return value if value in ('0', '1') else None


def holders(markers):
    """Labs that need LOG in namespaces now: their marker asks for it and their owner lives."""
    return sorted(lab for lab, marker in markers.items()
                  if marker and marker.get('log') and state.alive(marker.get('owner')))


def sync(check_mode=False, markers=None):
    """Bring the sysctl to what the labs need (``markers``: the labs' markers, default those on the
    host; check mode passes the markers a change would write). Call under ``state.locked()``.

    Returns (changes, holders).
    """
    needed = holders(state.markers() if markers is None else markers)
    current, recorded = read(), original()
    changes = []
    if needed:
        if current is None:
            raise SysctlError('%s does not exist: load the nf_log_syslog module' % SYSCTL)
        if recorded is None and not check_mode:
            with open(_ORIGINAL, 'w') as f:
                f.write(current + '\n')
        if current != '1':
            changes.append('set %s to 1 (was %s)' % (SYSCTL, current))
            if not check_mode:
                _write('1')
    elif recorded is not None:
        if current != recorded:
            changes.append('set %s back to %s' % (SYSCTL, recorded))
            if not check_mode:
                _write(recorded)
        if not check_mode:
            os.unlink(_ORIGINAL)
    return changes, needed
