"""What crash isolation costs: one libnftables command, three ways, side by side.

libnftables 1.0.6 aborts its process on some inputs, so since 0.5.0 the collection runs the
Python binding in a child process per namespace (nft_api.BindingApi) instead of in the
module's own process. For each way, in a throwaway namespace, the median time of one
`list ruleset` (a read) and of one small transaction (add and delete a rule), over ROUNDS
commands, after the first (the child's start) is counted apart:
  - in process: the binding called in this process after setns (what 0.4 did; a crash
    takes the caller with it);
  - child: nft_api.BindingApi (the binding in a forked child, over a pipe);
  - nft -j: nft_api.CliApi (one `nsenter nft` process per command).
Writes bench/results/nft_api.{md,json}.

    .venv/bin/python bench/nft_api.py [ROUNDS]
"""

import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, 'bench', 'results')
sys.path.insert(0, os.path.join(ROOT, '.collections'))
sys.path.append('/usr/lib/python3/dist-packages')  # python3-nftables from the OS

from ansible_collections.pflab.netfilter.plugins.module_utils import netns, nft_api  # noqa: E402

NETNS = 'pflbench-api-%d' % os.getpid()
SETUP = 'add table inet b\nadd chain inet b c { type filter hook input priority 0; }\n'
CHANGE = 'add rule inet b c tcp dport 12345 accept\n'
CRASH = 'add rule inet b c log prefix "%s" accept\n' % ('x' * 200)  # aborts libnftables 1.0.6
# The abort, in process: a separate Python runs it, as it would take this one down.
IN_PROCESS_CRASH = '''
import os, sys
sys.path.insert(0, %r)
sys.path.append('/usr/lib/python3/dist-packages')
from ansible_collections.pflab.netfilter.plugins.module_utils import netns, nft_api
with netns.entered(%r):
    ctx = nft_api.nftables_binding.Nftables()
ctx.cmd(%r)
print('survived')
'''


class InProcess:
    """The binding in this process, its netlink socket made inside the namespace (0.4's BindingApi)."""

    def __init__(self, name):
        with netns.entered(name):
            self.ctx = nft_api.nftables_binding.Nftables()

    def run(self, buffer):
        return self.ctx.cmd(buffer)

    def list(self, what):
        self.ctx.set_json_output(True)
        return self.ctx.cmd('list ' + what)

    def close(self):
        pass


class Module:
    """Enough of an AnsibleModule for open_api to find nft."""

    @staticmethod
    def get_bin_path(name):
        return '/usr/sbin/' + name


def survives(api):
    """Whether the caller lives through a libnftables abort, and what it sees."""
    if api is None:
        code = IN_PROCESS_CRASH % (os.path.join(ROOT, '.collections'), NETNS, CRASH)
        done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=False)
        return 'no: the caller is killed (exit %d)' % done.returncode if 'survived' not in done.stdout else 'yes'
    rc, dummy, err = api.run(CRASH)
    api.close()
    return 'yes: the command fails (rc %d, "%s")' % (rc, nft_api.message(err)[:60])


def measure(api, rounds):
    first = time.perf_counter()
    api.list('ruleset')
    first = time.perf_counter() - first
    reads, writes = [], []
    for dummy in range(rounds):
        start = time.perf_counter()
        api.list('ruleset')
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        api.run(CHANGE)
        api.run('flush chain inet b c\n')
        writes.append(time.perf_counter() - start)
    api.close()
    return {'first_ms': round(first * 1000, 2), 'read_ms': round(statistics.median(reads) * 1000, 3),
            'change_ms': round(statistics.median(writes) * 1000, 3)}


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    subprocess.run(['ip', 'netns', 'add', NETNS], check=True)
    try:
        subprocess.run(['ip', 'netns', 'exec', NETNS, 'nft', '-f', '-'], input=SETUP, text=True, check=True)
        rows = [
            ('in process (0.4)', dict(measure(InProcess(NETNS), rounds), abort=survives(None))),
            ('child per namespace (0.5)', dict(measure(nft_api.BindingApi(NETNS), rounds),
                                               abort=survives(nft_api.BindingApi(NETNS)))),
            ('nft -j, a process per command', dict(measure(nft_api.open_api(Module, NETNS, 'cli'), rounds),
                                                   abort=survives(nft_api.open_api(Module, NETNS, 'cli')))),
        ]
    finally:
        subprocess.run(['ip', 'netns', 'del', NETNS], check=True)
    lines = ['# One libnftables command, three ways (bench/nft_api.py)', '',
             'Median of %d commands in one namespace; the first command (a child\'s start) apart.' % rounds, '',
             '| way | first command (ms) | list ruleset (ms) | add + flush (ms) | the caller lives through an abort |',
             '|---|---|---|---|---|']
    for name, row in rows:
        lines.append('| %s | %s | %s | %s | %s |' % (name, row['first_ms'], row['read_ms'], row['change_ms'],
                                                     row['abort']))
    lines += ['', 'Kernel %s, %d cores.' % (os.uname()[2], os.cpu_count())]
    print('\n'.join(lines))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'nft_api.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(os.path.join(RESULTS, 'nft_api.json'), 'w') as f:
        json.dump(dict(rounds=rounds, rows=dict(rows)), f, indent=2)


if __name__ == '__main__':
    main()
