"""Traces that cannot be wrong silently (issue 10, classes 6 and 7).

6: while the article runs, other namespaces with the lab's addresses and the article's LOG
prefixes log SYNs to port 12345 all the time, and replay within a millisecond every probe's
own source port: each trace is still the kernel's (or says how many records were lost), and the
foreign records are counted, not taken.
7: a LOG rule the probe cannot hit (udp 53) is not predicted, so the order rule is not
"contradicted" by its silence.
"""

import json
import os
import random
import select
import socket
import subprocess
import threading
import time

import yaml

from conftest import ROOT, Ansible, netns_names

from ansible_collections.pflab.netfilter.plugins.module_utils import kmsg

ARTICLE = os.path.join(ROOT, 'playbooks', 'scenarios', 'article')
FLOOD = ('pfl-itest-flood-client', 'pfl-itest-flood-server')


def _sh(*argv):
    subprocess.run(argv, check=True)


def _enter(name):
    fd = os.open('/run/netns/' + name, os.O_RDONLY)
    try:
        os.setns(fd, 0x40000000) if hasattr(os, 'setns') else _libc_setns(fd)
    finally:
        os.close(fd)


def _libc_setns(fd):
    import ctypes
    assert ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) == 0


class Flood:
    """Two namespaces with the lab's addresses and interface names, logging with the article's prefixes;
    a thread that sends SYNs from random ports, and one that replays each probe's source port."""

    def __init__(self):
        self.stop = threading.Event()
        self.sent = self.replayed = 0

    def __enter__(self):
        client, server = FLOOD
        for name in FLOOD:
            _sh('ip', 'netns', 'add', name)
        _sh('ip', 'link', 'add', 'to-server', 'netns', client, 'type', 'veth', 'peer', 'name', 'to-client', 'netns', server)
        _sh('ip', '-n', client, 'addr', 'add', '198.18.0.1/30', 'dev', 'to-server')
        _sh('ip', '-n', server, 'addr', 'add', '198.18.0.2/30', 'dev', 'to-client')
        for name, dev in ((client, 'to-server'), (server, 'to-client')):
            _sh('ip', '-n', name, 'link', 'set', 'lo', 'up')
            _sh('ip', '-n', name, 'link', 'set', dev, 'up')
        rules = ('*filter\n-A INPUT -p tcp --dport 12345 -j LOG --log-prefix ipt-input\n'
                 '-A OUTPUT -p tcp --sport 12345 -j LOG --log-prefix ipt-output\nCOMMIT\n')
        subprocess.run(['ip', 'netns', 'exec', server, 'iptables-legacy-restore'], input=rules, text=True, check=True)
        ruleset = ('table inet filter {\n chain input { type filter hook input priority 0; '
                   'tcp dport 12345 log prefix "nft-input" accept; }\n chain output { type filter hook output '
                   'priority 0; tcp sport 12345 log prefix "nft-output" accept; }\n}\n')
        subprocess.run(['ip', 'netns', 'exec', server, 'nft', '-f', '-'], input=ruleset, text=True, check=True)
        # A listener that never accepts: every SYN gets its SYN-ACK (logged at output) until the queue is full.
        self.listener = subprocess.Popen(['ip', 'netns', 'exec', server, 'python3', '-c',
                                          'import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, '
                                          'socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 12345)); s.listen(4096); '
                                          'time.sleep(3600)'])
        time.sleep(0.3)
        self.threads = [threading.Thread(target=self._flood), threading.Thread(target=self._replay)]
        for thread in self.threads:
            thread.start()
        return self

    def _syn(self, sockets, port):
        sock = socket.socket()
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('198.18.0.1', port))
            sock.connect_ex(('198.18.0.2', 12345))
        except OSError:
            sock.close()
            return False
        sockets.append(sock)
        while len(sockets) > 500:
            sockets.pop(0).close()
        return True

    def _flood(self):
        _enter(FLOOD[0])
        sockets = []
        while not self.stop.is_set():
            self.sent += self._syn(sockets, random.randint(32768, 60999))
            time.sleep(0.004)
        for sock in sockets:
            sock.close()

    def _replay(self):
        """Send a SYN with the source port of every lab probe's SYN the moment its LOG record appears."""
        _enter(FLOOD[0])
        sockets = []
        fd = os.open(kmsg.KMSG_PATH, os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(fd, 0, os.SEEK_END)
        try:
            while not self.stop.is_set():
                if not select.select([fd], [], [], 0.1)[0]:
                    continue
                try:
                    record = kmsg.parse_record(os.read(fd, 16384).decode('utf-8', 'replace'))
                except OSError:
                    continue  # overwritten under the reader
                parsed = kmsg.parse_log_line(record['message']) if record else None
                if not parsed:
                    continue
                fields = parsed['fields']
                if fields.get('DPT') == '12345' and fields.get('IN') not in (None, '', 'to-client') \
                        and parsed['tcp_flags'] == ['SYN']:
                    self.replayed += self._syn(sockets, int(fields['SPT']))
        finally:
            os.close(fd)
            for sock in sockets:
                sock.close()

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.listener.kill()
        self.listener.wait()
        for name in FLOOD:
            subprocess.run(['ip', 'netns', 'del', name], check=False)


def _expected(scenario_id):
    with open(os.path.join(ARTICLE, scenario_id + '.yml')) as f:
        return yaml.safe_load(f)['expect']


def test_6_a_flood_with_the_same_addresses_ports_and_prefixes_never_enters_a_trace(tmp_path):
    results, ansible = [], Ansible(tmp_path)
    with Flood() as flood:
        for run in range(3):
            ansible.playbook('article.yml', report_dir=str(tmp_path / ('report-%d' % run)))
            with open(str(tmp_path / ('report-%d' % run) / 'latest' / 'report.json')) as f:
                results += [(s['id'], s['results'][0]) for s in json.load(f)['scenarios']]
    assert flood.sent > 500 and flood.replayed > 0, (flood.sent, flood.replayed)
    foreign = 0
    for scenario_id, result in results:
        foreign += result['foreign']
        expect = _expected(scenario_id)
        right = result['observed']['trace'] == expect['trace'] and result['observed']['reached'] == expect['reached']
        assert right or result['observed']['lost'] > 0, (scenario_id, result['observed'], result['reasons'])
        # the witness records this run's process only: the flood's drops never enter, one drop at most per probe
        drops = [r for r in result['trace'] if r['source'] == 'witness']
        assert len(drops) <= len(result['probes']) and all(r['probe'] == 1 for r in drops), drops
        for record in result['trace']:
            if record['source'] != 'witness':
                assert {record['fields']['IN'], record['fields']['OUT']} & {'to-client', 'to-server'} == set(), record
    assert foreign > 0, 'the replayed SYNs never met a probe: the test proved nothing'
    assert not [n for n in netns_names() if n.startswith('pfl-sc-')]


def test_7_a_log_rule_the_probe_cannot_hit_does_not_contradict_the_order(ansible, tmp_path):
    scenario = {
        'id': 'unmatched-log', 'title': 'A LOG rule for DNS beside the article\'s', 'source': 'beyond the article',
        'steps': [
            {'iptables': {'backend': 'legacy', 'chains': [{'name': 'INPUT', 'rules': [
                '-p udp --dport 53 -j LOG --log-prefix ipt-dns',
                '-p tcp --dport 12345 -j LOG --log-prefix ipt-input', '-p tcp --dport 12345 -j DROP']}]}},
            {'nft': {'table': 'filter', 'chains': [{'name': 'input', 'hook': 'input', 'rules': [
                'udp dport 53 log prefix "nft-dns" accept', 'tcp dport 12345 log prefix "nft-input" accept']}]}},
        ],
        'expect': {'reached': False, 'trace': ['nft-input', 'ipt-input']},
    }
    path = tmp_path / 'unmatched.yml'
    path.write_text(yaml.safe_dump(scenario))
    result = ansible.playbook('run.yml', scenario=str(path), report_dir=str(tmp_path / 'report'))
    with open(str(tmp_path / 'report' / 'latest' / 'report.json')) as f:
        report = json.load(f)
    (run,) = report['scenarios'][0]['results']
    assert run['status'] == 'reproduced', run['reasons']
    assert run['rule'] == {'predicted': ['nft-input', 'ipt-input'], 'holds': True}
    assert report['rule']['holds'] is True and 'contradicted' not in report['rule']['verdict']
    assert 'Order rule: every observed order agrees with it' in result.stdout.read()
