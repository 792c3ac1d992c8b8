# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine of the bpf_filter module: one program at XDP or tc on one interface of one namespace.

Attachment points are read with ``ip -d -j link`` and ``tc -j filter``. An XDP
program is attached over rtnetlink here (pyroute2 0.9.7 encodes IFLA_XDP_FLAGS in
16 bits, which the kernel refuses with ERANGE, and generic mode needs that flag);
tc filters go through pyroute2. Nothing is pinned: the attachment holds the
program, the program its map, so detaching frees both. A program pflab did not
load (its name does not start with ``pfl``) is never replaced or removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import socket
import struct

from ansible_collections.pflab.netfilter.plugins.module_utils import bpf, facts, names, netns
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, shown

ARGUMENT_SPEC = dict(
    netns=dict(type='str'),
    host=dict(type='bool', default=False),
    interface=dict(type='str', required=True),
    hook=dict(type='str', required=True, choices=['xdp', 'tc']),
    mode=dict(type='str', default='native', choices=['native', 'generic']),
    direction=dict(type='str', default='ingress', choices=['ingress', 'egress']),
    priority=dict(type='int', default=1),
    protocol=dict(type='str', default='tcp', choices=sorted(bpf.PROTOCOLS)),
    dport=dict(type='int'),
    sport=dict(type='int'),
    action=dict(type='str', default='drop', choices=['pass', 'drop']),
    label=dict(type='str'),
    state=dict(type='str', default='present', choices=['present', 'absent']),
)
_XDP_FLAGS = {'generic': 2, 'native': 4}  # XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE
_TC_PARENTS = {'ingress': 'ffff:fff2', 'egress': 'ffff:fff3'}
_TC_HANDLE = 1
_RTM_SETLINK, _NLMSG_ERROR = 19, 2
_IFLA_XDP, _IFLA_XDP_FD, _IFLA_XDP_FLAGS, _NLA_F_NESTED = 43, 1, 3, 0x8000
_NETLINK_EXT_ACK, _NLMSGERR_ATTR_MSG, _NLM_F_CAPPED = 11, 1, 0x100


class BpfFilterError(PflabError):
    pass


def default_label(params):
    """What traces call the filter when no label is given: where it sits."""
    if params['hook'] == 'xdp':
        return 'xdp' if params['mode'] == 'native' else 'xdpgeneric'
    return 'tc-%s%s' % (params['direction'], '' if params['priority'] == 1 else '-%d' % params['priority'])


def validate(params):
    """Check ``params`` (ARGUMENT_SPEC) without a target; the Filter to load."""
    names.check('ifname', params['interface'], 'interface')
    for key in ('dport', 'sport'):
        if params[key] is not None and not 1 <= params[key] <= 65535:
            raise BpfFilterError('%s is a port from 1 to 65535, got %s' % (key, shown(params[key])))
    if not 1 <= params['priority'] <= 0xffff:
        raise BpfFilterError('priority (the tc filter preference) is from 1 to 65535, got %d' % params['priority'])
    if params['label'] is not None:
        names.check('mark', params['label'], 'label')
    return bpf.Filter(params['hook'], params['protocol'], params['dport'], params['sport'], params['action'])


