"""Step kinds: each kind's argument spec agrees with the scenario schema; variants and feature checks."""

import json
import os

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import scenario
from ansible_collections.pflab.netfilter.plugins.module_utils.steps import KINDS, base

SCHEMA = os.path.join(os.path.dirname(__file__), '..', '..', '..', '..', 'schemas', 'scenario.schema.json')
TYPES = {'str': 'string', 'path': 'string', 'int': 'integer', 'bool': 'boolean', 'list': 'array', 'dict': 'object'}


@pytest.fixture(scope='module')
def schema():
    with open(SCHEMA) as f:
        return json.load(f)


def _resolve(schema, node):
    while '$ref' in node:
        node = schema['$defs'][node['$ref'].split('/')[-1]]
    return node


def _agree(schema, spec, node, forbidden, where):
    properties = node['properties']
    assert set(properties) == set(spec) - set(forbidden), where
    required = set(k for k, option in spec.items() if option.get('required')) - set(forbidden)
    assert set(node.get('required', [])) == required, where
    for key in properties:
        option, prop = spec[key], _resolve(schema, properties[key])
        if 'choices' in option:
            assert sorted(prop['enum'], key=str) == sorted(option['choices'], key=str), '%s.%s' % (where, key)
        else:
            assert prop['type'] == TYPES[option['type']], '%s.%s' % (where, key)
        if option.get('options'):
            _agree(schema, option['options'], _resolve(schema, prop['items']), (), '%s.%s[]' % (where, key))


@pytest.mark.parametrize('name', sorted(KINDS))
def test_the_schema_and_the_argument_spec_agree(schema, name):
    kind = KINDS[name]
    assert schema['$defs']['step']['properties'][name] == {'$ref': '#/$defs/%s' % name}
    assert kind.layer in base.LAYERS and kind.module.startswith('pflab.netfilter.')
    _agree(schema, kind.spec, schema['$defs'][name], kind.forbidden, name)


def test_every_kind_in_the_schema_is_registered(schema):
    assert set(schema['$defs']['step']['properties']) == set(KINDS)


def test_a_disagreement_would_be_found(schema):
    spec = dict(KINDS['bpf'].spec, action=dict(type='str', choices=['pass', 'drop', 'redirect']))
    with pytest.raises(AssertionError):
        _agree(schema, spec, schema['$defs']['bpf'], KINDS['bpf'].forbidden, 'bpf')


PLAN = scenario.lab.LabPlan('unit', ['client', 'server'], ifname_tag='k3x9')


def _steps(*pairs):
    plan = PLAN
    return [scenario.step_params(i, {kind: args}, plan) for i, (kind, args) in enumerate(pairs, 1)]


NETDEV_EGRESS = ('nft', dict(family='netdev', table='edge', chains=[
    dict(name='out', hook='egress', device='client', priority=0, rules=['log'])]))
XDP = ('bpf', dict(interface='client', hook='xdp'))
LEGACY = ('iptables', dict(backend='legacy', chains=[dict(name='INPUT')]))


def test_a_missing_feature_skips_with_its_reason():
    found = {'iptables-legacy': {'path': None, 'version': None}}

    def only(**why):
        return lambda feature: why.get(feature.replace('-', '_'))

    assert 'netdev egress' in scenario.missing_feature(_steps(NETDEV_EGRESS), found, '5.10.0-28-amd64', False, only())
    assert scenario.missing_feature(_steps(NETDEV_EGRESS), found, '6.1.0-18-amd64', False, only()) is None
    assert scenario.missing_feature(_steps(XDP), found, '6.1.0', False, only(bpf='no bpf(2)')) == 'no bpf(2)'
    assert scenario.missing_feature(_steps(XDP), found, '6.1.0', False, only()) is None
    assert scenario.missing_feature([], found, '6.1.0', True, only(ovs='no ovs')) == 'no ovs'
    assert scenario.missing_feature([], found, '6.1.0', False, only(ovs='no ovs')) is None
    assert 'iptables-legacy' in scenario.missing_feature(_steps(LEGACY), found, '6.1.0', False, only())
    tc = ('bpf', dict(interface='client', hook='tc'))
    assert scenario.missing_feature(_steps(tc), found, '6.1.0', False, only(bpf_tc='no pyroute2')) == 'no pyroute2'
    assert scenario.missing_feature(_steps(XDP), found, '6.1.0', False, only(bpf_tc='no')) is None


@pytest.mark.parametrize('args, message', [
    (dict(interface='server', hook='xdp'), 'interface names the interface of server towards a peer'),
    (dict(interface='nobody', hook='xdp'), "'nobody' is no namespace server has a link to"),
    (dict(interface='client', hook='xdp', dport=0), 'dport is a port from 1 to 65535'),
    (dict(interface='client', hook='ebpf'), 'hook'),
])
def test_a_bpf_step_is_checked_before_any_lab_exists(args, message):
    with pytest.raises(scenario.ScenarioError, match='step 1 \\(bpf\\)') as e:
        _steps(('bpf', args))
    assert message in str(e.value)


def test_bind_gives_the_lab_interface_names():
    (dummy, role, params), = _steps(NETDEV_EGRESS)
    bound = KINDS['nft'].bind(params, PLAN, role)
    assert bound['chains'][0]['device'] == 'k3x9-client' and params['chains'][0]['device'] == 'client'
    (dummy, role, params), = _steps(XDP)
    assert KINDS['bpf'].bind(params, PLAN, role)['interface'] == 'k3x9-client'
    assert KINDS['bpf'].marks(params, {}) == ['xdp']
