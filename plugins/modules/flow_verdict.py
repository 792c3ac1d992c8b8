#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: flow_verdict
short_description: What a host's live rules do to one flow, answered by its own kernel in a lab twin
version_added: 0.8.0
description:
  - Reads the host's packet filters read-only, as M(pflab.netfilter.filter_facts) does (iptables-legacy tables that
    exist, iptables-nft, native nftables, IPv4 and IPv6). Copies them into the C(host) namespace of a fresh lab (the
    twin) whose interfaces carry the host's interface names and addresses. Sends each flow's packet there for real
    from a peer namespace that carries the flow's source address (or, for V(out), from the twin's C(host) to a peer).
  - The rules are loaded in each registration order that the host's hooks leave open. At equal priority at one hook,
    the filter registered last runs first, and no interface shows that order without C(nft list hooks). Each order
    gets a fresh twin. A verdict that differs between orders is the headline. Where the kernel lists its hooks, the
    live order is marked.
  - Which rule decided is read from counters, not LOG rules. The twin gets one counter before each copied nft rule's
    verdict and a counting last rule in each nft base chain (its policy). iptables rules and policies count on their
    own. The drop witness (C(skb:kfree_skb) in a tracefs instance) names the filter that dropped, and ends a probe
    early.
  - A flow the twin cannot reproduce is answered C(not replayable) with the reason, never with a made-up verdict.
    This covers an interface that is missing, a bridge, a bridge port or a tunnel, or that has an XDP program or tc
    filters. It covers a flow the host would forward rather than receive or send itself. It also covers a rule the
    packet or its answer may reach that matches on sockets, owners, cgroups, marks no copied rule sets, ipsets,
    chance, rates or earlier traffic, the routes (C(fib), rpfilter), or that changes the destination (DNAT) or hands
    the packet to a userspace program.
  - The flow is the first packet of a new connection (conntrack sees it as NEW in the twin as on the host). The flows
    of one order share the twin, so two flows that would be one connection (the same addresses and ports, either
    way) are refused. The twin has no listener, so an accepted packet is answered by the stack (a reset, or an ICMP
    port unreachable for UDP).
  - What the copied rules would write outside the twin is left out of the copy. This covers LOG, AUDIT, IDLETIMER
    and LED targets and nft C(log) statements; the rule stays, so it still counts.
  - When the counters and the witness do not say why a packet got no answer, the verdict is V(undetermined). The
    same holds when the verdict rests on a rule of a chain that both the packet and its answer pass, and the rule's
    matches do not tell which of them it took.
  - The host is never changed and no packet is sent on it. The twin's namespaces are removed whatever happens; a twin
    left by a process that was killed is removed by the next run (or M(pflab.netfilter.lab_cleanup)).
author:
  - pflab.netfilter developers (@pflab)
options:
  flows:
    description:
      - The flows to check, each a mapping or a line of text C(<tcp|udp> <source>[:<port>] > <destination>:<port>
        <in|out> <interface>). IPv6 addresses are written in brackets, for example C([2001:db8::1]:443).
        Link-local, loopback and multicast addresses are refused.
      - V(in) is a packet the host receives on O(flows[].interface), addressed to one of its own addresses. V(out) is
        a packet the host sends from one of its addresses out of that interface.
      - At most 256 flows.
    type: list
    elements: raw
    required: true
    suboptions:
      name:
        description: The flow's name in results and reports (default its text form). 1-100 printable characters.
        type: str
      protocol:
        description: The transport protocol.
        type: str
        choices: [tcp, udp]
        default: tcp
      source:
        description: Source address (IPv4 or IPv6, unicast, not the loopback).
        type: str
        required: true
      source_port:
        description: Source port; default 40000 plus the flow's place in the list.
        type: int
      destination:
        description: Destination address, of the same IP version.
        type: str
        required: true
      destination_port:
        description: Destination port.
        type: int
        required: true
      interface:
        description: The host's interface the packet arrives on (V(in)) or leaves by (V(out)).
        type: str
        required: true
      direction:
        description: Whether the host receives the packet or sends it.
        type: str
        choices: [in, out]
        default: in
  netns:
    description:
      - Read this network namespace (a name under C(/run/netns)) instead of the host's own, as a stand-in for a host.
      - A path, a symlink and a name bound to the host's own namespace are refused.
    type: str
  timeout_ms:
    description:
      - How long a probe waits for an answer, in milliseconds (1-10000). A drop the witness sees ends it earlier.
    type: int
    default: 250
  max_orders:
    description:
      - The most registration orders to replay (1-120). When the host's ties leave more open, the module fails and
        says so rather than replay some.
    type: int
    default: 24
  api:
    description: How to reach libnftables (V(auto) takes the Python binding when importable, else C(nft -j)).
    type: str
    default: auto
    choices: [auto, binding, cli]
attributes:
  check_mode:
    support: full
    description: The host's rules are only read in any mode; the twin is made and removed in check mode too, and
      what dead runs left is removed first (RV(cleaned)).
  diff_mode:
    support: none
    description: Nothing on the host changes.
