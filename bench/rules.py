"""Rule modules against ansible.builtin.iptables and the raw restore tools.

For N rules in one chain, in throwaway network namespaces, side by side:
  - raw: iptables-legacy-restore / nft -f of the same rules (the floor);
  - empty: an ansible.builtin.ping task (Ansible's fixed per-task cost);
  - payload: ansible.builtin.command running `true` with the N rules as arguments, the
    fixed cost plus carrying N rules to the target and back;
  - apply / no-op: pflab.netfilter.iptables_rules (nft_rules) first apply and re-run;
  - loop: ansible.builtin.iptables with a loop over the rules (legacy iptables, N <= LOOP_MAX).
Times are task durations reported by Ansible and whole-process wall times of the raw
tools, medians of REPS runs. Writes bench/results/rules.{md,json}.

    .venv/bin/python bench/rules.py [N ...]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import ansible_runner
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INVENTORY = os.path.join(ROOT, 'inventory', 'localhost.yml')
RESULTS = os.path.join(ROOT, 'bench', 'results')
REPS = 3
LOOP_MAX = 1000
os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH']
os.environ['ANSIBLE_CONFIG'] = os.path.join(ROOT, 'ansible.cfg')


class Netns:
    """A throwaway namespace; removed with whatever runs in it."""

    count = 0

    def __enter__(self):
        Netns.count += 1
        self.name = 'pflbench-%d-%d' % (os.getpid(), Netns.count)
        subprocess.run(['ip', 'netns', 'add', self.name], check=True)
        return self.name

    def __exit__(self, *exc):
        subprocess.run(['ip', 'netns', 'del', self.name], check=True)


def xt_rules(n):
    return ['-p tcp --dport %d -j ACCEPT' % (1000 + i) for i in range(n)]


def nft_rules(n):
    return ['tcp dport %d accept' % (1000 + i) for i in range(n)]


def wall(argv, data):
    start = time.monotonic()
    subprocess.run(argv, input=data.encode(), check=True, capture_output=True)
    return time.monotonic() - start


def playbook(tmp, tasks, rules, interpreter=None):
    """Run tasks with ``rules`` as a var; return the duration of each task (loops: the whole loop)."""
    with open(os.path.join(tmp, 'rules.yml'), 'w') as f:
        yaml.safe_dump({'bench_rules': rules}, f)
    play = {'hosts': 'localhost', 'gather_facts': False, 'vars_files': ['rules.yml'], 'tasks': tasks}
    if interpreter:
        play['vars'] = {'ansible_python_interpreter': interpreter}
    with open(os.path.join(tmp, 'bench.yml'), 'w') as f:
        yaml.safe_dump([play], f)
    result = ansible_runner.run(private_data_dir=tmp, playbook=os.path.join(tmp, 'bench.yml'),
                                inventory=INVENTORY, quiet=True)
    if result.rc != 0:
        raise RuntimeError(result.stdout.read())
    durations = {}
    for event in result.events:
        if event.get('event') in ('playbook_on_task_start',):
            durations.setdefault(event['event_data']['task'], None)
        if event.get('event') in ('runner_on_ok', 'runner_on_skipped'):
            data = event['event_data']
            durations[data['task']] = data['duration']
    return [durations[t['name']] for t in tasks]


def empty_task():
    return {'name': 'empty', 'ansible.builtin.ping': {}}


def payload_task():
    return {'name': 'payload', 'ansible.builtin.command': {'argv': "{{ ['true'] + bench_rules }}"}, 'changed_when': False}


def median(values):
    return round(statistics.median(values), 3)


def rounds(tmp, n, rules, raw_argv, raw_input, module_task):
    """REPS rounds of: the raw tool, then empty, payload, first apply and no-op tasks, each in a fresh namespace."""
    row = {'n': n, 'raw': [], 'empty': [], 'payload': [], 'apply': [], 'noop': []}
    for dummy in range(REPS):
        with Netns() as ns:
            row['raw'].append(wall(['nsenter', '--net=/run/netns/' + ns] + raw_argv, raw_input))
        with Netns() as ns:
            task = dict(module_task(ns), name='rules')
            figures = playbook(tmp, [empty_task(), payload_task(), task, dict(task, name='again')], rules)
            for key, value in zip(('empty', 'payload', 'apply', 'noop'), figures):
                row[key].append(value)
    return row


def bench_iptables(tmp, n):
    rules = xt_rules(n)
    restore = '*filter\n' + ''.join('-A INPUT %s\n' % r for r in rules) + 'COMMIT\n'
    row = rounds(tmp, n, rules, ['iptables-legacy-restore', '--noflush'], restore, lambda ns: {
        'pflab.netfilter.iptables_rules': {'backend': 'legacy', 'netns': ns, 'exclusive': True,
                                           'chains': [{'name': 'INPUT', 'rules': '{{ bench_rules }}'}]}})
    if n <= LOOP_MAX:
        with Netns() as ns:
            shim = os.path.join(tmp, 'shim')
            os.makedirs(shim, exist_ok=True)
            for name in ('iptables', 'iptables-save', 'iptables-restore'):
                link = os.path.join(shim, name)
                if not os.path.lexists(link):
                    os.symlink('/usr/sbin/%s' % name.replace('iptables', 'iptables-legacy'), link)
            interpreter = os.path.join(tmp, 'python-in-netns')
            with open(interpreter, 'w') as f:
                f.write('#!/bin/sh\nPATH=%s:$PATH exec nsenter --net=/run/netns/%s /usr/bin/python3 "$@"\n' % (shim, ns))
            os.chmod(interpreter, 0o755)
            task = {'name': 'loop', 'ansible.builtin.iptables': {
                'chain': 'INPUT', 'protocol': 'tcp', 'destination_port': '{{ item }}', 'jump': 'ACCEPT'},
                'loop': [str(1000 + i) for i in range(n)]}
            row['loop'] = playbook(tmp, [task], rules, interpreter)
            saved = subprocess.run(['nsenter', '--net=/run/netns/' + ns, 'iptables-legacy-save'],
                                   capture_output=True, text=True, check=True).stdout
            assert saved.count('-A INPUT') == n, 'the loop did not add every rule'
    return summarize(row)


def bench_nft(tmp, n):
    rules = nft_rules(n)
    load = 'add table inet bench\nadd chain inet bench input { type filter hook input priority 0; }\n' + \
        ''.join('add rule inet bench input %s\n' % r for r in rules)
    return summarize(rounds(tmp, n, rules, ['nft', '-f', '-'], load, lambda ns: {
        'pflab.netfilter.nft_rules': {'netns': ns, 'family': 'inet', 'table': 'bench', 'exclusive': True,
                                      'chains': [{'name': 'input', 'hook': 'input', 'rules': '{{ bench_rules }}'}]}}))


def summarize(row):
    out = {'n': row['n']}
    for key in ('raw', 'empty', 'payload', 'apply', 'noop'):
        out[key] = median(row[key])
    out['budget'] = round(2 * out['raw'] + out['empty'], 3)
    out['apply_within_budget'] = out['apply'] <= out['budget']
    out['payload_budget'] = round(2 * out['raw'] + out['payload'], 3)
    out['apply_within_payload_budget'] = out['apply'] <= out['payload_budget']
    out['noop_under_1s'] = out['noop'] < 1.0
    if row.get('loop'):
        out['loop'] = round(row['loop'][0], 3)
        out['loop_over_apply'] = round(out['loop'] / out['apply'], 1)
    return out


def table(title, rows, raw_name, has_loop):
    head = ['N', raw_name + ' (s)', 'empty task (s)', 'payload task (s)', 'apply (s)',
            '2×raw+empty (s)', '2×raw+payload (s)', 'no-op (s)']
    if has_loop:
        head += ['ansible.builtin.iptables loop (s)', 'loop / apply']
    lines = ['### ' + title, '', '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['n'], r['raw'], r['empty'], r['payload'], r['apply'], r['budget'], r['payload_budget'], r['noop']]
        if has_loop:
            cells += [r.get('loop', 'not run'), ('%s×' % r['loop_over_apply']) if 'loop' in r else '']
        lines.append('| ' + ' | '.join(str(c) for c in cells) + ' |')
    return '\n'.join(lines) + '\n'


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [100, 1000, 5000]
    report = {'sizes': sizes, 'reps': REPS, 'kernel': os.uname()[2], 'iptables_legacy': [], 'nft': []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            report['iptables_legacy'].append(bench_iptables(tmp, n))
            print('iptables-legacy N=%d: %s' % (n, report['iptables_legacy'][-1]), flush=True)
            report['nft'].append(bench_nft(tmp, n))
            print('nft N=%d: %s' % (n, report['nft'][-1]), flush=True)
    text = '# Rule modules benchmark\n\nKernel %s, median of %d runs; task times as Ansible reports them.\n\n' % (
        report['kernel'], REPS)
    text += table('pflab.netfilter.iptables_rules (legacy) vs iptables-legacy-restore and ansible.builtin.iptables',
                  report['iptables_legacy'], 'iptables-legacy-restore', True)
    text += '\n' + table('pflab.netfilter.nft_rules vs nft -f', report['nft'], 'nft -f', False)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'rules.md'), 'w') as f:
        f.write(text)
    with open(os.path.join(RESULTS, 'rules.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print(text)


if __name__ == '__main__':
    main()
