#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: nft_rules
short_description: Declarative, atomic nftables tables, chains and rules, or a whole ruleset file
version_added: 0.2.0
description:
  - Manages one nftables table with its chains (base chains with type, hook, priority, policy and netdev
    device) and their rules, inside a network namespace or, with O(host=true), on the host, through the
    libnftables JSON API, the Python binding when importable, else C(nft -j) (same JSON either way).
  - Rules are given as nft rule text and compared in the JSON form the kernel gives back. The wanted rules are
    first added in a scratch network namespace, which validates them and yields that form.
  - All changes of one call are one nft transaction, sent as JSON built from the checked fields and the kernel's
    rendering of the rules; no text given to the module reaches the target as text. When any rule is refused
    nothing is applied and the error names the rule and repeats nft's message (without the input lines nft echoes).
  - The Python binding runs in a child process per namespace, since libnftables aborts its process on some inputs;
    such a crash fails the call with the signal's name.
  - With O(ruleset_file) or O(ruleset), loads a whole ruleset the way the article does (C(nft -f)), but only when
    the ruleset would change (or with O(reload)). A ruleset may not C(include) other files. A file that deletes and re-creates base chains (C(flush ruleset))
    re-registers their hooks, which changes their order against other hooks of equal priority; RV(reregistered_hooks)
    lists them.
author:
  - pflab.netfilter developers (@pflab)
requirements:
  - nftables, with its Python binding (C(python3-nftables)) or the C(nft) command, on the target
  - iproute2 (C(ip netns)) on the target, for the scratch namespace
  - root on the target
extends_documentation_fragment:
  - pflab.netfilter.target
options:
  family:
    description: Table family.
    type: str
    choices: [ip, ip6, inet, arp, bridge, netdev]
    default: inet
  table:
    description: Table name. Required unless O(ruleset_file) or O(ruleset) is given.
    type: str
  chains:
    description:
      - Chains to manage. With O(state=absent) and no O(chains), the whole table is deleted.
    type: list
    elements: dict
    suboptions:
      name:
        description: Chain name.
        type: str
        required: true
      type:
        description: Base chain type (default V(filter) when O(chains[].hook) is set).
        type: str
        choices: [filter, nat, route]
      hook:
        description: Hook of a base chain; without it the chain is a regular chain.
        type: str
        choices: [prerouting, input, forward, output, postrouting, ingress, egress]
      priority:
        description: Base chain priority (default 0, the priority of iptables' filter table).
        type: int
      policy:
        description: Base chain policy.
        type: str
        choices: [accept, drop]
      device:
        description: Device of a netdev base chain, an interface name (at most 15 characters, no quotes or spaces).
        type: str
      rules:
        description:
          - Rules as nft rule text, for example C(tcp dport 12345 log prefix "nft-input " level warn accept); one
            rule per entry, without newlines, other control characters or C(;), at most 65536 characters.
          - With O(state=absent) and no O(chains[].rules), the chain is deleted.
        type: list
        elements: str
  state:
    description:
      - V(present) adds what is missing (with O(exclusive), each chain holds exactly its rules in order);
        V(absent) removes the rules given, a chain given without rules, or the table when no chain is given.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description: With O(state=present), each chain given holds exactly its O(chains[].rules), in this order.
    type: bool
    default: false
  ruleset_file:
    description:
      - Path on the target of a ruleset file to load as C(nft -f) does, instead of O(table) and O(chains).
      - A regular file of UTF-8 text, at most 16 MiB, without C(include) statements. When nft refuses it, the error
        says how many errors nft found but not what they are, since they would quote the file (C(nft -c -f) on the
        target shows them).
    type: path
  ruleset:
    description:
      - A ruleset as nft text, loaded as O(ruleset_file) is; for rulesets kept in playbooks or scenarios.
    type: str
  reload:
    description: Load O(ruleset_file) or O(ruleset) even when the ruleset would not change (this re-registers the hooks it re-creates).
    type: bool
    default: false
  api:
    description: How to reach libnftables; V(auto) prefers the Python binding.
    type: str
    choices: [auto, binding, cli]
    default: auto
attributes:
  check_mode:
    support: full
    description: Computes the change (rules are still tried in a scratch namespace) and applies nothing.
  diff_mode:
    support: full
    description: >-
      Before and after as C(nft list table) text (C(nft list ruleset) with O(ruleset_file) or O(ruleset)),
      counters left out.
seealso:
  - module: pflab.netfilter.iptables_rules
'''

EXAMPLES = r'''
- name: The article's nftables rules, in a lab's server namespace
  pflab.netfilter.nft_rules:
    netns: pfl-demo-server
    family: inet
    table: filter
    chains:
      - name: input
        hook: input
        priority: 0
        rules:
          - tcp dport 12345 log prefix "nft-input " level warn accept
      - name: output
        hook: output
        priority: 0
        rules:
          - tcp sport 12345 log prefix "nft-output " level warn accept
    exclusive: true

- name: Load a whole ruleset file as the article did (nft -f with flush ruleset)
  pflab.netfilter.nft_rules:
    netns: pfl-demo-server
    ruleset_file: "{{ playbook_dir }}/article.nft"  # a file on the target; here the controller is the target
    reload: true
  register: loaded

- name: Remove the table
  pflab.netfilter.nft_rules:
    netns: pfl-demo-server
    family: inet
    table: filter
    state: absent
'''

RETURN = r'''
api:
  description: How libnftables was reached.
  returned: always
  type: str
  sample: libnftables binding
changes:
  description: What changed (or, in check mode, would change).
  returned: always
  type: list
  elements: str
  sample: ['create table inet filter', 'create chain input', 'input: 1 rules added']
reregistered_hooks:
  description:
    - Base chains (C(family table chain hook)) deleted and re-created by O(ruleset_file), so their hooks now run
      before other hooks of equal priority registered earlier.
  returned: when O(ruleset_file) or O(ruleset) is given
  type: list
  elements: str
  sample: ['inet filter input input']
'''

from ansible_collections.pflab.netfilter.plugins.module_utils import nft
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.module import PflabModule


def main():
    module = PflabModule(argument_spec=nft.ARGUMENT_SPEC, supports_check_mode=True, **nft.ARGUMENT_RULES)
    try:
        result = nft.manage(module, module.params, module.check_mode, module._diff)
    except (PflabError, OSError) as e:
        module.fail_json(msg=str(e))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
