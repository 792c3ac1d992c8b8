# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reads every packet filter of a host, or of one network namespace, without changing anything.

What is read, and how it stays a reading:

* iptables-legacy: the tables listed in /proc/net/ip_tables_names (ip6_), read from
  inside the namespace, then ``*-legacy-save`` without ``-t``, and only when a table
  exists: ``-t`` on an absent table would create it and register its hooks.
* nf_tables: ``list ruleset`` as JSON (libnftables or ``nft -j``), and
  ``*-nft-save``, which says which tables iptables-nft owns and which it finds
  incompatible; ``nft list hooks`` where the kernel answers it (NETLINK_HOOK).
* links (``ip -d -j link``: XDP programs), tc filters on clsact/ingress qdiscs
  (``tc -j``), ``bpftool net`` where installed, OVS bridges where ``ovs-vsctl`` is
  (the host's only: OVS is not per namespace), the br_netfilter sysctls, the
  nftables configuration file (only whether it flushes the ruleset, and the names of
  the tables it declares), the kernel, and which variant ``iptables`` runs.

Nothing here writes: no command that adds, flushes, loads or attaches, no file opened
for writing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import hashlib
import json
import os
import re

from ansible_collections.pflab.netfilter.plugins.module_utils import chains, files, host, names, netns, nft, xtables
from ansible_collections.pflab.netfilter.plugins.module_utils.errors import PflabError
from ansible_collections.pflab.netfilter.plugins.module_utils.nft_api import NftError, open_api

SCHEMA = 'pflab.netfilter/filter_facts/1'
IPVERS = {'ipv4': {'stem': 'iptables', 'family': 'ip', 'names': '/proc/self/net/ip_tables_names'},
          'ipv6': {'stem': 'ip6tables', 'family': 'ip6', 'names': '/proc/self/net/ip6_tables_names'}}
CONFIG_PATHS = ('/etc/nftables.conf', '/etc/sysconfig/nftables.conf')
# nftables.service enabled: systemd loads the configuration at boot
SERVICE_LINKS = ('/etc/systemd/system/sysinit.target.wants/nftables.service',
                 '/etc/systemd/system/multi-user.target.wants/nftables.service')
CONFIG_MAX = 16 << 20
BR_NETFILTER = ('bridge-nf-call-iptables', 'bridge-nf-call-ip6tables', 'bridge-nf-call-arptables')
_XDP_MODES = {1: 'native', 2: 'generic', 3: 'offload'}
# iptables-nft-save's two ways of saying a table holds what it did not make
_INCOMPATIBLE = re.compile(r"^# Table `([^']+)' (?:is incompatible|contains incompatible base-chains)", re.M)
_DECLARED = re.compile(r'^\s*(?:add\s+|create\s+)?table\s+(?:(ip|ip6|inet|arp|bridge|netdev)\s+)?([A-Za-z_][\w.-]*)',
                       re.M)
_HOOKS_FAMILY = re.compile(r'^family (\w+) \{')
_HOOKS_HOOK = re.compile(r'^\s+hook (\w+)(?: device (\S+))? \{')
_HOOKS_ENTRY = re.compile(r'^\s+([+-]?\d+) (.*?)\s*$')
_HOOKS_CHAIN = re.compile(r'chain (\w+) (\S+) (\S+)')
_HOOKS_LEGACY = re.compile(r'ip(6?)table_(\w+?)_hook')


class FactsError(PflabError):
    pass


def module_ready(name):
    """Whether kernel module ``name`` is there already: a netlink request for an absent one (nf_tables,
    nfnetlink_hook) would make the kernel load it, a change a reading must not make."""
    try:
        with open('/proc/modules') as f:
            if any(line.split(' ', 1)[0] == name for line in f):
                return True
    except (IOError, OSError):
        return True  # no /proc/modules: a kernel without loadable modules, nothing can be loaded
    try:
        with open(os.path.join('/lib/modules', os.uname()[2], 'modules.builtin')) as f:
            return any(os.path.basename(line.strip()) == name + '.ko' for line in f)
    except (IOError, OSError):
        return False


def _json(rc, out, err, what):
    if rc != 0:
        raise FactsError('%s failed: %s' % (what, err.strip()[:200]))
    try:
        return json.loads(out or '[]')
    except ValueError:
        raise FactsError('%s printed no JSON' % what)


class Reader:
    """Runs the read-only commands, inside namespace ``netns_name`` when given."""

    def __init__(self, module, netns_name=None, api='auto'):
        self.module = module
        self.netns = netns_name
        self.runner = netns.Runner(netns_name)
        self.api_choice = api

    def which(self, name):
        return self.module.get_bin_path(name)

    def inside(self):
        return netns.entered(self.netns) if self.netns else contextlib.nullcontext()

    def proc(self):
        """Legacy table names per IP version and the br_netfilter sysctls, as the namespace sees them."""
        tables, sysctls = {}, {}
        with self.inside():
            for ipver, spec in IPVERS.items():
                try:
                    with open(spec['names']) as f:
                        tables[ipver] = sorted(f.read().split())
                except (IOError, OSError):
                    tables[ipver] = []  # no ip(6)_tables module: no legacy table
            for name in BR_NETFILTER:
                try:
                    with open('/proc/sys/net/bridge/' + name) as f:
                        sysctls[name] = f.read().strip()
                except (IOError, OSError):
                    sysctls[name] = None  # br_netfilter not loaded
        return tables, sysctls

    def save(self, binary):
        """Output of ``binary`` (a *-save, never with -t), or None when it is not installed."""
        path = self.which(binary)
        if not path:
            return None
        rc, out, err = self.runner.run([path])
        if rc != 0:
            raise FactsError('%s failed: %s' % (binary, err.strip()[:200]))
        return out

    def variant(self, stem):
        path = self.which(stem)
        if not path:
            return None
        rc, out, err = self.runner.run([path, '--version'])
        return 'legacy' if '(legacy)' in out else 'nf_tables' if '(nf_tables)' in out else None

    def nftables(self):
        """(objects of list ruleset, text of nft list hooks or None); nothing when nf_tables is not loaded."""
        if not module_ready('nf_tables'):
            return [], None
        api = open_api(self.module, self.netns, self.api_choice)
        try:
            objects = api.objects('ruleset') or []
            try:
                objects = nft.with_devices(api, objects)
            except NftError:
                pass  # a chain whose name nft's grammar refuses: its device stays unknown
            hooks_text = None
            if module_ready('nfnetlink_hook'):
                rc, out, err = api.list('hooks', json_output=False)
                hooks_text = out if rc == 0 and out.strip() else None
            return objects, hooks_text
        finally:
            api.close()

    def links(self):
        return _json(*self.runner.run(['ip', '-d', '-j', 'link', 'show']), what='ip -d -j link show')

    def tc(self):
        """{device: {'ingress': [filters], 'egress': [filters]}} of devices with a clsact or ingress qdisc."""
        qdiscs = _json(*self.runner.run(['tc', '-j', 'qdisc', 'show']), what='tc -j qdisc show')
        found = {}
        for qdisc in qdiscs:
            dev = qdisc.get('dev')
            # argv, never a shell: any device name will do but one tc would take for an option
            if qdisc.get('kind') not in ('clsact', 'ingress') or not dev or dev.startswith('-') or '\x00' in dev:
                continue
            directions = ('ingress', 'egress') if qdisc['kind'] == 'clsact' else ('ingress',)
            for direction in directions:
                listed = _json(*self.runner.run(['tc', '-j', 'filter', 'show', 'dev', dev, direction]),
                               what='tc -j filter show dev %s %s' % (dev, direction))
                found.setdefault(dev, {})[direction] = [tc_filter(f) for f in listed if 'options' in f]
        return found

    def bpftool(self):
        path = self.which('bpftool')
        if not path:
            return None
        rc, out, err = self.runner.run([path, '-j', 'net', 'show'])
        return _bpftool_net(_json(rc, out, err, 'bpftool -j net show')) if rc == 0 else None

    def ovs(self):
        if self.netns:
            return {'read': False, 'reason': 'Open vSwitch is host-wide; not read for a namespace'}
        path = self.which('ovs-vsctl')
        if not path:
            return {'read': False, 'reason': 'ovs-vsctl is not installed'}
        rc, out, err = self.runner.run([path, '--timeout=2', 'list-br'])
        if rc != 0:
            return {'read': False, 'reason': 'ovs-vsctl list-br failed (ovsdb-server not running?)'}
        bridges = []
        for bridge in out.split():
            if names.valid('ifname', bridge):
                rc, ports, err = self.runner.run([path, '--timeout=2', 'list-ports', bridge])
                bridges.append({'name': bridge, 'ports': ports.split() if rc == 0 else []})
        return {'read': True, 'bridges': bridges}


def tc_filter(listed):
    options = listed.get('options', {})
    prog = options.get('prog', {})
    actions = [a.get('control_action', {}).get('type') for a in options.get('actions', []) if isinstance(a, dict)]
    return {
        'kind': listed.get('kind'), 'pref': listed.get('pref'), 'protocol': listed.get('protocol'),
        'name': options.get('bpf_name') or prog.get('name'), 'id': prog.get('id'),
        'direct_action': bool(options.get('direct-action')),
        # a bpf filter in direct-action mode decides itself; others drop only through a drop action
        'drops': bool(options.get('direct-action')) or 'drop' in actions or listed.get('kind') == 'bpf',
    }


def _bpftool_net(listed):
    out = []
    for entry in listed if isinstance(listed, list) else [listed]:
        for kind in ('xdp', 'tc', 'flow_dissector', 'netfilter', 'tcx'):
            for item in entry.get(kind, []) or []:
                out.append({'kind': kind, 'dev': item.get('devname'), 'attach': item.get('kind') or item.get('mode'),
                            'id': item.get('id'), 'name': item.get('name')})
    return out


def xdp_programs(link):
    xdp = link.get('xdp') or {}
    attached = xdp.get('attached') or ([{'mode': xdp.get('mode'), 'prog': xdp['prog']}] if 'prog' in xdp else [])
    return [{'mode': _XDP_MODES.get(a.get('mode'), str(a.get('mode'))), 'id': a.get('prog', {}).get('id'),
             'name': a.get('prog', {}).get('name'), 'tag': a.get('prog', {}).get('tag')} for a in attached]


def parse_hooks(text):
    """``nft list hooks`` output -> {hook point: [(family, table, chain) | ('legacy', family, table)]} in order.

    Kernel functions other than chains and legacy tables (conntrack, defrag) are left out.
    """
    out, family, point = {}, None, None
    for line in text.splitlines():
        fam = _HOOKS_FAMILY.match(line)
        hook = _HOOKS_HOOK.match(line)
        entry = _HOOKS_ENTRY.match(line)
        if fam:
            family = fam.group(1)
        elif hook:
            dev = hook.group(2)
            name = hook.group(1)
            point = '%s/%s' % (name, dev) if dev else '%s/%s' % ({'ip': 'ipv4', 'ip6': 'ipv6'}.get(family, family), name)
            out.setdefault(point, [])
        elif entry and point:
            chain = _HOOKS_CHAIN.search(entry.group(2))
            legacy = _HOOKS_LEGACY.search(entry.group(2))
            if chain:
                out[point].append(chain.groups())
            elif legacy:
                out[point].append(('legacy', 'ip6' if legacy.group(1) else 'ip', legacy.group(2)))
    return out


def read_config(path):
    """What matters in an nftables configuration file: whether it flushes the ruleset (first, or at all),
    whether it includes other files, and the names of the tables it declares. Nothing else is kept."""
    text = files.read_text(path, CONFIG_MAX, 'the nftables configuration file')
    statements = [s.strip() for line in text.splitlines() for s in line.split('#', 1)[0].split(';') if s.strip()]
    declared = sorted(set('%s %s' % (m.group(1) or 'ip', m.group(2)) for m in _DECLARED.finditer(text)
                          if names.valid('nft_name', m.group(2))))
    return {'path': path, 'exists': True, 'starts_with_flush': bool(statements) and statements[0] == 'flush ruleset',
            'flushes_ruleset': nft.flushes_ruleset(text), 'includes': bool(nft.includes(text)), 'tables': declared}


def _config(path, netns_name):
    if path is None:
        if netns_name:
            return {'path': None, 'exists': False, 'reason': 'not read for a namespace unless nftables_config is given'}
        path = next((p for p in CONFIG_PATHS if os.path.exists(p)), None)
        if path is None:
            return {'path': None, 'exists': False}
    if not os.path.exists(path):
        return {'path': path, 'exists': False}
    found = read_config(path)
    # only the host's own file is loaded by its nftables.service; a file given for a namespace: unknown
    found['loaded_at_boot'] = None if netns_name else any(os.path.lexists(p) for p in SERVICE_LINKS)
    return found


def _tables_summary(tables):
    return dict((name, {'chains': dict((chain, {'policy': table.policies[chain], 'rules': len(table.rules[chain])})
                                       for chain in sorted(table.policies))})
                for name, table in sorted(tables.items()))


def _parse_save(text):
    try:
        return xtables.parse_save(text or '')
    except (ValueError, xtables.XtablesError):
        raise FactsError('cannot read the output of *-save (a chain name with a blank or newline?)')


def _owned(nft_saves, registered):
    """{(family, table): 'iptables-nft'} for the tables *-nft-save printed or called incompatible whose base
    chains are the built-in ones of that table (a native "table ip filter" with chain input is not
    iptables-nft's, though *-nft-save prints it)."""
    owners = {}
    for ipver, text in nft_saves.items():
        family = IPVERS[ipver]['family']
        for name in list(_parse_save(text)) + _INCOMPATIBLE.findall(text or ''):
            base = [chain for (f, t, chain) in registered if (f, t) == (family, name)]
            if all(chain in xtables.BUILTIN_CHAINS.get(name, ()) for chain in base):
                owners[(family, name)] = 'iptables-nft'
    return owners


def _nft_tables(objects, owners):
    chains_, rules = {}, {}
    for obj in objects:
        kind, body = next(iter(obj.items()))
        if kind in ('chain', 'rule'):
            key = (body['family'], body['table'])
            (chains_ if kind == 'chain' else rules)[key] = (chains_ if kind == 'chain' else rules).get(key, 0) + 1
    return [{'family': t['family'], 'name': t['name'], 'owner': owners.get((t['family'], t['name']), 'nftables'),
             'chains': chains_.get((t['family'], t['name']), 0), 'rules': rules.get((t['family'], t['name']), 0)}
            for t in (o['table'] for o in objects if 'table' in o)]


def _normal_objects(objects):
    """Each table's objects as text without handles or counters, in listing order within the table."""
    tables = {}
    for obj in objects:
        kind, body = next(iter(obj.items()))
        tables.setdefault((body.get('family'), body.get('table', body.get('name'))), []).append(obj)
    return [nft.comparable(listed) for key, listed in sorted(tables.items(), key=lambda kv: '%s' % (kv[0],))]


def digest(reading):
    """sha256 of what identical hosts share: the reading without program ids, counters and handles."""
    def clean(value):
        if isinstance(value, dict):
            return dict((k, clean(v)) for k, v in value.items() if k not in ('id', 'digest'))
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return hashlib.sha256(json.dumps(clean(reading), sort_keys=True).encode('utf-8')).hexdigest()


def read(reader, config_path=None):
    """(facts, raw): the facts the module returns, and what findings need beside them (views, objects, tables)."""
    legacy_names, br = reader.proc()
    legacy_tables, nft_saves, incompatible = {}, {}, {}
    for ipver, spec in IPVERS.items():
        text = reader.save(spec['stem'] + '-legacy-save') if legacy_names[ipver] else ''
        legacy_tables[ipver] = _parse_save(text)
    objects, hooks_text = reader.nftables()
    families = set(t['family'] for t in (o['table'] for o in objects if 'table' in o))
    for ipver, spec in IPVERS.items():
        nft_saves[ipver] = reader.save(spec['stem'] + '-nft-save') if spec['family'] in families else ''
        incompatible[ipver] = sorted(_INCOMPATIBLE.findall(nft_saves[ipver] or ''))
    registered = nft.base_chains(objects)
    owners = _owned(nft_saves, registered)
    nft_tables = {}
    for ipver, text in nft_saves.items():
        nft_tables[ipver] = dict((name, table) for name, table in _parse_save(text).items()
                                 if name not in incompatible[ipver] and (IPVERS[ipver]['family'], name) in owners)
    views = []
    for ipver, spec in IPVERS.items():
        for table in legacy_tables[ipver].values():
            views += chains.xtables_views('iptables-legacy', spec['family'], table)
        for table in nft_tables[ipver].values():  # *-nft-save prints built-in chains that do not exist
            views += [v for v in chains.xtables_views('iptables-nft', spec['family'], table)
                      if (v.family, v.table, v.chain) in registered]
    read_by_save = set((IPVERS[ipver]['family'], name) for ipver in IPVERS for name in nft_tables[ipver])
    views += chains.nft_views(objects, owners, skip=read_by_save)
    links = reader.links()
    tc = reader.tc()
    interfaces = [{'name': link['ifname'], 'kind': link.get('linkinfo', {}).get('info_kind', link.get('link_type')),
                   'xdp': xdp_programs(link), 'tc': tc.get(link['ifname'], {})} for link in links]
    listed = parse_hooks(hooks_text) if hooks_text else None
    kernel = host.kernel_info()
    facts = {
        'schema': SCHEMA,
        'netns': reader.netns,
        'kernel': dict(kernel, legacy_xtables=host.kernel_has_legacy_xtables(kernel['release'])),
        'commands': dict((IPVERS[ipver]['stem'], reader.variant(IPVERS[ipver]['stem'])) for ipver in IPVERS),
        'legacy': dict((ipver, {'tables': _tables_summary(legacy_tables[ipver])}) for ipver in IPVERS),
        'iptables_nft': dict((ipver, {'tables': _tables_summary(nft_tables[ipver]),
                                      'incompatible': incompatible[ipver],
                                      'legacy_warning': 'iptables-legacy tables present' in (nft_saves[ipver] or '')})
                             for ipver in IPVERS),
        'nftables': {'tables': sorted(_nft_tables(objects, owners), key=lambda t: (t['family'], t['name'])),
                     'base_chains': [dict(v.entry(), hook=v.hook) for v in views if v.backend != 'iptables-legacy']},
        'interfaces': sorted((i for i in interfaces if i['xdp'] or any(i['tc'].values())), key=lambda i: i['name']),
        'bpftool': reader.bpftool(),
        'ovs': reader.ovs(),
        'br_netfilter': br,
        'nftables_config': _config(config_path, reader.netns),
        'hooks': chains.hook_points(views, interfaces, listed),
        'hooks_listed': listed is not None,
    }
    facts['digest'] = digest(dict(
        [(k, v) for k, v in facts.items() if k != 'netns'],
        rules=sorted([table.text() for tables in list(legacy_tables.values()) + list(nft_tables.values())
                      for table in tables.values()] + _normal_objects(objects))))
    raw = {'views': views, 'objects': objects, 'legacy': legacy_tables, 'iptables_nft': nft_tables, 'owners': owners}
    return facts, raw
