#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: iptables_rules
short_description: Declarative, atomic iptables rules (legacy or nft backend) for one table
version_added: 0.2.0
description:
  - Manages the rules of one or more chains of one table, with iptables-legacy or iptables-nft,
    for IPv4 or IPv6, inside a network namespace or, with O(host=true), on the host.
  - Rules are compared in the form the kernel gives back (C(*-save) output), not with C(-C).
    When a chain already holds rules, the wanted rules are first restored into a scratch network
    namespace, which validates them and yields their normalized form; so a rule written as
    C(-p tcp --dport 22) matches the kernel's C(-p tcp -m tcp --dport 22).
  - Every change of one call goes into one C(*-restore --noflush) transaction (waiting for the xtables
    lock). When any rule is refused, nothing is applied and the error names the rule and repeats the
    tool's message.
  - Reading never creates a table. C(*-save) without C(-t) dumps only the tables that exist, so an absent
    iptables-legacy table is not created, and its hooks not registered, until a change is written to it. Rules for
    a table the target does not have yet are always tried in a scratch namespace first, since
    C(iptables-legacy-restore) creates the table even when it then refuses a rule; so a refused call leaves the
    target's tables as they were.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - iptables (C(iptables-legacy-save)/C(-restore) or C(iptables-nft-save)/C(-restore)) on the target
  - iproute2 (C(ip netns)) on the target, for the scratch namespace
  - root on the target
extends_documentation_fragment:
  - pflab.netfilter.target
options:
  backend:
    description:
      - V(legacy) uses C(iptables-legacy) (C(ip6tables-legacy)); V(nft) uses C(iptables-nft) (C(ip6tables-nft)).
      - V(auto) uses whatever C(iptables) (C(ip6tables)) is on the target; RV(backend) tells which.
    type: str
    choices: [auto, legacy, nft]
    default: auto
  ip_version:
    description: IPv4 (C(iptables)) or IPv6 (C(ip6tables)).
    type: int
    choices: [4, 6]
    default: 4
  table:
    description: The table.
    type: str
    choices: [filter, nat, mangle, raw, security]
    default: filter
  chains:
    description: The chains to manage, each with its rules.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Chain name. A chain that is not built in is created when missing (O(state=present)).
        type: str
        required: true
      policy:
        description: Policy of a built-in chain.
        type: str
        choices: [ACCEPT, DROP]
      rules:
        description:
          - Rules in iptables argument syntax without the chain, for example
            C(-p tcp --dport 12345 -j LOG --log-prefix ipt-input). Quote an argument that holds spaces.
          - With O(state=absent) and no O(chains[].rules), a chain that is not built in is deleted.
        type: list
        elements: str
  state:
    description:
      - V(present) adds the rules that are missing at the end of their chain (or, with O(exclusive), makes
        the chain hold exactly these rules in this order). V(absent) removes every rule equal to one given.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - With O(state=present), each chain given holds exactly its O(chains[].rules), in this order;
        other rules in it are removed.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Computes the change (rules are still tried in a scratch namespace) and applies nothing.
  diff_mode:
    support: full
    description: Before and after of the table in C(*-save) form, without counters.
notes:
  - Rules cannot hold quotes, backslashes, control characters or the shell metacharacters C($ ` ; | & < >),
    since they travel in iptables-restore's line format.
  - A C(--log-prefix) longer than 29 characters is refused; the kernel would cut it. A rule is at most 4096
    characters.
seealso:
  - module: pflab.netfilter.nft_rules
  - module: pflab.netfilter.netns_lab
'''

EXAMPLES = r'''
- name: The article's first experiment, in a lab's server namespace
  pflab.netfilter.iptables_rules:
    backend: legacy
    netns: pfl-demo-server
    chains:
      - name: INPUT
        rules:
          - -p tcp --dport 12345 -j LOG --log-level 4 --log-prefix ipt-input
          - -p tcp --dport 12345 -j DROP
      - name: OUTPUT
        rules:
          - -p tcp --sport 12345 -j LOG --log-level 4 --log-prefix ipt-output
    exclusive: true

- name: A chain of its own, with IPv6 and the nft backend
  pflab.netfilter.iptables_rules:
    backend: nft
    ip_version: 6
    netns: pfl-demo-server
    chains:
      - name: LAB-LOG
        rules:
          - -j LOG --log-prefix "ip6 lab "
      - name: INPUT
        rules:
          - -p tcp --dport 12345 -j LAB-LOG

- name: Remove the DROP rule again
  pflab.netfilter.iptables_rules:
    backend: legacy
    netns: pfl-demo-server
    state: absent
    chains:
      - name: INPUT
        rules:
          - -p tcp --dport 12345 -j DROP
'''

RETURN = r'''
backend:
  description: The backend used, with its save and restore commands.
  returned: always
  type: dict
  sample: {name: legacy, save: /usr/sbin/iptables-legacy-save, restore: /usr/sbin/iptables-legacy-restore}
changes:
  description: What changed (or, in check mode, would change), chain by chain.
  returned: always
  type: list
  elements: str
  sample: ['INPUT: 2 rules added, 0 removed']
rules:
  description: Rules of each managed chain after the call, in the kernel's form.
  returned: always
  type: dict
  sample: {INPUT: ['-p tcp -m tcp --dport 12345 -j LOG --log-prefix ipt-input', '-p tcp -m tcp --dport 12345 -j DROP']}
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import xtables
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(argument_spec=xtables.ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = xtables.manage(module, module.params, module.check_mode, module._diff)
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
