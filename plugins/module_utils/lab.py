# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab topology engine: named network namespaces joined by veth pairs.

Lab (the netns_lab module) brings a lab to its plan over netlink with pyroute2;
create_fresh (the scenario runner) builds a lab that does not exist yet with three
``ip -batch`` calls, without pyroute2's import cost (~0.1 s a call). Both ends of a
veth are created inside the lab's namespaces, so the host's own namespace is never
touched.
Link number i of a lab takes the i-th /30 of the lab subnet: .1 for its first
end, .2 for its second. The interface in namespace A that leads to namespace B is
``<tag>-B``: ``to-B`` in labs kept by netns_lab; in a scenario run's lab a tag no
other live lab has, so that the run's LOG records name interfaces only it has.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import ipaddress
import itertools
import os
import socket
import sys

from ansible_collections.pflab.netfilter.plugins.module_utils import listener, names, netns, nflog, ovs, proc, state
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, shown

# pyroute2 is imported where Lab uses it; finding it is cheap, importing it is not.
PYROUTE2_IMPORT_ERROR = None if importlib.util.find_spec('pyroute2') else \
    'No module named pyroute2 for %s' % sys.executable

IFF_UP = 0x1
DEFAULT_SUBNET = '198.18.0.0/24'


class LabError(PflabError):
    pass


def preload():
    """Import pyroute2 now (~0.1 s of CPU), so that the processes forked after (a suite's runs) share it."""
    if PYROUTE2_IMPORT_ERROR is None:
        from pyroute2 import IPRoute, NetNS, netns as pr_netns  # noqa: F401  pylint: disable=unused-import


def check_lab_id(lab):
    return names.check('lab', lab, 'lab name')


