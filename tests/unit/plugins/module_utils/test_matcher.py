"""What a probe's packet does in a chain: LOG rules it hits (sure or maybe) and the verdict."""

import pytest

from ansible_collections.pflab.netfilter.plugins.module_utils import matcher, xtables

SYN = matcher.packet('tcp', '198.18.0.1', '198.18.0.2', 40312, 12345, 'ab12-client', '', ['SYN'], 'new')
SYN_ACK = matcher.packet('tcp', '198.18.0.2', '198.18.0.1', 12345, 40312, '', 'ab12-client', ['SYN', 'ACK'],
                         'established')


def table(save):
    return xtables.parse_save(save)['filter']


def logs(walk):
    return [(log['prefix'], log['certain']) for log in walk['logs']]


@pytest.mark.parametrize('rules, expected_logs, verdict', [
    (['-p udp -m udp --dport 53 -j LOG --log-prefix dns', '-p tcp -m tcp --dport 12345 -j DROP'], [], 'drop'),
    (['-p tcp -m tcp --dport 12345 -j LOG --log-prefix ipt-input', '-p tcp -m tcp --dport 12345 -j DROP'],
     [('ipt-input', True)], 'drop'),
    (['-s 198.18.0.0/24 -i ab12+ -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j LOG --log-prefix "a b"'],
     [('a b', True)], 'accept'),
    (['! -s 198.18.0.0/24 -j LOG --log-prefix outsider', '-i other -j DROP'], [], 'accept'),
    (['-m limit --limit 1/sec -j LOG --log-prefix limited', '-p tcp -j ACCEPT'], [('limited', False)], 'accept'),
    (['-m conntrack --ctstate ESTABLISHED -j ACCEPT', '-p tcp -m multiport --dports 22,12000:13000 -j LOG '
      '--log-prefix multi', '-j REJECT --reject-with icmp-port-unreachable'], [('multi', True)], 'drop'),
    (['-m recent --rcheck -j DROP', '-j LOG --log-prefix after'], [('after', False)], 'maybe'),
    (['-p tcp -j LAB', '-j LOG --log-prefix back'], [('in-lab', True), ('back', True)], 'accept'),
    (['-p tcp -g LAB', '-j LOG --log-prefix never'], [('in-lab', True)], 'accept'),
    (['-p tcp -j NFQUEUE --queue-num 1', '-j LOG --log-prefix after-queue'], [('after-queue', False)], 'maybe'),
    # an unknown match's value is never read as an option: -p here is the string searched for
    (['-m string --string -p --algo bm -j LOG --log-prefix str', '-j DROP'], [('str', False)], 'drop'),
    (['-m conntrack --ctstate DNAT -j LOG --log-prefix nat', '-j DROP'], [('nat', False)], 'drop'),
])
def test_xtables_walks(rules, expected_logs, verdict):
    save = '*filter\n:INPUT ACCEPT [0:0]\n:LAB - [0:0]\n' + ''.join('-A INPUT %s\n' % r for r in rules) + \
        '-A LAB -j LOG --log-prefix in-lab\n-A LAB -j RETURN\nCOMMIT\n'
    walk = matcher.xtables_walk(table(save), 'INPUT', SYN)
    assert (logs(walk), walk['verdict']) == (expected_logs, verdict)


def test_xtables_policy_and_the_syn_ack():
    save = '*filter\n:OUTPUT DROP [0:0]\n-A OUTPUT -p tcp -m tcp --sport 12345 --syn -j LOG --log-prefix syn-only\n' \
           '-A OUTPUT -p tcp -m state --state ESTABLISHED -j LOG --log-prefix est\nCOMMIT\n'
    walk = matcher.xtables_walk(table(save), 'OUTPUT', SYN_ACK)
    assert (logs(walk), walk['verdict']) == ([('est', True)], 'drop')


# Rules as `nft -j list ruleset` (nftables 1.0.6) gives them back.
def rule(chain, *expr):
    return {'rule': {'family': 'inet', 'table': 'filter', 'chain': chain, 'expr': list(expr)}}


def tcp(field, right):
    return {'match': {'op': '==', 'left': {'payload': {'protocol': 'tcp', 'field': field}}, 'right': right}}


def log(prefix, **extra):
    return {'log': dict(prefix=prefix, **extra)}


UDP_53 = {'match': {'op': '==', 'left': {'payload': {'protocol': 'udp', 'field': 'dport'}}, 'right': 53}}
SADDR = {'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'saddr'}},
                   'right': {'prefix': {'addr': '198.18.0.0', 'len': 24}}}}
MASKED_SYN = {'match': {'op': '==', 'left': {'&': [{'payload': {'protocol': 'tcp', 'field': 'flags'}}, ['syn', 'ack']]},
                        'right': 'syn'}}
ANY_SYN = {'match': {'op': 'in', 'left': {'payload': {'protocol': 'tcp', 'field': 'flags'}}, 'right': 'syn'}}
CT_EST = {'match': {'op': 'in', 'left': {'ct': {'key': 'state'}}, 'right': ['established', 'related']}}
IIF = {'match': {'op': '==', 'left': {'meta': {'key': 'iifname'}}, 'right': 'ab12-client'}}
LIMIT = {'limit': {'rate': 5, 'burst': 5, 'per': 'second'}}
V6 = {'match': {'op': '==', 'left': {'payload': {'protocol': 'ip6', 'field': 'nexthdr'}}, 'right': 'tcp'}}


