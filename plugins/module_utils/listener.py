# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netcat listeners (``nc -l -k PORT``, as in the article) inside a namespace.

A listener is known by its pidfile; it counts as running only while that pid
is alive, runs the expected command line and lives in the expected namespace,
so a recycled pid is never mistaken for it (or killed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess
import time

from ansible_collections.pflab.netfilter.plugins.module_utils import names, netns
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError, clip
from ansible_collections.pflab.netfilter.plugins.module_utils.state import RUN_DIR

TCP_LISTEN = '0A'


class ListenerError(PflabError):
    pass


class Listener:
    def __init__(self, name, port, nc='nc'):
        if not 1 <= port <= 65535:
            raise ListenerError('port %d is out of range 1-65535' % port)
        self.netns = names.check('netns', name, 'network namespace')
        self.port = port
        self.argv = [nc, '-l', '-k', str(port)]
        base = os.path.join(RUN_DIR, 'nc-%s-%d' % (name, port))
        self.pidfile = base + '.pid'
        self.logfile = base + '.log'

    def pid(self):
        """Pid of this listener if it is running, else None."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmdline = f.read().rstrip(b'\0').split(b'\0')
        except (OSError, ValueError):
            return None
        if [c.decode() for c in cmdline] != self.argv or not netns.alive(pid) or pid not in netns.pids_in(self.netns):
            return None
        return pid

    def listening(self, pid):
        """True when the process's namespace has a TCP socket listening on the port."""
        port_hex = ':%04X' % self.port
        for table in ('tcp', 'tcp6'):
            try:
                with open('/proc/%d/net/%s' % (pid, table)) as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if len(cols) > 3 and cols[1].endswith(port_hex) and cols[3] == TCP_LISTEN:
                    return True
        return False

    def start(self, timeout=3.0):
        """Start detached, wait until the port listens, write the pidfile."""
        netns.resolve(self.netns)
        if not os.path.isdir(RUN_DIR):
            os.makedirs(RUN_DIR, 0o755)
        with open(os.devnull, 'rb') as null_in, open(os.devnull, 'wb') as null_out, open(self.logfile, 'wb') as log:
            # A daemon that outlives the module: run_command can only wait for its end.
            proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
                netns.in_netns(self.netns, self.argv), stdin=null_in, stdout=null_out, stderr=log,
                close_fds=True, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.listening(proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                if proc.poll() is None:
                    netns.stop_pids([proc.pid])
                with open(self.logfile) as f:
                    said = clip(f.read(1000).strip(), 300)
                self.forget()
                raise ListenerError('%s in %s did not listen on %d within %.1fs%s' % (
                    ' '.join(self.argv), self.netns, self.port, timeout, ': ' + said if said else ''))
            time.sleep(0.005)
        with open(self.pidfile, 'w') as f:
            f.write('%d\n' % proc.pid)
        return proc.pid

    def stop(self, pid):
        netns.stop_pids([pid])
        self.forget()

    def forget(self):
        for path in (self.pidfile, self.logfile):
            _unlink(path)


_FILE = re.compile(r'nc-(?P<netns>.+)-(?P<port>[0-9]{1,5})\.(?:pid|log)')


def _files():
    """(path, namespace name) of every listener pidfile and log in RUN_DIR."""
    try:
        entries = sorted(os.listdir(RUN_DIR))
    except OSError:
        return []
    return [(os.path.join(RUN_DIR, entry), found.group('netns'))
            for entry, found in ((e, _FILE.fullmatch(e)) for e in entries) if found]


def orphans(kept=()):
    """Pidfiles and logs of listeners whose namespace no longer exists, but those of namespaces in ``kept``
    (a live lab's, whose run is removing it)."""
    return [path for path, name in _files()
            if name not in kept and not os.path.lexists(os.path.join(netns.NETNS_DIR, name))]


def forget_netns(name):
    """Remove the pidfiles and logs of every listener of a removed namespace (that one only: a
    namespace named like it plus a suffix keeps its own)."""
    for path, owner in _files():
        if owner == name:
            _unlink(path)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass  # removed meanwhile (by the reaper of a run that thought its namespace gone)
