# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finds and removes what outlived its owner: labs, scratch namespaces, their processes and files.

A lab is stale when its marker's owner process is gone (killed, or the host
rebooted), or when it is a lab kept until removed whose namespaces are all gone. A
scratch namespace is stale when the process its name records is gone. Removing a lab
stops every process in its namespaces (listeners, daemons), removes the namespaces
(with their veths), the listeners' pidfiles and logs and the marker, and then puts
nf_log_all_netns where the remaining labs need it. Namespaces named like labs but
without a marker (made by hand, or by an older release) are only reported, unless
``unmarked`` asks for their removal too. Labs whose owner lives are never touched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.pflab.netfilter.plugins.module_utils import lab, listener, netns, nflog, ovs, state, witness
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError


def _lab_of(name):
    parsed = netns.split_lab_netns_name(name)
    return parsed[0] if parsed else None


def find():
    """What is stale now: {'labs': {lab: why}, 'scratch': [names], 'unmarked': [names], 'files': [paths]}."""
    markers = state.markers()
    present = os.listdir(netns.NETNS_DIR) if os.path.isdir(netns.NETNS_DIR) else []
    labs = {}
    for name, marker in markers.items():
        if not marker:
            labs[name] = 'its marker is unreadable (the owner died while writing it)'
        elif not state.alive(marker.get('owner')):
            owner = marker['owner']
            labs[name] = 'its owner, pid %s, is gone%s' % (
                owner.get('pid'), '' if owner.get('boot') == state.boot_id() else ' (the host rebooted)')
        elif marker.get('owner') is None and not any(n in present for n in marker.get('namespaces', [])):
            labs[name] = 'its namespaces were removed by other means'
    scratch, unmarked = [], []
    for name in sorted(present):
        if netns.is_host(os.path.join(netns.NETNS_DIR, name)):
            continue  # a name for the host's own namespace: never removed, its processes never stopped
        owner = netns.scratch_owner(name)
        if owner:
            if state.start_time(owner['pid']) != owner['start']:
                scratch.append(name)
        elif name.startswith(netns.PREFIX + '-') and _lab_of(name) not in markers:
            unmarked.append(name)
    return {'labs': labs, 'scratch': scratch, 'unmarked': unmarked, 'files': _orphans(markers, labs)}


def _orphans(markers, stale):
    """Listener files and switch directories whose namespace is gone, but a live lab's: its run removes its
    namespaces first, then their files."""
    kept = set(name for lab_id, marker in markers.items() if marker and lab_id not in stale
               for name in marker.get('namespaces', []))
    return listener.orphans(kept) + ovs.orphans(kept)


def reap(check_mode=False, unmarked=False):
    """Remove what ``find`` reports (unmarked namespaces only when asked); then sync the sysctl.

    Takes the state lock. Each removal is tried on its own: one that fails is said in the
    changes ("could not ...") and the rest goes on; a lab whose namespaces could not all be
    removed keeps its marker, so that the next cleanup tries again. Returns a dict: labs,
    scratch, unmarked (each what was found), files (listener pidfiles and logs whose namespace
    is gone), changes (what was done, in order), failed (what could not be) and the sysctl's
    holders after.
    """
    with state.locked():
        found = find()
        changes, failed = [], []

        def attempt(what, action, *args):
            try:
                return action(*args)
            except (PflabError, OSError) as e:
                failed.append('could not %s: %s' % (what, e))
                return None

        for name, why in sorted(found['labs'].items()):
            changes.append('remove lab %s: %s' % (name, why))
            done = attempt('remove lab %s' % name, lab.remove_lab, name, check_mode)
            if done is not None:
                changes += done[0]
                if not check_mode:
                    state.release(name)
        for name in found['scratch'] + (found['unmarked'] if unmarked else []):
            changes += (attempt('remove namespace %s' % name, lab.remove_namespace, name, check_mode) or ([],))[0]
        for path in _orphans(state.markers(), found['labs']) if not check_mode else found['files']:
            changes.append('remove %s (its namespace is gone)' % path)
            if not check_mode:
                attempt('remove %s' % path, ovs.stop if os.path.isdir(path) else os.unlink, path)
        changes += witness.reap(check_mode)
        synced = attempt('set %s' % nflog.SYSCTL, nflog.sync, check_mode)
        sysctl_changes, holders = synced if synced else ([], [])
    return {'labs': sorted(found['labs']), 'scratch': found['scratch'], 'unmarked': found['unmarked'],
            'files': found['files'], 'changes': changes + sysctl_changes + failed, 'failed': failed,
            'log_holders': holders}