def ruleset(policy, *rules):
    return [{'table': {'family': 'inet', 'name': 'filter', 'handle': 1}},
            {'chain': {'family': 'inet', 'table': 'filter', 'name': 'input', 'handle': 1, 'type': 'filter',
                       'hook': 'input', 'prio': 0, 'policy': policy}},
            {'chain': {'family': 'inet', 'table': 'filter', 'name': 'sub', 'handle': 2}},
            rule('sub', log('in-sub')), rule('sub', {'return': None})] + list(rules)


@pytest.mark.parametrize('rules, packet, expected_logs, verdict', [
    ([rule('input', UDP_53, log('dns'), {'accept': None}),
      rule('input', tcp('dport', 12345), log('nft-input'), {'drop': None})],
     SYN, [('nft-input', True)], 'drop'),
    ([rule('input', tcp('dport', {'set': [22, 12345]}), SADDR, log('set-and-net'))], SYN, [('set-and-net', True)],
     'drop'),
    ([rule('input', tcp('dport', {'range': [12000, 13000]}), MASKED_SYN, log('masked'))], SYN, [('masked', True)],
     'drop'),
    ([rule('input', MASKED_SYN, log('masked'))], SYN_ACK, [], 'drop'),
    ([rule('input', ANY_SYN, log('any-syn'))], SYN_ACK, [('any-syn', True)], 'drop'),
    ([rule('input', CT_EST, {'accept': None}), rule('input', IIF, log('iif'))], SYN, [('iif', True)], 'drop'),
    ([rule('input', LIMIT, log('limited'), {'drop': None}), rule('input', log('after'))], SYN,
     [('limited', False), ('after', False)], 'drop'),  # both ways end in a drop
    ([rule('input', log('nflog', group=2)), rule('input', V6, log('v6'))], SYN, [], 'drop'),
    ([rule('input', log('before-match'), tcp('dport', 1), {'drop': None})], SYN, [('before-match', True)], 'drop'),
    ([rule('input', tcp('dport', 12345), {'jump': {'target': 'sub'}}), rule('input', log('back'))], SYN,
     [('in-sub', True), ('back', True)], 'drop'),
    ([rule('input', {'xt': {'type': 'match', 'name': 'u32'}}, log('xt'))], SYN, [('xt', False)], 'drop'),
    ([rule('input', {'match': {'op': '==', 'left': {'payload': {'protocol': 'ip', 'field': 'saddr'}},
                               'right': '@blocked'}}, log('in-set'))], SYN, [('in-set', False)], 'drop'),
    ([rule('input', {'match': {'op': '==', 'left': {'meta': {'key': 'iifname'}}, 'right': 'ab12*'}}, log('wild'))],
     SYN, [('wild', True)], 'drop'),
    ([rule('input', tcp('dport', 12345), {'dnat': {'addr': '198.18.0.9'}}), rule('input', log('after-dnat'))], SYN,
     [('after-dnat', False)], 'maybe'),
    ([rule('input', {'match': {'op': '==', 'left': {'ct': {'key': 'state'}}, 'right': {'set': ['new']}}},
           log('ct-set'))], SYN, [('ct-set', True)], 'drop'),
])
def test_nft_walks(rules, packet, expected_logs, verdict):
    """Chain input has policy drop: falling off its end drops."""
    walk = matcher.nft_walk(ruleset('drop', *rules), 'inet', 'filter', 'input', packet)
    assert (logs(walk), walk['verdict']) == (expected_logs, verdict)


def test_nft_a_possible_drop_before_policy_accept_is_maybe():
    objects = ruleset('accept', rule('input', LIMIT, {'drop': None}), rule('input', log('after')))
    walk = matcher.nft_walk(objects, 'inet', 'filter', 'input', SYN)
    assert (logs(walk), walk['verdict']) == ([('after', False)], 'maybe')


def test_nft_policy_accept_and_a_missing_jump_target():
    objects = ruleset('accept', rule('input', {'jump': {'target': 'gone'}}), rule('input', log('after')))
    walk = matcher.nft_walk(objects, 'inet', 'filter', 'input', SYN)
    assert (logs(walk), walk['verdict']) == ([('after', False)], 'maybe')


def test_a_jump_loop_ends():
    objects = ruleset('accept') + [rule('sub', {'jump': {'target': 'sub'}})]
    objects = [o for o in objects if not ('rule' in o and o['rule']['chain'] == 'sub' and 'return' in o['rule']['expr'][0])]
    walk = matcher.nft_walk(objects + [rule('input', {'jump': {'target': 'sub'}})], 'inet', 'filter', 'input', SYN)
    assert walk['verdict'] == 'maybe'


def test_before_conntrack_a_state_match_is_unknown():
    raw = matcher.packet('tcp', '198.18.0.1', '198.18.0.2', 40312, 12345, 'ab12-client', '', ['SYN'], None)
    save = '*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m state --state NEW -j LOG --log-prefix raw-new\nCOMMIT\n'
    walk = matcher.xtables_walk(xtables.parse_save(save)['raw'], 'PREROUTING', raw)
    assert logs(walk) == [('raw-new', False)]
    walk = matcher.nft_walk(ruleset('accept', rule('input', CT_EST, log('est'))), 'inet', 'filter', 'input', raw)
    assert logs(walk) == [('est', False)]
