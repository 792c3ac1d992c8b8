# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the engines reach libnftables: one interface, two ways, and nft's messages made safe.

``BindingApi`` uses the Python binding, ``CliApi`` the ``nft`` command; both speak the
same JSON and text. libnftables 1.0.6 aborts its whole process on some inputs (a log
prefix far over its limit: "stack smashing detected"), so the binding never runs in
the module's process: a child forked per namespace holds the libnftables context,
enters the namespace and serves command buffers over a pipe. When that child dies,
the command it ran fails with the signal's name, the module's own cleanup runs as
usual, and the next command starts a new child. The child reads its requests from a
pipe only the module holds, so it ends with the module, even one killed by SIGKILL.

nft echoes the input lines around an error, which may be lines of a file; ``message``
keeps only nft's own diagnostics.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import select
import signal
import struct
import tempfile
import time

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.pflab.netfilter.plugins.module_utils import netns, proc
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

try:
    import nftables as nftables_binding
except ImportError:
    nftables_binding = None

_FRAME = struct.Struct('>I')
_BLOCKED = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
# "<cmdline>:3:5-9: Error: ..." or "Error: ..." (netlink errors have no location)
_DIAGNOSTIC = re.compile(r'(?:(?P<where>\S+:\d+:\d+(?:-\d+)?): )?(?P<kind>Error|Warning): (?P<text>.*)')
_CARETS = re.compile(r'\s*[\^~]+\s*')
_MESSAGES_MAX = 5


class NftError(PflabError):
    pass


def message(err, redact=False):
    """nft's diagnostics in ``err``, without the input lines it echoes under them (a line followed by
    a caret line) or the include trail. With ``redact`` (the input was a file the task only named)
    only their number: positions and token classes would still tell about the file's contents."""
    lines = to_text(err).splitlines()
    kept = []
    for index, line in enumerate(lines):
        if _CARETS.fullmatch(line) or (index + 1 < len(lines) and _CARETS.fullmatch(lines[index + 1])):
            continue
        found = _DIAGNOSTIC.fullmatch(line.strip())
        if found:
            kept.append('%s%s: %s' % (found.group('where') + ': ' if found.group('where') else '',
                                      found.group('kind'), found.group('text')))
    if redact and kept:
        return '%d errors, not shown here (they would quote the file; nft -c -f on the target shows them)' % len(kept)
    if not kept:
        return 'nft failed without a diagnostic'
    more = len(kept) - _MESSAGES_MAX
    return '; '.join(kept[:_MESSAGES_MAX]) + (' (and %d more)' % more if more > 0 else '')


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return 'signal %d' % number


class _Api:
    """Reaches libnftables in one namespace: command buffers in, listings out (JSON or text)."""

    name = None

    def run(self, buffer):
        """Run a buffer of nft commands (text or JSON) as one transaction: (rc, out, err)."""
        raise NotImplementedError

    def list(self, what, json_output=True, stateless=False):
        """(rc, out, err) of ``list <what>``."""
        raise NotImplementedError

    def close(self):
        """Release what the api holds (the binding's child process)."""

    def checked(self, buffer):
        rc, dummy, err = self.run(buffer)
        if rc != 0:
            raise NftError(message(err))

    def objects(self, what):
        """Objects of ``list <what>`` (metainfo dropped), or None when it does not exist."""
        rc, out, err = self.list(what)
        if rc != 0:
            if 'No such file or directory' in err:
                return None
            raise NftError('list %s: %s' % (what, message(err)))
        return json.loads(out)['nftables'][1:]

    def text(self, what):
        rc, out, err = self.list(what, json_output=False, stateless=True)
        if rc != 0:
            raise NftError('list %s: %s' % (what, message(err)))
        return out


class CliApi(_Api):
    name = 'nft -j'

    def __init__(self, runner, nft_path):
        self.runner = runner
        self.nft = nft_path

    def _run(self, argv, data=None):
        rc, out, err = self.runner.run([self.nft] + argv, data=data)
        if rc < 0:
            err = 'Error: nft crashed (killed by %s)\n%s' % (_signal_name(-rc), err)
        return rc, out, err

    def run(self, buffer):
        # With -j, nft 1.0 reads JSON only, and ignores a text buffer without an error.
        json_input = buffer.lstrip().startswith('{')
        return self._run((['-j'] if json_input else []) + ['-f', '-'], data=to_bytes(buffer))

    def list(self, what, json_output=True, stateless=False):
        return self._run((['-j'] if json_output else []) + (['-s'] if stateless else []) + ['list'] + what.split())


