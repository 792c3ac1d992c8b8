"""What a flow verdict costs: flow_verdict per host and per flow, by ruleset size, beside a reading alone.

Stand-ins hold N rules (0, 100, 1,000, 10,000): half iptables-legacy (INPUT, one port each), half
a native nft table hooked at input priority 0, so the two tie and every check replays two
orders. Each is checked with 1 and with 30 flows (accepted, dropped and rejected ones, the last
decided by the last rules of both rulesets), the module run as Ansible runs it on a target (one
Python process, its arguments file, libnftables through the OS's binding), beside filter_facts
on the same namespace: the reading every check starts with. Median of ROUNDS runs each. Writes
bench/results/verdict.{md,json}.

    .venv/bin/python bench/verdict.py [ROUNDS]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, 'bench', 'results')
PREFIX = 'pflbench-vd-%d-' % os.getpid()
SIZES = (0, 100, 1000, 10000)
FLOWS = 30
PORT_FIRST = 1000  # rule i matches tcp port 1000 + i


def sh(argv, data=None):
    subprocess.run(argv, input=data, check=True, text=True, capture_output=True)


def standin(name, rules):
    """A namespace with eth0 (192.0.2.10) and ``rules`` rules, half in iptables-legacy and half in nft."""
    sh(['ip', 'netns', 'add', name])
    sh(['ip', '-n', name, '-batch', '-'], 'link add eth0 type veth peer name eth0p\n'
       'addr add 192.0.2.10/24 dev eth0\nlink set eth0 up\nlink set lo up\n')
    half = rules // 2
    legacy = '*filter\n:INPUT ACCEPT [0:0]\n' + ''.join(
        '-A INPUT -p tcp -m tcp --dport %d -j ACCEPT\n' % (PORT_FIRST + i) for i in range(half))
    legacy += ('-A INPUT -p tcp -m tcp --dport %d -j DROP\n' % (PORT_FIRST + half) if half else '') + 'COMMIT\n'
    sh(['ip', 'netns', 'exec', name, 'iptables-legacy-restore'], legacy)
    ruleset = 'table inet big {\n chain in_big {\n  type filter hook input priority 0;\n' + ''.join(
        '  tcp dport %d accept\n' % (PORT_FIRST + i) for i in range(rules - half)) + \
        ('  tcp dport %d reject\n' % (PORT_FIRST + rules) if rules else '') + ' }\n}\n'
    sh(['ip', 'netns', 'exec', name, 'nft', '-f', '-'], ruleset)


def flows(rules, count):
    """``count`` flows: ports at the start, the middle and the end of both rulesets, and past them."""
    ports = [PORT_FIRST, PORT_FIRST + rules // 2, PORT_FIRST + rules, 22, 80, 443]
    return ['tcp 203.0.113.%d > 192.0.2.10:%d in eth0' % (1 + i, ports[i % len(ports)]) for i in range(count)]


def module_run(module, args, tmp):
    path = os.path.join(tmp, 'args.json')
    with open(path, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, '.collections'),
                                                       '/usr/lib/python3/dist-packages']))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'plugins', 'modules', module + '.py'), path],
                          capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    result = json.loads(proc.stdout)
    assert not result.get('failed'), result.get('msg')
    return elapsed, result


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rules in SIZES:
                name = PREFIX + str(rules)
                standin(name, rules)
                reading = [module_run('filter_facts', {'netns': name}, tmp)[0] for dummy in range(rounds)]
                rows.append(dict(rules=rules, what='filter_facts (the reading alone)', flows=0,
                                 median_s=statistics.median(reading), min_s=min(reading)))
                for count in (1, FLOWS):
                    runs = [module_run('flow_verdict', {'netns': name, 'flows': flows(rules, count)}, tmp)
                            for dummy in range(rounds)]
                    walls = [r[0] for r in runs]
                    timing = runs[walls.index(statistics.median(walls))][1]['timing']
                    verdicts = sorted(set(f['verdict'] for f in runs[0][1]['flows']))
                    rows.append(dict(rules=rules, what='flow_verdict, %d flow%s' % (count, 's' if count > 1 else ''),
                                     flows=count, median_s=statistics.median(walls), min_s=min(walls),
                                     orders=len(runs[0][1]['orders']), packets=timing['packets'],
                                     read_ms=timing['read_ms'], per_flow_ms=timing['per_flow_ms'],
                                     verdicts=verdicts))
                sh(['ip', 'netns', 'del', name])
    finally:
        for rules in SIZES:
            subprocess.run(['ip', 'netns', 'del', PREFIX + str(rules)], capture_output=True, check=False)
    lines = ['# flow_verdict by ruleset size (median of %d, 2 cores)' % rounds, '',
             'Half the rules in iptables-legacy, half in an nft table tied with it at input priority 0: '
             'every check replays 2 orders, so N flows send 2N packets.', '',
             '| rules | what | median s | min s | orders | packets | reading ms | ms per packet, all of the replay | verdicts |',
             '|---|---|---|---|---|---|---|---|---|']
    for row in rows:
        lines.append('| %d | %s | %.3f | %.3f | %s | %s | %s | %s | %s |' % (
            row['rules'], row['what'], row['median_s'], row['min_s'], row.get('orders', ''), row.get('packets', ''),
            row.get('read_ms', ''), row.get('per_flow_ms', ''), ', '.join(row.get('verdicts', []))))
    by = dict(((r['rules'], r['flows']), r) for r in rows)
    lines += ['', '| rules | one flow, s | each further flow, ms (both orders) | per host with 30 flows, s |',
              '|---|---|---|---|']
    for rules in SIZES:
        one, many = by[(rules, 1)], by[(rules, FLOWS)]
        lines.append('| %d | %.3f | %.1f | %.3f |' % (rules, one['median_s'],
                                                      (many['median_s'] - one['median_s']) * 1000 / (FLOWS - 1),
                                                      many['median_s']))
    text = '\n'.join(lines) + '\n'
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'verdict.md'), 'w') as f:
        f.write(text)
    with open(os.path.join(RESULTS, 'verdict.json'), 'w') as f:
        json.dump(rows, f, indent=2)
    print(text)


if __name__ == '__main__':
    main()
