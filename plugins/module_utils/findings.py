# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Conflicts between the packet filters of one host, from a reading of them (facts.read): pure logic.

Each finding has a stable ``id`` (one of IDS), a ``severity`` that follows what
packets suffer (high: traffic is dropped or let through against one of the rule
sets, or the tools that manage the rules break; medium: something runs before the
firewall rules and may drop; low: the order changes what is logged or counted;
info: harmless but worth knowing), the ``evidence`` (which tables, chains and
rules), its ``effect`` on a packet and a ``fix``. Where the order of two hooks
is not known (no ``nft list hooks``), the finding says so and states no order.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.pflab.netfilter.plugins.module_utils import chains

SEVERITIES = ('high', 'medium', 'low', 'info')
IDS = ('mixed-backends', 'stale-legacy', 'priority-tie', 'nft-in-iptables-nft-table', 'kube-backend-mismatch',
       'accept-overridden', 'flush-ruleset-config', 'xdp-before-netfilter', 'tc-before-netfilter',
       'no-legacy-support')
_FAMILIES = {'ipv4': 'ip', 'ipv6': 'ip6'}  # the nf_tables family of each iptables IP version
EVIDENCE_MAX = 10  # items of evidence kept per finding; the count says how many there were
_K8S_HINTS = ('KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY')
_K8S_CHAINS = re.compile(r'(?:KUBE-|cali-|CILIUM_)')
_UNKNOWN_ORDER = ('their order depends on which registered last (the last runs first); this kernel does not list '
                  'its hooks (no nft list hooks), so the order is unknown here')


def _finding(fid, severity, title, evidence, effect, fix, where=None):
    out = dict(id=fid, severity=severity, title=title, effect=effect, fix=fix,
               evidence=evidence[:EVIDENCE_MAX], evidence_count=len(evidence))
    if where is not None:
        out['where'] = where
    return out


def rank(severity):
    """0 for high ... 3 for info; 4 for anything else (no finding)."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def worst(found):
    """The highest severity among findings, or None."""
    return min((f['severity'] for f in found), key=rank) if found else None


def _rules(tables):
    """(rule count, whether any rule or policy drops) of {ipver: {name: xtables.Table}}."""
    count, drops = 0, False
    for table_map in tables.values():
        for table in table_map.values():
            for chain, rules in table.rules.items():
                count += len(rules)
                drops = drops or table.policies.get(chain) == 'DROP' or any(
                    re.search(r'-j (DROP|REJECT)\b', r) for r in rules)
    return count, drops


def _overridden(a, b):
    """A's accepts that B drops whatever happens (B drops unconditionally, and accepts none of them first)."""
    if a is b or not a.accepts or b.type != 'filter' or not b.unconditional_drop:
        return []
    own = [scope for scope, dummy, exact in b.accepts if exact]
    return [text for scope, text, dummy in a.accepts if not any(chains.covers(o, scope) for o in own)]


def _mixed_and_stale(facts, raw):
    found = []
    legacy_count = _rules(raw['legacy'])[0]
    nft_tables = [t for t in facts['nftables']['tables'] if t['rules'] or t['owner'] == 'nftables']
    if legacy_count and nft_tables:
        found.append(_finding(
            'mixed-backends', 'info', 'Rules in both iptables-legacy and nf_tables',
            ['iptables-legacy: %d rules' % legacy_count] +
            ['nf_tables %s %s (%s): %d rules' % (t['family'], t['name'], t['owner'], t['rules']) for t in nft_tables],
            'Both rule sets see every packet at their hooks; each works as long as its rules are self-contained '
            '(see priority-tie and accept-overridden for where they meet).',
            'Keep one backend where you can: migrate the legacy rules (iptables-legacy-save | iptables-nft-restore).'))
    for ipver, stem in (('ipv4', 'iptables'), ('ipv6', 'ip6tables')):
        variant = facts['commands'].get(stem)
        stale = {'nf_tables': 'iptables-legacy', 'legacy': 'iptables-nft'}.get(variant)
        if stale is None:
            continue
        count, drops = _rules({ipver: raw['legacy' if stale == 'iptables-legacy' else 'iptables_nft'][ipver]})
        if not count:
            continue
        found.append(_finding(
            'stale-legacy', 'high' if drops else 'low',
            '%s runs %s, but %s still holds %s rules' % (stem, variant, stale, ipver),
            ['%s points to %s' % (stem, variant), '%s (%s): %d rules%s' % (stale, ipver, count,
                                                                           ', some drop' if drops else '')],
            'These rules filter packets, but %s -L and %s-save do not show them: "why is this still blocked" '
            'starts here.' % (stem, stem),
            'Read them with %s-save; move what is still wanted to the active backend, then flush those tables.'
            % stale.replace('iptables', stem), where={'ipver': ipver}))
    return found


