# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which packet filters hold netfilter hooks in a namespace, in registration order.

The kernel runs hooks at one point by priority, lowest first, and at equal
priority the hook registered last first. No interface lists the hooks on every
kernel (``nft list hooks`` needs CONFIG_NETFILTER_NETLINK_HOOK), so the order of
registration is measured by taking a snapshot after each change:

* an iptables-legacy table registers its hooks when it first exists in the
  namespace (/proc/net/ip_tables_names, read from inside it: no observer effect);
* an nf_tables base chain (nft, and iptables-nft's tables) registers its hook when
  it is created, and again when it is deleted and re-created, which its new
  (table handle, chain handle) pair shows.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils import netns, xtables

# Hooks and priorities of the legacy tables (NF_IP_PRI_* in linux/netfilter_ipv4.h).
LEGACY_HOOKS = {
    'raw': (('prerouting', -300), ('output', -300)),
    'mangle': tuple((hook, -150) for hook in ('prerouting', 'input', 'forward', 'output', 'postrouting')),
    'nat': (('prerouting', -100), ('output', -100), ('input', 100), ('postrouting', 100)),
    'filter': (('input', 0), ('forward', 0), ('output', 0)),
    'security': (('input', 50), ('forward', 50), ('output', 50)),
}
_LEGACY_NAMES = {'ip': '/proc/self/net/ip_tables_names', 'ip6': '/proc/self/net/ip6_tables_names'}


def legacy_tables(name):
    """{family: set of legacy tables} that exist in namespace ``name``."""
    found = {}
    with netns.entered(name):
        for family, path in _LEGACY_NAMES.items():
            try:
                with open(path) as f:
                    found[family] = set(f.read().split())
            except (IOError, OSError):
                found[family] = set()  # the ip(6)_tables module is not loaded: no legacy table anywhere
    return found


def log_prefixes_nft(objects, family, table, chain):
    prefixes = []
    for rule in (o['rule'] for o in objects if 'rule' in o):
        if (rule['family'], rule['table'], rule['chain']) == (family, table, chain):
            for expr in rule.get('expr', []):
                if isinstance(expr, dict) and 'log' in expr and isinstance(expr['log'], dict) and 'prefix' in expr['log']:
                    prefixes.append(expr['log']['prefix'].strip())
    return prefixes


def log_prefixes_xtables(rules):
    prefixes = []
    for rule in rules:
        words = xtables.split_words(rule)
        for index, word in enumerate(words[:-1]):
            if word == '--log-prefix':
                prefixes.append(words[index + 1].strip())
    return prefixes


class Registry:
    """Registration order of the hooks in one namespace, followed change by change.

    ``observe(step, filter_name, legacy, chains)`` takes the snapshot after a step
    made by ``filter_name`` (the name given to nf_tables chains that step created).
    """

    def __init__(self):
        self.alive = {}
        self.removed = []
        self._sequence = 0

    def _register(self, key, entry):
        self._sequence += 1
        entry['registered'] = self._sequence
        self.alive[key] = entry

    def _remove(self, key, step):
        entry = self.alive.pop(key)
        entry['removed_by_step'] = step
        self.removed.append(entry)

    def observe(self, step, filter_name, legacy, chains):
        for family in sorted(legacy):
            for table in sorted(legacy[family]):
                for hook, priority in LEGACY_HOOKS.get(table, ()):
                    key = ('legacy', family, table, hook)
                    if key not in self.alive:
                        self._register(key, dict(filter='iptables-legacy', family=family, table=table,
                                                 chain=hook.upper(), hook=hook, priority=priority, step=step))
        for key in [k for k in self.alive if k[0] == 'nft' and k[1:] not in chains]:
            self._remove(key, step)
        for name in sorted(chains, key=lambda k: chains[k]['identity']):
            chain = chains[name]
            key = ('nft',) + name
            old = self.alive.get(key)
            if old is not None and old['identity'] == chain['identity']:
                continue
            if old is not None:
                self._remove(key, step)
            self._register(key, dict(filter=filter_name, family=name[0], table=name[1], chain=name[2],
                                     hook=chain['hook'], priority=chain['priority'], step=step,
                                     identity=chain['identity']))

    def entries(self, xtables_rules, objects):
        """The hooks alive now, each with the LOG prefixes of its chain, in registration order.

        ``xtables_rules`` maps (filter, family, table) to the xtables.Table that
        iptables-legacy-save or iptables-nft-save gives (nft's JSON shows iptables-nft's
        LOG as an opaque xt target); ``objects`` is ``list ruleset``.
        """
        out = []
        for dummy, entry in sorted(self.alive.items(), key=lambda item: item[1]['registered']):
            entry = dict((k, v) for k, v in entry.items() if k != 'identity')
            table = xtables_rules.get((entry['filter'], entry['family'], entry['table']))
            if entry['filter'].startswith('iptables'):
                entry['log_prefixes'] = log_prefixes_xtables(table.rules.get(entry['chain'], [])) if table else []
            else:
                entry['log_prefixes'] = log_prefixes_nft(objects, entry['family'], entry['table'], entry['chain'])
            out.append(entry)
        return out

    def removed_entries(self):
        return [dict((k, v) for k, v in entry.items() if k != 'identity') for entry in self.removed]