seealso:
  - module: pflab.netfilter.filter_facts
  - module: pflab.netfilter.verdict_report
'''

EXAMPLES = r'''
- name: Is TCP 12345 from the client accepted by the lab server's rules, and by which rule?
  pflab.netfilter.flow_verdict:
    netns: pfl-demo-server  # a namespace standing in for a host; leave it out to check the host itself
    flows:
      - tcp 198.18.0.1 > 198.18.0.2:12345 in to-client
      - protocol: udp
        source: 198.18.0.2
        destination: 198.18.0.1
        destination_port: 53
        interface: to-client
        direction: out
  register: checked

- name: Stop when a verdict depends on which filter registered last
  ansible.builtin.assert:
    that: checked.flows | selectattr('depends_on_order') | list | length == 0
    fail_msg: "{{ checked.flows | selectattr('depends_on_order') | map(attribute='headline') }}"
'''

RETURN = r'''
host:
  description: What was read. The namespace read (or null), the kernel, whether it lists its hooks, the reading's
    digest, its rule count and the units loaded into a twin.
  returned: always
  type: dict
  sample: {netns: null, kernel: {release: 6.18.44}, hooks_listed: false, rules: 12,
           units: [iptables-legacy, nftables inet filter]}
groups:
  description: Units that share a priority at one hook point (their order depends on registration).
  returned: always
  type: list
  elements: dict
  sample: [{point: ipv4/input, priority: 0, units: [iptables-legacy, nftables inet filter], known: false}]
orders:
  description:
    - One entry per order replayed. Each has its index and the units in load order (the last loaded runs first among
      equals), and which unit runs first in each group (C(runs_first)).
    - C(live) is whether this is the host's own order (null when not known). C(registered) lists the hooks the twin
      measured in registration order. C(loaded) tells whether the rules loaded, and C(reason) why not. C(duration_ms)
      is the time the order took.
  returned: always
  type: list
  elements: dict
flows:
  description:
    - Per flow, in the order given. C(name), C(flow) (the validated fields, the source port filled in),
      C(replayable) and C(reason) (why not).
    - C(verdict) is V(accepted), V(dropped) or V(rejected) when all orders agree, V(depends on order) when they do
      not, V(not replayable) (with C(reason)), or V(undetermined) when an order's counters and witness do not say
      (nothing counted the lost packet, or only a rule of a chain both the packet and its answer pass).
    - C(depends_on_order) is a boolean, as is C(rule_depends_on_order) (the deciding rule differs between orders).
      C(live) is the verdict of the host's own order when known. C(headline) says which verdict comes with which
      order.
    - C(orders) holds one result per order. Each has the C(verdict) and C(decided_by) (the rule or policy that
      decided, with filter, family, table, chain, position, rule text and packets counted, or null). It has C(why),
      C(outcome) (V(refused), V(unreachable), V(dropped), V(timeout), or V(answered) for a datagram answered in
      kind), C(decided) (what ended the probe), C(source_port) and C(elapsed_ms).
    - C(path) and C(answer) list every rule and policy whose counter the packet or its answer raised. They are
      ordered by hook, then by the priority and registration of their base chain. C(shared) lists the rules of
      chains both pass whose matches do not tell whose they are. C(witness) lists the filters seen dropping.
  returned: always
  type: list
  elements: dict
cleaned:
  description: What runs whose owner is gone had left (twins, labs) and was removed first; the module reports
    C(changed) only then.
  returned: always
  type: list
  elements: str
timing:
  description: Milliseconds to read the host, in total, per packet sent, and the number of packets sent.
  returned: always
  type: dict
  sample: {read_ms: 60.2, total_ms: 412.5, packets: 4, per_flow_ms: 88.1}
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import netns, probe, twin, verdict
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule

ORDERS_MAX = 120
ARGUMENT_SPEC = dict(
    flows=dict(type='list', elements='raw', required=True),
    netns=dict(type='str'),
    timeout_ms=dict(type='int', default=250),
    max_orders=dict(type='int', default=24),
    api=dict(type='str', default='auto', choices=['auto', 'binding', 'cli']),
)


def main():
    module = PflabModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    try:
        if not 1 <= params['timeout_ms'] <= probe.TIMEOUT_MS_MAX:
            raise verdict.FlowError('timeout_ms is a whole number from 1 to %d' % probe.TIMEOUT_MS_MAX)
        if not 1 <= params['max_orders'] <= ORDERS_MAX:
            raise verdict.FlowError('max_orders is a whole number from 1 to %d' % ORDERS_MAX)
        flows = verdict.check_flows(params['flows'])
        if params['netns']:
            netns.resolve(params['netns'])
        result = twin.replay(module, flows, params['netns'], params['api'], params['timeout_ms'], params['max_orders'])
    except (PflabError, OSError) as e:
        module.fail_json(msg='%s' % e)
    module.exit_json(changed=bool(result['cleaned']), **result)


if __name__ == '__main__':
    main()
