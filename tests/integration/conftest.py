"""Integration fixtures: real namespaces, real kernel, driven through ansible-runner.

Every lab a test makes is named pfl-itest-*; it is removed after each test even
when the test fails. The session checks that the initial network namespace's
firewall rules, qdiscs and links are byte-identical afterwards, that no BPF
program, tracefs instance or mount of pflab is left, and puts
net.netfilter.nf_log_all_netns (the one host-wide change allowed) back.
"""

import contextlib
import glob
import importlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import time

import ansible_runner
import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(ROOT, 'inventory', 'localhost.yml')
SYSCTL = '/proc/sys/net/netfilter/nf_log_all_netns'
STATE_FILE = '/run/pflab/nf_log_all_netns.orig'
MARKERS = '/run/pflab/lab-*.json'
# Labs tests make: their own (itest*), the scenario runner's (sc-<pid>) and twins (tw-<pid>); and scratch namespaces.
TEST_LAB_PREFIXES = ('pfl-itest', 'pfl-sc-', 'pfl-tw-', 'pflscratch-')

# ansible-runner starts ansible-playbook from PATH: use the one beside this Python.
os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH']

# Modules called in this process (run_module) reach libnftables through the OS's binding, as on a
# target (python3-nftables, pure Python over ctypes); the venv has no copy of it.
OS_NFTABLES = '/usr/lib/python3/dist-packages/nftables'
if os.path.isdir(OS_NFTABLES) and importlib.util.find_spec('nftables') is None:
    _shim = os.path.join(ROOT, '.collections', 'os-nftables')
    os.makedirs(_shim, exist_ok=True)
    if not os.path.lexists(os.path.join(_shim, 'nftables')):
        os.symlink(OS_NFTABLES, os.path.join(_shim, 'nftables'))
    sys.path.append(_shim)

# Read-only views of the initial namespace; none of them creates a table.
HOST_VIEWS = [
    ['iptables-legacy-save'],
    ['ip6tables-legacy-save'],
    ['nft', 'list', 'ruleset'],
    ['tc', 'qdisc', 'show'],
    ['ip', '-o', 'link', 'show'],
]


