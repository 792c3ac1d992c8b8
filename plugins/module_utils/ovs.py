# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Open vSwitch in a lab, and the OpenFlow flows of the ovs_flows module.

A bridged lab's switch is an OVS bridge of its own: ovsdb-server and ovs-vswitchd
run inside the bridge namespace with a run, database and log directory of their
own (``RUN_DIR/ovs-<namespace>``), and the bridge uses the userspace datapath
(``datapath_type=netdev``), which needs no openvswitch kernel module. No host-wide
OVS is read or changed. The daemons are processes of that namespace, so removing
the lab stops them; their directory goes with it (``forget_netns``), or with the
reaper once the namespace is gone (``orphans``). Transmit checksum offload is
turned off on every veth of the lab: the userspace datapath forwards the packets
without their checksums filled in, and TCP would drop them.

Flows are written through ``ovs-ofctl`` on the bridge's management socket in one
OpenFlow 1.4 bundle (all or nothing) and compared in the form ``dump-flows`` gives.
In a namespace, that socket is the lab switch's, never the system's: unix sockets
are not scoped by network namespace, so a path would reach the host's OVS.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil

from ansible_collections.pflab.netfilter.plugins.module_utils import names, netns, proc
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip, shown
from ansible_collections.pflab.netfilter.plugins.module_utils.state import RUN_DIR

SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema'
BRIDGE = 'br0'
TOOLS = ('ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-ofctl', 'ovs-appctl', 'ethtool')
DEFAULT_RUNDIR = '/var/run/openvswitch'
_TIMEOUT = '--timeout=10'
_DIR = re.compile(r'ovs-(?P<netns>.+)')
# "priority=100,tcp,tp_src=1,tp_dst=2 actions=drop" as dump-flows --no-stats prints it
_FLOW = re.compile(r'^\s*(?:cookie=\S+,?\s*)?(?P<match>\S*priority=\d+\S*)\s+actions=(?P<actions>\S+)\s*$')

ARGUMENT_SPEC = dict(
    netns=dict(type='str'),
    host=dict(type='bool', default=False),
    bridge=dict(type='str', default=BRIDGE),
    flows=dict(type='list', elements='dict', required=True, options=dict(
        priority=dict(type='int', default=100),
        protocol=dict(type='str', default='tcp', choices=['tcp', 'udp']),
        dport=dict(type='int'),
        sport=dict(type='int'),
        action=dict(type='str', default='drop', choices=['drop', 'normal']),
        label=dict(type='str'),
    )),
    state=dict(type='str', default='present', choices=['present', 'absent']),
)


class OvsError(PflabError):
    pass


def rundir(name):
    """The run, database and log directory of the switch in namespace ``name``."""
    return os.path.join(RUN_DIR, 'ovs-%s' % name)


def unavailable(get_bin_path):
    """Why this host cannot run a lab's switch, or None."""
    missing = [tool for tool in TOOLS if not get_bin_path(tool)]
    if missing:
        return 'Open vSwitch is not installed (missing %s; Debian/Ubuntu package openvswitch-switch, and ethtool)' \
            % ', '.join(missing)
    if not os.path.exists(SCHEMA):
        return 'the Open vSwitch database schema %s is missing' % SCHEMA
    return None


def _run(argv, what):
    rc, out, err = proc.run(argv)
    if rc != 0:
        raise OvsError('%s: %s' % (what, clip(err.strip() or 'exit %d' % rc, 500)))
    return out


