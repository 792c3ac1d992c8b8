# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small eBPF packet filters without a compiler: bytecode built here, loaded with bpf(2).

A filter matches IPv4 TCP or UDP by destination and/or source port and passes or
drops what matches. Its match and action are immediates in the instructions, so
one program is one filter, named ``pfl`` + a digest of what it does (the name
tells whether an attached program is the one asked for). It counts hits in an
array map and leaves a sighting per hit: the CLOCK_MONOTONIC time
(bpf_ktime_get_ns), addresses, ports and TCP flags, in a ring of SIGHTINGS slots.

Why bytecode and not C: targets need neither clang nor an object file, the
release tarball stays text, and the program is ~50 instructions the verifier
checks on load. ctypes calls the syscall (the field's Python libraries wrap
netlink, not bpf(2)).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import hashlib
import os
import platform
import socket
import struct
import sys

from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError

# little-endian machines only: the instructions are packed, and packet fields compared, in that byte order
_NR_BPF = {'x86_64': 321, 'aarch64': 280, 'ppc64le': 361, 'riscv64': 280, 'armv7l': 386}
_MAP_CREATE, _MAP_LOOKUP_ELEM, _PROG_LOAD = 0, 1, 5
_PROG_GET_FD_BY_ID, _MAP_GET_FD_BY_ID, _OBJ_GET_INFO_BY_FD = 13, 14, 15
_ATTR_SIZE = 128
PROG_TYPES = {'xdp': 6, 'tc': 3}  # BPF_PROG_TYPE_XDP, BPF_PROG_TYPE_SCHED_CLS
# (where ctx->data and ctx->data_end are) in struct xdp_md and struct __sk_buff
_CTX_DATA = {'xdp': (0, 4), 'tc': (76, 80)}
# hook -> (what passes, what drops): XDP_PASS/XDP_DROP; TC_ACT_UNSPEC (the next filter decides)/TC_ACT_SHOT
VERDICTS = {'xdp': (2, 1), 'tc': (-1, 2)}
PROTOCOLS = {'tcp': 6, 'udp': 17}
SIGHTINGS = 16
_VALUE = struct.Struct('<QIIHHI')  # time ns, saddr, daddr, sport, dport, TCP flags (network order kept raw)
_TCP_FLAGS = ((0x01, 'FIN'), (0x02, 'SYN'), (0x04, 'RST'), (0x08, 'PSH'), (0x10, 'ACK'), (0x20, 'URG'))
_LOG_SIZE = 1 << 16
NAME_PREFIX = 'pfl'


class BpfError(PflabError):
    pass


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _bpf(command, attr):
    number = _NR_BPF.get(platform.machine())
    if number is None or sys.byteorder != 'little':
        raise BpfError('bpf_filter runs on little-endian x86_64, aarch64, ppc64le, riscv64 and armv7l, not %s'
                       % platform.machine())
    fd = _libc().syscall(number, command, attr, len(attr))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