class LabPlan:
    """The wanted shape of a lab, validated and with every name and address."""

    def __init__(self, lab, roles, links=None, subnet=DEFAULT_SUBNET, ifname_tag='to', bridge=None):
        check_lab_id(lab)
        self.lab = lab
        self.ifname_tag = ifname_tag
        roles = list(roles)
        if len(roles) < 2:
            raise LabError('a lab needs at least two namespaces, got %s' % shown(roles))
        for role in roles:
            names.check('role', role, 'namespace role')
        if len(set(roles)) != len(roles):
            raise LabError('namespace roles must be unique, got %s' % shown(roles))
        self.roles = roles
        self.namespaces = dict((role, netns.lab_netns_name(lab, role)) for role in roles)
        if bridge is not None and bridge not in roles:
            raise LabError('bridge %s is not one of the namespaces %s' % (shown(bridge), roles))
        self.bridge = bridge

        if links is None and bridge:
            links = [[role, bridge] for role in roles if role != bridge]
        elif links is None:
            links = [[roles[i], roles[i + 1]] for i in range(len(roles) - 1)]
        try:
            network = ipaddress.IPv4Network(subnet)
        except ValueError as e:
            raise LabError('subnet %s is not an IPv4 network: %s' % (shown(subnet), e))
        if bridge:
            # One segment: the bridge's ends carry no address, the others share the first block that holds them.
            if any(not isinstance(link, list) or link.count(bridge) != 1 for link in links):
                raise LabError('in a lab bridged by %s, every link joins a namespace to it: got %s' % (bridge, shown(links)))
            prefixlen = next(p for p in range(30, -1, -1) if (1 << (32 - p)) - 2 >= len(links))
            if network.prefixlen > prefixlen:
                raise LabError('subnet %s has no room for %d addresses on one segment' % (network, len(links)))
            addresses = next(network.subnets(new_prefix=prefixlen)).hosts()
            blocks = [None] * len(links)
        else:
            prefixlen, addresses = 30, None
            # Only the blocks the links take: a /0 holds 2^30 of them.
            blocks = list(itertools.islice(network.subnets(new_prefix=30), len(links))) if network.prefixlen <= 30 else []
            if len(blocks) < len(links):
                raise LabError('subnet %s has room for %d links (one /30 each), %d asked' % (
                    network, len(blocks), len(links)))
        self.subnet = str(network)

        self.links = []
        seen = set()
        for link, block in zip(links, blocks):
            if not isinstance(link, list) or len(link) != 2 or not all(isinstance(r, str) for r in link) \
                    or link[0] == link[1] or not set(link) <= set(roles):
                raise LabError('link %s must name two different namespaces of %s' % (shown(link), roles))
            if frozenset(link) in seen:
                raise LabError('link %s is given twice' % (link,))
            seen.add(frozenset(link))
            if bridge:
                ends = [None if role == bridge else next(addresses) for role in link]
            else:
                ends = list(block.hosts())
            self.links.append([self._end(link[0], link[1], ends[0], prefixlen),
                               self._end(link[1], link[0], ends[1], prefixlen)])

    def _end(self, role, peer, address, prefixlen):
        return {
            'role': role,
            'netns': self.namespaces[role],
            'ifname': '%s-%s' % (self.ifname_tag, peer),
            'address': str(address) if address else None,
            'prefixlen': prefixlen if address else None,
        }

    def ifnames(self):
        return sorted(set(end['ifname'] for link in self.links for end in link))

    def end_towards(self, role, peer):
        """The end ``role`` has of its link to ``peer`` (ifname, address), or None when they share no link; in a
        bridged lab, two namespaces reach each other through their links to the bridge."""
        for link in self.links:
            for end, other in ((link[0], link[1]), (link[1], link[0])):
                if (end['role'], other['role']) == (role, peer):
                    return end
        if self.bridge and self.bridge not in (role, peer) and peer in self.namespaces:
            return self.end_towards(role, self.bridge)
        return None

    def address_towards(self, role, peer):
        """The address ``role`` has on its link to ``peer`` (its first address when they share no link)."""
        end = self.end_towards(role, peer)
        return end['address'] if end else self.addresses()[role]

    def addresses(self):
        """The first address of every namespace, by role."""
        found = {}
        for link in self.links:
            for end in link:
                if end['address']:
                    found.setdefault(end['role'], end['address'])
        return found

    def as_result(self):
        return {
            'name': self.lab,
            'subnet': self.subnet,
            'namespaces': dict(self.namespaces),
            'addresses': self.addresses(),
            'links': [list(link) for link in self.links],
            'bridge': self.bridge,
            'switch': dict(netns=self.namespaces[self.bridge], rundir=ovs.rundir(self.namespaces[self.bridge]),
                           bridge=ovs.BRIDGE) if self.bridge else None,
        }


def _link(ns, ifname):
    """The link message of ``ifname`` in an open namespace, or None."""
    found = ns.link_lookup(ifname=ifname)
    return ns.get_links(found[0])[0] if found else None


def _kind(msg):
    info = msg.get_attr('IFLA_LINKINFO')
    return info.get_attr('IFLA_INFO_KIND') if info else None


def _addresses(ns, index):
    return set(
        (a.get_attr('IFA_ADDRESS'), a['prefixlen'])
        for a in ns.get_addr(index=index, family=socket.AF_INET)
    )


