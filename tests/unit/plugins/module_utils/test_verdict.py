"""Flows, the orders a host's hooks leave open, what a twin cannot replay, and verdicts from counters: pure logic."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.pflab.netfilter.plugins.module_utils import matcher, twin, verdict, xtables
from ansible_collections.pflab.netfilter.plugins.module_utils.verdict import FlowError

FLOW = dict(protocol='tcp', source='203.0.113.9', source_port=None, destination='192.0.2.10', destination_port=443,
            direction='in', interface='eth0', ipver=4)


def flow(**changes):
    return dict(FLOW, name='f', **changes)


def test_a_flow_reads_as_text_and_back():
    parsed = verdict.check_flow(1, 'udp [2001:db8:1::9]:5353 > [2001:db8::10]:53 out eth0.7')
    assert parsed == dict(name='udp [2001:db8:1::9]:5353 > [2001:db8::10]:53 out eth0.7', protocol='udp',
                          source='2001:db8:1::9', source_port=5353, destination='2001:db8::10', destination_port=53,
                          direction='out', interface='eth0.7', ipver=6)


addresses = st.one_of(st.ip_addresses(v=4, network='198.18.0.0/15'), st.ip_addresses(v=4, network='203.0.113.0/24'),
                      st.ip_addresses(v=6, network='2001:db8::/32'))


@settings(max_examples=200, deadline=None)
@given(proto=st.sampled_from(['tcp', 'udp']), src=addresses, dst=addresses, sport=st.one_of(st.none(),
       st.integers(1, 65535)), dport=st.integers(1, 65535), direction=st.sampled_from(['in', 'out']),
       iface=st.from_regex(r'[a-z][a-z0-9]{0,14}', fullmatch=True))
def test_every_valid_flow_survives_its_text_form(proto, src, dst, sport, dport, direction, iface):
    if src.version != dst.version or src == dst or iface == 'lo' or any(
            a.is_unspecified for a in (src, dst)):
        return
    given_ = dict(protocol=proto, source=str(src), source_port=sport, destination=str(dst), destination_port=dport,
                  direction=direction, interface=iface)
    first = verdict.check_flow(1, given_)
    again = verdict.check_flow(1, first['name'])
    assert again == first


@pytest.mark.parametrize('value, message', [
    ('tcp 203.0.113.9 > 192.0.2.10:443 in eth0\n', 'write'),
    (' tcp 203.0.113.9 > 192.0.2.10:443 in eth0', 'write'),
    ('tcp 203.0.113.9 > 192.0.2.10:443 in eth0 extra', 'write'),
    ('tcp 203.0.113.9:0 > 192.0.2.10:443 in eth0', 'not a port'),
    ('tcp 203.0.113.9 > [2001:db8::10]:443 in eth0', 'one IP version'),
    ('tcp 203.0.113.9 > 224.0.0.1:443 in eth0', 'unicast'),
    ('tcp 203.0.113.9 > 203.0.113.9:443 in eth0', 'one address'),
    ('tcp 203.0.113.9 > 192.0.2.10:443 in lo', 'loopback'),
    ('tcp 203.0.113.9 > 192.0.2.10:443 in eth0/x', 'interface'),
    ('tcp 203.0.113.9 > 192.0.2.10:443 in waytoolonginterface', 'interface'),
    (dict(FLOW, protocol='sctp'), 'protocol'),
    (dict(FLOW, name='x' * 101), 'printable'),
    (['list'], 'mapping or text'),
])
def test_bad_flows_say_what_is_wrong(value, message):
    if isinstance(value, dict):
        value = dict((k, v) for k, v in value.items() if k != 'ipver')
    with pytest.raises(FlowError) as e:
        verdict.check_flow(3, value)
    assert str(e.value).startswith('flow 3: ') and message in str(e.value)


def _point(point, *entries, listed=False):
    return dict(point=point, order='nft list hooks' if listed else 'priority', entries=[
        dict(backend=b, family=f, table=t, chain=c, priority=p) for b, f, t, c, p in entries])


LEGACY = ('iptables-legacy', 'ip', 'filter', 'INPUT', 0)
WEB = ('nftables', 'inet', 'web', 'in', 0)
FWD = ('nftables', 'inet', 'fw', 'in', 0)


def test_orders_permute_only_the_units_that_share_a_priority():
    units = ['iptables-legacy', 'iptables-nft', 'nftables inet web', 'nftables inet late']
    groups = verdict.order_groups([_point('ipv4/input', LEGACY, WEB, ('nftables', 'inet', 'late', 'in', 10))],
                                  set(units))
    assert groups == [('ipv4/input', 0, ['iptables-legacy', 'nftables inet web'], False)]
    found = verdict.orders(units, groups, 24)
    assert found == [tuple(units), ('nftables inet web', 'iptables-nft', 'iptables-legacy', 'nftables inet late')]
    assert [verdict.runs_first(o, groups[0][2]) for o in found] == ['nftables inet web', 'iptables-legacy']


def test_three_tied_units_give_one_order_per_unit_that_can_run_first_at_each_point():
    units = ['iptables-legacy', 'nftables inet web', 'nftables inet fw']
    groups = verdict.order_groups([_point('ipv4/input', LEGACY, WEB, FWD)], set(units))
    found = verdict.orders(units, groups, 24)
    assert len(found) == 6  # every order of three differs at that point
    with pytest.raises(FlowError, match='more than 5 registration orders'):
        verdict.orders(['iptables-legacy', 'nftables inet web', 'nftables inet fw'], groups, 5)


def test_a_unit_that_is_not_loaded_is_no_member_of_a_group_and_too_many_tied_units_are_refused():
    groups = verdict.order_groups([_point('ipv4/input', LEGACY, ('iptables-nft', 'ip', 'filter', 'INPUT', 0))],
                                  {'iptables-legacy'})
    assert groups == [] and verdict.orders(['iptables-legacy'], groups, 24) == [('iptables-legacy',)]
    units = ['nftables inet t%d' % n for n in range(9)]
    entries = [('nftables', 'inet', 't%d' % n, 'in', 0) for n in range(9)]
    with pytest.raises(FlowError, match='9 filters share priorities'):
        verdict.orders(units, verdict.order_groups([_point('ipv4/input', *entries)], set(units)), 24)


def test_the_live_order_is_the_one_nft_list_hooks_gave():
    both = {'iptables-legacy', 'nftables inet web'}
    groups = verdict.order_groups([_point('ipv4/input', WEB, LEGACY, listed=True)], both)
    assert groups[0][3] is True
    assert verdict.live_order(('iptables-legacy', 'nftables inet web'), groups) is True
    assert verdict.live_order(('nftables inet web', 'iptables-legacy'), groups) is False
    unknown = verdict.order_groups([_point('ipv4/input', WEB, LEGACY)], both)
    assert verdict.live_order(('iptables-legacy', 'nftables inet web'), unknown) is None


INTERFACES = {'eth0': dict(kind=None, link_type='ether', addresses=[('192.0.2.10', 24)], xdp=[], tc={}),
              'br0': dict(kind='bridge', link_type='ether', addresses=[], xdp=[], tc={}),
              'vx0': dict(kind='vxlan', link_type='ether', addresses=[], xdp=[], tc={}),
              'port0': dict(kind='veth', master_kind='bridge', link_type='ether', addresses=[], xdp=[], tc={}),
              'x0': dict(kind=None, link_type='ether', addresses=[], xdp=[dict(name='f', id=3)], tc={}),
              't0': dict(kind=None, link_type='ether', addresses=[], tc={'ingress': [dict(kind='bpf')]}),
              'vrf0': dict(kind='vrf', link_type='ether', addresses=[], xdp=[], tc={})}
LOCAL = {'192.0.2.10', '127.0.0.1'}


@pytest.mark.parametrize('changes, why', [
    ({}, None),
    (dict(interface='eth9'), 'does not exist'),
    (dict(interface='br0'), 'is a bridge'),
    (dict(interface='vx0'), 'is a vxlan'),
    (dict(interface='port0'), 'a port of a bridge'),
    (dict(interface='vrf0'), 'is a vrf'),
    (dict(interface='x0'), 'XDP program'),
    (dict(interface='t0'), 'tc ingress filters'),
    (dict(destination='198.51.100.1'), 'forwarded'),
    (dict(direction='out'), 'not its own'),
    (dict(direction='out', source='192.0.2.10', destination='192.0.2.10'), 'of the host itself'),
])
def test_host_limits(changes, why):
    found = verdict.host_limits(flow(**changes), INTERFACES, LOCAL, set(), [])
    assert (found is None) if why is None else why in found


def test_bpf_programs_at_netfilter_hooks_or_tcx_keep_a_flow_from_the_twin():
    programs = [dict(kind='tcx', dev='eth0', name='p', id=7)]
    assert 'tcx on eth0' in verdict.host_limits(flow(), INTERFACES, LOCAL, set(), [], programs)
    assert verdict.host_limits(flow(), INTERFACES, LOCAL, set(), [], [dict(kind='tcx', dev='eth1')]) is None
    assert 'netfilter hook' in verdict.host_limits(flow(), INTERFACES, LOCAL, set(), [], [dict(kind='netfilter')])


def test_an_incompatible_iptables_nft_table_cannot_be_copied():
    assert 'cannot read table ipv4 filter' in verdict.host_limits(flow(), INTERFACES, LOCAL, set(), ['ipv4 filter'])


def _table(text):
    return xtables.parse_save(text)['filter']


@pytest.mark.parametrize('rules, why', [
    (['-p tcp -m tcp --dport 443 -j ACCEPT'], None),
    (['-p tcp -m tcp --dport 22 -m owner --uid-owner 0 -j DROP'], None),  # cannot match 443
    (['-m owner --uid-owner 0 -j DROP'], '-m owner'),
    (['-m set --match-set bad src -j DROP'], 'ipsets'),
    (['-m mark --mark 0x1 -j ACCEPT'], 'a mark no copied rule sets'),
    (['-j MARK --set-mark 0x1', '-m mark --mark 0x1 -j ACCEPT'], None),
    (['-p tcp -j NFQUEUE --queue-num 1'], 'NFQUEUE'),
    (['-p tcp -j ACCEPT', '-m statistic --mode random --probability 0.5 -j DROP'], None),  # after a sure accept
    (['-j OTHER'], 'chance'),  # reached through a jump
    (['-p tcp -m limit --limit 5/min -j LOG'], None),
    (['-p tcp -m limit --limit 5/sec -j ACCEPT'], 'a rate'),
])
def test_rule_limits_look_only_at_rules_the_flow_may_reach(rules, why):
    text = '*filter\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:OTHER -\n' + ''.join('-A INPUT %s\n' % r for r in rules) + \
        '-A OTHER -m statistic --mode random --probability 0.5 -j DROP\nCOMMIT\n'
    found = verdict.RuleLimits([('iptables-legacy', 4, _table(text))], []).of(flow())
    assert (found is None) if why is None else (why in found and found.startswith('rule ')), found


def _rule(chain, *expr):
    return {'rule': dict(family='inet', table='t', chain=chain, handle=1, expr=list(expr))}


DPORT_443 = {'match': {'op': '==', 'left': {'payload': {'protocol': 'tcp', 'field': 'dport'}}, 'right': 443}}
CHAIN = {'chain': dict(family='inet', table='t', name='in', handle=1, hook='input', prio=0, policy='accept', type='filter')}


@pytest.mark.parametrize('expr, why', [
    ([DPORT_443, {'accept': None}], None),
    ([{'match': {'op': '==', 'left': {'meta': {'key': 'skuid'}}, 'right': 0}}, {'drop': None}], 'meta skuid'),
    ([{'match': {'op': '==', 'left': {'socket': {'key': 'transparent'}}, 'right': 1}}, {'accept': None}], 'socket'),
    ([{'match': {'op': '==', 'left': {'meta': {'key': 'mark'}}, 'right': 1}}, {'accept': None}], 'meta mark'),
    ([{'match': {'op': '==', 'left': {'fib': {'result': 'oif', 'flags': ['saddr', 'iif']}}, 'right': False}},
      {'drop': None}], 'fib'),
    ([{'match': {'op': '==', 'left': {'ct': {'key': 'state'}}, 'right': 'established'}}, {'accept': None}], None),
    ([DPORT_443, {'limit': {'rate': 5, 'per': 'second'}}, {'accept': None}], 'a rate'),
    ([DPORT_443, {'limit': {'rate': 5, 'per': 'second'}}, {'log': {}}], None),
])
def test_nft_rule_limits(expr, why):
    objects = [{'table': dict(family='inet', name='t', handle=1)}, CHAIN, _rule('in', *expr)]
    found = verdict.RuleLimits([], objects).of(flow())
    assert (found is None) if why is None else why in found, found


def test_a_mark_the_rules_set_themselves_is_replayable():
    setting = _rule('in', {'mangle': {'key': {'meta': {'key': 'mark'}}, 'value': 1}})
    matching = _rule('in', {'match': {'op': '==', 'left': {'meta': {'key': 'mark'}}, 'right': 1}}, {'accept': None})
    objects = [{'table': dict(family='inet', name='t', handle=1)}, CHAIN, setting, matching]
    assert verdict.marks_set([], objects)
    assert verdict.RuleLimits([], objects).of(flow()) is None


def test_counters_and_actions_of_a_save():
    text = ('*filter\n:INPUT DROP [3:180]\n:FORWARD ACCEPT [0:0]\n:MINE - [0:0]\n[5:300] -A INPUT -j MINE\n'
            '[2:120] -A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n[1:60] -A MINE -j LOG\n[0:0] -A MINE -j RETURN\n'
            'COMMIT\n')
    counts, texts = verdict.xt_counters(text)
    assert counts == {('filter', 'INPUT', 'policy'): 3, ('filter', 'FORWARD', 'policy'): 0,
                      ('filter', 'INPUT', 1): 5, ('filter', 'INPUT', 2): 2, ('filter', 'MINE', 1): 1,
                      ('filter', 'MINE', 2): 0}
    chains = {'INPUT', 'FORWARD', 'MINE'}
    assert dict((k, verdict.xt_action(t, chains)) for k, t in texts.items()) == {
        ('filter', 'INPUT', 'policy'): 'drop', ('filter', 'FORWARD', 'policy'): 'accept',
        ('filter', 'INPUT', 1): 'jump:MINE', ('filter', 'INPUT', 2): 'accept', ('filter', 'MINE', 1): None,
        ('filter', 'MINE', 2): 'return'}
    assert verdict.xt_action('-p tcp -j DNAT --to-destination 192.0.2.1', chains) == 'nat'
    assert verdict.xt_action('-j REJECT --reject-with tcp-reset', chains) == 'reject'


def test_nft_actions_and_the_chains_that_reach_a_user_chain():
    assert verdict.nft_action([DPORT_443, {'counter': None}, {'jump': {'target': 'x'}}]) == 'jump:x'
    assert verdict.nft_action([{'reject': {'type': 'icmpx'}}]) == 'reject'
    assert verdict.nft_action([{'mangle': {}}]) is None
    hooks = verdict.chain_hooks({'in': ('input', ['jump:a']), 'out': ('output', ['goto:b']), 'a': (None, ['jump:b']),
                                 'b': (None, [None]), 'lone': (None, [])})
    assert hooks == {'in': {'input'}, 'out': {'output'}, 'a': {'input'}, 'b': {'input', 'output'}, 'lone': set()}


def _counted(chain, action, hooks, position=1):
    return dict(filter='nftables', family='inet', table='t', chain=chain, position=position, rule='r', action=action,
                hooks=set(hooks))


@pytest.mark.parametrize('direction, outcome, counted, witnessed, found, by', [
    ('in', 'refused', [_counted('in', 'accept', ['input'])], set(), 'accepted', None),
    ('in', 'refused', [_counted('in', 'reject', ['input'])], set(), 'rejected', 0),
    ('in', 'unreachable', [_counted('in', 'reject', ['input'])], set(), 'rejected', 0),
    ('in', 'dropped', [_counted('in', 'accept', ['input']), _counted('in2', 'drop', ['input'])], {'nftables'},
     'dropped', 1),
    ('in', 'timeout', [_counted('in', 'accept', ['input']), _counted('out', 'drop', ['output'])], set(),
     'accepted', 1),
    ('out', 'timeout', [_counted('out', 'accept', ['output']), _counted('in', 'drop', ['input'])], set(),
     'accepted', 1),
    ('in', 'dropped', [], {'iptables-legacy'}, 'dropped', None),
])
def test_decide(direction, outcome, counted, witnessed, found, by):
    result = verdict.decide(direction, outcome, counted, witnessed)
    assert result[0] == found
    assert result[1] is (counted[by] if by is not None else None)
    if not counted and witnessed:
        assert 'iptables-legacy' in result[2]


def test_the_twin_counts_each_rule_just_before_its_verdict_and_drops_the_hosts_counters():
    expr = [{'counter': {'packets': 9, 'bytes': 9}}, DPORT_443, {'counter': 'named'}, {'log': {}}, {'accept': None}]
    assert twin._counted(expr, 'c') == [DPORT_443, {'log': {}}, {'counter': 'c'}, {'accept': None}]
    assert twin._counted([DPORT_443], 'c') == [DPORT_443, {'counter': 'c'}]
    unit = twin.Unit('nftables inet t', 'nftables', objects=[
        {'table': dict(family='inet', name='t', handle=1)}, CHAIN, _rule('in', DPORT_443, {'accept': None}),
        {'chain': dict(family='inet', table='t', name='mine', handle=2)}, _rule('mine', {'drop': None})])
    commands = [next(iter(c['add'].items())) for c in json.loads(unit.load_json())['nftables']]
    assert [kind for kind, dummy in commands] == ['table', 'chain', 'chain', 'counter', 'counter', 'counter', 'rule',
                                                  'rule', 'rule']
    assert unit.counters == {'pflab_twin_0': ('in', 1), 'pflab_twin_1': ('mine', 1), 'pflab_twin_2': ('in', 'policy')}
    assert commands[-1][1]['expr'] == [{'counter': 'pflab_twin_2'}] and 'handle' not in commands[-2][1]


def test_rule_texts_of_a_listing_with_handles():
    text = ('table inet t { # handle 4\n\tcounter pflab_twin_0 { # handle 5\n\t\tpackets 0 bytes 0\n\t}\n'
            '\tchain in { # handle 1\n\t\ttype filter hook input priority filter; '
            'policy drop;\n\t\ttcp dport 22 counter name "pflab_twin_0" accept # handle 2\n'
            '\t\tcounter name "pflab_twin_1" # handle 3\n\t}\n\tset s { # handle 6\n\t\ttype ipv4_addr\n'
            '\t\telements = { 192.0.2.1 } # handle 7\n\t}\n}\n')
    assert twin.parse_nft_texts(text) == {('inet', 't', 'in'): ['tcp dport 22 accept', '']}


@pytest.mark.parametrize('outcome, counted, witnessed, found', [
    ('timeout', [_counted('shared', 'drop', ['input', 'output'])], set(), 'undetermined'),
    ('refused', [_counted('shared', 'reject', ['input', 'output'])], set(), 'undetermined'),
    ('timeout', [_counted('in', 'accept', ['input'])], set(), 'undetermined'),  # no evidence of a drop
    ('timeout', [_counted('in', 'vmap', ['input'])], {'nftables'}, 'dropped'),
    ('timeout', [_counted('lost', 'drop', [])], set(), 'undetermined'),  # hooks not known
    ('timeout', [_counted('in', 'reject', ['input'])], {'nftables'}, 'dropped'),  # its answer never came
])
def test_a_verdict_that_rests_on_nothing_certain_is_undetermined(outcome, counted, witnessed, found):
    assert verdict.decide('in', outcome, counted, witnessed)[0] == found


def test_default_source_ports_and_flows_that_would_share_a_connection():
    flows = verdict.check_flows(['tcp 203.0.113.9 > 192.0.2.10:22 in eth0', 'udp 203.0.113.9 > 192.0.2.10:53 in eth0'])
    assert [f['source_port'] for f in flows] == [40001, 40002]
    with pytest.raises(FlowError, match="flow 2 is flow 1's connection"):
        verdict.check_flows(['tcp 192.0.2.10:40001 > 203.0.113.9:80 out eth0',
                             'tcp 203.0.113.9:80 > 192.0.2.10:40001 in eth0'])
    with pytest.raises(FlowError, match='printable'):
        verdict.check_flow(1, dict(FLOW, name='a\u202eb') and dict(
            (k, v) for k, v in dict(FLOW, name='a\u202eb').items() if k != 'ipver'))


def test_a_comment_is_one_word_and_an_ipv6_rule_is_not_an_ipv4_flows():
    chains = {'INPUT'}
    assert verdict.xt_action('-m comment --comment "see -j DROP below" -j ACCEPT', chains) == 'accept'
    assert not verdict.marks_set([_table('*filter\n:INPUT ACCEPT\n-A INPUT -m comment --comment "-j MARK" -j ACCEPT\n'
                                         'COMMIT\n')], [])
    owner = _table('*filter\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n-A INPUT -m owner --uid-owner 0 -j DROP\nCOMMIT\n')
    limits = verdict.RuleLimits([('iptables-legacy', 6, owner)], [])
    assert limits.of(flow()) is None
    assert 'owner' in limits.of(flow(source='2001:db8:1::9', destination='2001:db8::10', ipver=6))


def test_chains_a_verdict_map_sends_to_take_its_rule_s_hooks():
    vmap = {'vmap': {'key': {'payload': {'protocol': 'tcp', 'field': 'dport'}},
                     'data': {'set': [[22, {'jump': {'target': 'ssh'}}], [80, {'goto': {'target': 'web'}}]]}}}
    assert verdict.nft_targets([vmap]) == ['jump:ssh', 'goto:web']
    hooks = verdict.chain_hooks({'in': ('input', verdict.nft_targets([vmap])), 'ssh': (None, []), 'web': (None, [])})
    assert hooks['ssh'] == hooks['web'] == {'input'}


def test_what_the_twin_leaves_out_of_the_copy():
    table = _table('*filter\n:INPUT ACCEPT\n-A INPUT -p tcp -j LOG --log-prefix "x -j y "\n'
                   '-A INPUT -m comment --comment "-j LOG" -j ACCEPT\n-A INPUT -j IDLETIMER --timeout 5 --label l\n'
                   'COMMIT\n')
    assert twin._quiet(table).rules['INPUT'] == ['-p tcp', '-m comment --comment "-j LOG" -j ACCEPT', '']
    assert table.rules['INPUT'][0].endswith('"x -j y "')  # the reading is left as it was
    unit = twin.Unit('nftables inet t', 'nftables', objects=[
        {'table': dict(family='inet', name='t', handle=1, flags=['owner', 'dormant'])}, CHAIN,
        _rule('in', DPORT_443, {'log': {'prefix': 'x'}}, {'accept': None})])
    commands = [next(iter(c['add'].items())) for c in json.loads(unit.load_json())['nftables']]
    assert commands[0][1]['flags'] == ['dormant']
    assert commands[-2][1]['expr'] == [DPORT_443, {'counter': 'pflab_twin_0'}, {'accept': None}]


def test_whose_a_rule_of_a_shared_chain_is_its_matches_tell():
    out = flow(direction='out', source='192.0.2.10', destination='198.51.100.10', destination_port=80, source_port=40001)
    packet, answer = verdict.flow_packets(out)
    rule = '-d 198.51.100.10/32 -p tcp -m tcp --dport 80 -j REJECT'
    assert verdict.side({}, [matcher.xtables_matches(rule, p) for p in (packet, answer)]) == 'packet'
    assert verdict.side({}, [matcher.xtables_matches('-j ACCEPT', p) for p in (packet, answer)]) is None
    counted = [dict(_counted('KUBE-SERVICES', 'reject', ['input', 'output']), side='packet')]
    assert verdict.decide('out', 'refused', counted, set())[0] == 'rejected'
