# -*- coding: utf-8 -*-
# Copyright: pflab.netfilter contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host offers a lab: kernel, tools and their versions, legacy xtables.

Only reads: files under /proc and /etc, and ``--version`` of each tool. It never
runs ``iptables-legacy -t``, which would create a table and register its hooks.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import re

from ansible_collections.pflab.netfilter.plugins.module_utils import netns, nflog, proc

# Tool name -> argv that prints its version (None: the tool has no such flag).
TOOLS = {
    'iptables': ['--version'],
    'iptables-legacy': ['--version'],
    'iptables-nft': ['--version'],
    'nft': ['--version'],
    'ip': ['-V'],
    'nc': None,
    'nsenter': ['--version'],
}
# Python modules the lab modules use on the target (nftables is optional: nft -j stands in).
PYTHON_MODULES = ('pyroute2', 'nftables')
LEGACY_PROC = '/proc/net/ip_tables_names'
# Tools every lab needs; iptables-legacy is optional (RHEL 9 has none).
REQUIRED_TOOLS = ('nsenter', 'nc', 'nft', 'iptables-nft', 'ip')
# Packages that bring them, by distribution family (os-release ID or ID_LIKE).
OS_PACKAGES = {
    'debian': ['iptables', 'nftables', 'netcat-openbsd', 'iproute2', 'util-linux', 'procps', 'python3-pyroute2',
               'python3-nftables'],
}


def kernel_info():
    release = os.uname()[2]
    match = re.match(r'(\d+)\.(\d+)', release)
    version = '%s.%s' % match.groups() if match else None
    return {'release': release, 'version': version}


def os_release(path='/etc/os-release'):
    info = {}
    try:
        with open(path) as f:
            for line in f:
                key, eq, value = line.strip().partition('=')
                if eq:
                    info[key.lower()] = value.strip('"\'')
    except OSError:
        pass
    return {'id': info.get('id'), 'id_like': info.get('id_like', '').split(), 'version_id': info.get('version_id')}


def kernel_has_legacy_xtables(release):
    if os.path.exists(LEGACY_PROC):
        return True
    for index in ('modules.builtin', 'modules.dep'):
        try:
            with open(os.path.join('/lib/modules', release, index)) as f:
                if re.search(r'/ip_tables\.ko', f.read()):
                    return True
        except OSError:
            continue
    return False


def tools(get_bin_path, run):
    """Path and first version line of each tool; path None when missing.

    ``get_bin_path(name)`` returns a path or None; ``run(argv)`` returns (rc, out, err).
    """
    found = {}
    for name, args in sorted(TOOLS.items()):
        path = get_bin_path(name)
        version = None
        if path and args:
            rc, out, err = run([path] + args)
            lines = (out or err).strip().splitlines()
            version = lines[0] if rc == 0 and lines else None
        found[name] = {'path': path, 'version': version}
    return found


def legacy_support(found_tools, release):
    """Whether iptables-legacy can run here, and why not when it cannot."""
    if not found_tools['iptables-legacy']['path']:
        return {'usable': False, 'reason': 'no iptables-legacy binary (RHEL 9 and some distributions ship none)'}
    if not kernel_has_legacy_xtables(release):
        return {'usable': False, 'reason': 'kernel %s has no legacy xtables (CONFIG_IP_NF_IPTABLES or CONFIG_NETFILTER_XTABLES_LEGACY off)' % release}
    return {'usable': True, 'reason': None}


def missing(facts):
    """What a lab needs that the host (``gather``) lacks: required tools, and pyroute2."""
    return [name for name in REQUIRED_TOOLS if not facts['tools'][name]['path']] + \
        ([] if facts['python_modules']['pyroute2'] else ['python module pyroute2'])


def os_packages(os_info):
    """The package list for the distribution (os_release), or []."""
    family = next((name for name in [os_info['id']] + os_info['id_like'] if name in OS_PACKAGES), None)
    return list(OS_PACKAGES.get(family, []))


# The options of a host's preparation (host_prepare, and the suite, which prepares the host it runs on).
PREPARE_SPEC = dict(
    min_kernel=dict(type='str', default='5.4'),
    install=dict(type='bool', default=True),
    packages=dict(type='list', elements='str', default=[]),
)
_KERNEL_VERSION = re.compile(r'[0-9]{1,3}\.[0-9]{1,3}(\.[0-9]{1,3})?')


def _version(text):
    return tuple(int(n) for n in text.split('.')[:2])


def prepare(module):
    """The host read (``gather``) and checked with ``module``'s PREPARE_SPEC options, and the packages to install
    first ([] when nothing is missing). Fails the module on an old kernel, and on missing tools it may not (or
    cannot) install."""
    p = module.params
    if not _KERNEL_VERSION.fullmatch(p['min_kernel']):
        module.fail_json(msg='min_kernel is major.minor or major.minor.patch (for example 5.4), got %r'
                             % p['min_kernel'][:20])
    facts = gather(module.get_bin_path, proc.run)
    if facts['kernel']['version'] is None or _version(facts['kernel']['version']) < _version(p['min_kernel']):
        module.fail_json(msg='pflab.netfilter needs Linux >= %s; this host runs %s' % (
            p['min_kernel'], facts['kernel']['release']), **facts)
    absent = missing(facts)
    if absent and p['install']:
        packages = p['packages'] or os_packages(facts['os'])
        if not packages:
            module.fail_json(msg='no package list for %s %s; set packages, or install=false and install by hand: %s, '
                                 'iptables-legacy (optional), python3-pyroute2' % (
                                     facts['os']['id'], facts['os']['version_id'], ', '.join(REQUIRED_TOOLS)),
                             **facts)
        return facts, packages
    if absent:
        module.fail_json(msg='missing: %s' % ', '.join(absent), missing=absent, **facts)
    if not facts['iptables_legacy']['usable']:
        module.warn('iptables-legacy experiments will be skipped: %s' % facts['iptables_legacy']['reason'])
    return facts, []


def gather(get_bin_path, run):
    kernel = kernel_info()
    found = tools(get_bin_path, run)
    return {
        'kernel': kernel,
        'os': os_release(),
        'tools': found,
        'iptables_legacy': legacy_support(found, kernel['release']),
        'sysctls': {nflog.SYSCTL: nflog.read()},
        'labs': netns.list_labs(),
        'python_modules': dict((name, importlib.util.find_spec(name) is not None) for name in PYTHON_MODULES),
    }