class Lab:
    """Brings a lab to its plan (present) or removes it (absent)."""

    def __init__(self, plan, check_mode=False):
        self.plan = plan
        self.check_mode = check_mode
        self.changes = []
        self._open = {}

    def _ns(self, role):
        if role not in self._open:
            from pyroute2 import NetNS
            self._open[role] = NetNS(self.plan.namespaces[role], flags=0)
        return self._open[role]

    def close(self):
        for ns in self._open.values():
            ns.close()
        self._open = {}

    def _change(self, what):
        self.changes.append(what)
        return not self.check_mode

    def present(self):
        try:
            missing = [r for r in self.plan.roles if not netns.exists(self.plan.namespaces[r])]
            for role in missing:
                if self._change('create namespace %s' % self.plan.namespaces[role]):
                    from pyroute2 import netns as pr_netns
                    pr_netns.create(self.plan.namespaces[role])
            if self.check_mode and missing:
                # Namespaces that do not exist yet cannot be inspected.
                for link in self.plan.links:
                    self._change('create veth %s <-> %s' % (link[0]['ifname'], link[1]['ifname']))
                return self.changes
            for role in self.plan.roles:
                self._ensure_up(role, 'lo')
            for link in self.plan.links:
                self._ensure_link(link)
            return self.changes
        finally:
            self.close()

    def _ensure_up(self, role, ifname):
        ns = self._ns(role)
        msg = _link(ns, ifname)
        if not msg['flags'] & IFF_UP and self._change('set %s up in %s' % (ifname, self.plan.namespaces[role])):
            ns.link('set', index=msg['index'], state='up')

    def _ensure_link(self, link):
        a, b = link
        ns_a, ns_b = self._ns(a['role']), self._ns(b['role'])
        msg_a, msg_b = _link(ns_a, a['ifname']), _link(ns_b, b['ifname'])
        healthy = msg_a is not None and msg_b is not None and _kind(msg_a) == 'veth' and _kind(msg_b) == 'veth'
        if not healthy:
            for ns, msg, end in ((ns_a, msg_a, a), (ns_b, msg_b, b)):
                if msg is not None and self._change('delete broken %s in %s' % (end['ifname'], end['netns'])):
                    ns.link('del', index=msg['index'])
            if not self._change('create veth %s:%s <-> %s:%s' % (a['netns'], a['ifname'], b['netns'], b['ifname'])):
                return
            # Both ends are made in A, then B's end moves to B.
            ns_a.link('add', ifname=a['ifname'], kind='veth', peer=b['ifname'])
            peer = ns_a.link_lookup(ifname=b['ifname'])[0]
            ns_a.link('set', index=peer, net_ns_fd=b['netns'])
        for ns, end in ((ns_a, a), (ns_b, b)):
            self._ensure_address(ns, end)
            self._ensure_up(end['role'], end['ifname'])

    def _ensure_address(self, ns, end):
        if not end['address']:
            return
        index = ns.link_lookup(ifname=end['ifname'])[0]
        wanted = (end['address'], end['prefixlen'])
        have = _addresses(ns, index)
        for address, prefixlen in sorted(have - set([wanted])):
            if self._change('remove %s/%d from %s in %s' % (address, prefixlen, end['ifname'], end['netns'])):
                ns.addr('del', index=index, address=address, prefixlen=prefixlen)
        if wanted not in have and self._change('add %s/%d to %s in %s' % (wanted + (end['ifname'], end['netns']))):
            ns.addr('add', index=index, address=end['address'], prefixlen=end['prefixlen'])


def lab_namespaces(lab):
    """Every namespace on this host that belongs to ``lab``, whatever its roles."""
    return [name for name in netns.list_netns() if (netns.split_lab_netns_name(name) or (None,))[0] == lab]


def remove_namespace(name, check_mode=False):
    """Stop every process in namespace ``name``, remove it (with its veths) and its listeners' files.

    Works for any name found in /run/netns (argv only, never a shell); refuses a name bound to the host's
    own namespace, whose processes are the host's. Returns (changes, stopped pids).
    """
    if netns.is_host(os.path.join(netns.NETNS_DIR, name)):
        raise LabError("%s is bound to the host's own network namespace: left alone" % name)
    dummy, out, dummy2 = proc.run(['ip', 'netns', 'pids', name])
    pids = sorted(int(pid) for pid in out.split() if pid.isdigit())
    changes = ['stop processes %s in %s' % (pids, name)] if pids else []
    changes.append('remove namespace %s' % name)
    if not check_mode:
        netns.stop_pids(pids)
        netns.remove(name)
        listener.forget_netns(name)
        ovs.forget_netns(name)
    return changes, pids


def remove_lab(lab, check_mode=False):
    """Remove every namespace of ``lab`` and stop the processes inside them.

    Returns (changes, killed pids). Removing a namespace removes its veths.
    """
    check_lab_id(lab)
    changes, killed = [], []
    for name in lab_namespaces(lab):
        done, pids = remove_namespace(name, check_mode)
        changes += done
        killed += pids
    return changes, killed