class Point:
    """Where the program sits: an interface's XDP hook, or a tc direction at a preference."""

    def __init__(self, name, params):
        self.netns, self.ifname, self.hook = name, params['interface'], params['hook']
        self.mode, self.direction, self.priority = params['mode'], params['direction'], params['priority']
        self.runner = netns.Runner(name)

    def describe(self, program):
        where = 'xdp (%s)' % self.mode if self.hook == 'xdp' else 'tc %s pref %d' % (self.direction, self.priority)
        return '%s on %s: %s' % (where, self.ifname, '%s (id %s)' % (program['name'], program['id']) if program else 'none')

    def _json(self, argv):
        rc, out, err = self.runner.run(argv)
        if rc != 0:
            raise BpfFilterError('%s: %s' % (' '.join(argv[:4]), err.strip() or 'exit %d' % rc))
        return json.loads(out or '[]')

    def link(self):
        rc, out, dummy = self.runner.run(['ip', '-d', '-j', 'link', 'show', 'dev', self.ifname])
        listed = json.loads(out or '[]') if rc == 0 else []
        if not listed:
            raise BpfFilterError('interface %s does not exist in %s' % (self.ifname, self.netns or 'the host'))
        return listed[0]

    def attached(self):
        """The program at this point, {name, id, mode}, or None."""
        link = self.link()
        if self.hook == 'xdp':
            programs = facts.xdp_programs(link)
            return dict(programs[0]) if programs else None
        qdiscs = self._json(['tc', '-j', 'qdisc', 'show', 'dev', self.ifname])
        if not any(q.get('kind') == 'clsact' for q in qdiscs):
            return None
        listed = self._json(['tc', '-j', 'filter', 'show', 'dev', self.ifname, self.direction])
        for found in (facts.tc_filter(f) for f in listed if 'options' in f):
            if found['pref'] == self.priority:
                return dict(name=found['name'], id=found['id'], kind=found['kind'])
        return None

    def attach(self, fd, name, replace):
        if self.hook == 'xdp':
            self._xdp(fd, _XDP_FLAGS[self.mode] | (0 if replace else 1))  # 1: XDP_FLAGS_UPDATE_IF_NOEXIST
        else:
            self._tc('replace-filter' if replace else 'add-filter', fd, name)

    def detach(self, program):
        if self.hook == 'xdp':
            self._xdp(-1, _XDP_FLAGS.get(program.get('mode'), 0))
        else:
            self._tc('del-filter')  # the clsact qdisc stays: it may hold others' filters, now or later

    def _xdp(self, fd, flags):
        """RTM_SETLINK with IFLA_XDP {FD, FLAGS}; the kernel's extended ack message on failure."""
        index = self.link()['ifindex']
        nested = _nla(_IFLA_XDP_FD, struct.pack('<i', fd)) + _nla(_IFLA_XDP_FLAGS, struct.pack('<I', flags))
        body = struct.pack('<BBHiII', socket.AF_UNSPEC, 0, 0, index, 0, 0) + _nla(_IFLA_XDP | _NLA_F_NESTED, nested)
        message = struct.pack('<IHHII', 16 + len(body), _RTM_SETLINK, 0x1 | 0x4, 1, 0) + body  # REQUEST | ACK
        with netns.entered(self.netns) if self.netns else contextlib.nullcontext():
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            sock.setsockopt(270, _NETLINK_EXT_ACK, 1)  # SOL_NETLINK
            sock.send(message)
            reply = sock.recv(65536)
        finally:
            sock.close()
        if len(reply) < 20:
            raise BpfFilterError('XDP (%s) on %s: the kernel sent a short reply' % (self.mode, self.ifname))
        length, kind, flags_back = struct.unpack_from('<IHH', reply)
        code = struct.unpack_from('<i', reply, 16)[0] if kind == _NLMSG_ERROR else 0
        if code:
            why = _ext_ack(reply, length, flags_back)
            raise BpfFilterError('XDP (%s) on %s: %s%s' % (
                self.mode, self.ifname, os.strerror(-code), ': %s' % why if why else ''))

    def _tc(self, command, fd=None, name=None):
        from pyroute2 import NetNS, IPRoute  # imported here: its import costs ~0.1 s
        ipr = NetNS(self.netns) if self.netns else IPRoute()
        added = False
        try:
            index = ipr.link_lookup(ifname=self.ifname)[0]
            if fd is not None and not any(q.get_attr('TCA_KIND') == 'clsact' for q in ipr.get_qdiscs(index)):
                ipr.tc('add', 'clsact', index)
                added = True
            kwargs = dict(parent=_TC_PARENTS[self.direction], prio=self.priority, handle=_TC_HANDLE, protocol=0x0003)
            if fd is not None:
                kwargs.update(fd=fd, name=name, direct_action=True)
            ipr.tc(command, 'bpf', index, **kwargs)
        except Exception as e:  # pyroute2's NetlinkError, or a device gone between reading and writing
            if added:
                try:
                    ipr.tc('del', 'clsact', index)  # the failed call leaves no qdisc of its own
                except Exception as again:
                    e = '%s; and the clsact qdisc it added could not be removed: %s' % (e, again)
            raise BpfFilterError('tc %s %s pref %d on %s: %s' % (
                command.split('-')[0], self.direction, self.priority, self.ifname, e))
        finally:
            ipr.close()


def _nla(kind, payload):
    length = 4 + len(payload)
    return struct.pack('<HH', length, kind) + payload + b'\0' * ((4 - length % 4) % 4)