class Filter:
    """What one program does: ``hook`` (xdp or tc), ``protocol``, ``dport``/``sport`` (None: any), ``action``."""

    def __init__(self, hook, protocol='tcp', dport=None, sport=None, action='drop'):
        self.hook, self.protocol, self.dport, self.sport, self.action = hook, protocol, dport, sport, action

    def digest(self):
        text = '%s %s %s %s %s' % (self.hook, self.protocol, self.dport, self.sport, self.action)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def name(self):
        """The program's name in the kernel (15 characters at most)."""
        return NAME_PREFIX + self.digest()[:12]

    def instructions(self, map_fd):
        data, data_end = _CTX_DATA[self.hook]
        passes, drops = VERDICTS[self.hook]
        tcp = self.protocol == 'tcp'
        a = _Assembler()
        a.emit(0xbf, 6, 1)                      # r6 = ctx
        a.emit(0x61, 2, 6, data)                # r2 = data
        a.emit(0x61, 3, 6, data_end)            # r3 = data_end
        a.emit(0xbf, 4, 2)
        a.emit(0x07, 4, imm=34)                 # Ethernet + the smallest IPv4 header
        a.jump(0x2d, 4, 'pass', src=3)
        a.emit(0x69, 5, 2, 12)                  # EtherType, network order
        a.jump(0x55, 5, 'pass', imm=0x0008)     # not IPv4
        a.emit(0x71, 5, 2, 23)
        a.jump(0x55, 5, 'pass', imm=PROTOCOLS[self.protocol])
        a.emit(0x69, 5, 2, 20)                  # flags and fragment offset
        a.emit(0x57, 5, imm=0xff1f)             # the offset's 13 bits, as read in network order
        a.jump(0x55, 5, 'pass', imm=0)          # a later fragment: no L4 header here
        a.emit(0x71, 5, 2, 14)
        a.emit(0x57, 5, imm=0x0f)
        a.emit(0x67, 5, imm=2)                  # IHL in bytes
        a.jump(0xa5, 5, 'pass', imm=20)         # shorter than an IPv4 header: not ours to judge
        a.emit(0xbf, 4, 2)
        a.emit(0x0f, 4, 5)                      # r4 = data + IHL: the L4 header is at r4 + 14
        a.emit(0xbf, 1, 4)
        a.emit(0x07, 1, imm=14 + (14 if tcp else 8))
        a.jump(0x2d, 1, 'pass', src=3)
        for offset, port in ((14, self.sport), (16, self.dport)):
            if port is not None:
                a.emit(0x69, 5, 4, offset)
                a.jump(0x55, 5, 'pass', imm=socket.htons(port))
        a.emit(0x61, 6, 2, 26)                  # callee-saved: saddr, daddr, ports, flags
        a.emit(0x61, 7, 2, 30)
        a.emit(0x61, 8, 4, 14)
        if tcp:
            a.emit(0x71, 9, 4, 27)
        else:
            a.emit(0xb7, 9)
        a.emit(0x85, imm=5)                     # bpf_ktime_get_ns: CLOCK_MONOTONIC
        a.emit(0x7b, 10, 0, -8)
        a.emit(0x62, 10, off=-12, imm=0)        # key 0: the hit counter
        a.lookup(map_fd, -12)
        a.jump(0x15, 0, 'verdict', imm=0)
        a.emit(0xb7, 1, imm=1)
        a.emit(0xdb, 0, 1)                      # atomic add
        a.emit(0x79, 1, 0)
        a.emit(0x57, 1, imm=SIGHTINGS - 1)
        a.emit(0x07, 1, imm=1)
        a.emit(0x63, 10, 1, -16)                # key 1..SIGHTINGS: this hit's slot
        a.lookup(map_fd, -16)
        a.jump(0x15, 0, 'verdict', imm=0)
        a.emit(0x79, 1, 10, -8)
        a.emit(0x7b, 0, 1, 0)
        for register, offset in ((6, 8), (7, 12), (8, 16), (9, 20)):
            a.emit(0x63, 0, register, offset)
        a.label('verdict')
        a.emit(0xb7, 0, imm=drops if self.action == 'drop' else passes)
        a.emit(0x95)
        a.label('pass')
        a.emit(0xb7, 0, imm=passes)
        a.emit(0x95)
        return a.assemble()


class _Assembler:
    """eBPF instructions with forward jumps to labels."""

    def __init__(self):
        self._insns, self._labels, self._jumps = [], {}, []

    def emit(self, code, dst=0, src=0, off=0, imm=0):
        self._insns.append([code, dst, src, off, imm])

    def jump(self, code, dst, label, src=0, imm=0):
        self._jumps.append((len(self._insns), label))
        self.emit(code, dst, src, 0, imm)

    def label(self, name):
        self._labels[name] = len(self._insns)

    def lookup(self, map_fd, key_offset):
        """r0 = bpf_map_lookup_elem(map, fp + key_offset)."""
        self.emit(0x18, 1, 1, 0, map_fd)        # ld_imm64 with BPF_PSEUDO_MAP_FD
        self.emit(0, 0, 0, 0, 0)
        self.emit(0xbf, 2, 10)
        self.emit(0x07, 2, imm=key_offset)
        self.emit(0x85, imm=1)

    def assemble(self):
        for index, label in self._jumps:
            self._insns[index][3] = self._labels[label] - index - 1
        return b''.join(struct.pack('<BBhi', c, (s << 4) | d, o, i) for c, d, s, o, i in self._insns)


def _map_create(name):
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into('<IIII', attr, 0, 2, 4, _VALUE.size, SIGHTINGS + 1)  # BPF_MAP_TYPE_ARRAY
    struct.pack_into('16s', attr, 28, name.encode())
    return _bpf(_MAP_CREATE, attr)