def _ties(facts, raw):
    found, views = [], dict(((v.backend, v.family, v.table, v.chain), v) for v in raw['views'])
    for point in facts['hooks']:
        groups = {}
        for entry in point['entries']:
            if entry.get('tie') and entry['layer'] in ('netfilter', 'nft-netdev'):
                groups.setdefault(entry['priority'], []).append(
                    views.get((entry['backend'], entry['family'], entry['table'], entry['chain'])))
        for priority, group in sorted(groups.items()):
            group = [v for v in group if v is not None]
            if len(group) < 2 or not any(v.filters for v in group):
                continue
            disagree = [(a, b, _overridden(a, b)) for a in group for b in group if _overridden(a, b)]
            filtering = [v for v in group if v.filters]
            severity = 'high' if disagree else 'medium' if len(filtering) > 1 else 'low'
            evidence = ['%s: policy %s, %d rules, %d accept, %d drop'
                        % (v.name(), v.policy, v.rules, len(v.accepts), len(v.drops)) for v in group]
            evidence += ['%s accepts what %s drops (%s): %s' % (a.name(), b.name(), b.unconditional_drop, text)
                         for a, b, texts in disagree for text in texts]
            found.append(_finding(
                'priority-tie', severity, '%d chains at %s, priority %s' % (len(group), point['point'], priority),
                evidence,
                ('The chains disagree on a verdict, and which one sees the packet first changes on every '
                 'nft -f with flush ruleset or reboot; %s.' if disagree else
                 'Which one sees the packet first (and logs, counts or marks it) changes with registration; %s.')
                % _UNKNOWN_ORDER,
                'Give the nft chain a priority other than %s (e.g. %s) so the order is fixed, or merge the rules '
                'into one backend.' % (priority, priority + 10 if isinstance(priority, int) else 10),
                where={'point': point['point'], 'priority': priority}))
    return found


def _overrides(facts, raw):
    found = []
    by_point = {}
    for view in raw['views']:
        for point in chains.points(view):
            by_point.setdefault(point, []).append(view)
    for point, group in sorted(by_point.items()):
        for a in group:
            for b in group:
                texts = _overridden(a, b)
                if not texts:
                    continue
                order = ('%s runs first (priority %s < %s)' % (b.name(), b.priority, a.priority) if b.priority < a.priority
                         else '%s runs first (priority %s < %s)' % (a.name(), a.priority, b.priority)
                         if a.priority < b.priority else 'equal priority: ' + _UNKNOWN_ORDER)
                found.append(_finding(
                    'accept-overridden', 'high', '%s accepts traffic that %s drops at %s' % (a.name(), b.name(), point),
                    ['%s drops: %s' % (b.name(), b.unconditional_drop), order] +
                    ['accepted in %s: %s' % (a.name(), t) for t in texts],
                    'An accept ends only its own chain: the packet goes on to the other chain at this hook, which drops '
                    'it. The accept is meaningless.',
                    'Accept the same traffic in %s too (or drop its drop policy), or keep one rule set for this hook.'
                    % b.name(), where={'point': point}))
    return found


