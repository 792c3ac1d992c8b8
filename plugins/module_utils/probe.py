# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One TCP connect from inside a network namespace, timed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import socket
import time

from ansible_collections.pflab.netfilter.plugins.module_utils import netns
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

_UNREACHABLE = (errno.EHOSTUNREACH, errno.ENETUNREACH)


TIMEOUT_MS_MAX = 10000  # the first SYN retransmit comes after 1 s: a probe never needs more than a few


class ProbeError(PflabError):
    pass


def tcp_connect(name, address, port, timeout_ms):
    """Connect once from namespace ``name``; return (outcome, elapsed_ms, source port).

    The source port is bound before the connect, so kernel log lines of this
    connection can be told from any other's.
    """
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    with netns.entered(name):
        sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout_ms / 1000.0)
    sock.bind(('::' if family == socket.AF_INET6 else '0.0.0.0', 0))
    source_port = sock.getsockname()[1]
    start = time.monotonic()
    try:
        sock.connect((address, port))
        outcome = 'connected'
    except socket.timeout:
        outcome = 'timeout'
    except ConnectionRefusedError:
        outcome = 'refused'
    except OSError as e:
        if e.errno not in _UNREACHABLE:
            raise ProbeError('connect to %s port %d from %s: %s' % (address, port, name, e))
        outcome = 'unreachable'
    finally:
        elapsed_ms = (time.monotonic() - start) * 1000.0
        sock.close()
    return outcome, round(elapsed_ms, 3), source_port
