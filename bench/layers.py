"""The layers suite against a plain shell script doing the same nine scenarios by hand.

Side by side, whole process, median (min-max) of REPS interleaved runs, wall and CPU seconds:
  - ansible-playbook playbooks/layers.yml: the suite with Ansible start-up, host preparation, the drop
    witness, BPF sightings, the OVS switch and the report;
  - bench/layers.sh: the same scenarios by hand (iproute2, tc, nft, ovs-*), with eBPF objects compiled
    here by clang beforehand (not timed), as a person would load them with ip and tc: the floor.
Writes bench/results/layers.{md,json}.

    .venv/bin/python bench/layers.py [REPS]
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, 'bench', 'results')
SOURCE = os.path.join(ROOT, 'bench', 'layers', 'filter.bpf.c')
# object -> clang flags (see filter.bpf.c)
OBJECTS = {
    'xdp-drop': ['-DXDP', '-DDPORT=12345', '-DSPORT=0', '-DACTION=DROP'],
    'xdp-pass': ['-DXDP', '-DDPORT=12345', '-DSPORT=0', '-DACTION=PASS'],
    'tc-drop-in': ['-DDPORT=12345', '-DSPORT=0', '-DACTION=DROP'],
    'tc-drop-out': ['-DDPORT=0', '-DSPORT=12345', '-DACTION=DROP'],
    'tc-pass-in': ['-DDPORT=12345', '-DSPORT=0', '-DACTION=PASS'],
    'tc-pass-out': ['-DDPORT=0', '-DSPORT=12345', '-DACTION=PASS'],
}


def compile_objects(folder):
    if not shutil.which('clang'):
        raise SystemExit('the floor loads eBPF objects built with clang: apt-get install clang (make bench-layers does)')
    arch = subprocess.run(['gcc', '-print-multiarch'], capture_output=True, text=True, check=False).stdout.strip()
    for name, flags in OBJECTS.items():
        subprocess.run(['clang', '-O2', '-g0', '-target', 'bpf', '-I/usr/include/%s' % arch] + flags +
                       ['-c', SOURCE, '-o', os.path.join(folder, name + '.o')], check=True)


def timed(argv):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit('%s failed:\n%s' % (' '.join(argv), proc.stdout.decode()[-3000:]))
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as work:
        compile_objects(work)
        cmds = [('layers.yml (9 scenarios)', ['ansible-playbook', 'playbooks/layers.yml', '-e', 'report_dir=' + work]),
                ('bench/layers.sh (floor)', ['bash', os.path.join(ROOT, 'bench', 'layers.sh'), work])]
        for dummy, argv in cmds:  # warm-up: caches, compiled bytecode
            timed(argv)
        samples = dict((name, []) for name, dummy in cmds)
        for dummy in range(reps):
            for name, argv in cmds:
                samples[name].append(timed(argv))
    floor = statistics.median(w for w, c in samples['bench/layers.sh (floor)'])
    rows = []
    for name, dummy in cmds:
        walls, cpus = [w for w, c in samples[name]], [c for w, c in samples[name]]
        rows.append(dict(command=name, runs=reps, wall_s=round(statistics.median(walls), 2),
                         wall_min_s=round(min(walls), 2), wall_max_s=round(max(walls), 2),
                         cpu_s=round(statistics.median(cpus), 2), vs_floor=round(statistics.median(walls) / floor, 1)))
    lines = ['| command | runs | wall s, median (min-max) | CPU s, median | wall × floor |', '|---|---|---|---|---|']
    for r in rows:
        lines.append('| %s | %d | %.2f (%.2f-%.2f) | %.2f | %.1f |' % (
            r['command'], r['runs'], r['wall_s'], r['wall_min_s'], r['wall_max_s'], r['cpu_s'], r['vs_floor']))
    table = '\n'.join(lines)
    print(table)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'layers.md'), 'w') as f:
        f.write('# The layers suite against doing it by hand (bench/layers.py)\n\n%s\n\nKernel %s, %d cores.\n' % (
            table, os.uname().release, os.cpu_count()))
    with open(os.path.join(RESULTS, 'layers.json'), 'w') as f:
        json.dump(dict(rows=rows, samples=samples, kernel=os.uname().release), f, indent=2)


if __name__ == '__main__':
    main()