def _native_in_owned(facts, raw):
    found = []
    owned = raw['owners']
    saved = {}
    for ipver, tables in raw['iptables_nft'].items():
        for name, table in tables.items():
            saved[(_FAMILIES[ipver], name)] = table
    incompatible = set()
    for ipver, value in facts['iptables_nft'].items():
        for name in value['incompatible']:
            if (_FAMILIES[ipver], name) in owned:
                incompatible.add((_FAMILIES[ipver], name))
    listed = {}
    for obj in raw['objects']:
        rule = obj.get('rule')
        if rule and (rule['family'], rule['table']) in owned:
            listed.setdefault((rule['family'], rule['table']), []).append(rule)
    for key in sorted(set(listed) | incompatible):
        rules = listed.get(key, [])
        evidence = []
        if key in incompatible:
            evidence.append("iptables-nft-save: table `%s' is incompatible" % key[1])
        # iptables-nft gives every rule a counter; a rule without one was added by nft
        evidence += ['rule %s (handle %s) has no counter: not made by iptables-nft' % (r['chain'], r.get('handle'))
                     for r in rules if not any(isinstance(e, dict) and 'counter' in e for e in r.get('expr', []))]
        table = saved.get(key)
        if table is not None:
            for chain in sorted(set(r['chain'] for r in rules)):
                shown = len(table.rules.get(chain, []))
                real = len([r for r in rules if r['chain'] == chain])
                if shown != real:
                    evidence.append('chain %s: %d rules in nf_tables, %d shown by iptables-nft-save' % (chain, real, shown))
        if evidence:
            found.append(_finding(
                'nft-in-iptables-nft-table', 'high' if key in incompatible else 'medium',
                'Native nft rules inside %s %s, a table iptables-nft owns' % key, evidence,
                'iptables-nft cannot show these rules faithfully: it refuses the table, leaves rules out, or prints '
                'them wrongly (a set of ports as all of tcp); tools that save and restore through it (Docker, '
                'kube-proxy, CNI plugins) then fail or load rules that differ from the ones in the kernel.',
                'Move the native rules to a table of their own (nft add table inet mine) and leave %s %s to '
                'iptables-nft.' % key, where={'table': '%s %s' % key}))
    return found


def _k8s(raw):
    backends = {}
    for backend, tables in (('iptables-legacy', raw['legacy']), ('iptables-nft', raw['iptables_nft'])):
        for ipver, table_map in sorted(tables.items()):
            for name, table in sorted(table_map.items()):
                for chain in table.policies:
                    if chain in _K8S_HINTS or _K8S_CHAINS.match(chain):
                        backends.setdefault(backend, []).append('%s %s %s' % (ipver, name, chain))
    if len(backends) < 2:
        return []
    evidence = ['%s: %s' % (b, ', '.join(sorted(set(c.split()[-1] for c in chains_))[:8]))
                for b, chains_ in sorted(backends.items())]
    return [_finding(
        'kube-backend-mismatch', 'high', 'Kubernetes chains in both iptables-legacy and iptables-nft', evidence,
        'kube-proxy, the kubelet and the CNI plugin picked different backends: Service and policy rules in one are '
        'never seen by the tools of the other, and stale rules keep matching packets.',
        'Pick one backend on the node (the one KUBE-IPTABLES-HINT says), restart kube-proxy and the CNI agent, and '
        'flush the KUBE-/cali-/CILIUM_ chains of the other.')]


