"""The BPF filter's bytecode: one program per filter, jumps resolved, the match as immediates."""

import socket
import struct

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import bpf


def _insns(flt):
    code = flt.instructions(map_fd=7)
    return [struct.unpack('<BBhi', code[i:i + 8]) for i in range(0, len(code), 8)]


def test_the_name_says_what_the_program_does():
    a, b = bpf.Filter('xdp', dport=12345), bpf.Filter('xdp', dport=12346)
    assert a.name == bpf.Filter('xdp', dport=12345).name and a.name != b.name
    assert a.name.startswith(bpf.NAME_PREFIX) and len(a.name) <= 15


@pytest.mark.parametrize('hook', ['xdp', 'tc'])
@pytest.mark.parametrize('action', ['pass', 'drop'])
def test_jumps_land_inside_and_the_verdicts_are_the_hooks(hook, action):
    insns = _insns(bpf.Filter(hook, dport=80, sport=1024, action=action))
    for index, (code, regs, off, imm) in enumerate(insns):
        if code & 0x07 == 0x05 and code not in (0x85, 0x95):  # conditional and unconditional jumps
            assert 0 <= index + 1 + off < len(insns)
    exits = [i for i, insn in enumerate(insns) if insn[0] == 0x95]
    verdicts = [insns[i - 1][3] for i in exits]
    passes, drops = bpf.VERDICTS[hook]
    assert verdicts == [drops if action == 'drop' else passes, passes]
    ports = [imm for code, regs, off, imm in insns if code == 0x55 and imm in (socket.htons(80), socket.htons(1024))]
    assert sorted(ports) == sorted([socket.htons(80), socket.htons(1024)])
    maps = [insn for insn in insns if insn[0] == 0x18]
    assert len(maps) == 2 and all(insn[3] == 7 and insn[1] >> 4 == 1 for insn in maps)  # BPF_PSEUDO_MAP_FD


def test_later_fragments_pass_unjudged():
    insns = _insns(bpf.Filter('xdp', dport=80))
    index = next(i for i, insn in enumerate(insns) if insn[0] == 0x69 and insn[2] == 20)  # the fragment field
    assert insns[index + 1][0] == 0x57 and insns[index + 1][3] == 0xff1f  # its 13 offset bits, read little-endian
    assert insns[index + 2][0] == 0x55 and insns[index + 2][3] == 0


def test_any_port_compares_no_port():
    insns = _insns(bpf.Filter('tc', protocol='udp'))
    assert not [1 for code, regs, off, imm in insns if code == 0x69 and off in (14, 16)]
