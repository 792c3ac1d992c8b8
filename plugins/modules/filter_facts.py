#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: filter_facts
short_description: Read every packet filter of a host (or namespace) without changing it, and name the conflicts
version_added: 0.5.0
description:
  - Reads, for IPv4 and IPv6, the iptables-legacy tables that exist (from C(/proc/net/ip_tables_names) and
    C(ip6_tables_names), then C(*-legacy-save) without C(-t), which would create an absent table), the tables
    iptables-nft owns (C(*-nft-save), and which it calls incompatible), the native nftables ruleset (tables, base
    chains with family, hook, priority, policy, device and rule counts, and who owns each table), which variant
    C(iptables) and C(ip6tables) run, XDP programs per interface (C(ip -d -j link)), tc filters on clsact and
    ingress qdiscs (C(tc -j)), C(bpftool net) where installed, Open vSwitch bridges where C(ovs-vsctl) is, the
    br_netfilter sysctls, the nftables configuration file, the kernel and whether it has legacy xtables.
  - Orders everything that runs at each hook point as the kernel does (by priority, lowest first; receive path XDP,
    tc, nft netdev). Entries of equal priority are marked C(tie), since their order depends on which registered
    last; where the kernel answers C(nft list hooks), its order is used instead.
  - Derives findings from the reading, each with a stable id, a severity, the evidence, its effect on a packet and a
    fix (see RV(ansible_facts.pflab_filter_facts.findings)).
  - Reads only; a test proves the legacy table names, the nft ruleset, the links and attached programs are
    identical afterwards.
author:
  - pflab.netfilter developers (@pflab)
options:
  netns:
    description:
      - Read this network namespace (a name under C(/run/netns)) instead of the host's own. The fleet tests give
        namespaces standing in for hosts this way.
      - A path, a symlink and a name bound to the host's own namespace are refused.
    type: str
  nftables_config:
    description:
      - The nftables configuration file to check for C(flush ruleset) (the reading keeps only that, whether it
        includes other files, and the names of the tables it declares).
      - Default C(/etc/nftables.conf), else C(/etc/sysconfig/nftables.conf); for O(netns), none unless given.
    type: path
  api:
    description: How to reach libnftables (V(auto) takes the Python binding when importable, else C(nft -j)).
    type: str
    default: auto
    choices: [auto, binding, cli]
attributes:
  check_mode:
    support: full
    description: The module only reads.
  diff_mode:
    support: none
    description: Nothing changes.
  facts:
    support: full
    description: The reading is the fact C(pflab_filter_facts).
'''

EXAMPLES = r'''
- name: Read the packet filters of the lab's server namespace
  pflab.netfilter.filter_facts:
    netns: pfl-demo-server

- name: Show where each hook point's chains tie
  ansible.builtin.debug:
    msg: "{{ pflab_filter_facts.hooks | selectattr('entries', 'search', 'tie.: True') | map(attribute='point') }}"

- name: Stop when the reading has a high finding
  ansible.builtin.assert:
    that: pflab_filter_facts.severity != 'high'
    fail_msg: "{{ pflab_filter_facts.findings | map(attribute='title') }}"
'''

RETURN = r'''
ansible_facts:
  description: The reading, as the fact C(pflab_filter_facts). Its full schema is C(schemas/audit.schema.json)
    (C($defs.facts)).
  returned: always
  type: complex
  contains:
    pflab_filter_facts:
      description: The reading and its findings.
      returned: always
      type: dict
      contains:
        schema:
          description: Schema id of the reading.
          type: str
          sample: pflab.netfilter/filter_facts/1
        kernel:
          description: Release, major.minor version, and whether the kernel has legacy xtables.
          type: dict
          sample: {release: 6.18.44, version: '6.18', legacy_xtables: true}
        commands:
          description: The variant C(iptables) and C(ip6tables) run (V(legacy), V(nf_tables), or null when missing).
          type: dict
          sample: {iptables: nf_tables, ip6tables: nf_tables}
        legacy:
          description: Per IP version, the iptables-legacy tables that exist, with each chain's policy and rule count.
          type: dict
          sample: {ipv4: {tables: {filter: {chains: {INPUT: {policy: DROP, rules: 2}}}}}, ipv6: {tables: {}}}
        iptables_nft:
          description: Per IP version, the tables iptables-nft shows, the ones it calls incompatible, and whether it
            warned that legacy tables exist.
          type: dict
          sample: {ipv4: {tables: {}, incompatible: [filter], legacy_warning: false}}
        nftables:
          description: nf_tables tables (family, name, owner C(iptables-nft) or C(nftables), chain and rule counts)
            and base chains.
          type: dict
        interfaces:
          description: Interfaces with XDP programs or tc filters, and what is attached.
          type: list
          elements: dict
        bpftool:
          description: C(bpftool net show) attachments, or null when bpftool is not installed.
          type: list
          elements: dict
        ovs:
          description: Open vSwitch bridges and ports, or why they were not read.
          type: dict
        br_netfilter:
          description: The br_netfilter sysctls (null when the module is not loaded).
          type: dict
        nftables_config:
          description: The configuration file's path, whether it exists, starts with or contains C(flush ruleset),
            includes files, and the tables it declares.
          type: dict
        hooks:
          description: Per hook point (C(ipv4/input), C(ingress/eth0) ...), everything that runs there in order, with
            C(tie) on entries of equal priority whose order is unknown, and C(order) (V(priority) or
            V(nft list hooks)).
          type: list
          elements: dict
        hooks_listed:
          description: Whether the kernel answered C(nft list hooks) (the true order at equal priority).
          type: bool
        digest:
          description: sha256 of the reading without ids and names of the namespace; identical hosts share it.
          type: str
        findings:
          description: Findings, worst first. Each has C(id), C(severity) (high, medium, low, info), C(title),
            C(evidence) (at most 10 items; C(evidence_count) says how many there were), C(effect), C(fix), and
            C(where) when it is about one hook point, table or file.
          type: list
          elements: dict
        severity:
          description: The worst severity among the findings, or null.
          type: str
          sample: high
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import facts, findings, netns
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule

ARGUMENT_SPEC = dict(
    netns=dict(type='str'),
    nftables_config=dict(type='path'),
    api=dict(type='str', default='auto', choices=['auto', 'binding', 'cli']),
)


def main():
    module = PflabModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        if module.params['netns']:
            netns.resolve(module.params['netns'])
        reader = facts.Reader(module, module.params['netns'], module.params['api'])
        reading, raw = facts.read(reader, module.params['nftables_config'])
        reading['findings'] = findings.find(reading, raw)
        reading['severity'] = findings.worst(reading['findings'])
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(changed=False, ansible_facts={'pflab_filter_facts': reading})


if __name__ == '__main__':
    main()
