"""The scenario suites against plain shell scripts doing the same experiments, and a fleet run.

Side by side, whole process, median (min-max) of REPS interleaved runs after a warm-up, wall and CPU
seconds (the command and all its children):
  - make report (set up already): playbooks/report.yml, the article suite and the layers suite in one
    suite call, with host preparation, every lab, witness and both reports; against its floor, bench/article.sh then
    bench/layers.sh: the same fifteen scenarios by hand in shell, one after another (eBPF objects
    compiled by clang beforehand, not timed). Targets: wall <= 1.0x, CPU <= 3x the floor. The same
    playbook with 1, 2 and 8 labs at once, against the default (twice the CPUs);
  - playbooks/layers.yml alone against bench/layers.sh (target: <= 1.5x);
  - playbooks/matrix.yml, 25 scenarios (target: <= 4 s);
  - playbooks/article.yml on FLEET inventory hosts (local connection, each with labs of its own) with
    forks 5 and 20, against FLEET times the article suite on one host.
Writes bench/results/suites.{md,json}.

    .venv/bin/python bench/suites.py [REPS]
"""

import json
import os
import statistics
import sys
import tempfile

from layers import compile_objects, timed  # bench/layers.py: clang objects for the floor, whole-process timing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, 'bench', 'results')
FLEET = 20


def _inventory(folder):
    path = os.path.join(folder, 'fleet.yml')
    hosts = dict(('lab%02d' % n, {}) for n in range(1, FLEET + 1))
    with open(path, 'w') as f:
        json.dump({'all': {'hosts': hosts, 'vars': {'ansible_connection': 'local',
                                                    'ansible_python_interpreter': '/usr/bin/python3'}}}, f)
    return path


def commands(work, objects):
    report = os.path.join(work, 'report')
    article_sh = ['bash', os.path.join(ROOT, 'bench', 'article.sh')]
    layers_sh = ['bash', os.path.join(ROOT, 'bench', 'layers.sh'), objects]
    play = ['ansible-playbook', '-e', 'report_dir=' + report]
    fleet = play + ['-i', _inventory(work), 'playbooks/article.yml']
    return [
        # (name, argv, floor name, target: (what, limit))
        ('make report', ['make', '-s', 'report', 'REPORT_DIR=' + report], 'article.sh + layers.sh',
         ('wall x floor', 1.0)),
        ('article.sh + layers.sh', ['bash', '-c', '"${@:1:2}" && "${@:3}"', 'floor'] + article_sh + layers_sh,
         None, None),
    ] + [
        ('report.yml, pflab_parallel=%d' % n, play + ['-e', 'pflab_parallel=%d' % n, 'playbooks/report.yml'],
         'article.sh + layers.sh', None)
        for n in (1, 2, 8)
    ] + [
        ('article.yml', play + ['playbooks/article.yml'], 'article.sh', None),
        ('article.sh', article_sh, None, None),
        ('layers.yml', play + ['playbooks/layers.yml'], 'layers.sh', ('wall x floor', 1.5)),
        ('layers.sh', layers_sh, None, None),
        ('matrix.yml (25 scenarios)', play + ['playbooks/matrix.yml'], None, ('wall s', 4.0)),
        ('article.yml, %d hosts, forks 5' % FLEET, fleet + ['-f', '5'], None, None),
        ('article.yml, %d hosts, forks 20' % FLEET, fleet + ['-f', '20'], None, None),
    ]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as work:
        objects = os.path.join(work, 'objects')
        os.mkdir(objects)
        compile_objects(objects)
        cmds = commands(work, objects)
        for dummy, argv, dummy, dummy in cmds:  # warm-up: caches, compiled bytecode
            timed(argv)
        samples = dict((name, []) for name, dummy, dummy, dummy in cmds)
        for dummy in range(reps):
            for name, argv, dummy, dummy in cmds:
                samples[name].append(timed(argv))
    wall = dict((name, statistics.median(w for w, c in s)) for name, s in samples.items())
    cpu = dict((name, statistics.median(c for w, c in s)) for name, s in samples.items())
    one_host = wall['article.yml']
    rows = []
    for name, dummy, floor, target in cmds:
        walls = [w for w, c in samples[name]]
        row = dict(command=name, runs=reps, wall_s=round(wall[name], 2), wall_min_s=round(min(walls), 2),
                   wall_max_s=round(max(walls), 2), cpu_s=round(cpu[name], 2), floor=floor,
                   wall_x_floor=round(wall[name] / wall[floor], 2) if floor else None,
                   cpu_x_floor=round(cpu[name] / cpu[floor], 2) if floor else None, target=None, met=None)
        if 'hosts' in name:
            row['vs_one_host_times_%d' % FLEET] = round(wall[name] / (FLEET * one_host), 3)
        if target:
            what, limit = target
            value = row['wall_x_floor'] if what == 'wall x floor' else row['wall_s']
            row.update(target='%s <= %g' % (what, limit), met=value <= limit)
        if name == 'make report':
            row.update(target=row['target'] + ', cpu x floor <= 3', met=row['met'] and row['cpu_x_floor'] <= 3.0)
        rows.append(row)
    lines = ['| command | wall s, median (min-max) | CPU s | wall × floor | CPU × floor | target |',
             '|---|---|---|---|---|---|']
    for r in rows:
        ratio = '' if r['floor'] is None else '%.2f (%s)' % (r['wall_x_floor'], r['floor'])
        if 'hosts' in r['command']:
            ratio = '%.3f of %d × article.yml on one host (%.1f s)' % (
                r['vs_one_host_times_%d' % FLEET], FLEET, FLEET * one_host)
        lines.append('| %s | %.2f (%.2f-%.2f) | %.2f | %s | %s | %s |' % (
            r['command'], r['wall_s'], r['wall_min_s'], r['wall_max_s'], r['cpu_s'], ratio,
            '' if r['cpu_x_floor'] is None else '%.2f' % r['cpu_x_floor'],
            '' if r['target'] is None else '%s: %s' % (r['target'], 'met' if r['met'] else 'MISSED')))
    table = '\n'.join(lines)
    print(table)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'suites.md'), 'w') as f:
        f.write('# Scenario suites (bench/suites.py)\n\n%s\n\nKernel %s, %d cores, %d interleaved runs after a '
                'warm-up; wall and CPU of the whole process tree.\n' % (table, os.uname().release, os.cpu_count(), reps))
    with open(os.path.join(RESULTS, 'suites.json'), 'w') as f:
        json.dump(dict(rows=rows, samples=samples, kernel=os.uname().release), f, indent=2)


if __name__ == '__main__':
    main()