def _ext_ack(reply, length, flags):
    """The kernel's NLMSGERR_ATTR_MSG text of an error reply, or ''."""
    # the error code, then the request's header (NLM_F_CAPPED) or the whole request, then attributes
    if len(reply) < 36:
        return ''
    offset = 16 + 4 + (16 if flags & _NLM_F_CAPPED else struct.unpack_from('<I', reply, 20)[0])
    while offset + 4 <= min(length, len(reply)):
        size, kind = struct.unpack_from('<HH', reply, offset)
        if size < 4:
            break
        if kind == _NLMSGERR_ATTR_MSG:
            return reply[offset + 4:offset + size].split(b'\0')[0].decode('utf-8', 'replace')
        offset += (size + 3) & ~3
    return ''


def _ours(program):
    return bool(program) and (program.get('name') or '').startswith(bpf.NAME_PREFIX)


def _switch_mode(point, before, flt):
    """Move XDP to the other mode (the kernel takes one at a time): the old program is held while the new one is
    attached, and put back in its mode when the kernel refuses the new one."""
    fd = bpf.load(flt)
    try:
        old = bpf.program_fd(before['id'])
    except OSError as e:
        os.close(fd)
        raise BpfFilterError('the attached program %s (id %s) cannot be held: %s' % (before['name'], before['id'], e))
    try:
        point.detach(before)
        try:
            point.attach(fd, flt.name, replace=False)
        except Exception as e:  # BpfFilterError, or OSError from the socket: put the old program back either way
            try:
                Point(point.netns, dict(interface=point.ifname, hook='xdp', mode=before['mode'],
                                        direction=point.direction, priority=point.priority)).attach(
                    old, before['name'], replace=False)
            except Exception as again:
                raise BpfFilterError('%s; and putting %s back in %s mode failed too: %s' % (
                    e, before['name'], before['mode'], again))
            raise
    finally:
        os.close(old)
        os.close(fd)


def manage(module, params, check_mode=False, diff=False):
    """Bring one attachment point to ``params`` (ARGUMENT_SPEC); the module's result."""
    flt = validate(params)
    netns.check_target(params['netns'], params['host'])
    point = Point(params['netns'], params)
    before = point.attached()
    label = params['label'] or default_label(params)
    if before and not _ours(before):
        raise BpfFilterError('%s holds a program pflab did not load; it is left as it is' % point.describe(before))
    if params['state'] == 'absent':
        wanted, changes = None, (['detach %s' % point.describe(before)] if before else [])
    else:
        same = before and before['name'] == flt.name and (params['hook'] != 'xdp' or before.get('mode') == params['mode'])
        wanted = before if same else dict(name=flt.name, id=None)
        changes = [] if wanted is before else ['attach %s' % point.describe(wanted)]
    if changes and not check_mode:
        if wanted is None:
            point.detach(before)
        elif before and params['hook'] == 'xdp' and before.get('mode') != params['mode']:
            _switch_mode(point, before, flt)
        else:
            fd = bpf.load(flt)
            try:
                point.attach(fd, flt.name, replace=before is not None)
            finally:
                os.close(fd)
        wanted = point.attached() if wanted is not None else None
    result = dict(changed=bool(changes), changes=changes, label=label, program=wanted)
    if wanted and wanted.get('id'):
        result.update(bpf.read(wanted['id']) or {})
    if diff:
        result['diff'] = dict(before=point.describe(before) + '\n', after=point.describe(wanted) + '\n')
    return result


def snapshot(module, name):
    """{key: entry} of the XDP programs and tc filters in namespace ``name`` now (hooks.Registry reads it)."""
    reader = facts.Reader(module, name)
    found = {}
    for link in reader.links():
        for program in facts.xdp_programs(link):
            found[('xdp', link['ifname'])] = dict(
                filter='xdp', layer='bpf', point='xdp', device=link['ifname'], hook='xdp',
                priority=0 if program['mode'] == 'native' else 1, where='%s %s' % (link['ifname'], program['mode']),
                program=program['name'], program_id=program['id'], identity=program['id'])
    for device, directions in sorted(reader.tc().items()):
        for direction, filters in sorted(directions.items()):
            for listed in filters:
                found[('tc', device, direction, listed['pref'])] = dict(
                    filter='tc', layer='bpf', point='tc-%s' % direction, device=device, hook=direction,
                    priority=listed['pref'], where='%s %s pref %s' % (device, direction, listed['pref']),
                    program=listed['name'], program_id=listed['id'], identity=listed['id'])
    return found