class Switch:
    """The OVS bridge of a bridged lab, in namespace ``name``, with ``ports`` (its veth ends there)."""

    def __init__(self, name, ports):
        self.netns, self.ports, self.dir = name, list(ports), rundir(name)

    def _env(self, argv):
        return ['env', 'OVS_RUNDIR=%s' % self.dir, 'OVS_DBDIR=%s' % self.dir, 'OVS_LOGDIR=%s' % self.dir,
                'OVS_SYSCONFDIR=%s' % self.dir] + argv

    def _inside(self, argv, what):
        return _run(netns.in_netns(self.netns, self._env(argv)), what)

    def start(self):
        """Database, ovsdb-server, ovs-vswitchd, the bridge and its ports; the daemons detach. When a part fails,
        what started is stopped and the directory removed."""
        os.makedirs(self.dir, mode=0o700)
        db, sock = os.path.join(self.dir, 'conf.db'), 'unix:%s' % os.path.join(self.dir, 'db.sock')
        try:
            _run(['ovsdb-tool', 'create', db, SCHEMA], 'ovsdb-tool create')
            self._inside(['ovsdb-server', db, '--remote=p' + sock, '--pidfile', '--detach', '--no-chdir',
                          '--log-file'], 'ovsdb-server')
            self._inside(['ovs-vsctl', self._sock(), '--no-wait', 'init'], 'ovs-vsctl init')
            self._inside(['ovs-vswitchd', sock, '--pidfile', '--detach', '--no-chdir', '--log-file'], 'ovs-vswitchd')
            argv = ['ovs-vsctl', self._sock(), _TIMEOUT, 'add-br', BRIDGE, '--', 'set', 'bridge', BRIDGE,
                    'datapath_type=netdev']
            for port in self.ports:
                argv += ['--', 'add-port', BRIDGE, port]
            self._inside(argv, 'ovs-vsctl add-br')
        except BaseException:
            stop(self.dir)
            raise

    def _sock(self):
        return '--db=unix:%s' % os.path.join(self.dir, 'db.sock')

    def running(self):
        """Whether both daemons of this switch run."""
        pids = self.pids()
        return len(pids) == 2 and all(netns.alive(pid) for pid in pids)

    def ensure(self, check_mode=False):
        """Start the switch when it does not run (removing what a stopped one left), else add missing ports;
        the changes."""
        if not self.running():
            changes = ['start Open vSwitch (userspace datapath) in %s with bridge %s, ports %s'
                       % (self.netns, BRIDGE, ', '.join(self.ports))]
            if not check_mode:
                stop(self.dir)
                self.start()
            return changes
        listed = self._inside(['ovs-vsctl', self._sock(), 'list-ports', BRIDGE], 'ovs-vsctl list-ports').split()
        missing = [port for port in self.ports if port not in listed]
        if missing and not check_mode:
            argv = ['ovs-vsctl', self._sock(), _TIMEOUT]
            for port in missing:
                argv += ['--', 'add-port', BRIDGE, port]
            self._inside(argv, 'ovs-vsctl add-port')
        return ['add port %s to %s in %s' % (port, BRIDGE, self.netns) for port in missing]

    def pids(self):
        """The daemons' pids: the witness records what happens in their threads too."""
        return daemons(self.dir)


def daemons(path):
    """The pids of the switch daemons of directory ``path`` that run: their pidfiles', when their command line
    names the directory (a pidfile alone may name a pid reused since)."""
    found = []
    for daemon in ('ovsdb-server', 'ovs-vswitchd'):
        try:
            with open(os.path.join(path, '%s.pid' % daemon)) as f:
                pid = int(f.read().strip())
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                named = path.encode() in f.read()
        except (IOError, OSError, ValueError):
            continue
        if named and netns.alive(pid):
            found.append(pid)
    return found


def stop(path):
    """Stop the daemons of a switch directory and remove it."""
    netns.stop_pids(daemons(path))
    shutil.rmtree(path, ignore_errors=True)


def checksum_offload_off(name, ifname):
    _run(netns.in_netns(name, ['ethtool', '-K', ifname, 'tx', 'off']), 'ethtool -K %s tx off' % ifname)


def forget_netns(name):
    """Stop what is left of the switch of a removed namespace and remove its directory."""
    if os.path.isdir(rundir(name)):
        stop(rundir(name))


def orphans(kept=()):
    """Switch directories whose namespace no longer exists (``stop`` removes them, with daemons still running), but
    those of namespaces in ``kept`` (a live lab's, whose run is removing it)."""
    try:
        entries = sorted(os.listdir(RUN_DIR))
    except OSError:
        return []
    return [os.path.join(RUN_DIR, e) for e, m in ((e, _DIR.fullmatch(e)) for e in entries)
            if m and os.path.isdir(os.path.join(RUN_DIR, e)) and m.group('netns') not in kept
            and not os.path.lexists(os.path.join(netns.NETNS_DIR, m.group('netns')))]


def flow_text(flow):
    """A flow as dump-flows --no-stats prints it (its canonical form)."""
    match = 'priority=%d,%s' % (flow['priority'], flow['protocol'])
    for key, field in (('sport', 'tp_src'), ('dport', 'tp_dst')):
        if flow[key] is not None:
            match += ',%s=%d' % (field, flow[key])
    return '%s actions=%s' % (match, 'drop' if flow['action'] == 'drop' else 'NORMAL')


def parse_flows(text):
    """{canonical flow: packets (None without stats)} of ``ovs-ofctl dump-flows`` output."""
    found = {}
    for line in text.splitlines():
        fields = [f for f in re.split(r',\s*', line.strip()) if f]
        kept = [f for f in fields if not re.match(r'(cookie|duration|table|n_packets|n_bytes|idle_age|hard_age)=', f)]
        packets = next((int(f.split('=')[1]) for f in fields if f.startswith('n_packets=')), None)
        m = _FLOW.match(','.join(kept))
        if m:
            found['%s actions=%s' % (m.group('match'), m.group('actions'))] = packets
    return found


