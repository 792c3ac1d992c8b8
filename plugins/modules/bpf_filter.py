#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: bpf_filter
short_description: A small eBPF packet filter at XDP or tc on one interface, with hit counters and sightings
version_added: 0.6.0
description:
  - Attaches one eBPF program to an interface, at XDP (native in the driver, or generic) or at tc (a clsact
    qdisc's ingress or egress, direct action), inside a network namespace or, with O(host=true), on the host.
  - The program matches IPv4 TCP or UDP by O(dport) and/or O(sport) and passes or drops what matches. It counts its
    hits in a BPF map and keeps the last 16 sightings (CLOCK_MONOTONIC time, addresses, ports, TCP flags), which
    M(pflab.netfilter.scenario) orders with LOG records and drops in one trace.
  - The program's bytecode is built by the module itself and loaded with bpf(2); the target needs no compiler,
    object file or bpftool. Nothing is pinned; the attachment holds the program and its map, so detaching frees both.
  - The program's name (C(pfl) followed by a digest of what it does) tells whether the attached one is the one asked for; a
    second run changes nothing. A different pflab program at the same place is replaced (tc) or swapped atomically
    (XDP in the same mode). A program pflab did not load is never replaced or removed; the module fails instead.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - Linux with bpf(2) and root (CAP_BPF and CAP_NET_ADMIN) on the target
  - iproute2 (C(ip), C(tc)) and pyroute2 (Debian/Ubuntu package C(python3-pyroute2)) on the target
extends_documentation_fragment:
  - pflab.netfilter.target
options:
  interface:
    description: The interface (in O(netns)) that carries the program.
    type: str
    required: true
  hook:
    description:
      - V(xdp) runs before the kernel builds a socket buffer (or just after, in V(generic) O(mode)); V(tc) runs at the
        clsact qdisc, after XDP on the way in and last on the way out.
    type: str
    required: true
    choices: [xdp, tc]
  mode:
    description: With O(hook=xdp), V(native) (in the driver; veth has it) or V(generic) (any interface).
    type: str
    choices: [native, generic]
    default: native
  direction:
    description: With O(hook=tc), V(ingress) (packets received) or V(egress) (packets sent).
    type: str
    choices: [ingress, egress]
    default: ingress
  priority:
    description: With O(hook=tc), the filter's preference (lower runs first), 1 to 65535.
    type: int
    default: 1
  protocol:
    description: The IPv4 protocol matched.
    type: str
    choices: [tcp, udp]
    default: tcp
  dport:
    description: The destination port matched; any when not given.
    type: int
  sport:
    description: The source port matched; any when not given.
    type: int
  action:
    description:
      - What happens to a matching packet. V(drop) is XDP_DROP or TC_ACT_SHOT. V(pass) is XDP_PASS, or at tc
        TC_ACT_UNSPEC (the next filter decides); both count the hit and keep the sighting.
      - Packets that do not match always go on as V(pass).
    type: str
    choices: [pass, drop]
    default: drop
  label:
    description:
      - What traces and reports call this filter (1-29 of a-z, 0-9 and '-'); default where it sits (V(xdp),
        V(xdpgeneric), V(tc-ingress), V(tc-egress), with C(-<priority>) when that is not 1).
    type: str
  state:
    description: V(present) attaches the program; V(absent) detaches the one pflab attached there.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Reads what is attached and says what would change; loads and attaches nothing.
  diff_mode:
    support: full
    description: The program at the attachment point before and after.
notes:
  - A kernel without bpf(2), or with it locked down, and an interface whose driver has no native XDP give an error
    that says so (use O(mode=generic) for the latter).
  - M(pflab.netfilter.filter_facts) reports attached programs as C(xdp-before-netfilter) and C(tc-before-netfilter).
seealso:
  - module: pflab.netfilter.scenario
  - module: pflab.netfilter.filter_facts
'''

EXAMPLES = r'''
- name: Part 2 of the article, XDP drops TCP 12345 before netfilter sees it
  pflab.netfilter.bpf_filter:
    netns: pfl-demo-server
    interface: to-client
    hook: xdp
    dport: 12345
    action: drop

- name: Count the SYN-ACKs leaving at tc egress, let them pass
  pflab.netfilter.bpf_filter:
    netns: pfl-demo-server
    interface: to-client
    hook: tc
    direction: egress
    sport: 12345
    action: pass
  register: egress

- name: Detach both
  pflab.netfilter.bpf_filter:
    netns: pfl-demo-server
    interface: to-client
    hook: "{{ item }}"
    state: absent
  loop: [xdp, tc]
'''

RETURN = r'''
changes:
  description: What changed (or, in check mode, would change).
  returned: always
  type: list
  elements: str
  sample: ['attach xdp (native) on to-client: pfl3f9a0c1d22e4 (id None)']
label:
  description: What traces call this filter.
  returned: always
  type: str
  sample: xdp
program:
  description:
    - The program at the attachment point now, null when none. C(name) and C(id); for XDP C(mode) and C(tag), for tc
      C(kind) (V(bpf)). In check mode, before a first attachment, C(id) is null.
  returned: always
  type: dict
  sample: {name: pfl3f9a0c1d22e4, id: 212, mode: native, tag: 23d82c16d53a86f5}
hits:
  description: Packets the program matched since it was attached.
  returned: when a program is attached and not in check mode before its first attachment
  type: int
  sample: 1
sightings:
  description: The last 16 matches, oldest first, with their CLOCK_MONOTONIC time in ns.
  returned: with RV(hits)
  type: list
  elements: dict
  sample: [{time_ns: 16499022678669, src: 198.18.0.1, dst: 198.18.0.2, sport: 56273, dport: 12345, tcp_flags: [SYN]}]
overwritten:
  description: Matches whose sighting a later one overwrote (the ring holds 16).
  returned: with RV(hits)
  type: int
  sample: 0
'''

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.pflab.netfilter.plugins.module_utils import bpf_filter, lab
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(argument_spec=bpf_filter.ARGUMENT_SPEC, supports_check_mode=True)
    if module.params['hook'] == 'tc' and lab.PYROUTE2_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('pyroute2'), exception=lab.PYROUTE2_IMPORT_ERROR)
    try:
        result = bpf_filter.manage(module, module.params, module.check_mode, module._diff)
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