def load(flt):
    """Load ``flt``; the program's fd (its map is held by the program). BpfError says why the kernel refused."""
    try:
        map_fd = _map_create(flt.name)
    except OSError as e:
        raise BpfError('the kernel refused a BPF map (%s): %s' % (_why(e), e.strerror))
    try:
        insns = ctypes.create_string_buffer(flt.instructions(map_fd))
        try:
            return _prog_load(flt, insns)
        except OSError:
            log = ctypes.create_string_buffer(_LOG_SIZE)  # again, with the verifier's log, to say why
            try:
                return _prog_load(flt, insns, log)
            except OSError as e:
                verifier = log.value.decode('utf-8', 'replace').strip().splitlines()[-3:]
                raise BpfError('the kernel refused the %s program (%s): %s%s' % (
                    flt.hook, _why(e), e.strerror, '; verifier: %s' % ' / '.join(verifier) if verifier else ''))
    finally:
        os.close(map_fd)


def _prog_load(flt, insns, log=None):
    licence = ctypes.create_string_buffer(b'GPL')
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into('<IIQQIIQ', attr, 0, PROG_TYPES[flt.hook], len(insns.raw) // 8, ctypes.addressof(insns),
                     ctypes.addressof(licence), 0 if log is None else 1, 0 if log is None else _LOG_SIZE,
                     0 if log is None else ctypes.addressof(log))
    struct.pack_into('16s', attr, 48, flt.name.encode())
    return _bpf(_PROG_LOAD, attr)


def _why(error):
    if error.errno == errno.ENOSYS:
        return 'this kernel has no bpf(2)'
    if error.errno == errno.EPERM:
        return 'not permitted: root with CAP_BPF, and no lockdown, is needed'
    return 'errno %d' % error.errno


def available():
    """None when this kernel loads our programs, else why not (feature detection for scenarios)."""
    try:
        os.close(load(Filter('tc', dport=1, action='pass')))
    except BpfError as e:
        return '%s' % e
    return None


def program_fd(program_id):
    """An fd that holds the loaded program ``program_id``, as long as it stays open."""
    return _fd_by_id(_PROG_GET_FD_BY_ID, program_id)


def _fd_by_id(command, object_id):
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into('<I', attr, 0, object_id)
    return _bpf(command, attr)


def _prog_map_ids(fd):
    ids = (ctypes.c_uint32 * 8)()
    buf = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into('<I', buf, 52, len(ids))
    struct.pack_into('<Q', buf, 56, ctypes.addressof(ids))
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into('<IIQ', attr, 0, fd, _ATTR_SIZE, ctypes.addressof(buf))
    _bpf(_OBJ_GET_INFO_BY_FD, attr)
    count = struct.unpack_from('<I', buf, 52)[0]
    return list(ids[:min(count, len(ids))])


def _lookup(map_fd, key):
    k = ctypes.create_string_buffer(struct.pack('<I', key))
    value = ctypes.create_string_buffer(_VALUE.size)
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into('<IIQQ', attr, 0, map_fd, 0, ctypes.addressof(k), ctypes.addressof(value))
    _bpf(_MAP_LOOKUP_ELEM, attr)
    return value.raw


def read(program_id):
    """Hits and sightings (oldest first) of the attached program ``program_id``; None when it is gone."""
    try:
        prog_fd = program_fd(program_id)
    except OSError:
        return None
    try:
        map_ids = _prog_map_ids(prog_fd)
    finally:
        os.close(prog_fd)
    if len(map_ids) != 1:
        return None
    map_fd = _fd_by_id(_MAP_GET_FD_BY_ID, map_ids[0])
    try:
        hits = struct.unpack_from('<Q', _lookup(map_fd, 0))[0]
        slots = [_VALUE.unpack(_lookup(map_fd, key)) for key in range(1, SIGHTINGS + 1)]
    finally:
        os.close(map_fd)
    sightings = []
    for ns, saddr, daddr, sport, dport, flags in sorted(s for s in slots if s[0]):
        sightings.append(dict(
            time_ns=ns, src=socket.inet_ntoa(struct.pack('<I', saddr)), dst=socket.inet_ntoa(struct.pack('<I', daddr)),
            sport=socket.ntohs(sport), dport=socket.ntohs(dport),
            tcp_flags=[name for bit, name in _TCP_FLAGS if flags & bit]))
    return dict(hits=hits, sightings=sightings, overwritten=max(0, hits - SIGHTINGS))