def _out(argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def _strip_counters(text):
    # iptables-save prints packet counters and a timestamp that change on their own.
    return '\n'.join(line for line in text.splitlines() if not line.startswith(('#', ':')))


def host_state():
    return {' '.join(argv): _strip_counters(_out(argv)) for argv in HOST_VIEWS}


def ns_state(name):
    """What a namespace holds that a call could change: legacy tables and rules, the nft ruleset, links."""
    views = [['iptables-legacy-save'], ['ip6tables-legacy-save'], ['nft', 'list', 'ruleset'],
             ['cat', '/proc/net/ip_tables_names'], ['cat', '/proc/net/ip6_tables_names'], ['ip', '-o', 'link']]
    return {' '.join(argv): _strip_counters(_out(['nsenter', '--net=/run/netns/' + name] + argv)) for argv in views}


def leftovers():
    """pflab's BPF programs (names pfl*), tracefs instances and mounts, and lab switches that exist now."""
    from ansible_collections.pflab.netfilter.plugins.module_utils import witness
    programs = json.loads(_out(['bpftool', '-j', 'prog', 'show']) or '[]')
    mounts = witness.tracefs_mounts()
    instances = [name for mount in mounts if os.path.isdir(os.path.join(mount, 'instances'))
                 for name in os.listdir(os.path.join(mount, 'instances')) if name.startswith(witness.PREFIX)]
    return [p['name'] for p in programs if p.get('name', '').startswith('pfl')] + instances + \
        [m for m in mounts if m.startswith('/run/pflab')] + lab_switches()


def lab_switches():
    """OVS daemons of a lab's switch that still run (zombies, which this container's init leaves, do not)."""
    found = []
    for pid in (p for p in os.listdir('/proc') if p.isdigit()):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
            with open('/proc/%s/stat' % pid) as f:
                zombie = f.read().rsplit(')', 1)[1].split()[0] == 'Z'
        except (OSError, IndexError):
            continue
        if '/run/pflab/ovs-' in cmdline and not zombie:
            found.append('pid %s: %s' % (pid, cmdline[:80]))
    return found


def settled_leftovers(timeout=10):
    """leftovers(), once the kernel has freed deleted namespaces' links and their programs (it does so later)."""
    deadline = time.monotonic() + timeout
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    return leftovers()


def netns_names():
    return [line.split()[0] for line in _out(['ip', 'netns', 'list']).splitlines() if line.strip()]


def remove_test_labs(prefixes=TEST_LAB_PREFIXES):
    for name in netns_names():
        if name.startswith(prefixes):
            for pid in _out(['ip', 'netns', 'pids', name]).split():
                subprocess.run(['kill', '-9', pid], check=False)
            subprocess.run(['ip', 'netns', 'del', name], check=False)
    for marker in glob.glob(MARKERS):
        if ('pfl-' + os.path.basename(marker)[len('lab-'):]).startswith(prefixes):
            os.unlink(marker)


@pytest.fixture(scope='session', autouse=True)
def host_guard():
    with open(SYSCTL) as f:
        sysctl_before = f.read()
    state_file_before = os.path.exists(STATE_FILE)
    before = host_state()
    yield
    remove_test_labs()
    with open(SYSCTL) as f:
        sysctl_after = f.read()
    if sysctl_after != sysctl_before:
        with open(SYSCTL, 'w') as f:
            f.write(sysctl_before)
    if not state_file_before and os.path.exists(STATE_FILE):
        os.unlink(STATE_FILE)
    assert host_state() == before, 'a test changed the initial network namespace'
    assert settled_leftovers() == [], 'BPF programs, tracefs instances or mounts were left'
    assert sysctl_after == sysctl_before, 'nf_log_all_netns was not restored'


@pytest.fixture(autouse=True)
def clean_labs():
    yield
    remove_test_labs()


class Ansible:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.runs = 0

    def _run(self, inventory=None, **kwargs):
        # A folder per run: ansible-runner keeps a run's command line (--check) in its folder for the next.
        self.runs += 1
        folder = self.tmp_path / ('run-%d' % self.runs)
        folder.mkdir()
        result = ansible_runner.run(
            private_data_dir=str(folder),
            inventory=inventory or INVENTORY,
            envvars={'ANSIBLE_CONFIG': os.path.join(ROOT, 'ansible.cfg')},
            quiet=True,
            **kwargs
        )
        return result

    def playbook(self, name, check=True, inventory=None, **extravars):
        """Run playbooks/``name`` of the checkout, or the playbook at the absolute path ``name``, on the default
        inventory or ``inventory``."""
        result = self._run(playbook=os.path.join(ROOT, 'playbooks', name), inventory=inventory, extravars=extravars)
        if check:
            assert result.rc == 0, result.stdout.read()
        return result

    def tasks(self, tasks):
        """Run ``tasks`` (dicts of a play's task list) on localhost in one playbook.

        Failed tasks do not stop the play. Returns one (result, failed) per task, in order.
        """
        tasks = [dict(task, name='step %d' % index, ignore_errors=True) for index, task in enumerate(tasks)]
        path = self.tmp_path / 'steps.yml'
        with open(path, 'w') as f:
            yaml.safe_dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], f)
        result = self._run(playbook=str(path))
        found = {}
        for event in result.events:
            if event.get('event') in ('runner_on_ok', 'runner_on_failed'):
                data = event['event_data']
                found[data['task']] = (data['res'], event['event'] == 'runner_on_failed')
        missing = [t['name'] for t in tasks if t['name'] not in found]
        assert not missing, 'no result for %s:\n%s' % (missing, result.stdout.read())
        return [found[t['name']] for t in tasks]

    def module(self, name, args, check_mode=False):
        """Run one module on localhost; return its result dict and whether it failed."""
        result = self._run(host_pattern='localhost', module='pflab.netfilter.' + name,
                           module_args=json.dumps(args) if args else None, cmdline='--check' if check_mode else None)
        for event in result.events:
            if event.get('event') in ('runner_on_ok', 'runner_on_failed'):
                return event['event_data']['res'], event['event'] == 'runner_on_failed'
        raise AssertionError(result.stdout.read())


def run_module(name, args, check_mode=False):
    """Call module ``name``'s main() in this process, as Ansible would: (result, failed).

    An exception other than the module's exit escapes: the module let a traceback through.
    """
    main = importlib.import_module('ansible_collections.pflab.netfilter.plugins.modules.' + name).main
    out = io.StringIO()
    with patch_module_args(dict(args, _ansible_check_mode=check_mode)), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit:
            pass
    result = json.loads(out.getvalue())
    return result, bool(result.get('failed'))


@pytest.fixture
def ansible(tmp_path):
    return Ansible(tmp_path)