def _flush_config(facts):
    config = facts['nftables_config']
    if not config.get('exists') or not config.get('flushes_ruleset'):
        return []
    declared = set(config['tables'])
    foreign = [t for t in facts['nftables']['tables'] if '%s %s' % (t['family'], t['name']) not in declared]
    if not foreign:
        return []
    with_rules = [t for t in foreign if t['rules']]
    at_boot = config.get('loaded_at_boot') is not False
    notes = ((['the file includes others: tables declared there were not read'] if config['includes'] else []) +
             ([] if at_boot else ['nftables.service is not enabled: only a manual nft -f of the file flushes']))
    return [_finding(
        'flush-ruleset-config', 'high' if with_rules and not config['includes'] and at_boot else 'low',
        '%s flushes the whole ruleset, and other managers have tables' % config['path'],
        ['%s %s (%s, %d rules) is not declared in the file' % (t['family'], t['name'], t['owner'], t['rules'])
         for t in foreign] + notes,
        'Reloading nftables (systemctl reload nftables, nft -f) deletes these tables: Docker, Kubernetes or '
        'iptables-nft rules vanish until their owner re-creates them, and the reload moves nft chains in front of '
        'hooks registered earlier.',
        'Replace "flush ruleset" by "table inet mine; delete table inet mine" (or destroy table) for your own '
        'tables only.', where={'path': config['path']})]


def _attachments(facts):
    found = []
    netfilter = any(e['layer'] == 'netfilter' for p in facts['hooks'] for e in p['entries'])
    for iface in facts['interfaces']:
        for prog in iface['xdp']:
            found.append(_finding(
                'xdp-before-netfilter', 'medium', 'XDP program %s on %s' % (prog.get('name') or prog.get('id'),
                                                                            iface['name']),
                ['%s: XDP %s, program %s (id %s, tag %s)'
                 % (iface['name'], prog['mode'], prog.get('name'), prog.get('id'), prog.get('tag'))],
                'Every packet received on %s meets this program before any firewall rule%s; what it drops no '
                'iptables or nft rule, counter or LOG ever sees.' % (iface['name'], ' (there are some here)'
                                                                     if netfilter else ''),
                'Know what the program drops (bpftool prog dump xlated id %s) and document it beside the '
                'firewall rules.' % prog.get('id'), where={'point': 'ingress/' + iface['name']}))
        for flt in iface['tc'].get('ingress', []):
            found.append(_finding(
                'tc-before-netfilter', 'medium' if flt['drops'] else 'low',
                'tc %s filter on %s ingress' % (flt['kind'], iface['name']),
                ['%s ingress: %s filter pref %s%s%s' % (iface['name'], flt['kind'], flt['pref'],
                                                        ' program %s' % flt['name'] if flt['name'] else '',
                                                        ' (direct-action)' if flt['direct_action'] else '')],
                'tc ingress runs after XDP and before nft netdev and every netfilter hook; a drop there is invisible '
                'to the firewall rules.',
                'List it with tc filter show dev %s ingress; keep drops in one layer, or document this one.'
                % iface['name'], where={'point': 'ingress/' + iface['name']}))
    return found


def _legacy_support(facts):
    if facts['kernel']['legacy_xtables']:
        return []
    wanted = [stem for stem, variant in sorted(facts['commands'].items()) if variant == 'legacy']
    if not wanted:
        return []
    return [_finding(
        'no-legacy-support', 'high', 'iptables-legacy is selected, but the kernel has no legacy xtables',
        ['%s points to iptables-legacy' % s for s in wanted] + ['kernel %s: no ip_tables' % facts['kernel']['release']],
        'Every iptables command fails, so rules that services load at boot (Docker, fail2ban, kube-proxy in iptables '
        'mode) are never there: traffic they should filter passes, or their start fails.',
        'Switch to the nft variant (update-alternatives --set iptables /usr/sbin/iptables-nft) or boot a kernel '
        'with CONFIG_IP_NF_IPTABLES.')]


def find(facts, raw):
    """Findings of one reading, worst first, then by id."""
    found = (_mixed_and_stale(facts, raw) + _ties(facts, raw) + _overrides(facts, raw) + _native_in_owned(facts, raw)
             + _k8s(raw) + _flush_config(facts) + _attachments(facts) + _legacy_support(facts))
    return sorted(found, key=lambda f: (rank(f['severity']), f['id']))
