"""The scenario suites against a plain shell script doing the same experiments.

Side by side, whole-process wall time, median (min-max) of REPS interleaved runs:
  - make report: the article suite (control + five experiments) with Ansible start-up,
    host preparation and the report (target: <= 8 s);
  - bench/article.sh: the same six scenarios by hand in shell, the floor;
  - the order matrix, ansible-playbook playbooks/matrix.yml (target: <= 20 s).
Writes bench/results/suites.{md,json}.

    .venv/bin/python bench/suites.py [REPS]
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


def commands(report_dir):
    return [
        ('make report (article suite)', ['make', '-s', 'report', 'REPORT_DIR=' + report_dir], 8.0),
        ('bench/article.sh (floor)', ['bash', os.path.join(ROOT, 'bench', 'article.sh')], None),
        ('matrix.yml (25 scenarios)', ['ansible-playbook', 'playbooks/matrix.yml', '-e', 'report_dir=' + report_dir], 20.0),
    ]


def timed(argv):
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise SystemExit('%s failed:\n%s' % (' '.join(argv), proc.stdout.decode()[-3000:]))
    return time.monotonic() - start


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as report_dir:
        cmds = commands(report_dir)
        for dummy, argv, dummy in cmds:  # warm-up: caches, compiled bytecode
            timed(argv)
        times = dict((name, []) for name, dummy, dummy in cmds)
        for dummy in range(reps):
            for name, argv, dummy in cmds:
                times[name].append(timed(argv))
    floor = statistics.median(times['bench/article.sh (floor)'])
    rows = []
    for name, dummy, target in cmds:
        median = statistics.median(times[name])
        rows.append(dict(command=name, runs=reps, median_s=round(median, 2), min_s=round(min(times[name]), 2),
                         max_s=round(max(times[name]), 2), vs_floor=round(median / floor, 1),
                         target_s=target, meets_target=None if target is None else median <= target))
    lines = ['| command | runs | median s | min s | max s | × floor | target |', '|---|---|---|---|---|---|---|']
    for r in rows:
        target = '' if r['target_s'] is None else '≤ %g s: %s' % (r['target_s'], 'met' if r['meets_target'] else 'MISSED')
        lines.append('| %s | %d | %.2f | %.2f | %.2f | %.1f | %s |' % (
            r['command'], r['runs'], r['median_s'], r['min_s'], r['max_s'], r['vs_floor'], target))
    table = '\n'.join(lines)
    print(table)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'suites.md'), 'w') as f:
        f.write('# Scenario suites, wall time (bench/suites.py)\n\n%s\n\nKernel %s, %d cores.\n' % (
            table, os.uname().release, os.cpu_count()))
    with open(os.path.join(RESULTS, 'suites.json'), 'w') as f:
        json.dump(dict(rows=rows, samples=times, kernel=os.uname().release), f, indent=2)


if __name__ == '__main__':
    main()
