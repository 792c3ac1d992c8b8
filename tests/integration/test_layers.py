"""The layers suite on the real kernel: XDP, tc and nftables netdev beside netfilter, one ordered trace, the witness."""

import json
import os

import pytest
import yaml

from conftest import ROOT, Ansible, netns_names, settled_leftovers

LAYERS = os.path.join(ROOT, 'playbooks', 'scenarios', 'layers')
# scenario -> (where the first probe stops, the filter the drop witness names, None when the kernel drops
# nothing: OVS's userspace datapath just does not forward); None: it connects
STOPS = {
    'ovs-drop': ('switch', None), 'ovs-pass-nft-drop': ('input', 'nftables'),
    'xdp-drop-native': ('xdp', 'xdp'), 'xdp-drop-generic': ('xdp', 'xdp'),
    'xdp-pass-nft-drop': ('input', 'nftables'), 'tc-ingress-drop': ('tc-ingress', 'tc'),
    'tc-egress-vs-nft-output': ('tc-egress', 'tc'), 'netdev-ingress-vs-inet-input': ('input', 'nftables'),
    'every-layer': None,
}


@pytest.fixture(scope='module')
def layers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('layers')
    Ansible(tmp).playbook('layers.yml', report_dir=str(tmp / 'report'))
    folder = os.path.join(str(tmp / 'report'), os.readlink(os.path.join(str(tmp / 'report'), 'latest')))
    with open(os.path.join(folder, 'report.json')) as f:
        return json.load(f), folder


def test_every_layer_scenario_reproduces_its_trace(layers):
    report, dummy = layers
    assert report['suite'] == 'layers' and sorted(s['id'] for s in report['scenarios']) == sorted(STOPS)
    for scenario in report['scenarios']:
        (result,) = scenario['results']
        with open(os.path.join(LAYERS, scenario['id'] + '.yml')) as f:
            expect = yaml.safe_load(f)['expect']
        assert (result['observed']['trace'], result['observed']['reached']) == (expect['trace'], expect['reached']), \
            (scenario['id'], result['reasons'])
        assert result['status'] == 'reproduced', (scenario['id'], result['reasons'])
        assert result['witness']['available'] and result['witness']['clock']['checked']


def test_the_witness_names_the_filter_that_dropped(layers):
    report, dummy = layers
    for scenario in report['scenarios']:
        (result,) = scenario['results']
        drops = [r for r in result['trace'] if r['source'] == 'witness']
        if STOPS[scenario['id']] is None:
            assert drops == [] and result['stopped_at'] is None
            continue
        point, dropper = STOPS[scenario['id']]
        assert [d['filter'] for d in drops] == ([dropper] if dropper else []), (scenario['id'], drops)
        assert (result['stopped_at']['hook'], result['stopped_at']['by']) == (point, 'witness' if dropper else 'trace'), \
            scenario['id']
        # XDP drops are never seen by netfilter: no LOG record at all
        if dropper == 'xdp':
            assert not [r for r in result['trace'] if r['source'] == 'log']


def test_one_trace_on_one_clock_in_the_packets_order(layers):
    report, dummy = layers
    result = next(s for s in report['scenarios'] if s['id'] == 'every-layer')['results'][0]
    times = [r['time_ns'] for r in result['trace']]
    assert times == sorted(times)
    window = result['probes'][0]['window_ns']
    assert window[0] <= times[0] and times[-1] <= window[1]
    assert [r['source'] for r in result['trace']] == ['bpf', 'bpf', 'log', 'log', 'log', 'log', 'log', 'bpf']
    # the path is drawn by layer in the kernel's order, whatever the registration order was
    drawn = [(p['direction'], p['hook']) for p in result['path']]
    assert drawn == [('received', 'xdp'), ('received', 'tc-ingress'), ('received', 'netdev-ingress'),
                     ('received', 'input'), ('sent', 'output'), ('sent', 'netdev-egress'), ('sent', 'tc-egress')]
    assert [p['next'] for p in result['path']] == ['tc-ingress', 'netdev-ingress', 'prerouting', 'socket', 'routing',
                                                   'tc-egress', 'the wire']
    assert all(s['state'] == ('seen' if s['marks'] else 'not-seen') for p in result['path'] for s in p['stages'])


def test_ovs_sits_between_the_client_and_the_servers_netfilter(layers):
    report, dummy = layers
    dropped = next(s for s in report['scenarios'] if s['id'] == 'ovs-drop')['results'][0]
    (switch,) = [p for p in dropped['path'] if p['hook'] == 'switch']
    assert [(s['filter'], s['marks'], s['hits'], s['state']) for s in switch['stages']] == [
        ('ovs', ['ovs-drop'], 1, 'stopped')]
    assert [s['state'] for p in dropped['path'] if p['hook'] == 'input' for s in p['stages']] == ['not-reached']
    passed = next(s for s in report['scenarios'] if s['id'] == 'ovs-pass-nft-drop')['results'][0]
    assert [s['state'] for p in passed['path'] for s in p['stages']] == ['seen', 'stopped']


def test_nothing_is_left_after_the_suite(layers):
    assert not [n for n in netns_names() if n.startswith('pfl-sc-')]
    assert settled_leftovers() == []
    assert not [e for e in os.listdir('/run/pflab') if e.startswith('ovs-')]


def test_the_report_draws_every_layer(layers):
    dummy, folder = layers
    with open(os.path.join(folder, 'report.html')) as f:
        page = f.read()
    for point in ('xdp', 'tc-ingress', 'netdev-ingress', 'netdev-egress', 'tc-egress'):
        assert 'data-hook="%s"' % point in page
    assert 'the kernel dropped it there (TC_INGRESS' in page
    assert 'No witness' not in page