def _take_over(lab, check_mode):
    """Make ``lab``'s name free for a lab kept until removed: refuse a running scenario's lab, remove a
    dead owner's. Returns (its marker if it is a kept lab, changes). Call under ``state.locked()``."""
    marker = state.marker(lab)
    if marker and marker.get('owner') is None:
        return marker, []
    if marker and state.alive(marker['owner']):
        raise LabError('lab %s belongs to a running scenario (pid %s): choose another name'
                       % (lab, marker['owner']['pid']))
    changes = []
    if marker is not None:  # its owner is gone, or the marker is unreadable
        changes = ['remove lab %s, left by a run that ended without removing it' % lab] + \
            remove_lab(lab, check_mode)[0]
        if not check_mode:
            state.release(lab)
    return None, changes


def keep(plan, log=False, check_mode=False):
    """Bring a lab kept until removed (the netns_lab module) to ``plan``, under a marker without owner;
    with ``log``, its LOG rules need nf_log_all_netns. Returns the changes."""
    with state.locked():
        marker, changes = _take_over(plan.lab, check_mode)
        wanted = dict(lab=plan.lab, owner=None, namespaces=sorted(plan.namespaces.values()), log=bool(log),
                      ifname_tag=plan.ifname_tag)
        if marker != wanted and not check_mode:
            state.update(wanted)
        changes += Lab(plan, check_mode).present()
        if plan.bridge and not (check_mode and changes):  # a switch needs its namespace and ports to exist
            switched = switch_of(plan).ensure(check_mode)
            if (switched or changes) and not check_mode:  # new veths, or a new switch
                offload_off(plan)
            changes += switched
        markers = state.markers()
        markers[plan.lab] = wanted
        changes += nflog.sync(check_mode, markers)[0]
    return changes


def discard(lab, check_mode=False):
    """Remove a lab kept until removed, its marker, and nf_log_all_netns when it was the last to need it.
    Returns (changes, killed pids)."""
    with state.locked():
        dummy, changes = _take_over(lab, check_mode)
        more, killed = remove_lab(lab, check_mode)
        markers = state.markers()
        markers.pop(lab, None)
        if not check_mode:
            state.release(lab)
        return changes + more + nflog.sync(check_mode, markers)[0], killed


def switch_of(plan):
    """The Open vSwitch switch of a bridged lab (its namespace and ports)."""
    return ovs.Switch(plan.namespaces[plan.bridge],
                      [end['ifname'] for link in plan.links for end in link if end['role'] == plan.bridge])


def offload_off(plan):
    """Transmit checksum offload off on every veth of a bridged lab: the userspace datapath forwards packets
    without the checksum the kernel left for the hardware, and TCP would drop them."""
    for end in (end for link in plan.links for end in link):
        ovs.checksum_offload_off(end['netns'], end['ifname'])


def _ip(argv, batch=None):
    rc, dummy, err = proc.run(['ip'] + argv, data=batch)
    if rc != 0:
        raise LabError('ip %s: %s' % (' '.join(argv), err.strip()))


def require_absent(plan):
    taken = [name for name in plan.namespaces.values() if netns.exists(name)]
    if taken:
        raise LabError('namespaces %s exist already: choose another lab id' % ', '.join(taken))


def create_fresh(plan):
    """Build ``plan``, none of whose namespaces exist (require_absent): namespaces and veths in
    one ``ip -batch``, then addresses and links up in one batch per namespace."""
    lines = ['netns add %s' % plan.namespaces[role] for role in plan.roles]
    inside = dict((role, ['link set lo up']) for role in plan.roles)
    for a, b in plan.links:
        lines.append('link add %s netns %s type veth peer name %s netns %s' % (
            a['ifname'], a['netns'], b['ifname'], b['netns']))
        for end in (a, b):
            if end['address']:
                inside[end['role']].append('addr add %s/%d dev %s' % (end['address'], end['prefixlen'], end['ifname']))
            inside[end['role']].append('link set %s up' % end['ifname'])
    _ip(['-batch', '-'], '\n'.join(lines) + '\n')
    for role in plan.roles:
        _ip(['-n', plan.namespaces[role], '-batch', '-'], '\n'.join(inside[role]) + '\n')
