"""What the audit costs: filter_facts on a big ruleset, and playbooks/audit.yml on a fleet, side by side.

1. filter_facts as Ansible runs it on a target (one Python process: the module and its arguments
   file; ansible-core's module_utils from this venv, libnftables through the OS's binding), on an empty namespace and on one holding 10,000 iptables-legacy
   rules and 10,000 nft rules (target: at most 2 s).
2. playbooks/audit.yml on 20 inventory hosts (local connection, each bound to a namespace of its
   own, half of them with a Docker-like ruleset beside an nft table), with forks 1, 5 and 20.
Median of ROUNDS runs each. Writes bench/results/audit.{md,json}.

    .venv/bin/python bench/audit.py [ROUNDS]
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
PREFIX = 'pflbench-aud-%d-' % os.getpid()
RULES = 10000
HOSTS = 20
TARGET_PYTHON = '/usr/bin/python3'
DOCKER_LIKE = '''iptables-legacy -P FORWARD DROP
iptables-legacy -N DOCKER
iptables-legacy -A FORWARD -o docker0 -j DOCKER
nft 'add table inet lab; add chain inet lab fw { type filter hook forward priority 0; }; add rule inet lab fw tcp dport 80 accept'
'''


def sh(netns, script, data=None):
    subprocess.run(['ip', 'netns', 'exec', netns, 'sh', '-ec', script], input=data, check=True, text=True,
                   capture_output=True)


def big_namespace(name):
    subprocess.run(['ip', 'netns', 'add', name], check=True)
    legacy = '*filter\n:INPUT ACCEPT [0:0]\n' + ''.join(
        '-A INPUT -p tcp -m tcp --dport %d -j ACCEPT\n' % (1 + i) for i in range(RULES)) + 'COMMIT\n'
    sh(name, 'iptables-legacy-restore', legacy)
    ruleset = 'table inet big {\n chain in_big {\n  type filter hook input priority 10;\n' + ''.join(
        '  tcp dport %d accept\n' % (1 + i) for i in range(RULES)) + ' }\n}\n'
    sh(name, 'nft -f -', ruleset)


def module_run(netns, tmp):
    args = os.path.join(tmp, 'args.json')
    with open(args, 'w') as f:
        json.dump({'ANSIBLE_MODULE_ARGS': {'netns': netns}}, f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, '.collections'),
                                                       '/usr/lib/python3/dist-packages']))
    start = time.monotonic()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'plugins', 'modules', 'filter_facts.py'), args],
                          capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - start
    result = json.loads(proc.stdout)
    assert not result.get('failed'), result.get('msg')
    return elapsed, len(proc.stdout)


def fleet_run(inventory, forks, tmp):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_FORKS=str(forks))
    start = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory,
                           os.path.join(ROOT, 'playbooks', 'audit.yml'), '-e', 'audit_fail_on=never',
                           '-e', 'audit_dir=' + os.path.join(tmp, 'audit')], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout[-2000:]
    return elapsed


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    made = []
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            empty, big = PREFIX + 'empty', PREFIX + 'big'
            subprocess.run(['ip', 'netns', 'add', empty], check=True)
            made.append(empty)
            made.append(big)
            big_namespace(big)
            for label, netns in (('filter_facts, empty namespace', empty),
                                 ('filter_facts, %d legacy + %d nft rules' % (RULES, RULES), big)):
                runs = [module_run(netns, tmp) for dummy in range(rounds)]
                rows.append(dict(what=label, median_s=round(statistics.median(r[0] for r in runs), 3),
                                 min_s=round(min(r[0] for r in runs), 3), result_kib=round(runs[0][1] / 1024, 1)))
            hosts = {}
            for index in range(HOSTS):
                name = '%sh%02d' % (PREFIX, index)
                subprocess.run(['ip', 'netns', 'add', name], check=True)
                made.append(name)
                if index % 2:
                    sh(name, DOCKER_LIKE)
                hosts['h%02d' % index] = {'audit_netns': name}
            inventory = os.path.join(tmp, 'fleet.json')
            with open(inventory, 'w') as f:
                json.dump({'all': {'vars': {'ansible_connection': 'local',
                                            'ansible_python_interpreter': TARGET_PYTHON}, 'hosts': hosts}}, f)
            for forks in (1, 5, 20):
                runs = [fleet_run(inventory, forks, tmp) for dummy in range(rounds)]
                rows.append(dict(what='audit.yml, %d hosts, forks %d' % (HOSTS, forks),
                                 median_s=round(statistics.median(runs), 3), min_s=round(min(runs), 3),
                                 result_kib=None))
    finally:
        for name in made:
            subprocess.run(['ip', 'netns', 'del', name], check=False, capture_output=True)
    lines = ['| what | median s | min s | result KiB |', '|---|---|---|---|']
    lines += ['| %s | %.3f | %.3f | %s |' % (r['what'], r['median_s'], r['min_s'], r['result_kib'] or '')
              for r in rows]
    text = '\n'.join(lines) + '\n'
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'audit.md'), 'w') as f:
        f.write('# filter_facts and the fleet audit (median of %d, %d cores)\n\n%s' % (rounds, os.cpu_count(), text))
    with open(os.path.join(RESULTS, 'audit.json'), 'w') as f:
        json.dump({'rounds': rounds, 'rows': rows}, f, indent=2)


if __name__ == '__main__':
    main()