def validate(params):
    """Check ``params`` (ARGUMENT_SPEC) without a target; the canonical flows asked for, in order."""
    names.check('ifname', params['bridge'], 'bridge')
    if not params['flows']:
        raise OvsError('flows is empty: give at least one flow')
    texts = []
    for number, flow in enumerate(params['flows'], 1):
        if not 1 <= flow['priority'] <= 65535:
            raise OvsError('flow %d: priority is from 1 to 65535 (0 is the bridge\'s own NORMAL flow), got %d'
                           % (number, flow['priority']))
        for key in ('dport', 'sport'):
            if flow[key] is not None and not 1 <= flow[key] <= 65535:
                raise OvsError('flow %d: %s is a port from 1 to 65535, got %s' % (number, key, shown(flow[key])))
        if flow['label'] is not None:
            names.check('mark', flow['label'], 'flow %d: label' % number)
        texts.append(flow_text(flow))
    if len(set(texts)) != len(texts):
        raise OvsError('two flows have the same match and priority')
    return texts


def _rundir(params):
    """Where the bridge's sockets are: a namespace's lab switch (unix sockets are not scoped by network namespace, so
    a namespace never reaches the host's OVS), or with host=true the system's."""
    return rundir(params['netns']) if params['netns'] else DEFAULT_RUNDIR


def _switch(params):
    return 'unix:%s' % os.path.join(_rundir(params), '%s.mgmt' % params['bridge'])


def _revalidated(params):
    """Wait until ovs-vswitchd has checked its datapath's cached flows against the new table: until then a packet
    can still take a deleted flow's action."""
    try:
        with open(os.path.join(_rundir(params), 'ovs-vswitchd.pid')) as f:
            pid = int(f.read().strip())
    except (IOError, OSError, ValueError):
        return  # no pidfile there: nothing to ask
    argv = ['ovs-appctl', '-t', os.path.join(_rundir(params), 'ovs-vswitchd.%d.ctl' % pid), 'revalidator/wait']
    _run(netns.in_netns(params['netns'], argv) if params['netns'] else argv, 'ovs-appctl revalidator/wait')


def dump(params, stats=False):
    argv = ['ovs-ofctl', 'dump-flows', _switch(params)] + ([] if stats else ['--no-stats'])
    return parse_flows(_run(netns.in_netns(params['netns'], argv) if params['netns'] else argv,
                            'ovs-ofctl dump-flows %s' % params['bridge']))


def manage(module, params, check_mode=False, diff=False):
    """Bring the flows of one bridge to ``params`` (ARGUMENT_SPEC); the module's result."""
    wanted = validate(params)
    netns.check_target(params['netns'], params['host'])
    if params['netns'] and not os.path.isdir(rundir(params['netns'])):
        raise OvsError('namespace %s has no pflab switch (a lab made with bridge: see netns_lab)' % params['netns'])
    before = dump(params)
    if params['state'] == 'present':
        lines = ['add %s' % text.replace(' actions=', ',actions=') for text in wanted if text not in before]
    else:
        lines = ['delete_strict %s' % text.split(' actions=')[0] for text in wanted if text in before]
    changes = [line.replace('delete_strict', 'delete', 1) for line in lines]
    if lines and not check_mode:
        argv = ['ovs-ofctl', '-O', 'OpenFlow14', '--bundle', 'add-flows', _switch(params), '-']
        rc, dummy, err = proc.run(netns.in_netns(params['netns'], argv) if params['netns'] else argv,
                                  data='\n'.join(lines) + '\n')
        if rc != 0:
            raise OvsError('ovs-ofctl refused the flows (none was applied): %s' % clip(err.strip(), 500))
        _revalidated(params)
    result = dict(changed=bool(lines), changes=changes, flows=wanted)
    if diff:
        after = dump(params) if lines and not check_mode else before
        result['diff'] = dict(before='\n'.join(sorted(before)) + '\n', after='\n'.join(sorted(after)) + '\n')
    return result


def snapshot(name):
    """{key: entry} of the flows of the lab's switch in namespace ``name`` (none when it has no switch), with
    their packet counts (``hits``)."""
    if not os.path.isdir(rundir(name)):
        return {}
    found = {}
    for text, packets in dump(dict(netns=name, bridge=BRIDGE), stats=True).items():
        if text == 'priority=0 actions=NORMAL':
            continue  # the bridge's own switching, not a filter
        priority = int(re.search(r'priority=(\d+)', text).group(1))
        found[('ovs', BRIDGE, text)] = dict(
            filter='ovs', layer='ovs', point='bridge', hook='bridge', priority=-priority, where='%s %s' % (BRIDGE, text),
            flow=text, identity=text, hits=packets)
    return found
