# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which packet filters hold hooks in a namespace, in registration order.

The kernel runs hooks at one point by priority, lowest first, and at equal
priority the hook registered last first. No interface lists the hooks on every
kernel (``nft list hooks`` needs CONFIG_NETFILTER_NETLINK_HOOK), so the order of
registration is measured by taking a snapshot after each change:

* an iptables-legacy table registers its hooks when it first exists in the
  namespace (/proc/net/ip_tables_names, read from inside it: no observer effect);
* an nf_tables base chain (nft, and iptables-nft's tables) registers its hook when
  it is created, and again when it is deleted and re-created, which its new
  (table handle, chain handle) pair shows;
* an XDP program or tc filter (bpf_filter.snapshot) registers when it is attached,
  and again when another program takes its place (a new program id); an OVS flow
  (ovs.snapshot) when it is added.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pflab.netfilter.plugins.module_utils import netns, nft, xtables

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


def point(family, hook):
    """Where a netfilter hook sits on a packet's way (steps.base.POINTS), or the hook when it is off
    a locally delivered packet's way (forward, arp)."""
    if family in ('ip', 'ip6', 'inet'):
        return hook
    if family == 'netdev':
        return 'netdev-%s' % hook
    return 'bridge' if family == 'bridge' else '%s-%s' % (family, hook)


def snapshot(name, objects):
    """{key: entry} of the netfilter hooks in namespace ``name`` now; ``objects`` is its ``list ruleset``."""
    return netfilter_entries(legacy_tables(name), nft.base_chains(objects))


def netfilter_entries(legacy, chains):
    """{key: entry} of the hooks of ``legacy`` ({family: tables}) and of nf_tables base ``chains``
    (nft.base_chains), legacy tables first. An nf_tables chain's filter is None: the step that made it
    names it."""
    found = {}
    for family in sorted(legacy):
        for table in sorted(legacy[family]):
            for hook, priority in LEGACY_HOOKS.get(table, ()):
                found[('legacy', family, table, hook)] = dict(
                    filter='iptables-legacy', layer='netfilter', family=family, table=table, chain=hook.upper(),
                    hook=hook, point=point(family, hook), priority=priority, where='%s %s %s' % (family, table, hook.upper()),
                    identity=None)
    for key in sorted(chains, key=lambda k: chains[k]['identity']):
        chain = chains[key]
        found[('nft',) + key] = dict(filter=None, layer='netfilter', family=key[0], table=key[1], chain=key[2],
                                     hook=chain['hook'], point=point(key[0], chain['hook']),
                                     priority=chain['priority'], where=' '.join(key), identity=chain['identity'])
    return found


class Registry:
    """Registration order of the hooks and attachments in one namespace, followed change by change.

    ``observe(step, filter_name, found)`` takes the snapshot ``found`` ({key: entry}
    from the layers' readers) after a step made by ``filter_name``: a key not seen
    before, or seen with another identity (a re-created chain, another program),
    registers; a key gone was unregistered by that step.
    """

    def __init__(self):
        self.alive = {}
        self.removed = []
        self._sequence = 0

    def _remove(self, key, step):
        entry = self.alive.pop(key)
        entry['removed_by_step'] = step
        self.removed.append(entry)

    def observe(self, step, filter_name, found):
        for key in [k for k in self.alive if k not in found]:
            self._remove(key, step)
        for key, entry in found.items():
            old = self.alive.get(key)
            if old is not None and old['identity'] == entry['identity']:
                continue
            if old is not None:
                self._remove(key, step)
            self._sequence += 1
            self.alive[key] = dict(entry, filter=entry['filter'] or filter_name, step=step, registered=self._sequence)

    def entries(self, xtables_rules, objects):
        """The hooks alive now in registration order, netfilter ones with the LOG prefixes of their chain.

        ``xtables_rules`` maps (filter, family, table) to the xtables.Table that
        iptables-legacy-save or iptables-nft-save gives (nft's JSON shows iptables-nft's
        LOG as an opaque xt target); ``objects`` is ``list ruleset``.
        """
        out = []
        for entry in sorted(self.alive.values(), key=lambda e: e['registered']):
            entry = _shown(entry)
            if entry['layer'] == 'netfilter':
                table = xtables_rules.get((entry['filter'], entry['family'], entry['table']))
                if entry['filter'].startswith('iptables'):
                    entry['log_prefixes'] = log_prefixes_xtables(table.rules.get(entry['chain'], [])) if table else []
                else:
                    entry['log_prefixes'] = log_prefixes_nft(objects, entry['family'], entry['table'], entry['chain'])
            out.append(entry)
        return out

    def removed_entries(self):
        return [_shown(entry) for entry in self.removed]


def _shown(entry):
    return dict((k, v) for k, v in entry.items() if k != 'identity')
