# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One TCP connect (or one UDP datagram) from inside a network namespace, timed, from a source port given by the caller.

The verdict comes from the kernel as soon as it has one: the SYN-ACK (connected), a
reset (refused), an ICMP error or a missing route (unreachable), or, when the caller
can see drops (``dropped``, the drop witness), the drop of the SYN or its SYN-ACK;
the timeout is the fallback when nothing tells. The socket is always asked first: a
drop counts only while the socket has no answer, and only once it still has none
SETTLE_MS after the drop was seen (on veths, a REJECT's reset is queued before the
SYN is freed and reaches the socket microseconds later).

``udp_send`` sends one datagram the same way for the lab twin: an ICMP error answers it,
and the socket is asked before each look at the witness (without the settling wait).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import select
import socket
import time

from ansible_collections.pflab.netfilter.plugins.module_utils import netns
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

# ICMP errors and missing routes: host or net unreachable, admin-prohibited in IPv6 (EACCES), protocol unreachable
_UNREACHABLE = (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENETDOWN)


TIMEOUT_MS_MAX = 10000  # the first SYN retransmit comes after 1 s: a probe never needs more than a few


class ProbeError(PflabError):
    pass


# How often a probe that waits for its answer asks ``dropped``: from 1 ms, doubling up to this.
_CHECK_MAX_MS = 16
SETTLE_MS = 2


def tcp_connect(name, address, port, timeout_ms, source_port=0, dropped=None, source_address=None):
    """Connect once from namespace ``name``, source port ``source_port`` (0: the kernel's choice) and
    ``source_address`` (None: the route's);
    return (outcome, elapsed_ms, source port, what decided).

    The outcome is ``connected``, ``refused``, ``unreachable``, ``dropped`` (``dropped()`` said a
    filter dropped the SYN or its answer) or ``timeout``; what decided is ``syn-ack``, ``reset``,
    ``error`` (an ICMP error, or no route), ``witness`` or ``timeout``. The source port is bound
    before the connect, so kernel log lines of this connection can be told from any other's.
    """
    family = socket.AF_INET6 if ':' in address else socket.AF_INET
    with netns.entered(name):
        sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.bind((source_address or ('::' if family == socket.AF_INET6 else '0.0.0.0'), source_port))
        source_port = sock.getsockname()[1]
        start = time.monotonic()
        outcome, decided = _connect(sock, (address, port), start + timeout_ms / 1000.0, dropped)
        elapsed_ms = (time.monotonic() - start) * 1000.0
    except OSError as e:
        raise ProbeError('connect to %s port %d from %s: %s' % (address, port, name, e))
    finally:
        sock.close()
    return outcome, round(elapsed_ms, 3), source_port, decided


def _connect(sock, peer, deadline, dropped):
    code = sock.connect_ex(peer)
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    check_ms = 1

    def answered(wait_ms):
        return code not in (errno.EINPROGRESS, errno.EALREADY) or bool(poller.poll(max(0, int(wait_ms + 0.999))))

    while not answered(0):
        if dropped is not None and dropped():
            if answered(SETTLE_MS):
                break
            return 'dropped', 'witness'
        left_ms = (deadline - time.monotonic()) * 1000.0
        if left_ms <= 0:
            if answered(0):  # it came while dropped() was read
                break
            return 'timeout', 'timeout'
        if answered(left_ms if dropped is None else min(left_ms, check_ms)):
            break
        check_ms = min(check_ms * 2, _CHECK_MAX_MS)
    if code in (errno.EINPROGRESS, errno.EALREADY):
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code == 0:
        return 'connected', 'syn-ack'
    if code == errno.ECONNREFUSED:
        return 'refused', 'reset'
    if code in _UNREACHABLE:
        return 'unreachable', 'error'
    raise OSError(code, os.strerror(code))


def udp_send(name, source, source_port, destination, port, timeout_ms, dropped=None):
    """One datagram from ``source``:``source_port`` in namespace ``name``; (outcome, elapsed_ms, source port,
    what decided) as tcp_connect. An ICMP port unreachable is ``refused``, another ICMP error ``unreachable``, a
    local drop (EPERM) ``dropped``, a datagram back ``answered``."""
    family = socket.AF_INET6 if ':' in destination else socket.AF_INET
    with netns.entered(name):
        sock = socket.socket(family, socket.SOCK_DGRAM)
    start = time.monotonic()
    try:
        sock.setblocking(False)
        sock.bind((source, source_port))
        sock.connect((destination, port))
        try:
            sock.send(b'pflab twin')
        except OSError as e:
            if e.errno == errno.EPERM:
                return 'dropped', round((time.monotonic() - start) * 1000.0, 3), source_port, 'error'
            raise
        deadline = start + timeout_ms / 1000.0
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR)
        while True:
            left_ms = (deadline - time.monotonic()) * 1000.0
            if poller.poll(max(0, min(left_ms, 4 if dropped else left_ms))):
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                outcome = 'refused' if code == errno.ECONNREFUSED else 'unreachable' if code else 'answered'
                return outcome, round((time.monotonic() - start) * 1000.0, 3), source_port, 'error' if code else 'reply'
            if dropped is not None and dropped():
                return 'dropped', round((time.monotonic() - start) * 1000.0, 3), source_port, 'witness'
            if left_ms <= 0:
                return 'timeout', round((time.monotonic() - start) * 1000.0, 3), source_port, 'timeout'
    except OSError as e:
        raise ProbeError('datagram from %s to %s port %d: %s' % (source, destination, port, e))
    finally:
        sock.close()