def _send(fd, value):
    data = to_bytes(json.dumps(value))
    view = memoryview(_FRAME.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd, size, deadline):
    chunks, left = [], size
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while left:
        if deadline is not None and not poller.poll(max(deadline - time.monotonic(), 0) * 1000):
            raise NftError('libnftables did not answer within %gs' % proc.TIMEOUT)
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b''.join(chunks)


def _receive(fd, deadline=None):
    """The next message on ``fd``, or None at its end."""
    header = _read_exactly(fd, _FRAME.size, deadline)
    if header is None:
        return None
    data = _read_exactly(fd, _FRAME.unpack(header)[0], deadline)
    return None if data is None else json.loads(to_text(data))


def _serve(path, requests, replies, stderr_fd):
    """The child: enter the namespace at ``path``, then run each request with one libnftables context.

    It starts with the module's signals blocked (see BindingApi._start) and takes them back at
    their default actions: the module's handlers would raise its exceptions here.
    """
    code = 0
    try:
        for number in _BLOCKED:
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(stderr_fd, 2)  # glibc's "*** stack smashing detected ***" lands here for the parent to read
        keep = set((0, 1, 2, requests, replies))
        for fd in [int(n) for n in os.listdir('/proc/self/fd') if int(n) not in keep]:
            try:
                os.close(fd)
            except OSError:
                pass
        if path:
            target = os.open(path, os.O_RDONLY)
            netns.setns(target)
            os.close(target)
        ctx = nftables_binding.Nftables()
        while True:
            request = _receive(requests)
            if request is None:
                break
            buffer, json_output, stateless = request
            ctx.set_json_output(json_output)
            ctx.set_stateless_output(stateless)
            _send(replies, list(ctx.cmd(buffer)))
    except BaseException:  # pylint: disable=broad-except
        code = 1
    finally:
        os._exit(code)


class BindingApi(_Api):
    """The binding, in a child process of its own (see the module docstring)."""

    name = 'libnftables binding'

    def __init__(self, netns_name=None):
        # Resolved here, in the module: the child only enters a namespace already checked.
        self.path = netns.resolve(netns_name) if netns_name else None
        self.pid = None

    def _start(self):
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
        try:
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(requests_write)
                    os.close(replies_read)
                    _serve(self.path, requests_read, replies_write, self._stderr.fileno())
                finally:
                    os._exit(1)  # _serve never returns; nothing of the module may run on in the child
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(requests_read)
        os.close(replies_write)
        self.pid, self._requests, self._replies = pid, requests_write, replies_read

    def _cmd(self, buffer, json_output=True, stateless=False):
        if self.pid is None:
            self._start()
        try:
            _send(self._requests, [buffer, json_output, stateless])
            reply = _receive(self._replies, time.monotonic() + proc.TIMEOUT)
        except BrokenPipeError:
            reply = None
        except BaseException:  # a timeout or signal in the module: the child goes with the command
            self.close(kill=True)
            raise
        if reply is None:
            return self._died()
        return tuple(reply)

    def _died(self):
        dummy, status = os.waitpid(self.pid, 0)
        self._stderr.seek(0)
        said = to_text(self._stderr.read(1000), errors='surrogate_or_replace').strip()
        self._release()
        how = 'killed by %s' % _signal_name(os.WTERMSIG(status)) if os.WIFSIGNALED(status) else \
            'exit %d' % os.WEXITSTATUS(status)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1
        return rc, '', 'Error: libnftables crashed (%s%s); nft transactions are all or nothing' % (
            how, ': ' + said.replace('\n', ' ') if said else '')

    def _release(self):
        os.close(self._requests)
        os.close(self._replies)
        self._stderr.close()
        self.pid = None

    def close(self, kill=False):
        if self.pid is None:
            return
        pid = self.pid
        self._release()  # the child reads the end of its requests and exits
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        os.waitpid(pid, 0)

    def run(self, buffer):
        return self._cmd(buffer)

    def list(self, what, json_output=True, stateless=False):
        return self._cmd('list ' + what, json_output, stateless)


def open_api(module, netns_name=None, prefer='auto'):
    """The binding when importable (unless ``prefer`` is ``cli``), else ``nft -j``. Close it after use."""
    if prefer != 'cli' and nftables_binding is not None:
        return BindingApi(netns_name)
    if prefer == 'binding':
        raise NftError('the nftables Python binding is not importable on the target')
    nft = module.get_bin_path('nft')
    if not nft:
        raise NftError('neither the nftables Python binding nor the nft command is on the target')
    return CliApi(netns.Runner(netns_name), nft)
