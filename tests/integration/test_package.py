"""The release tarball: what is in it, and its playbooks run by FQCN from an install
into a clean path, with no checkout in reach (no ansible.cfg of ours, no .collections)."""

import json
import os
import subprocess
import tarfile

import yaml

from conftest import ROOT

# What a build must never carry: venvs, test and sanity output, reports (top-level folders
# of a checkout), and caches (anywhere).
FORBIDDEN_TOP = ('.venv', '.venv-newest', '.collections', 'build', 'report', 'tests/output', '.git', '.ci')
FORBIDDEN_ANYWHERE = ('.pytest_cache', '__pycache__', '.ansible')


def _leaked(member):
    parts = member.split('/')
    return (any(member == top or member.startswith(top + '/') for top in FORBIDDEN_TOP)
            or any(part in FORBIDDEN_ANYWHERE for part in parts) or member.endswith('.tar.gz'))


def _run(argv, **kwargs):
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, '%s\n%s\n%s' % (' '.join(argv), proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def test_built_collection_installs_and_runs_the_article_by_fqcn(tmp_path):
    with open(os.path.join(ROOT, 'galaxy.yml')) as f:
        version = yaml.safe_load(f)['version']
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith('ANSIBLE_'))
    _run(['ansible-galaxy', 'collection', 'build', '--output-path', str(tmp_path), ROOT], env=env)
    tarball = tmp_path / ('pflab-netfilter-%s.tar.gz' % version)
    with tarfile.open(str(tarball)) as tar:
        members = tar.getnames()
    leaked = [m for m in members if _leaked(m)]
    assert not leaked, leaked
    for needed in ('MANIFEST.json', 'FILES.json', 'playbooks/article.yml', 'playbooks/scenarios/article/experiment-2.yml',
                   'roles/report/templates/report.html.j2', 'schemas/scenario.schema.json', 'meta/runtime.yml',
                   'CHANGELOG.rst', 'README.md'):
        assert needed in members, needed

    collections = tmp_path / 'collections'
    _run(['ansible-galaxy', 'collection', 'install', '--offline', '--force', '-p', str(collections), str(tarball)], env=env)
    installed = collections / 'ansible_collections' / 'pflab' / 'netfilter'
    with open(str(installed / 'MANIFEST.json')) as f:
        assert json.load(f)['collection_info']['version'] == version

    work = tmp_path / 'work'
    work.mkdir()
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), PWD=str(work))
    listed = _run(['ansible-galaxy', 'collection', 'list', 'pflab.netfilter', '--format', 'json'], env=env, cwd=str(work))
    assert list(json.loads(listed.stdout)) == [str(collections / 'ansible_collections')]
    played = _run(['ansible-playbook', '-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=/usr/bin/python3',
                   'pflab.netfilter.article'], env=env, cwd=str(work))
    assert 'TASK [pflab.netfilter.report : Write report.json, report.md and report.html]' in played.stdout
    assert sorted(os.listdir(str(work / 'report' / 'latest'))) == ['report.html', 'report.json', 'report.md']
    with open(str(work / 'report' / 'latest' / 'report.json')) as f:
        report = json.load(f)
    assert report['summary'] == {'reproduced': 6, 'differs': 0, 'skipped': 0, 'not run': 0, 'failed': 0, 'missing': 0}
